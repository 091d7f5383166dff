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

EpilogueInputs add_epilogue_inputs(Schedule& sch, const Workload& w, const Shape& output_shape) {
  EpilogueInputs in;
  if (w.bias) in.bias = sch.placeholder("bias", {w.op == OpKind::kDense ? w.n : w.out_channels});
  if (w.residual) in.residual = sch.placeholder("residual", output_shape);
  return in;
}

ir::Expr apply_epilogue(const Workload& w, const EpilogueInputs& in, ir::Expr sum,
                        const ir::Expr& channel, const std::vector<ir::Expr>& out_indices) {
  using ir::Expr;
  using ir::f32;
  Expr x = std::move(sum);
  if (w.bias) x = x + in.bias({channel});
  if (w.residual) x = x + in.residual(out_indices);
  switch (w.act) {
    case Activation::kNone:
      return x;
    case Activation::kRelu:
      return ir::max(x, f32(0));
    case Activation::kRelu6:
      return ir::min(ir::max(x, f32(0)), f32(6));
    case Activation::kHardSwish:
      return x * ir::min(ir::max(x + f32(3), f32(0)), f32(6)) / f32(6);
    case Activation::kSigmoid:
      return f32(1) / (f32(1) + ir::exp(f32(0) - x));
  }
  KILN_UNREACHABLE() << "unknown activation " << static_cast<int>(w.act);
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
