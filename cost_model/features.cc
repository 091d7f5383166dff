#include "cost_model/features.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "compiler_core/ir/ir.h"
#include "compiler_core/lower/bounds.h"
#include "compiler_core/lower/pipeline.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/support/check.h"

namespace kiln::cost {
namespace {

namespace ir = core::ir;
using ir::Expr;
using ir::Stmt;

/// Loops deeper than this are counted in iterations, but their variables read as constants in
/// index analysis. kiln's templates nest a dozen at most.
constexpr int kMaxLoops = 24;
constexpr double kElementBytes = 4;
constexpr double kLineBytes = 64;
constexpr double kLineElements = kLineBytes / kElementBytes;
/// Cache capacities of the traffic estimates: a typical L1d, L2 and last-level slice.
constexpr std::array<double, 3> kCacheBytes = {32.0 * 1024, 1024.0 * 1024, 32.0 * 1024 * 1024};
/// unroll_loops keeps loops longer than this as loops (UnrollOptions::max_extent).
constexpr int64_t kMaxUnrolledExtent = 64;
constexpr double kInfinity = std::numeric_limits<double>::infinity();

float log2p(double x) { return static_cast<float>(std::log2(1.0 + std::max(x, 0.0))); }

struct Loop {
  const std::string* var;
  int64_t extent;
  ir::ForKind kind;
  bool tail;
};

/// Tensors of more dimensions keep their first kMaxRank (kiln's have five at most).
constexpr int kMaxRank = 8;

struct TensorInfo {
  const std::string* name;
  std::array<double, kMaxRank> shape;  ///< +infinity where unknown
  int rank;
  bool local;
};

/// coef[l]: how far the index moves per iteration of loop slot l (outermost first).
struct Affine {
  std::array<double, kMaxLoops> coef{};
};

struct Access {
  const std::string* name = nullptr;
  int tensor = -1;    ///< index into Scratch::tensors; -1 when unknown
  int first_dim = 0;  ///< its index expressions: Scratch::affines[first_dim, first_dim + rank)
  int rank = 0;
  bool is_store = false;
  bool read_write = false;
  // Filled in by analyse(), in Scratch::numbers from `numbers`, for a statement of n loops:
  // the flat stride per loop [0, n), distinct elements of the innermost j loops for j = 0..n
  // [n, 2n+1), distinct lines likewise [2n+1, 3n+2).
  size_t numbers = 0;
};

struct Statement {
  int first_loop = 0;  ///< its loops, outermost first: Scratch::loops[first_loop, + depth)
  int depth = 0;
  int first_access = 0;  ///< Scratch::accesses[first_access, + access_count); the store first
  int access_count = 0;
  double flops_per_iteration = 0;
  int guards = 0;
  int selects = 0;
  // Filled in by analyse().
  double iterations = 1;
  std::array<double, 3> traffic{};
};

/// Everything one extraction builds, kept per thread so that scoring thousands of candidates
/// does not allocate for each (the vectors keep their capacity between calls).
struct Scratch {
  std::vector<TensorInfo> tensors;
  std::vector<int> visible;  ///< tensors in scope, innermost last
  std::vector<Loop> stack;   ///< loops around the current statement
  std::vector<Loop> loops;   ///< every statement's loops, concatenated
  std::vector<Affine> affines;
  std::vector<Access> accesses;
  std::vector<Statement> statements;
  std::vector<double> numbers;
  std::vector<int> order;

  void clear() {
    tensors.clear();
    visible.clear();
    stack.clear();
    loops.clear();
    affines.clear();
    accesses.clear();
    statements.clear();
    numbers.clear();
    order.clear();
  }

