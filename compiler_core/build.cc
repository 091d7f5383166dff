#include "compiler_core/build.h"

#include "compiler_core/codegen/llvm/codegen_llvm.h"
#include "compiler_core/ir/printer.h"
#include "compiler_core/lower/pipeline.h"
#include "compiler_core/runtime/buffer.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/support/check.h"

namespace kiln::core {
namespace {

/// One compiled function and, for each of its arguments, where the buffer comes from: the
/// caller's buffer at that position (>= 0), or the kernel's packed buffer -1 - i.
struct Step {
  std::unique_ptr<JitFunction> fn;
  std::vector<int> sources;
};

class HostKernel : public Kernel {
 public:
  HostKernel(std::vector<Step> prepare, Step main, std::vector<Buffer> packed, size_t arity,
             std::string lowered)
      : prepare_(std::move(prepare)),
        main_(std::move(main)),
        packed_(std::move(packed)),
        arity_(arity),
        lowered_(std::move(lowered)) {}

  void prepare(std::span<float* const> buffers) override {
    for (const Step& step : prepare_) call(step, buffers);
  }
  void run_prepared(std::span<float* const> buffers) override { call(main_, buffers); }
  bool prepacks() const override { return !prepare_.empty(); }
  const std::string& lowered() const override { return lowered_; }

 private:
  void call(const Step& step, std::span<float* const> buffers) {
    KILN_CHECK(buffers.size() == arity_)
        << "kernel takes " << arity_ << " buffers, got " << buffers.size();
    float* args[16];
    KILN_CHECK(step.sources.size() <= 16) << "too many kernel arguments";
    for (size_t i = 0; i < step.sources.size(); ++i) {
      int source = step.sources[i];
      args[i] = source >= 0 ? buffers[size_t(source)] : packed_[size_t(-1 - source)].data();
    }
    step.fn->call(args);
  }

