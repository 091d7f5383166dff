/// \file
/// Loop partitioning for tails: peels the last iteration of a loop when its other iterations
/// simplify further without it (tiles that a split factor does not divide, padding of packed
/// layouts). With static shapes this leaves a steady loop whose inner extents are constants,
/// and one tail copy with its own constant extents.
#pragma once

#include "compiler_core/ir/ir.h"

namespace kiln::core::lower {

/// Precondition: `s` is simplified. Loops with non-constant bounds, vectorized and unrolled
/// loops are left as they are (their bodies are still partitioned).
ir::Stmt partition_loops(const ir::Stmt& s);

}  // namespace kiln::core::lower
