/// \file
/// Scratch buffers of generated kernels: the local buffers too large for the stack, such as a
/// stage computed at a loop (a row of tiles) inside a parallel loop. A kernel asks for one on
/// every iteration of the loop that holds it; each thread keeps the blocks it was given and hands
/// them out again, so that a kernel in its steady state allocates nothing (as TVM's workspace
/// pool). With aligned_alloc and free there, glibc may give a freed block this large back to
/// the OS (mmap's threshold, heap trimming), to fault it in again on the next iteration: a
/// Winograd step with 448 KiB buffers on two threads ran at 155.9 GFLOP/s, and at 240-342 here.
#pragma once

#include <cstdint>

extern "C" {
/// A buffer of at least `bytes` bytes aligned to 64, for the calling thread until it passes it
/// to kiln_workspace_free. Aborts when memory runs out.
void* kiln_workspace_alloc(int64_t bytes);
/// Returns a buffer from kiln_workspace_alloc on the same thread.
void kiln_workspace_free(void* buffer);
}

namespace kiln::core {

/// Bytes the calling thread keeps for later kiln_workspace_alloc calls (tests).
int64_t workspace_cached_bytes();

}  // namespace kiln::core
