/// \file
/// Reference implementations of every operator: plain loops, double accumulation, written for
/// obviousness, not speed. Kernels are checked against these.
#pragma once

#include <span>

#include "compiler_core/te/workload.h"

namespace kiln::core {

/// Computes `workload` on `inputs` (in Workload::input_shapes() order) into `output`
/// (Workload::output_shape()). Parallelises over the outermost output dimension with
/// `threads` threads (1 = this thread only).
void run_reference(const Workload& workload, std::span<const float* const> inputs,
                   float* output, int threads = 1);

/// Largest relative error max|a−b| / max(max|b|, tiny) over `count` elements (0 for equal).
double max_relative_error(const float* actual, const float* expected, int64_t count);

}  // namespace kiln::core
