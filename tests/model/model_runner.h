/// \file
/// The one seam through which the model tests compute a graph's outputs, so that the same
/// tests check the path users take: the graph passes, a module compiled for this host with
/// default configs, loaded and run by the module runtime.
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