  const Loop* loops_of(const Statement& s) const { return loops.data() + s.first_loop; }
  Access* accesses_of(Statement& s) { return accesses.data() + s.first_access; }
  const Access* accesses_of(const Statement& s) const { return accesses.data() + s.first_access; }
  const Affine& dim(const Access& a, int d) const { return affines[a.first_dim + d]; }
  double* flat(const Access& a) { return numbers.data() + a.numbers; }
  const double* flat(const Access& a) const { return numbers.data() + a.numbers; }
  const double* elements(const Access& a, int n) const { return numbers.data() + a.numbers + n; }
  double* elements(const Access& a, int n) { return numbers.data() + a.numbers + n; }
  const double* lines(const Access& a, int n) const {
    return numbers.data() + a.numbers + 2 * n + 1;
  }
  double* lines(const Access& a, int n) { return numbers.data() + a.numbers + 2 * n + 1; }
};

/// Collects the loops, tensors and statements of a nest into a Scratch.
class Walker {
 public:
  Walker(const core::lower::LoopNest& nest, Scratch& scratch) : x_(scratch) {
    for (size_t i = 0; i < nest.args.size(); ++i) {
      TensorInfo t{&nest.args[i], {}, 0, false};
      for (int64_t e : nest.arg_shapes[i]) {
        if (t.rank < kMaxRank) t.shape[t.rank++] = static_cast<double>(e);
      }
      argument_bytes += static_cast<double>(core::num_elements(nest.arg_shapes[i])) * kElementBytes;
      x_.visible.push_back(static_cast<int>(x_.tensors.size()));
      x_.tensors.push_back(t);
    }
  }

  void walk(const Stmt& s) {
    if (!s.defined()) return;
    switch (s.kind()) {
      case ir::NodeKind::kFor:
        return walk_for(s.as<ir::For>());
      case ir::NodeKind::kBlock:
        for (const Stmt& child : s.as<ir::Block>()->stmts) walk(child);
        return;
      case ir::NodeKind::kIfThenElse: {
        const auto* op = s.as<ir::IfThenElse>();
        ++guards_;
        walk(op->then_case);
        walk(op->else_case);
        --guards_;
        return;
      }
      case ir::NodeKind::kRealize:
        return walk_realize(s.as<ir::Realize>());
      case ir::NodeKind::kAllocate:
        return walk(s.as<ir::Allocate>()->body);
      case ir::NodeKind::kTensorStore: {
        const auto* op = s.as<ir::TensorStore>();
        return add_statement(op->tensor, &op->indices, nullptr, op->value);
      }
      case ir::NodeKind::kStore: {
        const auto* op = s.as<ir::Store>();
        return add_statement(op->buffer, nullptr, &op->index, op->value);
      }
      default:
        return;
    }
  }

  double argument_bytes = 0;
  double local_bytes = 0;
  int local_buffers = 0;
  int root_nests = 0;

 private:
  void walk_for(const ir::For* op) {
    static const core::lower::ConstScope kNoScope;
    if (x_.stack.empty()) ++root_nests;
    const int64_t* constant = ir::as_const_int(op->extent);
    int64_t extent = 1;
    if (constant) {
      extent = *constant;
    } else {
      core::lower::ConstInterval bounds = core::lower::constant_bounds(op->extent, kNoScope);
      if (bounds.hi) extent = *bounds.hi;
    }
    if (extent <= 0) return;
    if (extent == 1) return walk(op->body);  // the variable reads as a constant
    x_.stack.push_back({&op->var, extent, op->for_kind, constant == nullptr});
    walk(op->body);
    x_.stack.pop_back();
  }

  void walk_realize(const ir::Realize* op) {
    static const core::lower::ConstScope kNoScope;
    TensorInfo t{&op->tensor, {}, 0, true};
    double elements = 1;
    for (const ir::Range& r : op->bounds) {
      double extent = 1;
      if (const int64_t* c = ir::as_const_int(r.extent)) {
        extent = static_cast<double>(std::max<int64_t>(*c, 1));
      } else {
        core::lower::ConstInterval e = core::lower::constant_bounds(r.extent, kNoScope);
        if (e.hi) extent = static_cast<double>(std::max<int64_t>(*e.hi, 1));
      }
      if (t.rank < kMaxRank) t.shape[t.rank++] = extent;
      elements *= extent;
    }
    local_bytes += elements * kElementBytes;
    ++local_buffers;
    x_.visible.push_back(static_cast<int>(x_.tensors.size()));
    x_.tensors.push_back(t);
    walk(op->body);
    x_.visible.pop_back();
  }

  int find_tensor(const std::string& name) const {
    for (size_t i = x_.visible.size(); i-- > 0;) {
      if (*x_.tensors[x_.visible[i]].name == name) return x_.visible[i];
    }
    return -1;
  }

  int loop_slot(const std::string& var) const {
    const int n = std::min<int>(static_cast<int>(x_.stack.size()), kMaxLoops);
    for (int l = n; l-- > 0;) {
      if (*x_.stack[l].var == var) return l;
    }
    return -1;
  }

