/// \file
/// The loop-nest IR: expressions and statements that lowering builds and code generation reads.
///
/// Semantics:
/// - Integers are 64-bit two's complement. Index arithmetic never overflows for the shapes
///   kiln accepts (workload parsing bounds every size). Div and Mod round toward negative
///   infinity (floor division); a Mod result has the sign of the divisor. Division by zero is a
///   bug, never produced by lowering.
/// - Floats are IEEE float32; code generation does not reassociate float arithmetic, except for
///   fused multiply-add contraction of `a * b + c`. Math functions (Call) are those of the C
///   library's float versions (expf): correctly rounded is not promised, a few ulp are.
/// - Operands of a binary node are evaluated left to right and have the same type; there are
///   no implicit conversions (use Cast).
/// - Vectors: a type has `lanes` >= 1. A Ramp(base, stride, n) is the vector
///   [base, base + stride, ..., base + (n-1)·stride]; a Broadcast repeats a scalar. Lane-wise ops
///   need operands with equal lanes. A Load with a vector index reads one element per lane.
/// - Tensors vs buffers: before storage flattening, stages read TensorLoad(name, indices) and
///   write TensorStore(name, indices, value) with one index per dimension; after it, Load and
///   Store address a flat buffer with a single index. Realize marks the region of a tensor that
///   a statement needs (storage flattening turns it into an Allocate).
/// - Reductions exist only as statements: lowering turns a reduction stage into an init store
///   and an update store `T[i] = T[i] + value` inside the reduction loops.
///
/// Nodes are immutable and shared. Make them through each node's static `make`, which checks
/// its invariants and throws kiln::InternalError on a violation (a bug in the caller).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "compiler_core/support/check.h"

namespace kiln::core::ir {

enum class TypeCode : uint8_t { kInt, kFloat, kBool };

/// A scalar or vector type: int64 indices, float32 data, bool conditions.
struct Type {
  TypeCode code = TypeCode::kInt;
  int lanes = 1;

  static Type i64(int lanes = 1) { return {TypeCode::kInt, lanes}; }
  static Type f32(int lanes = 1) { return {TypeCode::kFloat, lanes}; }
  static Type boolean(int lanes = 1) { return {TypeCode::kBool, lanes}; }
  Type with_lanes(int n) const { return {code, n}; }
  Type element_of() const { return {code, 1}; }
  bool is_int() const { return code == TypeCode::kInt; }
  bool is_float() const { return code == TypeCode::kFloat; }
  bool is_bool() const { return code == TypeCode::kBool; }
  bool is_scalar() const { return lanes == 1; }
  bool is_vector() const { return lanes > 1; }
  bool operator==(const Type& o) const { return code == o.code && lanes == o.lanes; }
  bool operator!=(const Type& o) const { return !(*this == o); }
};

// The node kinds. Each X-macro list generates the enum, visitor and mutator declarations.
#define KILN_EXPR_NODES(X) \
  X(IntImm)                \
  X(FloatImm)              \
  X(Var)                   \
  X(Add)                   \
  X(Sub)                   \
  X(Mul)                   \
  X(Div)                   \
  X(Mod)                   \
  X(Min)                   \
  X(Max)                   \
  X(EQ)                    \
  X(NE)                    \
  X(LT)                    \
  X(LE)                    \
  X(And)                   \
  X(Or)                    \
  X(Not)                   \
  X(Select)                \
  X(Cast)                  \
  X(Ramp)                  \
  X(Broadcast)             \
  X(Load)                  \
  X(TensorLoad)            \
  X(Call)

#define KILN_STMT_NODES(X) \
  X(For)                   \
  X(Store)                 \
  X(TensorStore)           \
  X(Block)                 \
  X(IfThenElse)            \
  X(Realize)               \
  X(Allocate)

enum class NodeKind : uint8_t {
#define KILN_X(name) k##name,
  KILN_EXPR_NODES(KILN_X) KILN_STMT_NODES(KILN_X)
#undef KILN_X
};

/// The refcounted base of every node.
struct Node {
  explicit Node(NodeKind k) : kind(k) {}
  virtual ~Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  const NodeKind kind;
  mutable std::atomic<int> refcount{0};
};

/// A shared handle to an immutable node (Halide's IntrusivePtr).
template <typename T>
class Handle {
 public:
  Handle() = default;
  Handle(const T* node) : node_(node) { retain(); }  // NOLINT: implicit from node pointers
  Handle(const Handle& o) : node_(o.node_) { retain(); }
  Handle(Handle&& o) noexcept : node_(o.node_) { o.node_ = nullptr; }
  Handle& operator=(Handle o) {
    std::swap(node_, o.node_);
    return *this;
  }
  ~Handle() { release(); }

