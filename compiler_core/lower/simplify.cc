#include "compiler_core/lower/simplify.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "compiler_core/ir/ir_visitor.h"
#include "compiler_core/ir/printer.h"
#include "compiler_core/lower/substitute.h"

namespace kiln::core::lower {
namespace {

using ir::Expr;
using ir::Stmt;

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t floor_mod(int64_t a, int64_t b) { return a - floor_div(a, b) * b; }

/// Appends the printed form of `e` (exactly what ir::to_string prints) to `out`. Index terms
/// are variables, constants and integer arithmetic; those print here without the cost of a
/// stream, anything else through the printer.
void append_key(const Expr& e, std::string& out) {
  auto binary = [&](const char* op, const Expr& a, const Expr& b) {
    out += '(';
    append_key(a, out);
    out += op;
    append_key(b, out);
    out += ')';
  };
  auto call = [&](const char* name, const Expr& a, const Expr& b) {
    out += name;
    append_key(a, out);
    out += ", ";
    append_key(b, out);
    out += ')';
  };
  switch (e.kind()) {
    case ir::NodeKind::kVar:
      out += e.as<ir::Var>()->name;
      return;
    case ir::NodeKind::kIntImm:
      out += std::to_string(e.as<ir::IntImm>()->value);
      return;
    case ir::NodeKind::kAdd:
      return binary(" + ", e.as<ir::Add>()->a, e.as<ir::Add>()->b);
    case ir::NodeKind::kSub:
      return binary(" - ", e.as<ir::Sub>()->a, e.as<ir::Sub>()->b);
    case ir::NodeKind::kMul:
      return binary(" * ", e.as<ir::Mul>()->a, e.as<ir::Mul>()->b);
    case ir::NodeKind::kDiv:
      return binary(" / ", e.as<ir::Div>()->a, e.as<ir::Div>()->b);
    case ir::NodeKind::kMod:
      return binary(" % ", e.as<ir::Mod>()->a, e.as<ir::Mod>()->b);
    case ir::NodeKind::kMin:
      return call("min(", e.as<ir::Min>()->a, e.as<ir::Min>()->b);
    case ir::NodeKind::kMax:
      return call("max(", e.as<ir::Max>()->a, e.as<ir::Max>()->b);
    default:
      out += ir::to_string(e);
      return;
  }
}

/// sum(coeff * term) + constant, terms keyed by their printed form and kept sorted by it (a
/// flat vector: index sums have a handful of terms).
struct Linear {
  std::vector<std::pair<std::string, std::pair<Expr, int64_t>>> terms;
  int64_t constant = 0;

  void add_term(const Expr& term, int64_t coeff) {
    if (coeff == 0) return;
    std::string key;
    append_key(term, key);
    auto it = std::lower_bound(terms.begin(), terms.end(), key,
                               [](const auto& t, const std::string& k) { return t.first < k; });
    if (it == terms.end() || it->first != key) {
      terms.insert(it, {std::move(key), std::make_pair(term, coeff)});
      return;
    }
    it->second.second += coeff;
    if (it->second.second == 0) terms.erase(it);
  }
  void add(const Linear& o, int64_t scale) {
    for (const auto& [key, tc] : o.terms) add_term(tc.first, tc.second * scale);
    constant += o.constant * scale;
  }
  void scale(int64_t s) {
    if (s == 0) {
      terms.clear();
      constant = 0;
      return;
    }
    for (auto& [key, tc] : terms) tc.second *= s;
    constant *= s;
  }
  bool is_constant() const { return terms.empty(); }
};

Expr rebuild(const Linear& l) {
  Expr result;
  bool has_positive = false;
  for (const auto& [key, tc] : l.terms) has_positive |= tc.second > 0;
  bool constant_first = !has_positive && l.constant > 0;
  if (constant_first) result = Expr(l.constant);
  // Positive terms first so that results read `a + b - c` rather than `0 - c + a`.
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& [key, tc] : l.terms) {
      const auto& [term, coeff] = tc;
      bool positive = coeff > 0;
      if ((pass == 0) != positive) continue;
      int64_t magnitude = positive ? coeff : -coeff;
      Expr t = magnitude == 1 ? term : ir::Mul::make(term, Expr(magnitude));
      if (!result.defined()) {
        result = positive ? t : ir::Mul::make(term, Expr(coeff));
      } else {
        result = positive ? ir::Add::make(result, t) : ir::Sub::make(result, t);
      }
    }
  }
  if (!result.defined()) return Expr(l.constant);
  if (constant_first) return result;
  if (l.constant > 0) return ir::Add::make(result, Expr(l.constant));
  if (l.constant < 0) return ir::Sub::make(result, Expr(-l.constant));
  return result;
}