  /// Adds scale · (the affine part of e) to `out`.
  void affine(const Expr& e, double scale, Affine& out) const {
    switch (e.kind()) {
      case ir::NodeKind::kVar: {
        int slot = loop_slot(e.as<ir::Var>()->name);
        if (slot >= 0) out.coef[slot] += scale;
        return;
      }
      case ir::NodeKind::kAdd: {
        const auto* op = e.as<ir::Add>();
        affine(op->a, scale, out);
        affine(op->b, scale, out);
        return;
      }
      case ir::NodeKind::kSub: {
        const auto* op = e.as<ir::Sub>();
        affine(op->a, scale, out);
        affine(op->b, -scale, out);
        return;
      }
      case ir::NodeKind::kMul: {
        const auto* op = e.as<ir::Mul>();
        if (const int64_t* c = ir::as_const_int(op->b))
          return affine(op->a, scale * double(*c), out);
        if (const int64_t* c = ir::as_const_int(op->a))
          return affine(op->b, scale * double(*c), out);
        return;  // a product of variables: not affine, left out
      }
      case ir::NodeKind::kDiv: {
        // (x·c + y) / c with y inside [0, c) moves with x only: a loop whose whole span fits
        // in one step of the divisor leaves the quotient as it is (tiles of packed layouts).
        const auto* op = e.as<ir::Div>();
        const int64_t* c = ir::as_const_int(op->b);
        if (!c || *c <= 0) return;
        Affine inner;
        affine(op->a, 1.0, inner);
        const int n = std::min<int>(static_cast<int>(x_.stack.size()), kMaxLoops);
        for (int l = 0; l < n; ++l) {
          double k = inner.coef[l];
          if (k != 0 && std::abs(k) * double(x_.stack[l].extent) > double(*c)) {
            out.coef[l] += scale * k / double(*c);
          }
        }
        return;
      }
      case ir::NodeKind::kMod: {
        // (x·c + y) % c moves with y only: drop coefficients that are multiples of c.
        const auto* op = e.as<ir::Mod>();
        const int64_t* c = ir::as_const_int(op->b);
        if (!c || *c <= 0) return;
        Affine inner;
        affine(op->a, 1.0, inner);
        for (int l = 0; l < kMaxLoops; ++l) {
          double k = inner.coef[l];
          if (k != 0 && std::fmod(std::abs(k), double(*c)) != 0) out.coef[l] += scale * k;
        }
        return;
      }
      case ir::NodeKind::kMin:
      case ir::NodeKind::kMax: {
        // Clamps (padding, tails): the side that is not a constant.
        const Expr& a = e.kind() == ir::NodeKind::kMin ? e.as<ir::Min>()->a : e.as<ir::Max>()->a;
        const Expr& b = e.kind() == ir::NodeKind::kMin ? e.as<ir::Min>()->b : e.as<ir::Max>()->b;
        return affine(ir::as_const_int(a) ? b : a, scale, out);
      }
      case ir::NodeKind::kSelect:
        return affine(e.as<ir::Select>()->true_value, scale, out);
      case ir::NodeKind::kCast:
        return affine(e.as<ir::Cast>()->value, scale, out);
      default:
        return;
    }
  }

  void add_access(const std::string& tensor, const std::vector<Expr>* indices,
                  const Expr* flat_index, bool is_store) {
    Access a;
    a.name = &tensor;
    a.tensor = indices ? find_tensor(tensor) : -1;  // a flat access: its shape is not known here
    a.is_store = is_store;
    a.first_dim = static_cast<int>(x_.affines.size());
    a.rank = indices ? std::min<int>(static_cast<int>(indices->size()), kMaxRank) : 1;
    x_.affines.resize(x_.affines.size() + a.rank);
    for (int d = 0; d < a.rank; ++d) {
      affine(indices ? (*indices)[d] : *flat_index, 1.0, x_.affines[a.first_dim + d]);
    }
    x_.accesses.push_back(a);
  }

