#include "compiler_core/lower/vectorize_loops.h"

#include <algorithm>

#include "compiler_core/ir/ir_visitor.h"
#include "compiler_core/lower/substitute.h"

namespace kiln::core::lower {
namespace {

using ir::Expr;
using ir::Stmt;

struct CannotVectorize {};

Expr widen_to(const Expr& e, int lanes) {
  if (e.type().lanes == lanes) return e;
  KILN_CHECK(e.type().is_scalar()) << "lane count mismatch in vectorization";
  return ir::Broadcast::make(e, lanes);
}

/// Rewrites a loop body for `lanes` lanes of `var`.
class Widen : public ir::IRMutator {
 public:
  Widen(std::string var, Expr min, int lanes)
      : var_(std::move(var)), ramp_(ir::Ramp::make(std::move(min), Expr(1), lanes)) {}

  using ir::IRMutator::mutate;

 protected:
  Expr mutate_node(const ir::Var* op, const Expr& self) override {
    return op->name == var_ ? ramp_ : self;
  }

  Expr mutate_node(const ir::Add* op, const Expr& self) override {
    Expr a = mutate(op->a), b = mutate(op->b);
    if (a.same_as(op->a) && b.same_as(op->b)) return self;
    const auto* ra = a.as<ir::Ramp>();
    const auto* rb = b.as<ir::Ramp>();
    if (ra && b.type().is_scalar()) return ir::Ramp::make(ra->base + b, ra->stride, ra->lanes);
    if (rb && a.type().is_scalar()) return ir::Ramp::make(a + rb->base, rb->stride, rb->lanes);
    if (ra && rb) return ir::Ramp::make(ra->base + rb->base, ra->stride + rb->stride, ra->lanes);
    return binary<ir::Add>(a, b);
  }

  Expr mutate_node(const ir::Sub* op, const Expr& self) override {
    Expr a = mutate(op->a), b = mutate(op->b);
    if (a.same_as(op->a) && b.same_as(op->b)) return self;
    const auto* ra = a.as<ir::Ramp>();
    const auto* rb = b.as<ir::Ramp>();
    if (ra && b.type().is_scalar()) return ir::Ramp::make(ra->base - b, ra->stride, ra->lanes);
    if (rb && a.type().is_scalar()) {
      return ir::Ramp::make(a - rb->base, Expr(0) - rb->stride, rb->lanes);
    }
    if (ra && rb) return ir::Ramp::make(ra->base - rb->base, ra->stride - rb->stride, ra->lanes);
    return binary<ir::Sub>(a, b);
  }

  Expr mutate_node(const ir::Mul* op, const Expr& self) override {
    Expr a = mutate(op->a), b = mutate(op->b);
    if (a.same_as(op->a) && b.same_as(op->b)) return self;
    const auto* ra = a.as<ir::Ramp>();
    const auto* rb = b.as<ir::Ramp>();
    if (ra && b.type().is_scalar()) return ir::Ramp::make(ra->base * b, ra->stride * b, ra->lanes);
    if (rb && a.type().is_scalar()) return ir::Ramp::make(a * rb->base, a * rb->stride, rb->lanes);
    return binary<ir::Mul>(a, b);
  }

#define KILN_WIDEN_BINARY(name)                                     \
  Expr mutate_node(const ir::name* op, const Expr& self) override { \
    Expr a = mutate(op->a), b = mutate(op->b);                      \
    if (a.same_as(op->a) && b.same_as(op->b)) return self;          \
    return binary<ir::name>(a, b);                                  \
  }
  KILN_WIDEN_BINARY(Div)
  KILN_WIDEN_BINARY(Mod)
  KILN_WIDEN_BINARY(Min)
  KILN_WIDEN_BINARY(Max)
  KILN_WIDEN_BINARY(EQ)
  KILN_WIDEN_BINARY(NE)
  KILN_WIDEN_BINARY(LT)
  KILN_WIDEN_BINARY(LE)
  KILN_WIDEN_BINARY(And)
  KILN_WIDEN_BINARY(Or)
#undef KILN_WIDEN_BINARY

