#include "compiler_core/graph/ops.h"

#include "compiler_core/graph/ops_internal.h"

namespace kiln::graph {
namespace {

const ops_internal::OpTable& op_table() {
  static const ops_internal::OpTable table = [] {
    ops_internal::OpTable t;
    ops_internal::add_nn_ops(t);
    ops_internal::add_elementwise_ops(t);
    ops_internal::add_tensor_ops(t);
    return t;
  }();
  return table;
}

}  // namespace

namespace ops_internal {
Status node_error(const Node& node, const std::string& what) {
  return invalid_argument(node.describe() + ": " + what);
}
}  // namespace ops_internal

bool is_supported_op(const std::string& op) { return op_table().count(op) > 0; }

std::vector<std::string> supported_ops() {
  std::vector<std::string> names;
  for (const auto& [name, def] : op_table()) names.push_back(name);
  return names;
}

Result<std::vector<TensorInfo>> infer_node(const Node& node, const InferContext& context) {
  auto it = op_table().find(node.op);
  if (it == op_table().end()) {
    return ops_internal::node_error(node, "operator '" + node.op + "' is not supported");
  }
  KILN_ASSIGN_OR_RETURN(std::vector<TensorInfo> outputs, it->second.infer(node, context));
  // Output shapes come from the model's attributes and constants: a damaged or hostile model
  // can ask for any size, and what follows (memory plans, kernels) multiplies it out.
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (bounded_num_elements(outputs[i].shape)) continue;
    return ops_internal::node_error(node, "output " + std::to_string(i) + " would be " +
                                              to_string(outputs[i]) + ", more than " +
                                              std::to_string(kMaxTensorElements) + " elements");
  }
  return outputs;
}

Status run_node(const Node& node, int64_t opset, std::span<const TensorView> inputs,
                std::span<const TensorView> outputs) {
  auto it = op_table().find(node.op);
  if (it == op_table().end()) {
    return ops_internal::node_error(node, "operator '" + node.op + "' is not supported");
  }
  return it->second.run(node, opset, inputs, outputs);
}

}  // namespace kiln::graph
