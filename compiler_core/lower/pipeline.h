/// \file
/// The lowering pipeline: from a schedule to a function ready for code generation.
#pragma once

#include <string>

#include "compiler_core/ir/function.h"
#include "compiler_core/lower/build_loop_nest.h"
#include "compiler_core/schedule/schedule.h"

namespace kiln::core::lower {

/// Lowers `schedule` (its last stage is the output) into `name`. Every pass is listed, in
/// order, in this one function's body. With the `lower` logger at trace level each pass's
/// output is printed when it changed; with KILN_TIME_PASSES set, each pass's time is logged.
/// Throws ScheduleError for schedules that cannot be lowered.
ir::LoweredFunc lower_schedule(const Schedule& schedule, const std::string& name);

/// The cheap lowering that cost-model features read (cost_model/features.h): the loop nest of
/// `schedule` as build_loop_nest makes it, before any pass. Every candidate a search looks at
/// goes through it, so it stops there: about 30 µs for a matmul where lower_schedule takes
/// milliseconds. What it returns, and what features may rely on:
/// - loops keep their For kinds (parallel, vectorized, unrolled) as annotations, unexpanded;
/// - accesses are still multi-dimensional TensorLoad/TensorStore, each stage's store indices
///   simplified, its loads written in the stage's axes (they may hold the `/` and `%` of
///   layout transforms and the clamps of padding);
/// - loops of extent 1 are still present, and split tails keep extents `min(f, e - o·f)`;
/// - Realize marks each intermediate tensor's region;
/// - stages computed ahead of time (Schedule::prepack) are placeholders: they are not run.
/// Throws ScheduleError for schedules that cannot be lowered, like lower_schedule.
LoopNest lower_for_features(const Schedule& schedule);

}  // namespace kiln::core::lower
