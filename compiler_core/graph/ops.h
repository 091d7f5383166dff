/// \file
/// The host implementations of the graph's operators: for each supported ONNX operator, a type
/// inference that also validates its attributes, and a run function on float32 (and, for the
/// shape computations exporters emit, int64) tensors.
///
/// The graph compiler replaces the heavy operators (Conv, Gemm, MatMul) with compiled kernels
/// where a workload expresses them; every other node, and every Conv, Gemm or MatMul that no
/// workload expresses, runs through run_node. Constant folding runs nodes whose inputs are all
/// constants through the same code.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "compiler_core/graph/graph.h"
#include "compiler_core/support/status.h"

namespace kiln::graph {

/// A tensor that a node reads or writes: its type and its elements (row-major, of
/// info.dtype). `data` is nullptr for an absent optional input.
struct TensorView {
  TensorInfo info;
  void* data = nullptr;

  float* f32() const { return static_cast<float*>(data); }
  int64_t* i64() const { return static_cast<int64_t*>(data); }
};

/// What type inference knows of a node's inputs, one entry per node input (nullptr for an
/// absent optional input): its type, and its value when it is a constant.
struct InferContext {
  int64_t opset = 13;
  std::vector<const TensorInfo*> inputs;
  std::vector<const Tensor*> constants;
};

/// True when kiln runs `op` (an ONNX operator type of the default domain).
bool is_supported_op(const std::string& op);

/// The supported operator types, sorted.
std::vector<std::string> supported_ops();

/// The types of `node`'s outputs. Operands that decide a shape (Reshape's shape, Slice's
/// starts/ends/axes/steps, Split's split, Pad's pads, Squeeze/Unsqueeze's axes from opset 13,
/// Clip's min and max, ...) must be constants. InvalidArgument, naming the node, its operator
/// and what is missing, for an unsupported operator, an unsupported attribute or attribute
/// value, a missing required input, an operand that must be constant and is not, and inputs
/// whose ranks, dtypes or shapes the operator does not accept.
Result<std::vector<TensorInfo>> infer_node(const Node& node, const InferContext& context);

/// Runs `node` on this host. `inputs` are its inputs (absent ones with data nullptr), `outputs`
/// its outputs, allocated with the types infer_node gave; inputs and outputs do not overlap.
/// InvalidArgument when the types differ from what infer_node accepts (run checks nothing
/// else: call infer_node first).
Status run_node(const Node& node, int64_t opset, std::span<const TensorView> inputs,
                std::span<const TensorView> outputs);

}  // namespace kiln::graph
