/// \file
/// Storage flattening: multi-dimensional tensor accesses become flat buffer accesses, and each
/// Realize an Allocate of the region's largest size (row-major, indices relative to the
/// region's minimum).
#pragma once

#include <string>
#include <vector>

#include "compiler_core/ir/ir.h"
#include "compiler_core/te/workload.h"

namespace kiln::core::lower {

/// `args` and `shapes` name the function's argument tensors (dense, row-major, from 0).
/// Postcondition: no TensorLoad, TensorStore or Realize remains. Throws InternalError when a
/// region's size has no constant upper bound (a bug in bound inference).
ir::Stmt storage_flatten(const ir::Stmt& s, const std::vector<std::string>& args,
                         const std::vector<Shape>& shapes);

}  // namespace kiln::core::lower
