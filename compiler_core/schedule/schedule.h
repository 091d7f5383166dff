/// \file
/// Tensor expressions and their schedules (TVM's te.compute + te.Schedule, Halide's Func).
///
/// A Schedule holds stages in definition order. A stage is a placeholder (a kernel argument)
/// or a computation `T(i...) = body` over a rectangular domain, optionally a sum over
/// reduction axes. Bodies read other tensors with TensorLoad and refer to their own axes
/// through Vars named `<stage>.<axis>` (see `axis`).
///
/// Primitives change how a stage is computed, never what: split, fuse, reorder, tile,
/// vectorize, unroll, parallel, compute_at, compute_inline, cache_write (accumulate in a local
/// buffer) and layout_transform (pack a tensor into a new layout, e.g. panels for matmul or
/// NCHW[x]c for convolutions). Invalid uses (unknown loop, splitting by zero, fusing loops
/// that are not adjacent, ...) throw ScheduleError, which the template boundary turns into
/// INVALID_CONFIG.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "compiler_core/ir/ir.h"
#include "compiler_core/te/workload.h"

namespace kiln::core {

/// A misuse of a schedule primitive: the short message names the primitive and the loop,
/// `detail` the stage's loop order at the time.
class ScheduleError : public std::runtime_error {
 public:
  ScheduleError(const std::string& message, std::string detail)
      : std::runtime_error(message), detail_(std::move(detail)) {}
  const std::string& detail() const { return detail_; }

 private:
  std::string detail_;
};

/// A handle to a stage's tensor.
struct Tensor {
  std::string name;
  Shape shape;
  /// Reads this tensor at `indices` (one per dimension).
  ir::Expr operator()(std::vector<ir::Expr> indices) const;
};

/// How a split's inner loop iterates; split relations in order of application.
struct SplitRelation {
  std::string parent, outer, inner;
  int64_t factor = 1;
  /// The last outer iteration moves back to end at the loop's end (overlapping the one
  /// before) instead of being short: every inner loop is whole, so it vectorizes with no tail.
  /// The overlap is computed twice (see Schedule::split_shift_inwards).
  bool shift_inwards = false;
};
struct FuseRelation {
  std::string outer, inner, fused;
};
struct Relation {
  enum class Kind { kSplit, kFuse } kind;
  SplitRelation split;
  FuseRelation fuse;
};

struct Stage {
  enum class Attach { kRoot, kInline, kAt };

  std::string name;
  Shape shape;
  bool is_placeholder = false;
  std::vector<std::string> axes;         ///< full names of the spatial axes
  std::vector<std::string> reduce_axes;  ///< full names of the reduction axes
  Shape reduce_shape;
  ir::Expr body;  ///< value (or summand for reductions); undefined for placeholders
  bool is_reduction = false;
  /// Reductions: the terms summed are those where this holds; undefined: all of them.
  ir::Expr reduce_where;

  // Schedule state.
  std::vector<std::string> leaves;  ///< loop order, outermost first
  std::vector<Relation> relations;
  std::map<std::string, ir::ForKind> kinds;
  Attach attach = Attach::kRoot;
  std::string attach_stage, attach_var;
  /// Computed ahead of time from constant inputs (weights), once per set of weights, not in
  /// every run of the kernel (see Schedule::prepack).
  bool prepacked = false;
};

class Schedule {
 public:
  /// A kernel argument of `shape`.
  Tensor placeholder(const std::string& name, const Shape& shape);

  /// `name(axes) = body(axes)` over `shape`; `axis_names` names each dimension.
  Tensor compute(const std::string& name, const Shape& shape,
                 const std::vector<std::string>& axis_names,
                 const std::function<ir::Expr(const std::vector<ir::Expr>&)>& body);

  /// `name(axes) = sum over reduce axes of body(axes, reduce_axes)`, starting from 0. With
  /// `where`, only the terms where where(axes, reduce_axes) holds are summed: the rest must be
  /// zero (taps on padding), so that skipping them changes no result. Lowering tests each of its
  /// conjuncts once per iteration of the innermost loop it depends on, around the loops inside
  /// that one, so a condition on an outer reduction axis skips whole inner loops. In an unrolled
  /// loop a conjunct is kept only where unrolling decides it (it depends on unrolled loops
  /// alone); elsewhere a test would cost more than it skips, and its terms are summed.
  Tensor compute_sum(
      const std::string& name, const Shape& shape, const std::vector<std::string>& axis_names,
      const Shape& reduce_shape, const std::vector<std::string>& reduce_names,
      const std::function<ir::Expr(const std::vector<ir::Expr>&, const std::vector<ir::Expr>&)>&
          body,
      const std::function<ir::Expr(const std::vector<ir::Expr>&, const std::vector<ir::Expr>&)>&
          where = nullptr);

