#include "compiler_core/lower/pipeline.h"

#include <chrono>
#include <cstdlib>

#include "compiler_core/ir/ir_visitor.h"
#include "compiler_core/ir/printer.h"
#include "compiler_core/lower/build_loop_nest.h"
#include "compiler_core/lower/partition_loops.h"
#include "compiler_core/lower/simplify.h"
#include "compiler_core/lower/storage_flatten.h"
#include "compiler_core/lower/unroll_loops.h"
#include "compiler_core/lower/vectorize_loops.h"
#include "compiler_core/support/log.h"

namespace kiln::core::lower {
namespace {

using ir::Stmt;

/// Logs each pass's result and time (Halide's LoweringLogger).
class PassLogger {
 public:
  PassLogger() : log_(logger("lower")), time_passes_(std::getenv("KILN_TIME_PASSES")) {}

  template <typename F>
  Stmt run(const char* pass, const Stmt& input, F f) {
    auto start = std::chrono::steady_clock::now();
    Stmt output = f(input);
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (time_passes_) log_->info("pass={} ms={:.3f}", pass, ms);
    if (log_->should_log(spdlog::level::trace) && !output.same_as(input)) {
      log_->trace("after {}:\n{}", pass, ir::to_string(output));
    }
    return output;
  }

 private:
  std::shared_ptr<spdlog::logger> log_;
  bool time_passes_;
};

/// Checks what code generation relies on: nothing multi-dimensional is left, and vectorized
/// and unrolled loops are gone.
class VerifyLowered : public ir::IRVisitor {
 protected:
  void visit_node(const ir::TensorLoad* op) override {
    KILN_UNREACHABLE() << "TensorLoad of " << op->tensor << " after lowering";
  }
  void visit_node(const ir::TensorStore* op) override {
    KILN_UNREACHABLE() << "TensorStore to " << op->tensor << " after lowering";
  }
  void visit_node(const ir::Realize* op) override {
    KILN_UNREACHABLE() << "Realize of " << op->tensor << " after lowering";
  }
  void visit_node(const ir::For* op) override {
    KILN_CHECK(op->for_kind == ir::ForKind::kSerial || op->for_kind == ir::ForKind::kParallel)
        << "loop " << op->var << " is still " << ir::for_kind_name(op->for_kind);
    IRVisitor::visit_node(op);
  }
};

}  // namespace

ir::LoweredFunc lower_schedule(const Schedule& schedule, const std::string& name) {
  PassLogger log;
  LoopNest nest = build_loop_nest(schedule);
  Stmt s = nest.body;
  if (logger("lower")->should_log(spdlog::level::trace)) {
    logger("lower")->trace("loop nest of {}:\n{}", name, ir::to_string(s));
  }
  s = log.run("simplify", s, [](const Stmt& x) { return simplify(x); });
  s = log.run("partition_loops", s, [](const Stmt& x) { return partition_loops(x); });
  s = log.run("simplify", s, [](const Stmt& x) { return simplify(x); });
  s = log.run("storage_flatten", s,
              [&](const Stmt& x) { return storage_flatten(x, nest.args, nest.arg_shapes); });
  s = log.run("simplify", s, [](const Stmt& x) { return simplify(x); });
  s = log.run("unroll_loops", s, [](const Stmt& x) { return unroll_loops(x); });
  s = log.run("simplify", s, [](const Stmt& x) { return simplify(x); });
  s = log.run("vectorize_loops", s, [](const Stmt& x) { return vectorize_loops(x); });
  s = log.run("simplify", s, [](const Stmt& x) { return simplify(x); });
  VerifyLowered().visit(s);
  return ir::LoweredFunc{name, nest.args, s};
}

LoopNest lower_for_features(const Schedule& schedule) {
  // No pass runs: the simplifier alone would cost as much as building the nest, and features
  // read extents and strides through their own interval and stride analysis. Stages computed
  // ahead of time are not part of a run, so they are not part of the features either.
  for (const Stage& s : schedule.stages()) {
    if (s.prepacked) return build_loop_nest(schedule.without_prepacked());
  }
  return build_loop_nest(schedule);
}

}  // namespace kiln::core::lower