class Simplifier : public ir::IRMutator {
 public:
  explicit Simplifier(ConstScope scope) : scope_(std::move(scope)) {}

  using ir::IRMutator::mutate;

  ConstInterval bounds(const Expr& e) { return constant_bounds(e, scope_); }

 protected:
  bool is_index(const Expr& e) const { return e.type() == ir::Type::i64(); }

  /// The linear form of an already simplified integer scalar expression.
  Linear linear_of(const Expr& e) {
    Linear l;
    if (const int64_t* c = ir::as_const_int(e)) {
      l.constant = *c;
    } else if (const auto* op = e.as<ir::Add>()) {
      l = linear_of(op->a);
      l.add(linear_of(op->b), 1);
    } else if (const auto* op = e.as<ir::Sub>()) {
      l = linear_of(op->a);
      l.add(linear_of(op->b), -1);
    } else if (const auto* op = e.as<ir::Mul>()) {
      Linear a = linear_of(op->a), b = linear_of(op->b);
      if (b.is_constant()) {
        a.scale(b.constant);
        return a;
      }
      if (a.is_constant()) {
        b.scale(a.constant);
        return b;
      }
      l.add_term(e, 1);
    } else {
      l.add_term(e, 1);
    }
    return l;
  }

  Expr canonical(const Expr& e) { return rebuild(linear_of(e)); }

  Expr fold_index_binary(const Expr& self, const Expr& a, const Expr& b) {
    switch (self.kind()) {
      case ir::NodeKind::kAdd:
        return canonical(ir::Add::make(a, b));
      case ir::NodeKind::kSub:
        return canonical(ir::Sub::make(a, b));
      case ir::NodeKind::kMul:
        return canonical(ir::Mul::make(a, b));
      default:
        KILN_UNREACHABLE() << "not an additive node";
    }
  }

  template <typename T>
  Expr arith(const T* op, const Expr& self) {
    Expr a = mutate(op->a), b = mutate(op->b);
    if (is_index(self)) return fold_index_binary(self, a, b);
    const auto* fa = a.as<ir::FloatImm>();
    const auto* fb = b.as<ir::FloatImm>();
    if (fa && fb) {
      switch (self.kind()) {
        case ir::NodeKind::kAdd:
          return ir::f32(float(fa->value) + float(fb->value));
        case ir::NodeKind::kSub:
          return ir::f32(float(fa->value) - float(fb->value));
        case ir::NodeKind::kMul:
          return ir::f32(float(fa->value) * float(fb->value));
        default:
          break;
      }
    }
    if (a.same_as(op->a) && b.same_as(op->b)) return self;
    return T::make(a, b);
  }

  Expr mutate_node(const ir::Add* op, const Expr& self) override { return arith(op, self); }
  Expr mutate_node(const ir::Sub* op, const Expr& self) override { return arith(op, self); }
  Expr mutate_node(const ir::Mul* op, const Expr& self) override { return arith(op, self); }

  Expr mutate_node(const ir::Div* op, const Expr& self) override {
    Expr a = mutate(op->a), b = mutate(op->b);
    if (!is_index(self)) {
      const auto* fa = a.as<ir::FloatImm>();
      const auto* fb = b.as<ir::FloatImm>();
      if (fa && fb && fb->value != 0) return ir::f32(float(fa->value) / float(fb->value));
      return (a.same_as(op->a) && b.same_as(op->b)) ? self : ir::Div::make(a, b);
    }
    const int64_t* c = ir::as_const_int(b);
    if (!c || *c <= 0) return ir::Div::make(a, b);
    if (*c == 1) return a;
    // (q*c + r) / c == q + r / c for floor division.
    Linear l = linear_of(a), q, r;
    for (const auto& [key, tc] : l.terms) {
      if (tc.second % *c == 0) {
        q.add_term(tc.first, tc.second / *c);
      } else {
        r.add_term(tc.first, tc.second);
      }
    }
    q.constant = floor_div(l.constant, *c);
    r.constant = floor_mod(l.constant, *c);
    Expr rest = rebuild(r);
    ConstInterval rb = bounds(rest);
    if (rb.lo && rb.hi && floor_div(*rb.lo, *c) == floor_div(*rb.hi, *c)) {
      q.constant += floor_div(*rb.lo, *c);
      return rebuild(q);
    }
    Expr quotient = rebuild(q);
    Expr tail = ir::Div::make(rest, b);
    if (const int64_t* zero = ir::as_const_int(quotient); zero && *zero == 0) return tail;
    return ir::Add::make(quotient, tail);
  }

