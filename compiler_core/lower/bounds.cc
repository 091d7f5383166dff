#include "compiler_core/lower/bounds.h"

#include <algorithm>

#include "compiler_core/ir/printer.h"

namespace kiln::core::lower {
namespace {

using ir::Expr;

std::optional<int64_t> add(std::optional<int64_t> a, std::optional<int64_t> b) {
  if (!a || !b) return std::nullopt;
  return *a + *b;
}

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

ConstInterval mul(const ConstInterval& a, const ConstInterval& b) {
  if (!a.lo || !a.hi || !b.lo || !b.hi) {
    if (b.is_point() && *b.lo == 0) return ConstInterval::point(0);
    if (a.is_point() && *a.lo == 0) return ConstInterval::point(0);
    if (b.is_point() && *b.lo > 0) {
      ConstInterval r;
      if (a.lo) r.lo = *a.lo * *b.lo;
      if (a.hi) r.hi = *a.hi * *b.lo;
      return r;
    }
    if (a.is_point() && *a.lo > 0) return mul(b, a);
    return ConstInterval::everything();
  }
  int64_t c[4] = {*a.lo * *b.lo, *a.lo * *b.hi, *a.hi * *b.lo, *a.hi * *b.hi};
  return {*std::min_element(c, c + 4), *std::max_element(c, c + 4)};
}

class ConstBounds {
 public:
  explicit ConstBounds(const ConstScope& scope) : scope_(scope) {}

  ConstInterval of(const Expr& e) {
    if (const auto* imm = e.as<ir::IntImm>()) return ConstInterval::point(imm->value);
    if (const auto* v = e.as<ir::Var>()) {
      auto it = scope_.find(v->name);
      return it == scope_.end() ? ConstInterval::everything() : it->second;
    }
    if (const auto* op = e.as<ir::Add>()) {
      ConstInterval a = of(op->a), b = of(op->b);
      return {add(a.lo, b.lo), add(a.hi, b.hi)};
    }
    if (const auto* op = e.as<ir::Sub>()) {
      ConstInterval a = of(op->a), b = of(op->b);
      std::optional<int64_t> nb_lo, nb_hi;
      if (b.hi) nb_lo = -*b.hi;
      if (b.lo) nb_hi = -*b.lo;
      return {add(a.lo, nb_lo), add(a.hi, nb_hi)};
    }
    if (const auto* op = e.as<ir::Mul>()) return mul(of(op->a), of(op->b));
    if (const auto* op = e.as<ir::Div>()) {
      ConstInterval b = of(op->b);
      if (!b.is_point() || *b.lo <= 0) return ConstInterval::everything();
      ConstInterval a = of(op->a);
      ConstInterval r;
      if (a.lo) r.lo = floor_div(*a.lo, *b.lo);
      if (a.hi) r.hi = floor_div(*a.hi, *b.lo);
      return r;
    }
    if (const auto* op = e.as<ir::Mod>()) {
      ConstInterval b = of(op->b);
      if (!b.is_point() || *b.lo <= 0) return ConstInterval::everything();
      ConstInterval a = of(op->a);
      if (a.lo && a.hi && *a.lo >= 0 && *a.hi < *b.lo) return a;
      if (a.lo && a.hi && floor_div(*a.lo, *b.lo) == floor_div(*a.hi, *b.lo)) {
        int64_t base = floor_div(*a.lo, *b.lo) * *b.lo;
        return {*a.lo - base, *a.hi - base};
      }
      return {0, *b.lo - 1};
    }
    if (const auto* op = e.as<ir::Min>()) {
      ConstInterval a = of(op->a), b = of(op->b);
      ConstInterval r;
      if (a.lo && b.lo) r.lo = std::min(*a.lo, *b.lo);
      if (a.hi && b.hi)
        r.hi = std::min(*a.hi, *b.hi);
      else if (a.hi)
        r.hi = a.hi;
      else if (b.hi)
        r.hi = b.hi;
      return r;
    }
    if (const auto* op = e.as<ir::Max>()) {
      ConstInterval a = of(op->a), b = of(op->b);
      ConstInterval r;
      if (a.hi && b.hi) r.hi = std::max(*a.hi, *b.hi);
      if (a.lo && b.lo)
        r.lo = std::max(*a.lo, *b.lo);
      else if (a.lo)
        r.lo = a.lo;
      else if (b.lo)
        r.lo = b.lo;
      return r;
    }
    if (const auto* op = e.as<ir::Select>()) {
      ConstInterval a = of(op->true_value), b = of(op->false_value);
      ConstInterval r;
      if (a.lo && b.lo) r.lo = std::min(*a.lo, *b.lo);
      if (a.hi && b.hi) r.hi = std::max(*a.hi, *b.hi);
      return r;
    }
    return ConstInterval::everything();
  }

