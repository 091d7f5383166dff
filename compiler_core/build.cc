#include "compiler_core/build.h"

#include "compiler_core/codegen/llvm/codegen_llvm.h"
#include "compiler_core/ir/printer.h"
#include "compiler_core/lower/pipeline.h"
#include "compiler_core/schedule/templates.h"

namespace kiln::core {
namespace {

class HostKernel : public Kernel {
 public:
  HostKernel(std::unique_ptr<JitFunction> fn, std::string lowered, size_t arity)
      : fn_(std::move(fn)), lowered_(std::move(lowered)), arity_(arity) {}

  void run(std::span<float* const> buffers) override {
    KILN_CHECK(buffers.size() == arity_)
        << "kernel takes " << arity_ << " buffers, got " << buffers.size();
    fn_->call(buffers.data());
  }
  const std::string& lowered() const override { return lowered_; }

 private:
  std::unique_ptr<JitFunction> fn_;
  std::string lowered_;
  size_t arity_;
};

Result<ir::LoweredFunc> lower_config(const Workload& workload, const Target& target,
                                     const Config& config) {
  KILN_ASSIGN_OR_RETURN(Schedule schedule, make_schedule(workload, target, config));
  try {
    return lower::lower_schedule(schedule, std::string("kiln_") + op_name(workload.op));
  } catch (const ScheduleError& e) {
    return invalid_config(std::string(e.what()) + " (" + e.detail() + ")");
  }
}

}  // namespace

Result<std::unique_ptr<Kernel>> build_kernel(const Workload& workload, const Target& target,
                                             const Config& config) {
  if (target.kind != TargetKind::kLlvm || !target.is_host) {
    return invalid_argument("target '" + target.str() +
                            "' is not this host; build an object file for it instead");
  }
  KILN_ASSIGN_OR_RETURN(ir::LoweredFunc func, lower_config(workload, target, config));
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<JitFunction> fn, jit_compile(func, target));
  std::unique_ptr<Kernel> kernel =
      std::make_unique<HostKernel>(std::move(fn), ir::to_string(func.body), func.args.size());
  return kernel;
}

Result<std::vector<uint8_t>> build_object(const Workload& workload, const Target& target,
                                          const Config& config) {
  if (target.kind != TargetKind::kLlvm) {
    return invalid_argument("target '" + target.str() + "' is not an llvm target");
  }
  KILN_ASSIGN_OR_RETURN(ir::LoweredFunc func, lower_config(workload, target, config));
  return compile_object(func, target);
}

}  // namespace kiln::core
