/// \file
/// Modules: an optimized graph compiled for one target into one file that the module runtime
/// (runtime.h) loads. The file is a zip archive of
///   module.json  the format version, target, graph (nodes, inputs, outputs), tasks (workload,
///                config and the symbols of its functions), constants and the memory plan;
///   weights.bin  the constants, each at a 64-byte aligned offset;
///   code/*.o     one ELF object per kernel function, for the target's triple.
/// Identical kernel instances (one workload) share one task and one copy of its code.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "compiler_core/db/tuning_log.h"
#include "compiler_core/graph/graph.h"
#include "compiler_core/support/status.h"
#include "compiler_core/target/target.h"

namespace kiln::graph {

/// The module format version module.json carries; the runtime refuses others.
inline constexpr int64_t kModuleFormatVersion = 1;

/// One distinct kernel workload of a graph and how many kernel nodes compute it.
struct Task {
  std::string workload;  ///< canonical workload string (epilogue included)
  int64_t count = 0;
};

/// The graph's kernel tasks, in order of first use.
std::vector<Task> extract_tasks(const Graph& graph);

/// Where each intermediate value lives in the module's arena: values whose lifetimes do not
/// overlap share bytes. Graph inputs, outputs and constants are not in the arena.
struct MemoryPlan {
  std::map<std::string, int64_t> offsets;  ///< 64-byte aligned
  int64_t arena_bytes = 0;
  int64_t unshared_bytes = 0;  ///< what the values would take without reuse
};

MemoryPlan plan_memory(const Graph& graph);

/// One task as compile_module built it.
struct CompiledTask {
  Task task;
  std::string config;  ///< the config's JSON
  bool tuned = false;  ///< the config came from a tuning record
};

struct CompileSummary {
  std::vector<CompiledTask> tasks;
  int64_t kernel_nodes = 0;
  int64_t host_nodes = 0;
  MemoryPlan memory;
  std::string target;  ///< the resolved target string
  int64_t bytes = 0;   ///< the module file's size
};

/// Compiles `graph` (after optimize_graph) for `target` into a module file at `path` (written
/// to a temporary file beside it, then renamed). Each task is built with its best record in
/// `log` for the target's key and `threads` (the thread count the module will run with; 0: any)
/// when there is one (`log` may be null), else with the template's default config. Errors: those of
/// the target, the log and code generation; Internal when the file cannot be written.
Result<CompileSummary> compile_module(const Graph& graph, const core::Target& target,
                                      const core::TuningLog* log, const std::string& path,
                                      int threads);

}  // namespace kiln::graph