  /// Counts float operations and selects in `e` and records its loads.
  void scan_value(const Expr& e, Statement& s) {
    switch (e.kind()) {
      case ir::NodeKind::kTensorLoad: {
        const auto* op = e.as<ir::TensorLoad>();
        for (const Expr& i : op->indices) scan_value(i, s);
        return add_access(op->tensor, &op->indices, nullptr, false);
      }
      case ir::NodeKind::kLoad: {
        const auto* op = e.as<ir::Load>();
        return add_access(op->buffer, nullptr, &op->index, false);
      }
#define KILN_BINARY(kind, T)                             \
  case ir::NodeKind::kind: {                             \
    const auto* op = e.as<ir::T>();                      \
    if (e.type().is_float()) s.flops_per_iteration += 1; \
    scan_value(op->a, s);                                \
    scan_value(op->b, s);                                \
    return;                                              \
  }
        KILN_BINARY(kAdd, Add)
        KILN_BINARY(kSub, Sub)
        KILN_BINARY(kMul, Mul)
        KILN_BINARY(kDiv, Div)
        KILN_BINARY(kMin, Min)
        KILN_BINARY(kMax, Max)
#undef KILN_BINARY
      case ir::NodeKind::kSelect: {
        const auto* op = e.as<ir::Select>();
        if (e.type().is_float()) ++s.selects;
        scan_value(op->true_value, s);
        scan_value(op->false_value, s);
        return;
      }
      case ir::NodeKind::kCast:
        return scan_value(e.as<ir::Cast>()->value, s);
      case ir::NodeKind::kCall:
        // A math function (exp): counted as one operation, its operands' loads recorded.
        s.flops_per_iteration += 1;
        for (const Expr& a : e.as<ir::Call>()->args) scan_value(a, s);
        return;
      default:
        return;
    }
  }

  void add_statement(const std::string& tensor, const std::vector<Expr>* indices,
                     const Expr* flat_index, const Expr& value) {
    Statement s;
    s.first_loop = static_cast<int>(x_.loops.size());
    s.depth = static_cast<int>(x_.stack.size());
    x_.loops.insert(x_.loops.end(), x_.stack.begin(), x_.stack.end());
    s.guards = guards_;
    s.first_access = static_cast<int>(x_.accesses.size());
    add_access(tensor, indices, flat_index, true);
    scan_value(value, s);
    // The load of the store target at the store's own index is the read half of an update.
    Access& store = x_.accesses[s.first_access];
    for (size_t i = s.first_access + 1; i < x_.accesses.size(); ++i) {
      const Access& load = x_.accesses[i];
      if (*load.name != *store.name || load.rank != store.rank) continue;
      bool same = true;
      for (int d = 0; d < load.rank && same; ++d) {
        same = x_.affines[load.first_dim + d].coef == x_.affines[store.first_dim + d].coef;
      }
      if (!same) continue;
      store.read_write = true;
      x_.accesses.erase(x_.accesses.begin() + static_cast<std::ptrdiff_t>(i));
      break;
    }
    s.access_count = static_cast<int>(x_.accesses.size()) - s.first_access;
    x_.statements.push_back(s);
  }

