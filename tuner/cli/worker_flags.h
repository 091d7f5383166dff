/// \file
/// The flags of the measurement worker process, which `kiln agent` and `kiln serve` (for its
/// local jobs) run kernels in: --worker COMMAND, --worker-memory-mb and --task-timeout-s.
#pragma once

#include <string>
#include <vector>

#include "compiler_core/support/status.h"
#include "device_agent/worker.h"
#include "tuner/cli/flags.h"

namespace kiln::tuner {

struct WorkerSetup {
  std::vector<std::string> command;  ///< starts one worker (execv: the program as a path)
  agent::WorkerLimits limits;
};

/// Declares the worker flags; `worker_help` is --worker's help.
void add_worker_flags(FlagSet& flags, const std::string& worker_help);

/// The worker's command and limits from those flags. InvalidArgument for an empty --worker or
/// a program that is not in PATH.
Result<WorkerSetup> worker_from_flags(const FlagSet& flags);

}  // namespace kiln::tuner
