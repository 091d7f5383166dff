/// \file
/// From a kiln.v1.MeasureTask to compiler_core calls and back to a kiln.v1.MeasureResult: the
/// one place where proto types meet the compiler, so that compiler_core never sees them.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "compiler_core/measure.h"
#include "compiler_core/support/status.h"

namespace kiln::v1 {
class MeasureTask;
class MeasureResult;
}  // namespace kiln::v1

namespace kiln::agent {

/// Checks that `task` names a workload kiln knows, a target string that parses, and a config
/// of the workload's space on that target: InvalidArgument (OutOfRange for an index past the
/// space) naming what is wrong. The tracker refuses such tasks before queuing them.
Status validate_task(const v1::MeasureTask& task);

/// validate_task with the config spaces of the (workload, target) pairs it has seen kept, so
/// that a tracker checks a submission of thousands of tasks quickly. Thread-safe.
class TaskValidator {
 public:
  explicit TaskValidator(size_t max_spaces = 256) : max_spaces_(max_spaces) {}
  Status check(const v1::MeasureTask& task);

 private:
  size_t max_spaces_;
  std::mutex mutex_;
  /// The space of each (workload, target) string pair, or why the pair is invalid.
  std::map<std::pair<std::string, std::string>, std::shared_ptr<const Result<core::ConfigSpace>>>
      spaces_;
};

/// Builds `task`'s kernel on this host, checks it against the reference and times it. A target
/// of this board's architecture is built for this CPU (the task's -mcpu and -mattr over what
/// the board detects). The result names the board (device_model, emulated) and the resolved
/// target it built. INVALID_CONFIG for a task that does not validate or a target of another
/// architecture, COMPILE_ERROR, WRONG_ANSWER or OK with every sample. `harnesses` caches the
/// inputs and reference outputs per workload across tasks.
v1::MeasureResult run_task(const v1::MeasureTask& task,
                           std::map<std::string, std::unique_ptr<core::MeasureHarness>>& harnesses);

}  // namespace kiln::agent