  Scratch& x_;
  int guards_ = 0;
};

/// Fills the per-level footprints of every access of `s` and its traffic.
void analyse(Statement& s, Scratch& x) {
  const int n = s.depth;
  const int slots = std::min(n, kMaxLoops);
  const Loop* loops = x.loops_of(s);
  s.iterations = 1;
  for (int l = 0; l < n; ++l) s.iterations *= static_cast<double>(loops[l].extent);
  std::array<double, kMaxLoops + 1> total_lines_small{};
  std::vector<double> total_lines_large;
  double* total_lines = total_lines_small.data();
  if (n + 1 > static_cast<int>(total_lines_small.size())) {
    total_lines_large.assign(n + 1, 0.0);
    total_lines = total_lines_large.data();
  }
  Access* accesses = x.accesses_of(s);
  for (int i = 0; i < s.access_count; ++i) {
    Access& a = accesses[i];
    a.numbers = x.numbers.size();
    x.numbers.resize(x.numbers.size() + 3 * n + 2, 0.0);
    const int rank = a.rank;
    std::array<double, kMaxRank> shape;
    shape.fill(kInfinity);
    if (a.tensor >= 0 && x.tensors[a.tensor].rank == rank) shape = x.tensors[a.tensor].shape;
    // Row-major strides of the buffer; unknown shapes give the flat index itself (rank 1).
    std::array<double, kMaxRank> row_stride;
    row_stride.fill(1.0);
    for (int d = rank; d-- > 1;) {
      row_stride[d - 1] = std::isinf(shape[d]) ? kInfinity : row_stride[d] * shape[d];
    }
    double* flat = x.flat(a);
    for (int l = 0; l < slots; ++l) {
      double f = 0;
      for (int d = 0; d < rank; ++d) {
        const double k = x.dim(a, d).coef[l];
        if (k != 0) f += k * row_stride[d];
      }
      flat[l] = f;
    }
    // Footprints from the innermost loop outwards.
    std::array<double, kMaxRank> span{};  // sum |coef|·(extent − 1) per dimension
    double moving_iterations = 1;         // iterations of loops the access depends on
    double* elements_at = x.elements(a, n);
    double* lines_at = x.lines(a, n);
    for (int j = 0; j <= n; ++j) {
      if (j > 0) {
        const int l = n - j;  // the loop added at this level
        const double extent = static_cast<double>(loops[l].extent);
        bool moves = false;
        if (l < kMaxLoops) {
          for (int d = 0; d < rank; ++d) {
            const double k = std::abs(x.dim(a, d).coef[l]);
            if (k == 0) continue;
            span[d] += k * (extent - 1);
            moves = true;
          }
        }
        if (moves) moving_iterations *= extent;
      }
      std::array<double, kMaxRank> range;
      double elements = 1;
      for (int d = 0; d < rank; ++d) {
        range[d] = std::min(shape[d], 1.0 + span[d]);
        elements *= range[d];
      }
      elements = std::min(elements, moving_iterations);
      // The contiguous run: the last dimension, widened by every dimension before it as long
      // as the dimensions after that one are covered whole.
      double run = rank ? range[rank - 1] : 1.0;
      for (int d = rank; d-- > 1;) {
        if (range[d] < shape[d]) break;
        run *= range[d - 1];
      }
      run = std::min(run, elements);
      const double lines = (elements / run) * std::ceil(run / kLineElements);
      elements_at[j] = elements;
      lines_at[j] = std::min(lines, elements);
      total_lines[j] += lines_at[j];
    }
  }
  // Traffic: the outermost level whose lines fit stays cached; every run of it loads them.
  for (size_t c = 0; c < kCacheBytes.size(); ++c) {
    int fit = 0;
    for (int j = 0; j <= n; ++j) {
      if (total_lines[j] * kLineBytes <= kCacheBytes[c]) fit = j;
    }
    double inner_iterations = 1;
    for (int j = 0; j < fit; ++j) inner_iterations *= static_cast<double>(loops[n - 1 - j].extent);
    s.traffic[c] = (s.iterations / inner_iterations) * total_lines[fit] * kLineBytes;
  }
}

int kind_code(ir::ForKind kind) {
  switch (kind) {
    case ir::ForKind::kSerial:
      return 0;
    case ir::ForKind::kParallel:
      return 1;
    case ir::ForKind::kVectorized:
      return 2;
    case ir::ForKind::kUnrolled:
      return 3;
  }
  return 0;
}

void write_statement(const Statement& s, Scratch& x, float* out) {
  const int n = s.depth;
  const Loop* loops = x.loops_of(s);
  const Access* accesses = x.accesses_of(s);
  const Access& store = accesses[0];
  const double flops = s.flops_per_iteration * s.iterations;
  out[kStmtPresent] = 1;
  out[kStmtIterations] = log2p(s.iterations);
  out[kStmtFlopsPerIteration] = static_cast<float>(s.flops_per_iteration);
  out[kStmtIsReduction] = store.read_write ? 1.0f : 0.0f;
  out[kStmtDepth] = static_cast<float>(n);
  int tails = 0;
  for (int l = 0; l < n; ++l) tails += loops[l].tail ? 1 : 0;
  out[kStmtTailLoops] = static_cast<float>(tails);
  out[kStmtGuards] = static_cast<float>(s.guards);
  out[kStmtSelects] = static_cast<float>(s.selects);

  int vector_loop = -1;
  for (int l = n; l-- > 0;) {
    if (loops[l].kind == ir::ForKind::kVectorized) {
      vector_loop = l;
      break;
    }
  }
  const double width = vector_loop >= 0 ? static_cast<double>(loops[vector_loop].extent) : 1.0;
  out[kStmtVectorWidth] = vector_loop >= 0 ? static_cast<float>(width) : 0.0f;
  out[kStmtVectorInnermost] = (vector_loop >= 0 && vector_loop == n - 1) ? 1.0f : 0.0f;

  // The straight-line body: the innermost loops that unrolling and vectorization expand.
  int straight = 0;
  double straight_size = 1;
  for (int l = n; l-- > 0;) {
    const Loop& loop = loops[l];
    bool expanded = loop.kind == ir::ForKind::kVectorized ||
                    (loop.kind == ir::ForKind::kUnrolled && loop.extent <= kMaxUnrolledExtent);
    if (!expanded) break;
    ++straight;
    straight_size *= static_cast<double>(loop.extent);
  }
  out[kStmtStraightLineSize] = log2p(straight_size);
  double load_vectors = 0;
  for (int i = 1; i < s.access_count; ++i) {
    load_vectors += std::ceil(x.elements(accesses[i], n)[straight] / width);
  }
  out[kStmtAccumulatorVectors] = log2p(std::ceil(x.elements(store, n)[straight] / width));
  out[kStmtLoadVectors] = log2p(load_vectors);

  double parallel_extent = 0;
  for (int l = 0; l < n; ++l) {
    if (loops[l].kind == ir::ForKind::kParallel) {
      parallel_extent = static_cast<double>(loops[l].extent);
      break;
    }
  }
  out[kStmtParallelExtent] = log2p(parallel_extent);
  out[kStmtIterationsPerTask] =
      log2p(parallel_extent > 0 ? s.iterations / parallel_extent : s.iterations);
  for (int c = 0; c < 3; ++c) {
    out[kStmtTrafficL1 + c] = log2p(s.traffic[c]);
    out[kStmtIntensityL1 + c] = log2p(s.traffic[c] > 0 ? flops / s.traffic[c] : 0);
  }

  // Loops, innermost first.
  for (int level = 0; level < std::min(n, kLoopLevels); ++level) {
    const int l = n - 1 - level;
    float* loop = out + kLoopOffset(level);
    loop[kLoopExtent] = log2p(static_cast<double>(loops[l].extent));
    loop[kLoopKind] = static_cast<float>(kind_code(loops[l].kind));
    bool reduction = l < kMaxLoops;
    for (int d = 0; d < store.rank && reduction; ++d) reduction = x.dim(store, d).coef[l] == 0;
    loop[kLoopReduction] = reduction ? 1.0f : 0.0f;
  }

  // Accesses: the store, then loads by bytes touched (ties in program order).
  x.order.clear();
  for (int i = 0; i < s.access_count; ++i) x.order.push_back(i);
  std::stable_sort(x.order.begin() + 1, x.order.end(), [&](int a, int b) {
    return x.elements(accesses[a], n)[n] > x.elements(accesses[b], n)[n];
  });
  for (int slot = 0; slot < std::min(kAccessSlots, s.access_count); ++slot) {
    const Access& a = accesses[x.order[slot]];
    const double* flat = x.flat(a);
    const double* elements = x.elements(a, n);
    float* f = out + kAccessOffset(slot);
    f[kAccessPresent] = 1;
    f[kAccessIsLocal] = (a.tensor >= 0 && x.tensors[a.tensor].local) ? 1.0f : 0.0f;
    f[kAccessIsReadWrite] = a.read_write ? 1.0f : 0.0f;
    f[kAccessInnerStride] = (n > 0 && n - 1 < kMaxLoops) ? log2p(std::abs(flat[n - 1])) : 0.0f;
    float pattern = 0;
    if (vector_loop >= 0 && vector_loop < kMaxLoops) {
      double stride = std::abs(flat[vector_loop]);
      pattern = stride == 0 ? 1.0f : stride == 1 ? 2.0f : 3.0f;
    }
    f[kAccessVectorPattern] = pattern;
    f[kAccessBytes] = log2p(elements[n] * kElementBytes);
    f[kAccessLines] = log2p(x.lines(a, n)[n]);
    double iterations = 1;
    for (int level = 0; level < kLoopLevels; ++level) {
      const int j = std::min(level + 1, n);  // one run of loop `level` covers j loops
      if (level < n) iterations *= static_cast<double>(loops[n - 1 - level].extent);
      f[kAccessLevelBytes + level] = log2p(elements[j] * kElementBytes);
      f[kAccessLevelReuse + level] = log2p(iterations / elements[j]);
    }
  }
}

}  // namespace

const std::vector<std::string>& feature_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n(kNumFeatures);
    const char* global[] = {"total_flops",         "total_iterations",    "statements",
                            "loop_nests",          "local_bytes",         "local_buffers",
                            "argument_bytes",      "max_parallel_extent", "parallel_fraction",
                            "vectorized_fraction", "unrolled_fraction",   "traffic_l1",
                            "traffic_l2",          "traffic_l3",          "intensity_l1",
                            "intensity_l2",        "intensity_l3"};
    static_assert(sizeof(global) / sizeof(global[0]) == kNumGlobalFeatures);
    for (int i = 0; i < kNumGlobalFeatures; ++i) n[i] = std::string("global.") + global[i];
    const char* stmt[] = {"present",
                          "iterations",
                          "flops_per_iteration",
                          "is_reduction",
                          "depth",
                          "tail_loops",
                          "guards",
                          "selects",
                          "vector_width",
                          "vector_innermost",
                          "straight_line_size",
                          "accumulator_vectors",
                          "load_vectors",
                          "parallel_extent",
                          "iterations_per_task",
                          "traffic_l1",
                          "traffic_l2",
                          "traffic_l3",
                          "intensity_l1",
                          "intensity_l2",
                          "intensity_l3"};
    static_assert(sizeof(stmt) / sizeof(stmt[0]) == kNumStatementFeatures);
    const char* loop[] = {"extent", "kind", "reduction"};
    static_assert(sizeof(loop) / sizeof(loop[0]) == kNumLoopFeatures);
    const char* access[] = {"present",        "is_local", "is_read_write", "inner_stride",
                            "vector_pattern", "bytes",    "lines"};
    for (int s = 0; s < kStatementSlots; ++s) {
      const std::string prefix = "stmt" + std::to_string(s) + ".";
      const int base = kStatementOffset(s);
      for (int i = 0; i < kNumStatementFeatures; ++i) n[base + i] = prefix + stmt[i];
      for (int l = 0; l < kLoopLevels; ++l) {
        for (int i = 0; i < kNumLoopFeatures; ++i) {
          n[base + kLoopOffset(l) + i] = prefix + "loop" + std::to_string(l) + "." + loop[i];
        }
      }
      for (int a = 0; a < kAccessSlots; ++a) {
        const std::string ap = prefix + "access" + std::to_string(a) + ".";
        const int ab = base + kAccessOffset(a);
        for (int i = 0; i < kAccessLevelBytes; ++i) n[ab + i] = ap + access[i];
        for (int l = 0; l < kLoopLevels; ++l) {
          n[ab + kAccessLevelBytes + l] = ap + "level" + std::to_string(l) + "_bytes";
          n[ab + kAccessLevelReuse + l] = ap + "level" + std::to_string(l) + "_reuse";
        }
      }
    }
    n[kRestOffset + kRestStatements] = "rest.statements";
    n[kRestOffset + kRestIterations] = "rest.iterations";
    n[kRestOffset + kRestTrafficL2] = "rest.traffic_l2";
    return n;
  }();
  return names;
}

