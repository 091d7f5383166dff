/// \file
/// The measurement worker: a child process of the agent (`kiln agent-worker`) that builds,
/// checks and times one task at a time, so that a kernel that crashes or hangs costs one
/// result, never the agent. It runs only kernels it compiles itself from the task's workload
/// and config (DESIGN.md): no code crosses the network or the pipe.
///
/// Protocol on the worker's stdin and stdout: frames of a 4-byte little-endian length and a
/// serialized kiln.v1.MeasureTask (in) or kiln.v1.MeasureResult (out), one result per task.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "compiler_core/support/status.h"

namespace kiln::v1 {
class MeasureTask;
class MeasureResult;
}  // namespace kiln::v1

namespace kiln::agent {

/// False in a build with AddressSanitizer or ThreadSanitizer: their shadow memory reserves
/// terabytes of address space when the program starts, so no RLIMIT_AS a worker could live
/// with leaves room for it; such builds run workers without the memory limit.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kAddressSpaceLimitApplies = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr bool kAddressSpaceLimitApplies = false;
#else
inline constexpr bool kAddressSpaceLimitApplies = true;
#endif
#else
inline constexpr bool kAddressSpaceLimitApplies = true;
#endif

struct WorkerLimits {
  /// Wall time for one task when its options give none (timeout_s).
  std::chrono::milliseconds default_timeout{120000};
  /// Address-space limit of the worker process in bytes (RLIMIT_AS); 0: none.
  int64_t memory_bytes = 0;
};

/// The agent's end of one worker process; restarts it after a crash or a timeout.
class Worker {
 public:
  /// `command` is the program and arguments that start a worker (kiln agent-worker). Spawns
  /// it lazily, on the first task.
  Worker(std::vector<std::string> command, WorkerLimits limits);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  /// Measures `task`: the worker's result, or RUNTIME_ERROR when the worker died (a crashing
  /// kernel; the message names the signal), TIMEOUT when it ran past the task's timeout (then
  /// it is killed). Either way the next task gets a fresh worker.
  v1::MeasureResult measure(const v1::MeasureTask& task);

 private:
  Status spawn();
  void kill_worker();

  std::vector<std::string> command_;
  WorkerLimits limits_;
  pid_t pid_ = -1;
  int to_worker_ = -1, from_worker_ = -1;
};

/// The worker process's main loop on stdin/stdout: returns 0 at end of input. `before_each`,
/// when set, sees every task before it runs (tests use it to make kernels crash or hang).
int worker_main(const std::function<void(const v1::MeasureTask&)>& before_each = {});

}  // namespace kiln::agent
