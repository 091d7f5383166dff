/// \file
/// Unrolling: every Unrolled loop with a constant extent becomes a block of copies of its
/// body, one per iteration, with the loop variable replaced by its value.
#pragma once

#include "compiler_core/ir/ir.h"

namespace kiln::core::lower {

/// Options of unroll_loops.
struct UnrollOptions {
  /// Loops longer than this stay loops (serial), to bound code size. Default 64.
  int64_t max_extent = 64;
};

/// Postcondition: no Unrolled For remains (the ones it cannot unroll become Serial).
ir::Stmt unroll_loops(const ir::Stmt& s, const UnrollOptions& options = {});

}  // namespace kiln::core::lower