void features_of_loop_nest(const core::lower::LoopNest& nest, std::span<float> out) {
  KILN_CHECK(out.size() == static_cast<size_t>(kNumFeatures))
      << "feature row of " << out.size() << " floats, expected " << kNumFeatures;
  std::fill(out.begin(), out.end(), 0.0f);
  thread_local Scratch scratch;
  Scratch& x = scratch;
  x.clear();
  Walker walker(nest, x);
  walker.walk(nest.body);
  for (Statement& s : x.statements) analyse(s, x);

  double flops = 0, iterations = 0, parallel = 0, vectorized = 0, unrolled = 0;
  std::array<double, 3> traffic{};
  double max_parallel = 0;
  for (const Statement& s : x.statements) {
    flops += s.flops_per_iteration * s.iterations;
    iterations += s.iterations;
    bool in_parallel = false, in_vector = false, in_unrolled = false;
    const Loop* loops = x.loops_of(s);
    for (int l = 0; l < s.depth; ++l) {
      const ir::ForKind kind = loops[l].kind;
      in_parallel |= kind == ir::ForKind::kParallel;
      in_vector |= kind == ir::ForKind::kVectorized;
      in_unrolled |= kind == ir::ForKind::kUnrolled;
      if (kind == ir::ForKind::kParallel) {
        max_parallel = std::max(max_parallel, static_cast<double>(loops[l].extent));
      }
    }
    if (in_parallel) parallel += s.iterations;
    if (in_vector) vectorized += s.iterations;
    if (in_unrolled) unrolled += s.iterations;
    for (int c = 0; c < 3; ++c) traffic[c] += s.traffic[c];
  }
  out[kTotalFlops] = log2p(flops);
  out[kTotalIterations] = log2p(iterations);
  out[kNumStatements] = static_cast<float>(x.statements.size());
  out[kNumLoopNests] = static_cast<float>(walker.root_nests);
  out[kLocalBytes] = log2p(walker.local_bytes);
  out[kNumLocalBuffers] = static_cast<float>(walker.local_buffers);
  out[kArgumentBytes] = log2p(walker.argument_bytes);
  out[kMaxParallelExtent] = log2p(max_parallel);
  if (iterations > 0) {
    out[kParallelFraction] = static_cast<float>(parallel / iterations);
    out[kVectorizedFraction] = static_cast<float>(vectorized / iterations);
    out[kUnrolledFraction] = static_cast<float>(unrolled / iterations);
  }
  for (int c = 0; c < 3; ++c) {
    out[kTrafficL1 + c] = log2p(traffic[c]);
    out[kIntensityL1 + c] = log2p(traffic[c] > 0 ? flops / traffic[c] : 0);
  }
  const int count = static_cast<int>(x.statements.size());
  if (count == 0) return;

  // Slot 0: the most float operations; slot 1: the most traffic at 1 MiB among the others;
  // ties go to the first in program order.
  std::vector<int> order(count);
  for (int i = 0; i < count; ++i) order[i] = i;
  auto flops_of = [&](int i) {
    return x.statements[i].flops_per_iteration * x.statements[i].iterations;
  };
  auto main = std::max_element(order.begin(), order.end(),
                               [&](int a, int b) { return flops_of(a) < flops_of(b); });
  std::rotate(order.begin(), main, main + 1);
  std::stable_sort(order.begin() + 1, order.end(), [&](int a, int b) {
    return x.statements[a].traffic[1] > x.statements[b].traffic[1];
  });
  for (int slot = 0; slot < std::min(kStatementSlots, count); ++slot) {
    write_statement(x.statements[order[slot]], x, out.data() + kStatementOffset(slot));
  }
  double rest_iterations = 0, rest_traffic = 0;
  int rest = 0;
  for (int i = kStatementSlots; i < count; ++i) {
    ++rest;
    rest_iterations += x.statements[order[i]].iterations;
    rest_traffic += x.statements[order[i]].traffic[1];
  }
  out[kRestOffset + kRestStatements] = static_cast<float>(rest);
  out[kRestOffset + kRestIterations] = log2p(rest_iterations);
  out[kRestOffset + kRestTrafficL2] = log2p(rest_traffic);
}