  Expr mutate_node(const ir::Mod* op, const Expr& self) override {
    Expr a = mutate(op->a), b = mutate(op->b);
    const int64_t* c = ir::as_const_int(b);
    if (!c || *c <= 0) return ir::Mod::make(a, b);
    if (*c == 1) return Expr(0);
    Linear l = linear_of(a), r;
    for (const auto& [key, tc] : l.terms) {
      int64_t m = floor_mod(tc.second, *c);
      if (m != 0) r.add_term(tc.first, m);
    }
    r.constant = floor_mod(l.constant, *c);
    Expr rest = rebuild(r);
    ConstInterval rb = bounds(rest);
    if (rb.lo && rb.hi && floor_div(*rb.lo, *c) == floor_div(*rb.hi, *c)) {
      Linear shifted = r;
      shifted.constant -= floor_div(*rb.lo, *c) * *c;
      return rebuild(shifted);
    }
    return ir::Mod::make(rest, b);
  }

  /// -1 when a < b always, 1 when a > b always, 0 when a == b always, 2 when unknown.
  /// For a <= b always (possibly equal) returns -2; for a >= b, 3.
  int compare(const Expr& a, const Expr& b) {
    if (!is_index(a)) {
      const auto* fa = a.as<ir::FloatImm>();
      const auto* fb = b.as<ir::FloatImm>();
      if (fa && fb) return fa->value < fb->value ? -1 : fa->value > fb->value ? 1 : 0;
      return 2;
    }
    ConstInterval d = bounds(canonical(ir::Sub::make(a, b)));
    if (d.hi && *d.hi < 0) return -1;
    if (d.lo && *d.lo > 0) return 1;
    if (d.is_point() && *d.lo == 0) return 0;
    if (d.hi && *d.hi <= 0) return -2;
    if (d.lo && *d.lo >= 0) return 3;
    return 2;
  }

  Expr mutate_node(const ir::Min* op, const Expr& self) override {
    Expr a = mutate(op->a), b = mutate(op->b);
    if (a.type().is_scalar()) {
      int c = compare(a, b);
      if (c == -1 || c == 0 || c == -2) return a;
      if (c == 1 || c == 3) return b;
    }
    if (a.same_as(op->a) && b.same_as(op->b)) return self;
    return ir::Min::make(a, b);
  }

  Expr mutate_node(const ir::Max* op, const Expr& self) override {
    Expr a = mutate(op->a), b = mutate(op->b);
    if (a.type().is_scalar()) {
      int c = compare(a, b);
      if (c == 1 || c == 0 || c == 3) return a;
      if (c == -1 || c == -2) return b;
    }
    if (a.same_as(op->a) && b.same_as(op->b)) return self;
    return ir::Max::make(a, b);
  }

  static Expr boolean(bool v) { return ir::EQ::make(Expr(0), Expr(v ? 0 : 1)); }
  static const bool* as_const_bool(const Expr& e, bool* storage) {
    const auto* eq = e.as<ir::EQ>();
    if (!eq) return nullptr;
    const int64_t* x = ir::as_const_int(eq->a);
    const int64_t* y = ir::as_const_int(eq->b);
    if (!x || !y) return nullptr;
    *storage = *x == *y;
    return storage;
  }

  template <typename T>
  Expr comparison(const T* op, const Expr& self) {
    Expr a = mutate(op->a), b = mutate(op->b);
    if (a.type().is_scalar()) {
      int c = compare(a, b);
      switch (self.kind()) {
        case ir::NodeKind::kLT:
          if (c == -1) return boolean(true);
          if (c == 1 || c == 0 || c == 3) return boolean(false);
          break;
        case ir::NodeKind::kLE:
          if (c == -1 || c == 0 || c == -2) return boolean(true);
          if (c == 1) return boolean(false);
          break;
        case ir::NodeKind::kEQ:
          if (c == 0) return boolean(true);
          if (c == -1 || c == 1) return boolean(false);
          break;
        case ir::NodeKind::kNE:
          if (c == 0) return boolean(false);
          if (c == -1 || c == 1) return boolean(true);
          break;
        default:
          break;
      }
    }
    if (a.same_as(op->a) && b.same_as(op->b)) return self;
    return T::make(a, b);
  }
  Expr mutate_node(const ir::LT* op, const Expr& self) override { return comparison(op, self); }
  Expr mutate_node(const ir::LE* op, const Expr& self) override { return comparison(op, self); }
  Expr mutate_node(const ir::EQ* op, const Expr& self) override { return comparison(op, self); }
  Expr mutate_node(const ir::NE* op, const Expr& self) override { return comparison(op, self); }

