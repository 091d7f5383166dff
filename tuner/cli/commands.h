/// \file
/// The entry points of `kiln`'s subcommands, one per file in tuner/cli/. Each takes the
/// arguments after the command name (global flags already removed) and returns the process exit
/// code: 0 on success, 2 for bad usage or input, 1 for a failure.
#pragma once

#include <string>
#include <vector>

namespace kiln::tuner {

/// `kiln run`: builds a workload's kernel for this machine, checks it against the reference
/// implementation and times it (run.cc).
int run_command(const std::vector<std::string>& args);

}  // namespace kiln::tuner
