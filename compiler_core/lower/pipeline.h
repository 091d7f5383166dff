/// \file
/// The lowering pipeline: from a schedule to a function ready for code generation.
#pragma once

#include <string>

#include "compiler_core/ir/function.h"
#include "compiler_core/schedule/schedule.h"

namespace kiln::core::lower {

/// Lowers `schedule` (its last stage is the output) into `name`. Every pass is listed, in
/// order, in this one function's body. With the `lower` logger at trace level each pass's
/// output is printed when it changed; with KILN_TIME_PASSES set, each pass's time is logged.
/// Throws ScheduleError for schedules that cannot be lowered.
ir::LoweredFunc lower_schedule(const Schedule& schedule, const std::string& name);

}  // namespace kiln::core::lower
