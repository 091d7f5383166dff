#include "compiler_core/graph/interpret.h"

#include <vector>

#include "compiler_core/graph/ops.h"

namespace kiln::graph {
namespace {

// Checks the caller's inputs against the graph's.
Status check_inputs(const Graph& graph, const std::map<std::string, Tensor>& inputs) {
  for (const Value& input : graph.inputs) {
    auto it = inputs.find(input.name);
    if (it == inputs.end()) {
      return invalid_argument("graph input '" + input.name + "' (" + to_string(input.info) +
                              ") is not given");
    }
    const Tensor& t = it->second;
    if (t.info != input.info) {
      return invalid_argument("graph input '" + input.name + "' is given as " + to_string(t.info) +
                              ", the graph takes " + to_string(input.info));
    }
    const size_t have = t.info.dtype == DType::kFloat32 ? t.f32.size() : t.i64.size();
    if (int64_t(have) != t.num_elements()) {
      return invalid_argument("graph input '" + input.name + "' holds " + std::to_string(have) +
                              " elements, its shape needs " + std::to_string(t.num_elements()));
    }
  }
  for (const auto& [name, tensor] : inputs) {
    bool known = false;
    for (const Value& input : graph.inputs) known = known || input.name == name;
    if (!known) return invalid_argument("'" + name + "' is not an input of the graph");
  }
  return Status::ok();
}

}  // namespace

Result<std::map<std::string, Tensor>> interpret(const Graph& graph,
                                                const std::map<std::string, Tensor>& inputs) {
  KILN_RETURN_IF_ERROR(check_inputs(graph, inputs));
  // Readers left per computed value; graph outputs hold one reader until the end.
  std::map<std::string, int64_t> readers;
  for (const Node& node : graph.nodes) {
    for (const std::string& input : node.inputs) ++readers[input];
  }
  for (const Value& output : graph.outputs) ++readers[output.name];

  std::map<std::string, Tensor> values;  // node outputs computed so far
  auto lookup = [&](const std::string& name) -> const Tensor* {
    if (auto it = values.find(name); it != values.end()) return &it->second;
    if (auto it = inputs.find(name); it != inputs.end()) return &it->second;
    return graph.constant(name);
  };
  for (const Node& node : graph.nodes) {
    std::vector<TensorView> in_views;
    for (const std::string& name : node.inputs) {
      TensorView view;
      if (!name.empty()) {
        const Tensor* t = lookup(name);
        if (t == nullptr) {
          return invalid_argument(node.describe() + " reads '" + name +
                                  "', which nothing computed before it");
        }
        view.info = t->info;
        view.data = const_cast<void*>(t->data());
      }
      in_views.push_back(view);
    }
    std::vector<Tensor> results;
    results.reserve(node.outputs.size());
    for (const std::string& name : node.outputs) {
      const TensorInfo* info = name.empty() ? nullptr : graph.info(name);
      if (!name.empty() && info == nullptr) {
        return invalid_argument(node.describe() + ": output '" + name + "' has no type");
      }
      results.push_back(info == nullptr ? Tensor() : Tensor::zeros(*info));
    }
    std::vector<TensorView> out_views;
    for (size_t i = 0; i < results.size(); ++i) {
      TensorView view;
      if (!node.outputs[i].empty()) view = {results[i].info, results[i].data()};
      out_views.push_back(view);
    }
    KILN_RETURN_IF_ERROR(run_node(node, graph.opset, in_views, out_views));
    for (size_t i = 0; i < results.size(); ++i) {
      if (!node.outputs[i].empty()) values[node.outputs[i]] = std::move(results[i]);
    }
    for (const std::string& name : node.inputs) {
      if (!name.empty() && --readers[name] == 0) values.erase(name);
    }
  }

  std::map<std::string, Tensor> outputs;
  for (const Value& output : graph.outputs) {
    const Tensor* t = lookup(output.name);
    if (t == nullptr) {
      return invalid_argument("graph output '" + output.name + "' is never computed");
    }
    outputs[output.name] = *t;
  }
  return outputs;
}

}  // namespace kiln::graph
