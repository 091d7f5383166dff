/// \file
/// The one seam through which the model tests compute a graph's outputs, so that the same
/// tests check whichever path runs models: the graph interpreter today, the compiled module
/// later.
#pragma once

#include <map>
#include <string>

#include "compiler_core/graph/graph.h"
#include "compiler_core/support/status.h"

namespace kiln::model_test {

/// The outputs of `graph` (graph output name -> tensor) on `inputs` (graph input name ->
/// tensor). The failure of whatever runs the graph, as it reports it.
Result<std::map<std::string, graph::Tensor>> compute_outputs(
    const graph::Graph& graph, const std::map<std::string, graph::Tensor>& inputs);

}  // namespace kiln::model_test
