#include "tests/model/model_runner.h"

#include <atomic>
#include <cstring>
#include <filesystem>

#include <gtest/gtest.h>
#include <unistd.h>

#include "compiler_core/graph/module.h"
#include "compiler_core/graph/passes.h"
#include "compiler_core/graph/runtime.h"
#include "compiler_core/target/target.h"

namespace kiln::model_test {

// The path users take: the graph passes, a module compiled for this host with default configs,
// loaded by the module runtime and run.
Result<std::map<std::string, graph::Tensor>> compute_outputs(
    const graph::Graph& graph, const std::map<std::string, graph::Tensor>& inputs) {
  graph::Graph optimized = graph;
  KILN_RETURN_IF_ERROR(graph::optimize_graph(optimized));
  static std::atomic<int> serial{0};
  const std::filesystem::path path = std::filesystem::path(::testing::TempDir()) /
                                     ("kiln_model_runner_" + std::to_string(::getpid()) + "_" +
                                      std::to_string(serial++) + ".kmod");
  KILN_ASSIGN_OR_RETURN(const core::Target target, core::parse_target("llvm"));
  Result<graph::CompileSummary> compiled =
      graph::compile_module(optimized, target, nullptr, path, 0);
  if (!compiled.is_ok()) return compiled.status();
  auto module = graph::ModuleRuntime::load(path);
  std::filesystem::remove(path);
  if (!module.is_ok()) return module.status();
  for (const graph::Value& input : (*module)->inputs()) {
    auto it = inputs.find(input.name);
    if (it == inputs.end()) return invalid_argument("no value for input '" + input.name + "'");
    KILN_RETURN_IF_ERROR((*module)->set_input(input.name, it->second.info, it->second.data()));
  }
  KILN_RETURN_IF_ERROR((*module)->run());
  std::map<std::string, graph::Tensor> outputs;
  for (const graph::Value& output : (*module)->outputs()) {
    KILN_ASSIGN_OR_RETURN(graph::TensorView view, (*module)->output(output.name));
    graph::Tensor t = graph::Tensor::zeros(view.info);
    if (view.info.num_bytes() > 0) std::memcpy(t.data(), view.data, size_t(view.info.num_bytes()));
    outputs[output.name] = std::move(t);
  }
  return outputs;
}

}  // namespace kiln::model_test
