/// \file
/// ONNX models (opsets 11 to 17) into kiln's graph IR, through libonnx's generated protobuf
/// classes, and ONNX TensorProto files (the inputs and outputs of ONNX's test data) into graph
/// tensors.
///
/// Tensors: float32 and int64 are read as they are; int32 initializers and tensors are widened
/// to int64 (exporters write shapes and indices as int32 at times, and kiln computes them in
/// int64). Every other element type (float16, double, bool, int8, uint8, strings, ...) is an
/// InvalidArgument naming the tensor and its type: kiln runs float32 only, and narrowing a
/// double model to float32 would change what it computes.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "compiler_core/graph/graph.h"
#include "compiler_core/support/status.h"

namespace kiln::frontend {

struct OnnxImportOptions {
  /// Shapes for graph inputs whose dimensions are symbolic or that the caller wants fixed
  /// otherwise (batch size): input name -> shape. Inputs not named keep the model's shape; a
  /// symbolic dimension left unset is an error.
  std::map<std::string, core::Shape> input_shapes;
  /// Graph inputs bound to a value: each becomes a constant of the graph rather than an
  /// input (its dtype and shape are the tensor's). For operands that kiln needs constant (a
  /// Reshape's shape, a Slice's starts, a Clip's bounds) that a model takes as inputs.
  std::map<std::string, graph::Tensor> constant_inputs;
  /// Files larger than this are refused before they are read.
  int64_t max_file_bytes = int64_t{2} << 30;
  /// Folds the shape computations that exporters emit while typing the graph: a Shape node
  /// becomes the constant its input's static shape gives, and a node whose inputs are all
  /// constants and whose outputs are all int64 (Gather, Concat, Cast, Unsqueeze of shapes)
  /// is run once and replaced by its outputs, so that the operands kiln needs constant are.
  /// Default: on.
  bool fold_shape_computations = true;
};

/// Parses the ONNX model in `bytes` into a graph with every value typed: initializers become
/// constants, Constant nodes too. InvalidArgument for bytes that are not an ONNX model (a
/// truncated or malformed file), an opset outside 11..17, a node of another domain, an
/// unsupported operator or attribute (naming the node, its operator and what is missing), a
/// tensor type other than float32 and int64 at a graph input or output, and a symbolic input
/// dimension not fixed by `options`. Nodes without a name (or with a name used before) get a
/// unique one made of their operator and index ("Relu_3").
Result<graph::Graph> import_onnx(const std::string& bytes, const OnnxImportOptions& options = {});

/// import_onnx of the file at `path`. NotFound when it cannot be read; InvalidArgument when it
/// is larger than options.max_file_bytes, and as import_onnx.
Result<graph::Graph> import_onnx_file(const std::string& path,
                                      const OnnxImportOptions& options = {});

/// The tensor serialized (as an ONNX TensorProto) in `bytes`, the format of ONNX's test data
/// (`input_0.pb`). InvalidArgument for bytes that are not a TensorProto, an element type other
/// than float32, int64 and int32 (naming the type), data stored in an external file, and an
/// element count that the shape does not give.
Result<graph::Tensor> read_onnx_tensor(const std::string& bytes);

/// read_onnx_tensor of the file at `path`. NotFound when it cannot be read; InvalidArgument
/// when it is larger than `max_file_bytes`.
Result<graph::Tensor> read_onnx_tensor_file(const std::string& path,
                                            int64_t max_file_bytes = int64_t{2} << 30);

/// The name stored in the serialized TensorProto `bytes` ("" when it has none).
/// InvalidArgument for bytes that are not a TensorProto.
Result<std::string> onnx_tensor_name(const std::string& bytes);

}  // namespace kiln::frontend
