#include "compiler_core/lower/unroll_loops.h"

#include "compiler_core/ir/ir_visitor.h"
#include "compiler_core/lower/substitute.h"

namespace kiln::core::lower {
namespace {

using ir::Expr;
using ir::Stmt;

class UnrollLoops : public ir::IRMutator {
 public:
  explicit UnrollLoops(const UnrollOptions& options) : options_(options) {}

 protected:
  Stmt mutate_node(const ir::For* op, const Stmt& self) override {
    Stmt body = mutate(op->body);
    if (op->for_kind != ir::ForKind::kUnrolled) {
      if (body.same_as(op->body)) return self;
      return ir::For::make(op->var, op->min, op->extent, op->for_kind, body);
    }
    const int64_t* extent = ir::as_const_int(op->extent);
    if (!extent || *extent > options_.max_extent) {
      return ir::For::make(op->var, op->min, op->extent, ir::ForKind::kSerial, body);
    }
    std::vector<Stmt> copies;
    for (int64_t i = 0; i < *extent; ++i) {
      copies.push_back(substitute(body, op->var, op->min + Expr(i)));
    }
    return ir::Block::make(std::move(copies));
  }

 private:
  const UnrollOptions& options_;
};

}  // namespace

Stmt unroll_loops(const Stmt& s, const UnrollOptions& options) {
  return UnrollLoops(options).mutate(s);
}

}  // namespace kiln::core::lower
