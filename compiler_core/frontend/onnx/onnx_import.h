/// \file
/// ONNX models (opsets 11 to 17) into kiln's graph IR, through libonnx's generated protobuf
/// classes.
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
  /// Files larger than this are refused before they are read.
  int64_t max_file_bytes = int64_t{2} << 30;
};

/// Parses the ONNX model in `bytes` into a graph with every value typed: initializers become
/// constants, Constant nodes too. InvalidArgument for bytes that are not an ONNX model (a
/// truncated or malformed file), an opset outside 11..17, a node of another domain, an
/// unsupported operator or attribute (naming the node, its operator and what is missing), a
/// tensor type other than float32 and int64 at a graph input or output, and a symbolic input
/// dimension not fixed by `options`.
Result<graph::Graph> import_onnx(const std::string& bytes, const OnnxImportOptions& options = {});

/// import_onnx of the file at `path`. NotFound when it cannot be read; InvalidArgument when it
/// is larger than options.max_file_bytes, and as import_onnx.
Result<graph::Graph> import_onnx_file(const std::string& path,
                                      const OnnxImportOptions& options = {});

}  // namespace kiln::frontend
