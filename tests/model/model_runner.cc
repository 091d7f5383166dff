#include "tests/model/model_runner.h"

#include "compiler_core/graph/interpret.h"

namespace kiln::model_test {

Result<std::map<std::string, graph::Tensor>> compute_outputs(
    const graph::Graph& graph, const std::map<std::string, graph::Tensor>& inputs) {
  return graph::interpret(graph, inputs);
}

}  // namespace kiln::model_test
