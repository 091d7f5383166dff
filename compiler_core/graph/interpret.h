/// \file
/// The graph interpreter: runs every node of a graph on this host with run_node, in order. The
/// reference that compiled modules are checked against, and the way to run a graph that has not
/// been compiled.
#pragma once

#include <map>
#include <string>

#include "compiler_core/graph/graph.h"
#include "compiler_core/support/status.h"

namespace kiln::graph {

/// Evaluates `graph` on `inputs` (graph input name -> tensor) and returns its outputs (graph
/// output name -> tensor). Every graph input must be given, with the dtype and shape the graph
/// says; nothing else may be. InvalidArgument naming the input for a missing, unknown or
/// mistyped one, and run_node's error for a node that fails. Intermediate values are freed
/// after their last reader.
Result<std::map<std::string, Tensor>> interpret(const Graph& graph,
                                                const std::map<std::string, Tensor>& inputs);

}  // namespace kiln::graph
