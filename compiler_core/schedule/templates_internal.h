/// \file
/// The per-operator template functions behind templates.h.
#pragma once

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

/// Ceiling division of positive numbers.
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace kiln::core::templates
