/// \file
/// Vectorization: a Vectorized loop of constant extent n becomes one statement over n lanes,
/// its variable replaced by ramp(min, 1, n). Indices affine in the variable stay ramps (dense
/// loads and stores), invariant values stay scalars until combined with a vector (broadcast).
#pragma once

#include "compiler_core/ir/ir.h"

namespace kiln::core::lower {

/// Postcondition: no Vectorized For remains. A loop that cannot be vectorized (non-constant
/// extent, a loop or a condition on the variable inside, a store to an address that does not
/// depend on the variable) becomes a Serial loop, which is always correct.
ir::Stmt vectorize_loops(const ir::Stmt& s);

}  // namespace kiln::core::lower
