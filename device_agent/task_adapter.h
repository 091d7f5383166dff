/// \file
/// From a kiln.v1.MeasureTask to compiler_core calls and back to a kiln.v1.MeasureResult: the
/// one place where proto types meet the compiler, so that compiler_core never sees them.
#pragma once

#include <map>
#include <memory>
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

/// Builds `task`'s kernel on this host, checks it against the reference and times it.
/// INVALID_CONFIG for a task that does not validate or a target that is not this host,
/// COMPILE_ERROR, WRONG_ANSWER or OK with every sample. `harnesses` caches the inputs and
/// reference outputs per workload across tasks.
v1::MeasureResult run_task(const v1::MeasureTask& task,
                           std::map<std::string, std::unique_ptr<core::MeasureHarness>>& harnesses);

}  // namespace kiln::agent
