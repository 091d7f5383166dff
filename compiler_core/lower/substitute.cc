#include "compiler_core/lower/substitute.h"

#include "compiler_core/ir/ir_visitor.h"

namespace kiln::core::lower {
namespace {

class Substitute : public ir::IRMutator {
 public:
  explicit Substitute(const std::map<std::string, ir::Expr>& values) : values_(values) {}

 protected:
  ir::Expr mutate_node(const ir::Var* op, const ir::Expr& self) override {
    auto it = values_.find(op->name);
    return it == values_.end() ? self : it->second;
  }

 private:
  const std::map<std::string, ir::Expr>& values_;
};

class UsesVar : public ir::IRVisitor {
 public:
  explicit UsesVar(const std::string& name) : name_(name) {}
  bool found = false;

 protected:
  void visit_node(const ir::Var* op) override { found |= op->name == name_; }

 private:
  const std::string& name_;
};

}  // namespace

ir::Expr substitute(const ir::Expr& e, const std::map<std::string, ir::Expr>& values) {
  return Substitute(values).mutate(e);
}
ir::Stmt substitute(const ir::Stmt& s, const std::map<std::string, ir::Expr>& values) {
  return Substitute(values).mutate(s);
}
ir::Expr substitute(const ir::Expr& e, const std::string& name, const ir::Expr& value) {
  return substitute(e, std::map<std::string, ir::Expr>{{name, value}});
}
ir::Stmt substitute(const ir::Stmt& s, const std::string& name, const ir::Expr& value) {
  return substitute(s, std::map<std::string, ir::Expr>{{name, value}});
}

bool uses_var(const ir::Expr& e, const std::string& name) {
  UsesVar v(name);
  v.visit(e);
  return v.found;
}
bool uses_var(const ir::Stmt& s, const std::string& name) {
  UsesVar v(name);
  v.visit(s);
  return v.found;
}

}  // namespace kiln::core::lower