  std::vector<Step> prepare_;
  Step main_;
  std::vector<Buffer> packed_;
  size_t arity_;
  std::string lowered_;
};

Result<ir::LoweredFunc> lower_named(const Schedule& schedule, const std::string& name) {
  try {
    return lower::lower_schedule(schedule, name);
  } catch (const ScheduleError& e) {
    return invalid_config(std::string(e.what()) + " (" + e.detail() + ")");
  }
}

/// A schedule's functions: its prepack steps, each writing one packed buffer, then the main
/// step; each with the source of every argument (see CompiledFunction::sources).
struct PlannedFunction {
  ir::LoweredFunc func;
  std::vector<int> sources;
};
struct KernelPlan {
  std::vector<PlannedFunction> prepare;
  std::vector<Shape> packed_shapes;
  PlannedFunction main;
  size_t arity = 0;
  std::string lowered;
};

Result<KernelPlan> plan_kernel(const Schedule& schedule, const std::string& name) {
  // The caller's buffers: the placeholders of the whole schedule, then the output.
  std::vector<std::string> caller;
  for (const Stage& s : schedule.stages()) {
    if (s.is_placeholder) caller.push_back(s.name);
  }
  caller.push_back(schedule.stages().back().name);
  std::vector<std::string> packed_names;
  auto source_of = [&](const std::string& arg) -> int {
    for (size_t i = 0; i < caller.size(); ++i) {
      if (caller[i] == arg) return int(i);
    }
    for (size_t i = 0; i < packed_names.size(); ++i) {
      if (packed_names[i] == arg) return -1 - int(i);
    }
    KILN_UNREACHABLE() << "kernel argument " << arg << " has no buffer";
  };

  KernelPlan plan;
  plan.arity = caller.size();
  for (const Schedule& part : schedule.prepacked_stages()) {
    const Stage& stage = part.stages().back();
    packed_names.push_back(stage.name);
    plan.packed_shapes.push_back(stage.shape);
    PlannedFunction step;
    KILN_ASSIGN_OR_RETURN(
        step.func, lower_named(part, name + "_prepare_" + std::to_string(plan.prepare.size())));
    for (const std::string& arg : step.func.args) step.sources.push_back(source_of(arg));
    plan.lowered += "// prepare " + stage.name + "\n" + ir::to_string(step.func.body) + "\n";
    plan.prepare.push_back(std::move(step));
  }
  KILN_ASSIGN_OR_RETURN(plan.main.func, lower_named(schedule.without_prepacked(), name));
  for (const std::string& arg : plan.main.func.args) plan.main.sources.push_back(source_of(arg));
  plan.lowered += ir::to_string(plan.main.func.body);
  return plan;
}

}  // namespace

Result<std::unique_ptr<Kernel>> build_kernel(const Workload& workload, const Target& target,
                                             const Config& config) {
  if (target.kind != TargetKind::kLlvm || !target.is_host) {
    return invalid_argument("target '" + target.str() +
                            "' is not this host; build an object file for it instead");
  }
  KILN_ASSIGN_OR_RETURN(Schedule schedule, make_schedule(workload, target, config));
  KILN_ASSIGN_OR_RETURN(KernelPlan plan, plan_kernel(schedule, kernel_function_name(workload)));
  std::vector<Buffer> packed;
  std::vector<Step> prepare;
  for (size_t i = 0; i < plan.prepare.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(Buffer buffer, Buffer::create(plan.packed_shapes[i]));
    packed.push_back(std::move(buffer));
    Step step;
    KILN_ASSIGN_OR_RETURN(step.fn, jit_compile(plan.prepare[i].func, target));
    step.sources = plan.prepare[i].sources;
    prepare.push_back(std::move(step));
  }
  Step main;
  KILN_ASSIGN_OR_RETURN(main.fn, jit_compile(plan.main.func, target));
  main.sources = plan.main.sources;
  std::unique_ptr<Kernel> kernel = std::make_unique<HostKernel>(
      std::move(prepare), std::move(main), std::move(packed), plan.arity, std::move(plan.lowered));
  return kernel;
}

Result<KernelCode> build_kernel_code(const Workload& workload, const Target& target,
                                     const Config& config, const std::string& symbol_prefix) {
  if (target.kind != TargetKind::kLlvm) {
    return invalid_argument("target '" + target.str() + "' is not an llvm target");
  }
  KILN_ASSIGN_OR_RETURN(Schedule schedule, make_schedule(workload, target, config));
  KILN_ASSIGN_OR_RETURN(KernelPlan plan, plan_kernel(schedule, symbol_prefix));
  KernelCode code;
  code.arity = int64_t(plan.arity);
  code.packed_shapes = plan.packed_shapes;
  auto compile = [&](const PlannedFunction& planned) -> Result<CompiledFunction> {
    CompiledFunction out;
    out.symbol = planned.func.name;
    out.sources = planned.sources;
    KILN_ASSIGN_OR_RETURN(out.object, compile_object(planned.func, target));
    return out;
  };
  for (const PlannedFunction& step : plan.prepare) {
    KILN_ASSIGN_OR_RETURN(CompiledFunction fn, compile(step));
    code.prepare.push_back(std::move(fn));
  }
  KILN_ASSIGN_OR_RETURN(code.main, compile(plan.main));
  return code;
}

std::string kernel_function_name(const Workload& workload) {
  return std::string("kiln_") + op_name(workload.op);
}

Result<std::string> build_code(const Workload& workload, const Target& target, const Config& config,
                               CodeFormat format) {
  if (target.kind != TargetKind::kLlvm) {
    return invalid_argument("target '" + target.str() + "' is not an llvm target");
  }
  KILN_ASSIGN_OR_RETURN(Schedule schedule, make_schedule(workload, target, config));
  KILN_ASSIGN_OR_RETURN(ir::LoweredFunc func,
                        lower_named(schedule, kernel_function_name(workload)));
  switch (format) {
    case CodeFormat::kObject: {
      KILN_ASSIGN_OR_RETURN(std::vector<uint8_t> object, compile_object(func, target));
      return std::string(object.begin(), object.end());
    }
    case CodeFormat::kAssembly:
      return emit_assembly(func, target);
    case CodeFormat::kLlvmIr:
      return emit_llvm_ir(func, target);
  }
  KILN_UNREACHABLE() << "code format";
}

Result<std::vector<uint8_t>> build_object(const Workload& workload, const Target& target,
                                          const Config& config) {
  KILN_ASSIGN_OR_RETURN(std::string object,
                        build_code(workload, target, config, CodeFormat::kObject));
  return std::vector<uint8_t>(object.begin(), object.end());
}

}  // namespace kiln::core
