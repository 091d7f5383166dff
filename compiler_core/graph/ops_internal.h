// The operator registry behind ops.h: each ops_*.cc file adds its operators.
#pragma once

#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "compiler_core/graph/ops.h"

namespace kiln::graph::ops_internal {

struct OpDef {
  std::function<Result<std::vector<TensorInfo>>(const Node&, const InferContext&)> infer;
  std::function<Status(const Node&, int64_t opset, std::span<const TensorView> inputs,
                       std::span<const TensorView> outputs)>
      run;
};

using OpTable = std::map<std::string, OpDef>;

/// Conv, Gemm, MatMul, BatchNormalization, MaxPool, AveragePool, GlobalAveragePool (ops_nn.cc).
void add_nn_ops(OpTable& table);
/// Add, Sub, Mul, Div (broadcasting), Relu, Clip, Sigmoid, HardSigmoid, HardSwish, Tanh,
/// Softmax, Identity, Dropout (ops_elementwise.cc).
void add_elementwise_ops(OpTable& table);
/// Reshape, Flatten, Transpose, Concat, Split, Slice, Pad, Squeeze, Unsqueeze, ReduceMean,
/// Constant, Shape, Gather, Cast (ops_tensor.cc).
void add_tensor_ops(OpTable& table);

/// InvalidArgument "node 'n' (Op): <what>".
Status node_error(const Node& node, const std::string& what);

}  // namespace kiln::graph::ops_internal
