// Fuzz target: ONNX model files through frontend::import_onnx (protobuf parsing, opset and
// operator checks, constant and shape folding, type inference, Graph::verify), then the graph
// passes and task extraction that `kiln compile` and a model job of `kiln serve` run on an
// imported graph (graph::optimize_graph, graph::extract_tasks). A model imports or is refused
// with a user error; an imported graph verifies, and optimizing it gives a verified graph whose
// kernel tasks are workloads that parse.
#include <cstddef>
#include <cstdint>
#include <string>

#include "compiler_core/frontend/onnx/onnx_import.h"
#include "compiler_core/graph/graph.h"
#include "compiler_core/graph/module.h"
#include "compiler_core/graph/passes.h"
#include "compiler_core/te/workload.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kiln;
  static const bool quiet = (fuzz::quiet_logs(), true);
  (void)quiet;
  const std::string bytes(fuzz::as_text(data, size));
  // ONNX's TensorProto files (test data, `kiln run --inputs` of .pb files) through the same
  // bytes: a tensor reads or is refused with a user error.
  Result<graph::Tensor> tensor = frontend::read_onnx_tensor(bytes);
  if (!tensor.is_ok()) fuzz::check_refusal(tensor.status(), "read_onnx_tensor refuses");

  Result<graph::Graph> imported = frontend::import_onnx(bytes);
  if (!imported.is_ok()) {
    fuzz::check_refusal(imported.status(), "import_onnx refuses with a user error");
    return 0;
  }
  graph::Graph graph = std::move(imported).value();
  Status verified = graph.verify();
  fuzz::check(verified.is_ok(), "an imported graph verifies", verified.to_string());
  Status optimized = graph::optimize_graph(graph);
  if (!optimized.is_ok()) {
    fuzz::check_refusal(optimized, "optimize_graph refuses with a user error");
    return 0;
  }
  verified = graph.verify();
  fuzz::check(verified.is_ok(), "an optimized graph verifies", verified.to_string());
  for (const graph::Task& task : graph::extract_tasks(graph)) {
    Result<core::Workload> workload = core::parse_workload(task.workload);
    fuzz::check(workload.is_ok() && workload->canonical() == task.workload,
                "a task's workload is canonical", task.workload);
  }

  return 0;
}
