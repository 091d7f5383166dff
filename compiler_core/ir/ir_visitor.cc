#include "compiler_core/ir/ir_visitor.h"

namespace kiln::core::ir {

void IRVisitor::visit(const Expr& e) {
  if (!e.defined()) return;
  switch (e.kind()) {
#define KILN_X(name)          \
  case NodeKind::k##name:     \
    visit_node(e.as<name>()); \
    return;
    KILN_EXPR_NODES(KILN_X)
#undef KILN_X
    default:
      KILN_UNREACHABLE() << "statement kind in an expression";
  }
}

void IRVisitor::visit(const Stmt& s) {
  if (!s.defined()) return;
  switch (s.kind()) {
#define KILN_X(name)          \
  case NodeKind::k##name:     \
    visit_node(s.as<name>()); \
    return;
    KILN_STMT_NODES(KILN_X)
#undef KILN_X
    default:
      KILN_UNREACHABLE() << "expression kind in a statement";
  }
}

void IRVisitor::visit_node(const IntImm*) {}
void IRVisitor::visit_node(const FloatImm*) {}
void IRVisitor::visit_node(const Var*) {}
#define KILN_BINARY(name)                      \
  void IRVisitor::visit_node(const name* op) { \
    visit(op->a);                              \
    visit(op->b);                              \
  }
KILN_BINARY(Add)
KILN_BINARY(Sub)
KILN_BINARY(Mul)
KILN_BINARY(Div)
KILN_BINARY(Mod)
KILN_BINARY(Min)
KILN_BINARY(Max)
KILN_BINARY(EQ)
KILN_BINARY(NE)
KILN_BINARY(LT)
KILN_BINARY(LE)
KILN_BINARY(And)
KILN_BINARY(Or)
#undef KILN_BINARY
void IRVisitor::visit_node(const Not* op) { visit(op->a); }
void IRVisitor::visit_node(const Select* op) {
  visit(op->condition);
  visit(op->true_value);
  visit(op->false_value);
}
void IRVisitor::visit_node(const Cast* op) { visit(op->value); }
void IRVisitor::visit_node(const Ramp* op) {
  visit(op->base);
  visit(op->stride);
}
void IRVisitor::visit_node(const Broadcast* op) { visit(op->value); }
void IRVisitor::visit_node(const Load* op) { visit(op->index); }
void IRVisitor::visit_node(const TensorLoad* op) {
  for (const Expr& i : op->indices) visit(i);
}
void IRVisitor::visit_node(const Call* op) {
  for (const Expr& a : op->args) visit(a);
}
void IRVisitor::visit_node(const For* op) {
  visit(op->min);
  visit(op->extent);
  visit(op->body);
}
void IRVisitor::visit_node(const Store* op) {
  visit(op->index);
  visit(op->value);
}
void IRVisitor::visit_node(const TensorStore* op) {
  for (const Expr& i : op->indices) visit(i);
  visit(op->value);
}
void IRVisitor::visit_node(const Block* op) {
  for (const Stmt& s : op->stmts) visit(s);
}
void IRVisitor::visit_node(const IfThenElse* op) {
  visit(op->condition);
  visit(op->then_case);
  visit(op->else_case);
}
void IRVisitor::visit_node(const Realize* op) {
  for (const Range& r : op->bounds) {
    visit(r.min);
    visit(r.extent);
  }
  visit(op->body);
}
void IRVisitor::visit_node(const Allocate* op) { visit(op->body); }

Expr IRMutator::mutate(const Expr& e) {
  if (!e.defined()) return e;
  switch (e.kind()) {
#define KILN_X(name)      \
  case NodeKind::k##name: \
    return mutate_node(e.as<name>(), e);
    KILN_EXPR_NODES(KILN_X)
#undef KILN_X
    default:
      KILN_UNREACHABLE() << "statement kind in an expression";
  }
}

Stmt IRMutator::mutate(const Stmt& s) {
  if (!s.defined()) return s;
  switch (s.kind()) {
#define KILN_X(name)      \
  case NodeKind::k##name: \
    return mutate_node(s.as<name>(), s);
    KILN_STMT_NODES(KILN_X)
#undef KILN_X
    default:
      KILN_UNREACHABLE() << "expression kind in a statement";
  }
}

Expr IRMutator::mutate_node(const IntImm*, const Expr& self) { return self; }
Expr IRMutator::mutate_node(const FloatImm*, const Expr& self) { return self; }
Expr IRMutator::mutate_node(const Var*, const Expr& self) { return self; }
#define KILN_BINARY(name)                                         \
  Expr IRMutator::mutate_node(const name* op, const Expr& self) { \
    Expr a = mutate(op->a);                                       \
    Expr b = mutate(op->b);                                       \
    if (a.same_as(op->a) && b.same_as(op->b)) return self;        \
    return name::make(std::move(a), std::move(b));                \
  }
KILN_BINARY(Add)
KILN_BINARY(Sub)
KILN_BINARY(Mul)
KILN_BINARY(Div)
KILN_BINARY(Mod)
KILN_BINARY(Min)
KILN_BINARY(Max)
KILN_BINARY(EQ)
KILN_BINARY(NE)
KILN_BINARY(LT)
KILN_BINARY(LE)
KILN_BINARY(And)
KILN_BINARY(Or)
#undef KILN_BINARY
Expr IRMutator::mutate_node(const Not* op, const Expr& self) {
  Expr a = mutate(op->a);
  return a.same_as(op->a) ? self : Not::make(std::move(a));
}
Expr IRMutator::mutate_node(const Select* op, const Expr& self) {
  Expr c = mutate(op->condition);
  Expr t = mutate(op->true_value);
  Expr f = mutate(op->false_value);
  if (c.same_as(op->condition) && t.same_as(op->true_value) && f.same_as(op->false_value)) {
    return self;
  }
  return Select::make(std::move(c), std::move(t), std::move(f), op->guarded);
}
Expr IRMutator::mutate_node(const Cast* op, const Expr& self) {
  Expr v = mutate(op->value);
  return v.same_as(op->value) ? self : Cast::make(op->type.with_lanes(v.type().lanes), v);
}
Expr IRMutator::mutate_node(const Ramp* op, const Expr& self) {
  Expr b = mutate(op->base);
  Expr s = mutate(op->stride);
  if (b.same_as(op->base) && s.same_as(op->stride)) return self;
  return Ramp::make(std::move(b), std::move(s), op->lanes);
}
Expr IRMutator::mutate_node(const Broadcast* op, const Expr& self) {
  Expr v = mutate(op->value);
  return v.same_as(op->value) ? self : Broadcast::make(std::move(v), op->lanes);
}
Expr IRMutator::mutate_node(const Load* op, const Expr& self) {
  Expr i = mutate(op->index);
  return i.same_as(op->index) ? self : Load::make(op->buffer, std::move(i));
}
Expr IRMutator::mutate_node(const TensorLoad* op, const Expr& self) {
  std::vector<Expr> indices;
  bool changed = false;
  for (const Expr& i : op->indices) {
    indices.push_back(mutate(i));
    changed |= !indices.back().same_as(i);
  }
  return changed ? TensorLoad::make(op->tensor, std::move(indices)) : self;
}
Expr IRMutator::mutate_node(const Call* op, const Expr& self) {
  std::vector<Expr> args;
  bool changed = false;
  for (const Expr& a : op->args) {
    args.push_back(mutate(a));
    changed |= !args.back().same_as(a);
  }
  return changed ? Call::make(op->op, std::move(args)) : self;
}

Stmt IRMutator::mutate_node(const For* op, const Stmt& self) {
  Expr min = mutate(op->min);
  Expr extent = mutate(op->extent);
  Stmt body = mutate(op->body);
  if (min.same_as(op->min) && extent.same_as(op->extent) && body.same_as(op->body)) return self;
  return For::make(op->var, std::move(min), std::move(extent), op->for_kind, std::move(body));
}
Stmt IRMutator::mutate_node(const Store* op, const Stmt& self) {
  Expr i = mutate(op->index);
  Expr v = mutate(op->value);
  if (i.same_as(op->index) && v.same_as(op->value)) return self;
  return Store::make(op->buffer, std::move(i), std::move(v));
}
Stmt IRMutator::mutate_node(const TensorStore* op, const Stmt& self) {
  std::vector<Expr> indices;
  bool changed = false;
  for (const Expr& i : op->indices) {
    indices.push_back(mutate(i));
    changed |= !indices.back().same_as(i);
  }
  Expr v = mutate(op->value);
  if (!changed && v.same_as(op->value)) return self;
  return TensorStore::make(op->tensor, std::move(indices), std::move(v));
}
Stmt IRMutator::mutate_node(const Block* op, const Stmt& self) {
  std::vector<Stmt> stmts;
  bool changed = false;
  for (const Stmt& s : op->stmts) {
    Stmt m = mutate(s);
    changed |= !m.same_as(s);
    if (m.defined()) stmts.push_back(std::move(m));
  }
  return changed ? Block::make(std::move(stmts)) : self;
}
Stmt IRMutator::mutate_node(const IfThenElse* op, const Stmt& self) {
  Expr c = mutate(op->condition);
  Stmt t = mutate(op->then_case);
  Stmt e = mutate(op->else_case);
  if (c.same_as(op->condition) && t.same_as(op->then_case) && e.same_as(op->else_case)) {
    return self;
  }
  if (!t.defined() && !e.defined()) return Stmt();
  if (!t.defined()) return IfThenElse::make(Not::make(c), e);
  return IfThenElse::make(std::move(c), std::move(t), std::move(e));
}
Stmt IRMutator::mutate_node(const Realize* op, const Stmt& self) {
  std::vector<Range> bounds;
  bool changed = false;
  for (const Range& r : op->bounds) {
    Range m{mutate(r.min), mutate(r.extent)};
    changed |= !m.min.same_as(r.min) || !m.extent.same_as(r.extent);
    bounds.push_back(std::move(m));
  }
  Stmt body = mutate(op->body);
  if (!changed && body.same_as(op->body)) return self;
  if (!body.defined()) return body;
  return Realize::make(op->tensor, std::move(bounds), std::move(body));
}
Stmt IRMutator::mutate_node(const Allocate* op, const Stmt& self) {
  Stmt body = mutate(op->body);
  if (body.same_as(op->body)) return self;
  if (!body.defined()) return body;
  return Allocate::make(op->buffer, op->size, std::move(body));
}

}  // namespace kiln::core::ir
