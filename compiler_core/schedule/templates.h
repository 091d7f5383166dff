/// \file
/// Schedule templates: for every operator, a ConfigSpace of knobs and the schedule that a
/// point of it stands for. The spaces are built to contain the fast kernels: packed weight
/// panels and register-blocked, vectorized micro-kernels for the matmul family; a
/// channel-blocked layout (NCHW[x]c) with register blocking over output width and channels
/// for convolutions.
#pragma once

#include "compiler_core/schedule/config_space.h"
#include "compiler_core/schedule/schedule.h"
#include "compiler_core/support/status.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"

namespace kiln::core {

/// The space of `workload` on `target` (which decides the vector width).
Result<ConfigSpace> config_space(const Workload& workload, const Target& target);

/// The schedule of `config`. InvalidConfig when the config is not a point of the space or its
/// schedule is not valid for this workload.
Result<Schedule> make_schedule(const Workload& workload, const Target& target,
                               const Config& config);

}  // namespace kiln::core
