#include "compiler_core/schedule/templates.h"

#include "compiler_core/schedule/templates_internal.h"

namespace kiln::core {

Result<ConfigSpace> config_space(const Workload& workload, const Target& target) {
  if (target.kind != TargetKind::kLlvm) {
    return invalid_argument("target '" + target.str() +
                            "' has no schedule templates yet; use an llvm target");
  }
  switch (workload.op) {
    case OpKind::kMatmul:
    case OpKind::kDense:
    case OpKind::kBatchMatmul:
      return templates::matmul_space(workload, target);
    case OpKind::kConv2d:
      return templates::conv2d_space(workload, target);
    case OpKind::kDepthwiseConv2d:
      return templates::depthwise_space(workload, target);
  }
  KILN_UNREACHABLE() << "operator kind";
}

Result<Schedule> make_schedule(const Workload& workload, const Target& target,
                               const Config& config) {
  KILN_ASSIGN_OR_RETURN(ConfigSpace space, config_space(workload, target));
  KILN_ASSIGN_OR_RETURN(Config checked, space.from_values(config.values));
  if (checked.index != config.index) {
    return invalid_config("config index " + std::to_string(config.index) +
                          " does not match its knob values (index " +
                          std::to_string(checked.index) + ")");
  }
  try {
    switch (workload.op) {
      case OpKind::kMatmul:
      case OpKind::kDense:
      case OpKind::kBatchMatmul:
        return templates::matmul_schedule(workload, target, space, checked);
      case OpKind::kConv2d:
        return templates::conv2d_schedule(workload, target, space, checked);
      case OpKind::kDepthwiseConv2d:
        return templates::depthwise_schedule(workload, target, space, checked);
    }
  } catch (const ScheduleError& e) {
    return invalid_config(std::string(e.what()) + " (" + e.detail() + ")");
  }
  KILN_UNREACHABLE() << "operator kind";
}

}  // namespace kiln::core