double estimated_cycles(std::span<const float> features, int vector_registers) {
  auto count = [&](int offset) { return std::exp2(double(features[size_t(offset)])) - 1; };
  const int main = kStatementOffset(0);
  const double flops = count(kTotalFlops);
  const double accumulators = count(main + kStmtAccumulatorVectors);
  const double loads = count(main + kStmtLoadVectors);
  const double lanes = std::max(1.0, double(features[size_t(main + kStmtVectorWidth)]));
  const double vectorized = features[kVectorizedFraction];
  // The body repeats one step (an FMA into each accumulator) `unroll` times; a step's loads
  // are live beside the accumulators.
  const double copies = count(main + kStmtStraightLineSize);
  const double unroll = std::max(1.0, copies / (std::max(accumulators, 1.0) * lanes));
  const double step_loads = loads / unroll;
  constexpr double kFmaInFlight = 8;  // latency 4 × 2 ports
  const double latency = accumulators > 0 ? std::min(1.0, accumulators / kFmaInFlight) : 0.1;
  const double live = accumulators + step_loads;
  const double spills = live <= vector_registers ? 1.0 : vector_registers / live;
  const double load_rate =
      step_loads > 0 ? std::min(1.0, std::max(accumulators, 1.0) / step_loads) : 1.0;
  double cycles = flops / (lanes * std::max(0.05, latency * spills) * std::max(0.05, load_rate));
  if (vectorized < 0.5) cycles *= lanes / (1 + vectorized * lanes);
  return cycles;
}

Status candidate_features(const core::Workload& workload, const core::Target& target,
                          const core::Config& config, std::span<float> out) {
  KILN_ASSIGN_OR_RETURN(core::Schedule schedule, core::make_schedule(workload, target, config));
  core::lower::LoopNest nest;
  try {
    nest = core::lower::lower_for_features(schedule);
  } catch (const core::ScheduleError& e) {
    return invalid_config(std::string(e.what()) + " (" + e.detail() + ")");
  }
  features_of_loop_nest(nest, out);
  return Status::ok();
}

}  // namespace kiln::cost
