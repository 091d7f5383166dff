/// \file
/// IRVisitor walks a tree (every child, in field order); IRMutator rebuilds it, returning the
/// same handle wherever no child changed.
#pragma once

#include "compiler_core/ir/ir.h"

namespace kiln::core::ir {

class IRVisitor {
 public:
  virtual ~IRVisitor() = default;
  virtual void visit(const Expr& e);
  virtual void visit(const Stmt& s);

 protected:
#define KILN_X(name) virtual void visit_node(const name* op);
  KILN_EXPR_NODES(KILN_X) KILN_STMT_NODES(KILN_X)
#undef KILN_X
};

class IRMutator {
 public:
  virtual ~IRMutator() = default;
  virtual Expr mutate(const Expr& e);
  virtual Stmt mutate(const Stmt& s);

 protected:
#define KILN_X(name) virtual Expr mutate_node(const name* op, const Expr& self);
  KILN_EXPR_NODES(KILN_X)
#undef KILN_X
#define KILN_X(name) virtual Stmt mutate_node(const name* op, const Stmt& self);
  KILN_STMT_NODES(KILN_X)
#undef KILN_X
};

}  // namespace kiln::core::ir