  Expr mutate_node(const ir::Select* op, const Expr& self) override {
    Expr c = mutate(op->condition), t = mutate(op->true_value), f = mutate(op->false_value);
    if (c.same_as(op->condition) && t.same_as(op->true_value) && f.same_as(op->false_value)) {
      return self;
    }
    int lanes = std::max({c.type().lanes, t.type().lanes, f.type().lanes});
    return ir::Select::make(widen_to(c, lanes), widen_to(t, lanes), widen_to(f, lanes),
                            op->guarded);
  }

  Expr mutate_node(const ir::Cast* op, const Expr& self) override {
    Expr v = mutate(op->value);
    if (v.same_as(op->value)) return self;
    v = materialize(v);
    return ir::Cast::make(op->type.with_lanes(v.type().lanes), v);
  }

  Expr mutate_node(const ir::Call* op, const Expr& self) override {
    std::vector<Expr> args;
    bool changed = false;
    int lanes = 1;
    for (const Expr& a : op->args) {
      args.push_back(mutate(a));
      changed |= !args.back().same_as(a);
      lanes = std::max(lanes, args.back().type().lanes);
    }
    if (!changed) return self;
    for (Expr& a : args) a = materialize(widen_to(a, lanes));
    return ir::Call::make(op->op, std::move(args));
  }

  Stmt mutate_node(const ir::Store* op, const Stmt& self) override {
    Expr index = mutate(op->index), value = mutate(op->value);
    if (index.same_as(op->index) && value.same_as(op->value)) return self;
    if (index.type().is_scalar()) throw CannotVectorize{};
    return ir::Store::make(op->buffer, index, widen_to(value, index.type().lanes));
  }

  Stmt mutate_node(const ir::For* op, const Stmt& self) override {
    if (uses_var(self, var_)) throw CannotVectorize{};
    return self;
  }
  Stmt mutate_node(const ir::IfThenElse* op, const Stmt& self) override {
    if (uses_var(op->condition, var_)) throw CannotVectorize{};
    return IRMutator::mutate_node(op, self);
  }
  Stmt mutate_node(const ir::Allocate*, const Stmt&) override { throw CannotVectorize{}; }

 private:
  template <typename T>
  Expr binary(Expr a, Expr b) {
    int lanes = std::max(a.type().lanes, b.type().lanes);
    a = materialize(widen_to(a, lanes));
    b = materialize(widen_to(b, lanes));
    return T::make(a, b);
  }

  // Ramps are only understood by loads, stores and the rules above; elsewhere they become
  // explicit vectors: base + stride * [0, 1, ...].
  Expr materialize(const Expr& e) {
    const auto* r = e.as<ir::Ramp>();
    if (!r) return e;
    return ir::Add::make(
        ir::Broadcast::make(r->base, r->lanes),
        ir::Mul::make(ir::Broadcast::make(r->stride, r->lanes), lane_indices(r->lanes)));
  }

  static Expr lane_indices(int lanes) {
    // A ramp from 0 by 1, kept as a ramp: code generation materializes it as a constant.
    return ir::Ramp::make(Expr(0), Expr(1), lanes);
  }

  std::string var_;
  Expr ramp_;
};

class VectorizeLoops : public ir::IRMutator {
 protected:
  Stmt mutate_node(const ir::For* op, const Stmt& self) override {
    Stmt body = mutate(op->body);
    if (op->for_kind != ir::ForKind::kVectorized) {
      if (body.same_as(op->body)) return self;
      return ir::For::make(op->var, op->min, op->extent, op->for_kind, body);
    }
    const int64_t* extent = ir::as_const_int(op->extent);
    if (extent && *extent == 1) return substitute(body, op->var, op->min);
    if (extent && *extent > 1 && *extent <= 64) {
      try {
        return Widen(op->var, op->min, int(*extent)).mutate(body);
      } catch (const CannotVectorize&) {
      }
    }
    return ir::For::make(op->var, op->min, op->extent, ir::ForKind::kSerial, body);
  }
};

}  // namespace

Stmt vectorize_loops(const Stmt& s) { return VectorizeLoops().mutate(s); }

}  // namespace kiln::core::lower