 private:
  const ConstScope& scope_;
};

class SymBounds {
 public:
  explicit SymBounds(const SymScope& scope) : scope_(scope) {}

  SymInterval of(const Expr& e) {
    if (e.as<ir::IntImm>()) return {e, e};
    if (const auto* v = e.as<ir::Var>()) {
      auto it = scope_.find(v->name);
      return it == scope_.end() ? SymInterval{e, e} : it->second;
    }
    if (const auto* op = e.as<ir::Add>()) {
      SymInterval a = of(op->a), b = of(op->b);
      if (!a.defined() || !b.defined()) return {};
      return {a.lo + b.lo, a.hi + b.hi};
    }
    if (const auto* op = e.as<ir::Sub>()) {
      SymInterval a = of(op->a), b = of(op->b);
      if (!a.defined() || !b.defined()) return {};
      return {a.lo - b.hi, a.hi - b.lo};
    }
    if (const auto* op = e.as<ir::Mul>()) {
      const int64_t* c = ir::as_const_int(op->b);
      Expr other = op->a;
      if (!c) {
        c = ir::as_const_int(op->a);
        other = op->b;
      }
      if (!c) return {};
      SymInterval a = of(other);
      if (!a.defined()) return {};
      if (*c >= 0) return {a.lo * Expr(*c), a.hi * Expr(*c)};
      return {a.hi * Expr(*c), a.lo * Expr(*c)};
    }
    if (const auto* op = e.as<ir::Div>()) {
      const int64_t* c = ir::as_const_int(op->b);
      if (!c || *c <= 0) return {};
      SymInterval a = of(op->a);
      if (!a.defined()) return {};
      return {a.lo / Expr(*c), a.hi / Expr(*c)};
    }
    if (const auto* op = e.as<ir::Mod>()) {
      const int64_t* c = ir::as_const_int(op->b);
      if (!c || *c <= 0) return {};
      SymInterval a = of(op->a);
      if (a.defined() && ir::equal(a.lo, a.hi)) return {a.lo % Expr(*c), a.hi % Expr(*c)};
      return {Expr(0), Expr(*c - 1)};
    }
    if (const auto* op = e.as<ir::Min>()) {
      SymInterval a = of(op->a), b = of(op->b);
      if (!a.defined() || !b.defined()) return {};
      return {ir::min(a.lo, b.lo), ir::min(a.hi, b.hi)};
    }
    if (const auto* op = e.as<ir::Max>()) {
      SymInterval a = of(op->a), b = of(op->b);
      if (!a.defined() || !b.defined()) return {};
      return {ir::max(a.lo, b.lo), ir::max(a.hi, b.hi)};
    }
    return {};
  }

 private:
  const SymScope& scope_;
};

}  // namespace

ConstInterval constant_bounds(const Expr& e, const ConstScope& scope) {
  return ConstBounds(scope).of(e);
}

SymInterval symbolic_bounds(const Expr& e, const SymScope& scope) { return SymBounds(scope).of(e); }

}  // namespace kiln::core::lower