  /// The loop variable `<stage>.<axis>`, checked to exist.
  std::string axis(const Tensor& t, const std::string& axis_name) const;

  /// Splits loop `var` of `t` by `factor` into (outer, inner), named `var.o` and `var.i`
  /// unless names are given; inner covers [0, factor), the last outer iteration may be short.
  std::pair<std::string, std::string> split(const Tensor& t, const std::string& var,
                                            int64_t factor);
  /// As split, but the last outer iteration starts at extent - factor, overlapping the one
  /// before, so the inner loop is always whole (Halide's ShiftInwards). The loop must be at
  /// least `factor` long. The overlap is computed twice: in a reduction stage the outer loop
  /// must enclose the reduction loops, so that each part's sums start from zero.
  std::pair<std::string, std::string> split_shift_inwards(const Tensor& t, const std::string& var,
                                                          int64_t factor);
  /// Fuses adjacent loops `outer` and `inner` (outer directly enclosing inner) into one.
  std::string fuse(const Tensor& t, const std::string& outer, const std::string& inner);
  /// Puts the named loops in the given order, in the positions they occupy now.
  void reorder(const Tensor& t, const std::vector<std::string>& order);
  /// split x and y, order (xo, yo, xi, yi); returns those four.
  std::vector<std::string> tile(const Tensor& t, const std::string& x, const std::string& y,
                                int64_t fx, int64_t fy);
  void vectorize(const Tensor& t, const std::string& var);
  void unroll(const Tensor& t, const std::string& var);
  void parallel(const Tensor& t, const std::string& var);

  /// Computes `producer` inside loop `var` of `consumer`, over the region the consumer's
  /// iterations under that loop read (bound inference), in a buffer local to that loop.
  void compute_at(const Tensor& producer, const Tensor& consumer, const std::string& var);
  /// Substitutes `t`'s body into its consumers; t must not be a reduction.
  void compute_inline(const Tensor& t);

  /// Makes `t` compute into a new stage `<t>.local` (returned) and turns `t` into a copy of
  /// it; with compute_at the local stage becomes a register-blocked accumulator.
  Tensor cache_write(const Tensor& t);

  /// Inserts a stage `name` holding `source` in a new layout of shape `new_shape`:
  /// `name(new) = source(to_source(new))` (zero where to_source falls outside the source,
  /// i.e. padding), and rewrites every later reader of `source` to read
  /// `name(from_source(old))`.
  Tensor layout_transform(
      const Tensor& source, const std::string& name, const Shape& new_shape,
      const std::vector<std::string>& axis_names,
      const std::function<std::vector<ir::Expr>(const std::vector<ir::Expr>&)>& to_source,
      const std::function<std::vector<ir::Expr>(const std::vector<ir::Expr>&)>& from_source);

  /// Marks `t`, a root stage that reads placeholders only (a packing of weights), as computed
  /// ahead of time: build_kernel compiles it into a separate function that Kernel::prepare
  /// runs once per set of weights, and the kernel proper reads its result as an input. A
  /// schedule lowered whole (object files, lower_schedule) still computes it inline.
  void prepack(const Tensor& t);

  /// The schedule of what runs in every call: each prepacked stage becomes a placeholder of
  /// its shape, read by the stages after it. The schedule itself when nothing is prepacked.
  Schedule without_prepacked() const;
  /// One schedule per prepacked stage: the placeholders it reads, then the stage as the output.
  std::vector<Schedule> prepacked_stages() const;

  const std::vector<Stage>& stages() const { return stages_; }
  const Stage& stage(const std::string& name) const;

  /// The stage's loops and their annotations, for error details.
  std::string describe(const Stage& s) const;

 private:
  Stage& mutable_stage(const std::string& name);
  int leaf_position(const Stage& s, const std::string& var) const;

  std::vector<Stage> stages_;
};

}  // namespace kiln::core
