/// \file
/// The per-operator template functions behind templates.h.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "compiler_core/schedule/config_space.h"
#include "compiler_core/schedule/schedule.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"

namespace kiln::core::templates {

/// matmul, dense and batch_matmul.
ConfigSpace matmul_space(const Workload& w, const Target& t);
Schedule matmul_schedule(const Workload& w, const Target& t, const ConfigSpace& space,
                         const Config& c);

/// conv2d (any groups, NCHW or NHWC).
ConfigSpace conv2d_space(const Workload& w, const Target& t);
Schedule conv2d_schedule(const Workload& w, const Target& t, const ConfigSpace& space,
                         const Config& c);

/// depthwise_conv2d.
ConfigSpace depthwise_space(const Workload& w, const Target& t);
Schedule depthwise_schedule(const Workload& w, const Target& t, const ConfigSpace& space,
                            const Config& c);

/// Restricts `space` to the register tiles that fit `t`'s vector registers, where
/// `registers_used(values)` counts what a point's micro-kernel keeps live (accumulators, the
/// operand vectors of one step and a broadcast). x86 spaces predate register budgets and keep
/// every point, so the indices of their stored records keep their meaning.
void fit_register_budget(ConfigSpace& space, const Target& t,
                         const std::function<int64_t(const std::vector<int64_t>&)>& registers_used);

/// Makes the point with `values` the space's default; when a register budget left it out, the
/// restricted space's own default (its first point) stays.
void set_default_if_in_space(ConfigSpace& space, const std::vector<int64_t>& values);

/// The inputs of a workload's epilogue: placeholders `bias` [K] and `residual` (the output's
/// shape), each defined only where the workload has it.
struct EpilogueInputs {
  Tensor bias, residual;
};

/// Adds the placeholders of `w`'s epilogue to `sch`, bias then residual, the residual of
/// `output_shape` (the output stage's shape: the workload's, or a view of the same memory).
/// Call it after the operator's own placeholders: the caller's buffers follow their order.
EpilogueInputs add_epilogue_inputs(Schedule& sch, const Workload& w, const Shape& output_shape);

/// `w`'s epilogue applied to `sum`, the value of the output element at `out_indices` (in the
/// output's layout) of output channel `channel`: act(sum + bias(channel) + residual(out)).
ir::Expr apply_epilogue(const Workload& w, const EpilogueInputs& in, ir::Expr sum,
                        const ir::Expr& channel, const std::vector<ir::Expr>& out_indices);

/// Ceiling division of positive numbers.
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace kiln::core::templates
