/// \file
/// From a schedule to its loop nest (Halide's ScheduleFunctions, TVM's ScheduleOps).
///
/// Every stage that is not inlined becomes a nest of For loops, one per leaf loop, over
/// TensorStore statements; reductions get an init nest placed just outside their outermost
/// reduction loop. A stage computed at a consumer's loop gets the region the consumer reads
/// under that loop (bound inference, clamped to the stage's shape) and a Realize there; stages
/// computed at deeper loops of the same consumer may read it too (a sum computed at a tile of
/// an epilogue stage reads a padded input computed at a plane of it), and their reads count.
/// Splits whose factor does not divide the extent give the inner loop the extent
/// `min(factor, extent - outer·factor)` when the outer loop encloses it, else a guard.
#pragma once

#include <string>
#include <vector>

#include "compiler_core/ir/ir.h"
#include "compiler_core/schedule/schedule.h"

namespace kiln::core::lower {

struct LoopNest {
  ir::Stmt body;
  std::vector<std::string> args;  ///< placeholders in definition order, then the output
  std::vector<Shape> arg_shapes;
};

/// Builds the nest of `schedule`, whose last stage is the output. Throws ScheduleError when
/// the schedule cannot be lowered (a compute_at into a loop of a stage that is not its only
/// reader, other than stages computed deeper inside it; fusing a reduction loop with a spatial
/// one, ...).
LoopNest build_loop_nest(const Schedule& schedule);

}  // namespace kiln::core::lower