  Expr mutate_node(const ir::And* op, const Expr& self) override {
    Expr a = mutate(op->a), b = mutate(op->b);
    bool sa, sb;
    const bool* ca = as_const_bool(a, &sa);
    const bool* cb = as_const_bool(b, &sb);
    if (ca) return *ca ? b : a;
    if (cb) return *cb ? a : b;
    if (a.same_as(op->a) && b.same_as(op->b)) return self;
    return ir::And::make(a, b);
  }
  Expr mutate_node(const ir::Or* op, const Expr& self) override {
    Expr a = mutate(op->a), b = mutate(op->b);
    bool sa, sb;
    const bool* ca = as_const_bool(a, &sa);
    const bool* cb = as_const_bool(b, &sb);
    if (ca) return *ca ? a : b;
    if (cb) return *cb ? b : a;
    if (a.same_as(op->a) && b.same_as(op->b)) return self;
    return ir::Or::make(a, b);
  }
  Expr mutate_node(const ir::Not* op, const Expr& self) override {
    Expr a = mutate(op->a);
    bool s;
    if (const bool* c = as_const_bool(a, &s)) return boolean(!*c);
    return a.same_as(op->a) ? self : ir::Not::make(a);
  }
  Expr mutate_node(const ir::Select* op, const Expr& self) override {
    Expr c = mutate(op->condition);
    bool s;
    if (const bool* v = as_const_bool(c, &s)) return mutate(*v ? op->true_value : op->false_value);
    Expr t = mutate(op->true_value), f = mutate(op->false_value);
    if (c.same_as(op->condition) && t.same_as(op->true_value) && f.same_as(op->false_value)) {
      return self;
    }
    return ir::Select::make(c, t, f, op->guarded);
  }
  Expr mutate_node(const ir::Cast* op, const Expr& self) override {
    Expr v = mutate(op->value);
    if (op->type == ir::Type::f32()) {
      if (const int64_t* c = ir::as_const_int(v)) return ir::f32(double(*c));
    }
    return v.same_as(op->value) ? self : ir::Cast::make(op->type, v);
  }

  Stmt mutate_node(const ir::For* op, const Stmt& self) override {
    Expr min = mutate(op->min);
    Expr extent = mutate(op->extent);
    ConstInterval eb = bounds(extent);
    if (eb.hi && *eb.hi <= 0) return Stmt();
    if (const int64_t* e = ir::as_const_int(extent); e && *e == 1) {
      return mutate(substitute(op->body, op->var, min));
    }
    ConstInterval mb = bounds(min);
    ConstInterval range;
    range.lo = mb.lo;
    if (mb.hi && eb.hi) range.hi = *mb.hi + *eb.hi - 1;
    auto saved = scope_.find(op->var) != scope_.end()
                     ? std::optional<ConstInterval>(scope_[op->var])
                     : std::nullopt;
    scope_[op->var] = range;
    Stmt body = mutate(op->body);
    if (saved) {
      scope_[op->var] = *saved;
    } else {
      scope_.erase(op->var);
    }
    if (!body.defined()) return body;
    if (min.same_as(op->min) && extent.same_as(op->extent) && body.same_as(op->body)) {
      return self;
    }
    return ir::For::make(op->var, min, extent, op->for_kind, body);
  }

  Stmt mutate_node(const ir::IfThenElse* op, const Stmt& self) override {
    Expr c = mutate(op->condition);
    bool s;
    if (const bool* v = as_const_bool(c, &s)) {
      return *v ? mutate(op->then_case) : mutate(op->else_case);
    }
    Stmt t = mutate(op->then_case), e = mutate(op->else_case);
    if (!t.defined() && !e.defined()) return Stmt();
    if (!t.defined()) return ir::IfThenElse::make(ir::Not::make(c), e);
    if (c.same_as(op->condition) && t.same_as(op->then_case) && e.same_as(op->else_case)) {
      return self;
    }
    return ir::IfThenElse::make(c, t, e);
  }

 private:
  ConstScope scope_;
};

}  // namespace

Expr simplify(const Expr& e, const ConstScope& scope) { return Simplifier(scope).mutate(e); }

Stmt simplify(const Stmt& s, const ConstScope& scope) { return Simplifier(scope).mutate(s); }

bool can_prove(const Expr& cond, const ConstScope& scope) {
  Expr s = simplify(cond, scope);
  const auto* eq = s.as<ir::EQ>();
  if (!eq) return false;
  const int64_t* x = ir::as_const_int(eq->a);
  const int64_t* y = ir::as_const_int(eq->b);
  return x && y && *x == *y;
}

}  // namespace kiln::core::lower
