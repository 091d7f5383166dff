#include "compiler_core/ir/printer.h"

#include <sstream>

#include "compiler_core/ir/ir_visitor.h"

namespace kiln::core::ir {
namespace {

class Printer : public IRVisitor {
 public:
  explicit Printer(std::ostream& os) : os_(os) {}

  using IRVisitor::visit;

 protected:
  void visit_node(const IntImm* op) override { os_ << op->value; }
  void visit_node(const FloatImm* op) override {
    std::ostringstream s;
    s.precision(9);
    s << op->value;
    std::string text = s.str();
    if (text.find_first_of(".eni") == std::string::npos) text += ".0";
    os_ << text << "f";
  }
  void visit_node(const Var* op) override { os_ << op->name; }
  void binary(const char* sym, const Expr& a, const Expr& b) {
    os_ << "(";
    visit(a);
    os_ << " " << sym << " ";
    visit(b);
    os_ << ")";
  }
  void call(const char* name, const Expr& a, const Expr& b) {
    os_ << name << "(";
    visit(a);
    os_ << ", ";
    visit(b);
    os_ << ")";
  }
  void visit_node(const Add* op) override { binary("+", op->a, op->b); }
  void visit_node(const Sub* op) override { binary("-", op->a, op->b); }
  void visit_node(const Mul* op) override { binary("*", op->a, op->b); }
  void visit_node(const Div* op) override { binary("/", op->a, op->b); }
  void visit_node(const Mod* op) override { binary("%", op->a, op->b); }
  void visit_node(const Min* op) override { call("min", op->a, op->b); }
  void visit_node(const Max* op) override { call("max", op->a, op->b); }
  void visit_node(const EQ* op) override { binary("==", op->a, op->b); }
  void visit_node(const NE* op) override { binary("!=", op->a, op->b); }
  void visit_node(const LT* op) override { binary("<", op->a, op->b); }
  void visit_node(const LE* op) override { binary("<=", op->a, op->b); }
  void visit_node(const And* op) override { binary("&&", op->a, op->b); }
  void visit_node(const Or* op) override { binary("||", op->a, op->b); }
  void visit_node(const Not* op) override {
    os_ << "!";
    visit(op->a);
  }
  void visit_node(const Select* op) override {
    os_ << (op->guarded ? "guarded_select(" : "select(");
    visit(op->condition);
    os_ << ", ";
    visit(op->true_value);
    os_ << ", ";
    visit(op->false_value);
    os_ << ")";
  }
  void visit_node(const Cast* op) override {
    os_ << (op->type.is_float() ? "f32" : "i64");
    if (op->type.lanes > 1) os_ << "x" << op->type.lanes;
    os_ << "(";
    visit(op->value);
    os_ << ")";
  }
  void visit_node(const Ramp* op) override {
    os_ << "ramp(";
    visit(op->base);
    os_ << ", ";
    visit(op->stride);
    os_ << ", " << op->lanes << ")";
  }
  void visit_node(const Broadcast* op) override {
    os_ << "x" << op->lanes << "(";
    visit(op->value);
    os_ << ")";
  }
  void visit_node(const Load* op) override {
    os_ << op->buffer << "[";
    visit(op->index);
    os_ << "]";
  }
  void visit_node(const TensorLoad* op) override {
    os_ << op->tensor << "(";
    for (size_t i = 0; i < op->indices.size(); ++i) {
      if (i) os_ << ", ";
      visit(op->indices[i]);
    }
    os_ << ")";
  }
  void visit_node(const Call* op) override {
    os_ << call_op_name(op->op) << "(";
    for (size_t i = 0; i < op->args.size(); ++i) {
      if (i) os_ << ", ";
      visit(op->args[i]);
    }
    os_ << ")";
  }

  void indent() { os_ << std::string(depth_ * 2, ' '); }
  void visit_node(const For* op) override {
    indent();
    os_ << for_kind_name(op->for_kind) << " (" << op->var << ", ";
    visit(op->min);
    os_ << ", ";
    visit(op->extent);
    os_ << ") {\n";
    ++depth_;
    visit(op->body);
    --depth_;
    indent();
    os_ << "}\n";
  }
  void visit_node(const Store* op) override {
    indent();
    os_ << op->buffer << "[";
    visit(op->index);
    os_ << "] = ";
    visit(op->value);
    os_ << "\n";
  }
  void visit_node(const TensorStore* op) override {
    indent();
    os_ << op->tensor << "(";
    for (size_t i = 0; i < op->indices.size(); ++i) {
      if (i) os_ << ", ";
      visit(op->indices[i]);
    }
    os_ << ") = ";
    visit(op->value);
    os_ << "\n";
  }
  void visit_node(const Block* op) override {
    for (const Stmt& s : op->stmts) visit(s);
  }
  void visit_node(const IfThenElse* op) override {
    indent();
    os_ << "if (";
    visit(op->condition);
    os_ << ") {\n";
    ++depth_;
    visit(op->then_case);
    --depth_;
    if (op->else_case.defined()) {
      indent();
      os_ << "} else {\n";
      ++depth_;
      visit(op->else_case);
      --depth_;
    }
    indent();
    os_ << "}\n";
  }
  void visit_node(const Realize* op) override {
    indent();
    os_ << "realize " << op->tensor << "(";
    for (size_t i = 0; i < op->bounds.size(); ++i) {
      if (i) os_ << ", ";
      os_ << "[";
      visit(op->bounds[i].min);
      os_ << ", ";
      visit(op->bounds[i].extent);
      os_ << "]";
    }
    os_ << ") {\n";
    ++depth_;
    visit(op->body);
    --depth_;
    indent();
    os_ << "}\n";
  }
  void visit_node(const Allocate* op) override {
    indent();
    os_ << "allocate " << op->buffer << "[f32 * " << op->size << "]\n";
    visit(op->body);
  }

 private:
  std::ostream& os_;
  int depth_ = 0;
};

}  // namespace

std::ostream& operator<<(std::ostream& os, const Expr& e) {
  if (!e.defined()) return os << "<undefined>";
  Printer(os).visit(e);
  return os;
}

std::ostream& operator<<(std::ostream& os, const Stmt& s) {
  if (!s.defined()) return os << "<undefined>\n";
  Printer(os).visit(s);
  return os;
}

std::string to_string(const Expr& e) {
  std::ostringstream os;
  os << e;
  return os.str();
}

std::string to_string(const Stmt& s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

// The printer is injective on the IR kiln builds (names are unique identifiers, every node
// prints its kind and all fields), so printed equality is structural equality.
bool equal(const Expr& a, const Expr& b) {
  if (a.same_as(b)) return true;
  if (a.defined() != b.defined()) return false;
  return a.type() == b.type() && to_string(a) == to_string(b);
}

bool equal(const Stmt& a, const Stmt& b) {
  if (a.same_as(b)) return true;
  return to_string(a) == to_string(b);
}

}  // namespace kiln::core::ir