  bool defined() const { return node_ != nullptr; }
  const T* get() const { return node_; }
  const T* operator->() const { return node_; }
  bool same_as(const Handle& o) const { return node_ == o.node_; }
  NodeKind kind() const { return node_->kind; }

  /// The node as `U` when its kind matches, else nullptr.
  template <typename U>
  const U* as() const {
    if (node_ && node_->kind == U::kKind) return static_cast<const U*>(node_);
    return nullptr;
  }

 private:
  void retain() {
    if (node_) node_->refcount.fetch_add(1, std::memory_order_relaxed);
  }
  void release() {
    if (node_ && node_->refcount.fetch_sub(1, std::memory_order_acq_rel) == 1) delete node_;
    node_ = nullptr;
  }
  const T* node_ = nullptr;
};

struct ExprNode : Node {
  ExprNode(NodeKind k, Type t) : Node(k), type(t) {}
  const Type type;
};
struct StmtNode : Node {
  explicit StmtNode(NodeKind k) : Node(k) {}
};

/// An expression handle. Arithmetic operators build nodes without simplifying.
class Expr : public Handle<ExprNode> {
 public:
  using Handle<ExprNode>::Handle;
  Expr(int64_t value);                       // NOLINT: an IntImm
  Expr(int value) : Expr(int64_t{value}) {}  // NOLINT
  Type type() const { return get()->type; }
};

class Stmt : public Handle<StmtNode> {
 public:
  using Handle<StmtNode>::Handle;
};

struct IntImm : ExprNode {
  static constexpr NodeKind kKind = NodeKind::kIntImm;
  IntImm(int64_t v) : ExprNode(kKind, Type::i64()), value(v) {}
  static Expr make(int64_t v) { return new IntImm(v); }
  const int64_t value;
};

struct FloatImm : ExprNode {
  static constexpr NodeKind kKind = NodeKind::kFloatImm;
  FloatImm(double v) : ExprNode(kKind, Type::f32()), value(v) {}
  static Expr make(double v) { return new FloatImm(v); }
  const double value;
};

/// A named int64 scalar: a loop variable or a kernel parameter. Two Vars are the same
/// variable when their names are equal.
struct Var : ExprNode {
  static constexpr NodeKind kKind = NodeKind::kVar;
  explicit Var(std::string n) : ExprNode(kKind, Type::i64()), name(std::move(n)) {}
  static Expr make(std::string name) { return new Var(std::move(name)); }
  const std::string name;
};

/// Binary nodes share a layout: `a op b`, both of the same type.
template <NodeKind K>
struct BinaryNode : ExprNode {
  static constexpr NodeKind kKind = K;
  BinaryNode(Type t, Expr x, Expr y) : ExprNode(K, t), a(std::move(x)), b(std::move(y)) {}
  static Expr make(Expr a, Expr b) {
    KILN_CHECK(a.defined() && b.defined()) << "binary node with an undefined operand";
    KILN_CHECK(a.type() == b.type()) << "binary node operands of different types";
    Type t = a.type();
    if (is_comparison()) t = Type::boolean(t.lanes);
    return new BinaryNode(t, std::move(a), std::move(b));
  }
  static constexpr bool is_comparison() {
    return K == NodeKind::kEQ || K == NodeKind::kNE || K == NodeKind::kLT || K == NodeKind::kLE;
  }
  const Expr a, b;
};

using Add = BinaryNode<NodeKind::kAdd>;
using Sub = BinaryNode<NodeKind::kSub>;
using Mul = BinaryNode<NodeKind::kMul>;
using Div = BinaryNode<NodeKind::kDiv>;  ///< floor division on integers; true division on floats
using Mod = BinaryNode<NodeKind::kMod>;  ///< floor modulo, integers only
using Min = BinaryNode<NodeKind::kMin>;
using Max = BinaryNode<NodeKind::kMax>;
using EQ = BinaryNode<NodeKind::kEQ>;
using NE = BinaryNode<NodeKind::kNE>;
using LT = BinaryNode<NodeKind::kLT>;
using LE = BinaryNode<NodeKind::kLE>;
using And = BinaryNode<NodeKind::kAnd>;
using Or = BinaryNode<NodeKind::kOr>;

struct Not : ExprNode {
  static constexpr NodeKind kKind = NodeKind::kNot;
  Not(Expr x) : ExprNode(kKind, x.type()), a(std::move(x)) {}
  static Expr make(Expr a) {
    KILN_CHECK(a.type().is_bool()) << "Not of a non-bool";
    return new Not(std::move(a));
  }
  const Expr a;
};

/// `condition ? true_value : false_value`, lane-wise; both values are evaluated, unless the
/// select is guarded: then true_value is a Load (a TensorLoad before storage flattening) read
/// only where the condition holds, so it may point outside its buffer elsewhere (a padded read
/// of an input without clamping its index: a masked vector load).
struct Select : ExprNode {
  static constexpr NodeKind kKind = NodeKind::kSelect;
  Select(Expr c, Expr t, Expr f, bool g)
      : ExprNode(kKind, t.type()),
        condition(std::move(c)),
        true_value(std::move(t)),
        false_value(std::move(f)),
        guarded(g) {}
  static Expr make(Expr c, Expr t, Expr f, bool guarded = false) {
    KILN_CHECK(c.type().is_bool()) << "Select condition is not bool";
    KILN_CHECK(t.type() == f.type()) << "Select values of different types";
    KILN_CHECK(c.type().lanes == 1 || c.type().lanes == t.type().lanes) << "Select lanes";
    return new Select(std::move(c), std::move(t), std::move(f), guarded);
  }
  const Expr condition, true_value, false_value;
  const bool guarded;
};

/// Converts between int64 and float32 (lanes unchanged).
struct Cast : ExprNode {
  static constexpr NodeKind kKind = NodeKind::kCast;
  Cast(Type t, Expr v) : ExprNode(kKind, t), value(std::move(v)) {}
  static Expr make(Type t, Expr v) {
    KILN_CHECK(t.lanes == v.type().lanes) << "Cast changes lanes";
    return new Cast(t, std::move(v));
  }
  const Expr value;
};

struct Ramp : ExprNode {
  static constexpr NodeKind kKind = NodeKind::kRamp;
  Ramp(Expr b, Expr s, int n)
      : ExprNode(kKind, b.type().with_lanes(n)),
        base(std::move(b)),
        stride(std::move(s)),
        lanes(n) {}
  static Expr make(Expr base, Expr stride, int lanes) {
    KILN_CHECK(base.type().is_scalar() && stride.type().is_scalar()) << "Ramp of vectors";
    KILN_CHECK(lanes > 1) << "Ramp with " << lanes << " lanes";
    return new Ramp(std::move(base), std::move(stride), lanes);
  }
  const Expr base, stride;
  const int lanes;
};

struct Broadcast : ExprNode {
  static constexpr NodeKind kKind = NodeKind::kBroadcast;
  Broadcast(Expr v, int n)
      : ExprNode(kKind, v.type().with_lanes(n)), value(std::move(v)), lanes(n) {}
  static Expr make(Expr value, int lanes) {
    KILN_CHECK(value.type().is_scalar()) << "Broadcast of a vector";
    KILN_CHECK(lanes > 1) << "Broadcast with " << lanes << " lanes";
    return new Broadcast(std::move(value), lanes);
  }
  const Expr value;
  const int lanes;
};

/// Reads float32 element(s) of flat buffer `buffer` at `index` (one lane per index lane).
struct Load : ExprNode {
  static constexpr NodeKind kKind = NodeKind::kLoad;
  Load(std::string b, Expr i)
      : ExprNode(kKind, Type::f32(i.type().lanes)), buffer(std::move(b)), index(std::move(i)) {}
  static Expr make(std::string buffer, Expr index) {
    KILN_CHECK(index.type().is_int()) << "Load index is not an integer";
    return new Load(std::move(buffer), std::move(index));
  }
  const std::string buffer;
  const Expr index;
};

/// Reads one float32 element of the multi-dimensional tensor `tensor`.
struct TensorLoad : ExprNode {
  static constexpr NodeKind kKind = NodeKind::kTensorLoad;
  TensorLoad(std::string t, std::vector<Expr> i)
      : ExprNode(kKind, Type::f32()), tensor(std::move(t)), indices(std::move(i)) {}
  static Expr make(std::string tensor, std::vector<Expr> indices) {
    for (const Expr& e : indices) KILN_CHECK(e.type() == Type::i64()) << "tensor index type";
    return new TensorLoad(std::move(tensor), std::move(indices));
  }
  const std::string tensor;
  const std::vector<Expr> indices;
};

/// The math functions a Call computes.
enum class CallOp : uint8_t {
  kExp,  ///< e^x of one float operand: +inf above about 88.72, +0 far below zero, NaN for NaN
};

/// The name a Call prints as (`exp`).
const char* call_op_name(CallOp op);

/// A math function applied lane-wise to float operands of equal lanes; the result has their
/// type. Pure: no side effects, nothing read but the operands.
struct Call : ExprNode {
  static constexpr NodeKind kKind = NodeKind::kCall;
  Call(CallOp o, std::vector<Expr> a) : ExprNode(kKind, a[0].type()), op(o), args(std::move(a)) {}
  static Expr make(CallOp op, std::vector<Expr> args) {
    KILN_CHECK(args.size() == 1) << call_op_name(op) << " takes 1 operand, got " << args.size();
    for (const Expr& a : args) {
      KILN_CHECK(a.defined() && a.type().is_float()) << call_op_name(op) << " of a non-float";
      KILN_CHECK(a.type() == args[0].type()) << call_op_name(op) << " operands of different lanes";
    }
    return new Call(op, std::move(args));
  }
  const CallOp op;
  const std::vector<Expr> args;
};

enum class ForKind : uint8_t { kSerial, kParallel, kVectorized, kUnrolled };

const char* for_kind_name(ForKind kind);

/// `for (var = min; var < min + extent; ++var) body`. Vectorized and unrolled loops need a
/// constant extent by the time their pass runs; parallel loops run on the thread pool.
struct For : StmtNode {
  static constexpr NodeKind kKind = NodeKind::kFor;
  For(std::string v, Expr m, Expr e, ForKind k, Stmt b)
      : StmtNode(kKind),
        var(std::move(v)),
        min(std::move(m)),
        extent(std::move(e)),
        for_kind(k),
        body(std::move(b)) {}
  static Stmt make(std::string var, Expr min, Expr extent, ForKind kind, Stmt body) {
    KILN_CHECK(min.type() == Type::i64() && extent.type() == Type::i64()) << "For bounds";
    KILN_CHECK(body.defined()) << "For without a body";
    return new For(std::move(var), std::move(min), std::move(extent), kind, std::move(body));
  }
  const std::string var;
  const Expr min, extent;
  const ForKind for_kind;
  const Stmt body;
};

struct Store : StmtNode {
  static constexpr NodeKind kKind = NodeKind::kStore;
  Store(std::string b, Expr i, Expr v)
      : StmtNode(kKind), buffer(std::move(b)), index(std::move(i)), value(std::move(v)) {}
  static Stmt make(std::string buffer, Expr index, Expr value) {
    KILN_CHECK(value.type().is_float()) << "Store of a non-float";
    KILN_CHECK(index.type().lanes == value.type().lanes) << "Store lanes mismatch";
    return new Store(std::move(buffer), std::move(index), std::move(value));
  }
  const std::string buffer;
  const Expr index, value;
};

struct TensorStore : StmtNode {
  static constexpr NodeKind kKind = NodeKind::kTensorStore;
  TensorStore(std::string t, std::vector<Expr> i, Expr v)
      : StmtNode(kKind), tensor(std::move(t)), indices(std::move(i)), value(std::move(v)) {}
  static Stmt make(std::string tensor, std::vector<Expr> indices, Expr value) {
    KILN_CHECK(value.type() == Type::f32()) << "TensorStore of a non-f32 scalar";
    return new TensorStore(std::move(tensor), std::move(indices), std::move(value));
  }
  const std::string tensor;
  const std::vector<Expr> indices;
  const Expr value;
};

/// Statements run in order.
struct Block : StmtNode {
  static constexpr NodeKind kKind = NodeKind::kBlock;
  explicit Block(std::vector<Stmt> s) : StmtNode(kKind), stmts(std::move(s)) {}
  /// Flattens nested blocks; a single statement is returned as is.
  static Stmt make(std::vector<Stmt> stmts);
  const std::vector<Stmt> stmts;
};

struct IfThenElse : StmtNode {
  static constexpr NodeKind kKind = NodeKind::kIfThenElse;
  IfThenElse(Expr c, Stmt t, Stmt e)
      : StmtNode(kKind),
        condition(std::move(c)),
        then_case(std::move(t)),
        else_case(std::move(e)) {}
  static Stmt make(Expr c, Stmt then_case, Stmt else_case = Stmt()) {
    KILN_CHECK(c.type() == Type::boolean()) << "IfThenElse condition is not a scalar bool";
    return new IfThenElse(std::move(c), std::move(then_case), std::move(else_case));
  }
  const Expr condition;
  const Stmt then_case, else_case;  ///< else_case may be undefined
};

/// One dimension of a realized region: indices [min, min + extent).
struct Range {
  Expr min, extent;
};

/// Storage for `tensor` covering `bounds`, live for `body`.
struct Realize : StmtNode {
  static constexpr NodeKind kKind = NodeKind::kRealize;
  Realize(std::string t, std::vector<Range> b, Stmt s)
      : StmtNode(kKind), tensor(std::move(t)), bounds(std::move(b)), body(std::move(s)) {}
  static Stmt make(std::string tensor, std::vector<Range> bounds, Stmt body) {
    return new Realize(std::move(tensor), std::move(bounds), std::move(body));
  }
  const std::string tensor;
  const std::vector<Range> bounds;
  const Stmt body;
};

/// A flat float32 buffer of `size` elements (a constant), live for `body`.
struct Allocate : StmtNode {
  static constexpr NodeKind kKind = NodeKind::kAllocate;
  Allocate(std::string b, int64_t n, Stmt s)
      : StmtNode(kKind), buffer(std::move(b)), size(n), body(std::move(s)) {}
  static Stmt make(std::string buffer, int64_t size, Stmt body) {
    KILN_CHECK(size > 0) << "Allocate of " << size << " elements";
    return new Allocate(std::move(buffer), size, std::move(body));
  }
  const std::string buffer;
  const int64_t size;
  const Stmt body;
};

// Building helpers (no simplification).
Expr operator+(Expr a, Expr b);
Expr operator-(Expr a, Expr b);
Expr operator*(Expr a, Expr b);
Expr operator/(Expr a, Expr b);
Expr operator%(Expr a, Expr b);
Expr operator<(Expr a, Expr b);
Expr operator<=(Expr a, Expr b);
Expr operator>=(Expr a, Expr b);
Expr operator>(Expr a, Expr b);
Expr operator&&(Expr a, Expr b);
Expr min(Expr a, Expr b);
Expr max(Expr a, Expr b);
Expr select(Expr c, Expr t, Expr f);
/// `c ? load : f` reading `load` (a tensor read) only where `c` holds: see Select.
Expr guarded_select(Expr c, Expr load, Expr f);
Expr f32(double v);
/// e^x, lane-wise (a Call of CallOp::kExp).
Expr exp(Expr x);

/// The constant value of `e` when it is an IntImm.
const int64_t* as_const_int(const Expr& e);

}  // namespace kiln::core::ir
