#include "compiler_core/schedule/templates.h"

#include "compiler_core/schedule/templates_internal.h"
#include "compiler_core/support/check.h"

namespace kiln::core {

namespace templates {

void fit_register_budget(
    ConfigSpace& space, const Target& t,
    const std::function<int64_t(const std::vector<int64_t>&)>& registers_used) {
  if (t.is_x86()) return;
  const int64_t budget = t.vector_registers();
  space.restrict_to(
      [&](const std::vector<int64_t>& values) { return registers_used(values) <= budget; },
      "its register tile needs more than the " + std::to_string(budget) +
          " vector registers of target '" + t.str() + "'");
}

void set_default_if_in_space(ConfigSpace& space, const std::vector<int64_t>& values) {
  Result<Config> config = space.from_values(values);
  KILN_CHECK(config.is_ok() || space.restricted())
      << "the default of " << space.template_name() << " is not in its space";
  if (config.is_ok()) space.set_default(*std::move(config));
}

}  // namespace templates

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
