/// \file
/// The thread pool behind parallel loops. Generated code calls kiln_parallel_for, which runs
/// `body(i, env)` for every i in [0, n) on the pool's threads (the caller takes part) and
/// returns when all are done. Nested calls from inside a body run serially on that thread.
/// Where an OpenMP runtime in the process binds threads, the workers are bound as its own are
/// (thread_pool.cc: place_like_openmp).
#pragma once

#include <cstdint>

extern "C" {
/// The symbol generated kernels call. Returns 0.
int32_t kiln_parallel_for(int64_t n, void (*body)(int64_t index, void* env), void* env);
}

namespace kiln::core {

/// Sets how many threads parallel loops use (>= 1; the caller counts as one). Not to be
/// called while a kernel runs.
void set_num_threads(int threads);

/// The current number of threads parallel loops use (1 by default).
int num_threads();

}  // namespace kiln::core
