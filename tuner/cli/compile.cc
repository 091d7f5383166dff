// `kiln compile MODEL.onnx --target T -o MODULE`: imports an ONNX model, optimizes its graph,
// builds each kernel task with its best tuning record (else the template's default) and writes
// one module file.

#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <spdlog/fmt/fmt.h>
#include <nlohmann/json.hpp>

#include "compiler_core/db/tuning_log.h"
#include "compiler_core/frontend/onnx/onnx_import.h"
#include "compiler_core/graph/module.h"
#include "compiler_core/graph/passes.h"
#include "compiler_core/support/log.h"
#include "compiler_core/target/target.h"
#include "tuner/cli/commands.h"
#include "tuner/cli/flags.h"
#include "tuner/cli/tuning_log_flag.h"

namespace kiln::tuner {
namespace {

/// A resolved target without its long -mattr list, for a line of text (JSON keeps it whole).
std::string brief_target(const std::string& target) {
  return target.substr(0, target.find(" -mattr="));
}

FlagSet make_flags() {
  FlagSet flags(
      "compile",
      "Compiles an ONNX model (opsets 11 to 17) into one module file for a target: code for the "
      "target, the weights and the graph. `kiln run --module MODULE` runs it, as does "
      "libkiln_runtime through its C API.",
      "The graph is optimized first: constants folded, BatchNormalization folded into the "
      "convolution before it, bias, activation (Relu, Clip(0,6), HardSwish, Sigmoid) and residual "
      "Add fused into the convolution or dense kernel that produces their input. Each fused "
      "kernel is a workload (`kiln tune --workload` tunes it; identical ones share a task) and is "
      "built with its best record in the tuning log for the target, else with its template's "
      "default config; the summary says how many tasks had tuned records. Every other operator "
      "runs on the host's implementation.\nShapes are those of the model's inputs, fixed at "
      "compile time.\nWith --json: one object with model, target, module, bytes, tasks, "
      "tuned_tasks, kernel_nodes, host_nodes, arena_bytes and the tasks' workloads.\nExit codes: "
      "0 written, 2 bad flags, target, or a model kiln cannot read or does not support (the "
      "message names the node, its operator and what is missing), 1 a failed build or write.");
  flags.add_positional("model", "MODEL.onnx", "the ONNX model file", true);
  flags.add_required_string("target", "T",
                            "the target: llvm (this machine), or llvm -mtriple=aarch64-linux-gnu "
                            "-mcpu=cortex-a72 for another");
  flags.add_required_string("output", "MODULE", "the module file to write", 'o');
  add_db_flag(flags, "the tuning log to take each task's best config from; read only");
  add_threads_flag(flags,
                   "the thread count the module will run with: each task's config is the best "
                   "measured with it");
  flags.add_bool("json", "print one JSON object on stdout instead of a summary");
  return flags;
}

}  // namespace

int compile_command(const std::vector<std::string>& args) {
  FlagSet flags = make_flags();
  if (Status parsed = flags.parse(args); !parsed.is_ok()) {
    std::cerr << "error: " << parsed.message() << "\n";
    return 2;
  }
  if (flags.help_requested()) {
    std::cout << flags.help();
    return 0;
  }
  if (check_flags_only()) {
    std::cout << "kiln compile: the command line is valid\n";
    return 0;
  }
  const std::string model_path = flags.get_positional("model");
  const std::string out_path = flags.get_string("output");
  Result<core::Target> target = core::parse_target(flags.get_string("target"));
  if (!target.is_ok()) {
    std::cerr << "error: " << target.status().message() << "\n";
    return 2;
  }

  Result<graph::Graph> imported = frontend::import_onnx_file(model_path);
  if (!imported.is_ok()) {
    std::cerr << "error: " << imported.status().message() << "\n";
    return imported.status().is_user_error() ? 2 : 1;
  }
  graph::Graph graph = std::move(imported).value();
  const size_t imported_nodes = graph.nodes.size();
  if (Status optimized = graph::optimize_graph(graph); !optimized.is_ok()) {
    std::cerr << "error: " << optimized.message() << "\n";
    return optimized.is_user_error() ? 2 : 1;
  }

  // A tuning log that does not exist is read as an empty one: every task gets its default.
  std::optional<core::TuningLog> log;
  Result<core::TuningLog> opened = open_db_for_reading(flags);
  if (opened.is_ok()) {
    log.emplace(std::move(opened).value());
  } else if (opened.status().code() != StatusCode::kNotFound) {
    std::cerr << "error: " << opened.status().message() << "\n";
    return opened.status().is_user_error() ? 2 : 1;
  }

  Result<graph::CompileSummary> compiled = graph::compile_module(
      graph, *target, log ? &*log : nullptr, out_path, int(flags.get_int("threads")));
  if (!compiled.is_ok()) {
    std::cerr << "error: " << compiled.status().message() << "\n";
    return compiled.status().is_user_error() ? 2 : 1;
  }
  const graph::CompileSummary& s = *compiled;
  int64_t tuned = 0;
  nlohmann::json tasks = nlohmann::json::array();
  for (const graph::CompiledTask& t : s.tasks) {
    tuned += t.tuned ? 1 : 0;
    tasks.push_back({{"workload", t.task.workload},
                     {"count", t.task.count},
                     {"source", t.tuned ? "record" : "default"},
                     {"config", nlohmann::json::parse(t.config)}});
  }
  if (flags.get_bool("json")) {
    nlohmann::json out = {{"model", model_path},
                          {"target", s.target},
                          {"module", out_path},
                          {"bytes", s.bytes},
                          {"imported_nodes", imported_nodes},
                          {"kernel_nodes", s.kernel_nodes},
                          {"host_nodes", s.host_nodes},
                          {"tasks", int64_t(s.tasks.size())},
                          {"tuned_tasks", tuned},
                          {"arena_bytes", s.memory.arena_bytes},
                          {"unshared_bytes", s.memory.unshared_bytes},
                          {"task_list", tasks}};
    std::cout << out.dump() << "\n";
    return 0;
  }
  std::cout << fmt::format(
      "compiled {} for {}\n  {} nodes imported -> {} kernels and {} host operators\n  {} tasks, "
      "{} with tuned records, {} with default configs\n  intermediate memory {:.1f} MiB "
      "(without reuse {:.1f} MiB)\n  wrote {} ({:.1f} MiB)\n",
      model_path, brief_target(s.target), imported_nodes, s.kernel_nodes, s.host_nodes,
      s.tasks.size(), tuned, int64_t(s.tasks.size()) - tuned,
      double(s.memory.arena_bytes) / (1 << 20), double(s.memory.unshared_bytes) / (1 << 20),
      out_path, double(s.bytes) / (1 << 20));
  return 0;
}

}  // namespace kiln::tuner
