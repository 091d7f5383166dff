/// \file
/// The host CPU as LLVM sees it.
#pragma once

#include "compiler_core/support/status.h"
#include "compiler_core/target/target.h"

namespace kiln::core {

/// Fills in a host target (`llvm` without -mtriple): the process triple, a CPU model LLVM
/// knows (LLVM 16 calls Zen 5 "generic"; then the nearest known model with the same vector
/// ISA), the detected features unless -mattr overrides them, and vector_lanes from the
/// features. Non-host targets come back with vector_lanes set from their triple and -mattr.
Result<Target> resolve_host_target(const Target& target);

/// The CPU model name the OS reports (/proc/cpuinfo "model name"), or "unknown".
std::string host_cpu_model_name();

}  // namespace kiln::core
