// kiln_c_api_module_writer PATH: compiles a small graph for this host into the module file PATH,
// for the C API tests (c_api_test.cc), which then load it through libkiln_runtime.so alone.
//
// The graph, with x float32[2,8], W[i][j] = (i - j) / 8, B[j] = j / 4 - 0.5 and
// V[j][k] = (j + 1) * (k - 1) / 4:
//   y = Relu(MatMul(x, W) + B)    float32[2,4]: a dense kernel with its bias and Relu fused
//   z = MatMul(y, V)              float32[2,3]: a second dense kernel, reading y
// Outputs y and z. (Kernels only: the host operator table is still empty.)

#include <cstdio>
#include <string>
#include <vector>

#include "compiler_core/graph/graph.h"
#include "compiler_core/graph/module.h"
#include "compiler_core/graph/passes.h"
#include "compiler_core/target/target.h"

namespace {

using kiln::graph::DType;
using kiln::graph::Graph;
using kiln::graph::Node;
using kiln::graph::Tensor;
using kiln::graph::TensorInfo;

Graph make_graph() {
  Graph graph;
  TensorInfo x{DType::kFloat32, {2, 8}};
  TensorInfo y{DType::kFloat32, {2, 4}};
  TensorInfo z{DType::kFloat32, {2, 3}};
  std::vector<float> w(8 * 4), b(4), v(4 * 3);
  for (int i = 0; i < 8; ++i) {
    for (int j = 0; j < 4; ++j) w[size_t(i * 4 + j)] = float(i - j) / 8;
  }
  for (int j = 0; j < 4; ++j) b[size_t(j)] = float(j) / 4 - 0.5f;
  for (int j = 0; j < 4; ++j) {
    for (int k = 0; k < 3; ++k) v[size_t(j * 3 + k)] = float((j + 1) * (k - 1)) / 4;
  }
  graph.inputs = {{"x", x}};
  graph.outputs = {{"y", y}, {"z", z}};
  graph.constants["W"] = Tensor::from_floats({8, 4}, w);
  graph.constants["B"] = Tensor::from_floats({4}, b);
  graph.constants["V"] = Tensor::from_floats({4, 3}, v);
  graph.nodes = {
      Node{"matmul", "MatMul", {"x", "W"}, {"mm"}, {}},
      Node{"add", "Add", {"mm", "B"}, {"biased"}, {}},
      Node{"relu", "Relu", {"biased"}, {"y"}, {}},
      Node{"matmul2", "MatMul", {"y", "V"}, {"z"}, {}},
  };
  graph.infos = {{"x", x},
                 {"W", {DType::kFloat32, {8, 4}}},
                 {"B", {DType::kFloat32, {4}}},
                 {"V", {DType::kFloat32, {4, 3}}},
                 {"mm", y},
                 {"biased", y},
                 {"y", y},
                 {"z", z}};
  return graph;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: kiln_c_api_module_writer PATH\n");
    return 2;
  }
  Graph graph = make_graph();
  if (kiln::Status s = graph.verify(); !s.is_ok()) {
    std::fprintf(stderr, "error: %s\n", s.message().c_str());
    return 1;
  }
  if (kiln::Status s = kiln::graph::optimize_graph(graph); !s.is_ok()) {
    std::fprintf(stderr, "error: %s\n", s.message().c_str());
    return 1;
  }
  auto target = kiln::core::parse_target("llvm");
  if (!target.is_ok()) {
    std::fprintf(stderr, "error: %s\n", target.status().message().c_str());
    return 1;
  }
  auto compiled = kiln::graph::compile_module(graph, *target, nullptr, argv[1], 0);
  if (!compiled.is_ok()) {
    std::fprintf(stderr, "error: %s\n", compiled.status().message().c_str());
    return 1;
  }
  std::printf("wrote %s: %lld kernel nodes, %lld host nodes\n", argv[1],
              static_cast<long long>(compiled->kernel_nodes),
              static_cast<long long>(compiled->host_nodes));
  return 0;
}
