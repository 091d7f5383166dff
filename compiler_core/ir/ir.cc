#include "compiler_core/ir/ir.h"

namespace kiln::core::ir {

Expr::Expr(int64_t value) : Expr(IntImm::make(value)) {}

const char* for_kind_name(ForKind kind) {
  switch (kind) {
    case ForKind::kSerial:
      return "for";
    case ForKind::kParallel:
      return "parallel";
    case ForKind::kVectorized:
      return "vectorized";
    case ForKind::kUnrolled:
      return "unrolled";
  }
  return "?";
}

const char* call_op_name(CallOp op) {
  switch (op) {
    case CallOp::kExp:
      return "exp";
  }
  return "?";
}

Stmt Block::make(std::vector<Stmt> stmts) {
  std::vector<Stmt> flat;
  for (Stmt& s : stmts) {
    if (!s.defined()) continue;
    if (const Block* b = s.as<Block>()) {
      flat.insert(flat.end(), b->stmts.begin(), b->stmts.end());
    } else {
      flat.push_back(std::move(s));
    }
  }
  if (flat.empty()) return Stmt();
  if (flat.size() == 1) return flat[0];
  return new Block(std::move(flat));
}

Expr operator+(Expr a, Expr b) { return Add::make(std::move(a), std::move(b)); }
Expr operator-(Expr a, Expr b) { return Sub::make(std::move(a), std::move(b)); }
Expr operator*(Expr a, Expr b) { return Mul::make(std::move(a), std::move(b)); }
Expr operator/(Expr a, Expr b) { return Div::make(std::move(a), std::move(b)); }
Expr operator%(Expr a, Expr b) { return Mod::make(std::move(a), std::move(b)); }
Expr operator<(Expr a, Expr b) { return LT::make(std::move(a), std::move(b)); }
Expr operator<=(Expr a, Expr b) { return LE::make(std::move(a), std::move(b)); }
Expr operator>=(Expr a, Expr b) { return LE::make(std::move(b), std::move(a)); }
Expr operator>(Expr a, Expr b) { return LT::make(std::move(b), std::move(a)); }
Expr operator&&(Expr a, Expr b) { return And::make(std::move(a), std::move(b)); }
Expr min(Expr a, Expr b) { return Min::make(std::move(a), std::move(b)); }
Expr max(Expr a, Expr b) { return Max::make(std::move(a), std::move(b)); }
Expr select(Expr c, Expr t, Expr f) {
  return Select::make(std::move(c), std::move(t), std::move(f));
}
Expr guarded_select(Expr c, Expr load, Expr f) {
  KILN_CHECK(load.as<TensorLoad>() || load.as<Load>()) << "guarded select of a non-load";
  return Select::make(std::move(c), std::move(load), std::move(f), true);
}
Expr f32(double v) { return FloatImm::make(v); }
Expr exp(Expr x) { return Call::make(CallOp::kExp, {std::move(x)}); }

const int64_t* as_const_int(const Expr& e) {
  if (const IntImm* imm = e.as<IntImm>()) return &imm->value;
  return nullptr;
}

}  // namespace kiln::core::ir
