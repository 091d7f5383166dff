#include "compiler_core/frontend/onnx/onnx_import.h"

namespace kiln::frontend {

Result<graph::Graph> import_onnx(const std::string& bytes, const OnnxImportOptions& options) {
  return invalid_argument("the ONNX importer is being written");
}

Result<graph::Graph> import_onnx_file(const std::string& path, const OnnxImportOptions& options) {
  return invalid_argument("the ONNX importer is being written");
}

}  // namespace kiln::frontend
