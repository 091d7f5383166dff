// The graph compiler and the module runtime on small models built here: what the passes make
// of a convolution block, that a module computes what the interpreter computes, the runtime's
// refusals, and `kiln compile` taking a tuned record from the tuning log.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "compiler_core/frontend/onnx/onnx_import.h"
#include "compiler_core/graph/interpret.h"
#include "compiler_core/graph/module.h"
#include "compiler_core/graph/npz.h"
#include "compiler_core/graph/passes.h"
#include "compiler_core/graph/runtime.h"
#include "tests/model/model_builder.h"
#include "tests/support/process.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using model_test::add_int_attr;
using model_test::add_ints_attr;
using model_test::ModelBuilder;
using ::testing::HasSubstr;

constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

std::vector<float> random_values(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// A residual block as exporters write it: Conv -> BatchNormalization -> Relu -> Conv (bias) ->
// Add(residual) -> Relu, then MaxPool; 8 channels at 10x10.
std::string residual_block_model() {
  ModelBuilder m(13);
  m.input("x", kFloat, {1, 8, 10, 10}).output("y", kFloat, {1, 8, 5, 5});
  m.initializer("w1", {8, 8, 3, 3}, random_values(8 * 8 * 9, 1));
  m.initializer("w2", {8, 8, 3, 3}, random_values(8 * 8 * 9, 2));
  m.initializer("b2", {8}, random_values(8, 3));
  m.initializer("scale", {8}, random_values(8, 4));
  m.initializer("beta", {8}, random_values(8, 5));
  m.initializer("mean", {8}, random_values(8, 6));
  std::vector<float> var = random_values(8, 7);
  for (float& v : var) v = std::fabs(v) + 0.5f;
  m.initializer("var", {8}, var);
  auto conv = [&](const std::vector<std::string>& inputs, const std::string& out,
                  const std::string& name) {
    onnx::NodeProto& n = m.node("Conv", inputs, {out}, name);
    add_ints_attr(n, "pads", {1, 1, 1, 1});
    add_ints_attr(n, "kernel_shape", {3, 3});
  };
  conv({"x", "w1"}, "c1", "conv1");
  m.node("BatchNormalization", {"c1", "scale", "beta", "mean", "var"}, {"bn1"}, "bn1");
  m.node("Relu", {"bn1"}, {"r1"}, "relu1");
  conv({"r1", "w2", "b2"}, "c2", "conv2");
  m.node("Add", {"c2", "x"}, {"sum"}, "add");
  m.node("Relu", {"sum"}, {"r2"}, "relu2");
  auto& pool = m.node("MaxPool", {"r2"}, {"y"}, "pool");
  add_ints_attr(pool, "kernel_shape", {2, 2});
  add_ints_attr(pool, "strides", {2, 2});
  return m.bytes();
}

graph::Tensor random_input(const graph::TensorInfo& info, uint64_t seed) {
  return graph::Tensor::from_floats(info.shape, random_values(size_t(info.num_elements()), seed));
}

fs::path temp_path(const std::string& name) { return fs::path(::testing::TempDir()) / name; }

TEST(GraphPasses, ResidualBlockBecomesTwoFusedKernelsAndAPool) {
  auto imported = frontend::import_onnx(residual_block_model());
  ASSERT_TRUE(imported.is_ok()) << imported.status().message();
  graph::Graph g = *imported;
  ASSERT_TRUE(graph::optimize_graph(g).is_ok());
  std::vector<std::string> ops;
  for (const graph::Node& n : g.nodes) ops.push_back(n.op);
  EXPECT_THAT(ops, ::testing::ElementsAre(graph::kKernelOp, graph::kKernelOp, "MaxPool"));
  // The BatchNormalization folded into conv1's weights and bias, Relu fused; conv2 takes its
  // bias, the residual and the Relu.
  EXPECT_EQ(graph::kernel_workload(g.nodes[0]),
            "conv2d:N=1,C=8,H=10,W=10,K=8,R=3,S=3,stride=1,pad=1,bias=1,act=relu");
  const std::vector<graph::Task> tasks = graph::extract_tasks(g);
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_THAT(tasks[1].workload, HasSubstr("residual=1"));
  EXPECT_THAT(tasks[1].workload, HasSubstr("act=relu"));
  EXPECT_EQ(g.nodes[1].inputs.size(), 4u);  // input, weights, bias, residual
  EXPECT_EQ(g.nodes[1].inputs[3], "x");
}

TEST(GraphPasses, IdenticalKernelsShareOneTask) {
  ModelBuilder m(13);
  m.input("x", kFloat, {1, 4, 6, 6}).output("y", kFloat, {1, 4, 6, 6});
  m.initializer("w1", {4, 4, 1, 1}, random_values(16, 1));
  m.initializer("w2", {4, 4, 1, 1}, random_values(16, 2));
  m.node("Conv", {"x", "w1"}, {"a"});
  m.node("Conv", {"a", "w2"}, {"y"});
  auto g = frontend::import_onnx(m.bytes());
  ASSERT_TRUE(g.is_ok()) << g.status().message();
  ASSERT_TRUE(graph::optimize_graph(*g).is_ok());
  const std::vector<graph::Task> tasks = graph::extract_tasks(*g);
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].count, 2);
}

// A convolution as converters from NHWC frameworks write it: Transposes around it. The layout
// pass runs it in NHWC and drops both; the module still computes what the graph says.
TEST(GraphPasses, ConvolutionBetweenTransposesRunsInNhwc) {
  for (const bool depthwise : {false, true}) {
    ModelBuilder m(13);
    const int64_t k = depthwise ? 6 : 5;
    m.input("x", kFloat, {1, 7, 9, 6}).output("y", kFloat, {1, 7, 9, k});
    m.initializer("w", {k, depthwise ? 1 : 6, 3, 3},
                  random_values(size_t(k * (depthwise ? 1 : 6) * 9), 1));
    m.initializer("b", {k}, random_values(size_t(k), 2));
    add_ints_attr(m.node("Transpose", {"x"}, {"xt"}), "perm", {0, 3, 1, 2});
    onnx::NodeProto& conv = m.node("Conv", {"xt", "w", "b"}, {"c"}, "conv");
    add_ints_attr(conv, "pads", {1, 1, 1, 1});
    if (depthwise) add_int_attr(conv, "group", 6);
    m.node("Relu", {"c"}, {"r"});
    add_ints_attr(m.node("Transpose", {"r"}, {"y"}), "perm", {0, 2, 3, 1});
    auto imported = frontend::import_onnx(m.bytes());
    ASSERT_TRUE(imported.is_ok()) << imported.status().message();
    graph::Graph g = *imported;
    ASSERT_TRUE(graph::optimize_graph(g).is_ok());
    ASSERT_EQ(g.nodes.size(), 1u);
    EXPECT_THAT(graph::kernel_workload(g.nodes[0]), HasSubstr("layout=NHWC"));
    EXPECT_EQ(g.nodes[0].inputs[0], "x");

    const fs::path path = temp_path("kiln_nhwc.kmod");
    auto summary = graph::compile_module(g, *core::parse_target("llvm"), nullptr, path.string(), 0);
    ASSERT_TRUE(summary.is_ok()) << summary.status().message();
    auto module = graph::ModuleRuntime::load(path.string());
    ASSERT_TRUE(module.is_ok()) << module.status().message();
    const graph::Tensor x = random_input(imported->inputs[0].info, 5);
    auto want = graph::interpret(*imported, {{"x", x}});
    ASSERT_TRUE(want.is_ok()) << want.status().message();
    ASSERT_TRUE((*module)->set_input("x", x.info, x.data()).is_ok());
    ASSERT_TRUE((*module)->run().is_ok());
    auto y = (*module)->output("y");
    ASSERT_TRUE(y.is_ok());
    for (int64_t i = 0; i < y->info.num_elements(); ++i) {
      ASSERT_NEAR(y->f32()[i], want->at("y").f32[size_t(i)], 1e-4) << "element " << i;
    }
    fs::remove(path);
  }
}

TEST(MemoryPlan, ValuesThatDieAreReused) {
  // A chain of eight Relus over 1 MiB: each value dies after the next node, so the arena holds
  // two buffers, not seven.
  ModelBuilder m(13);
  m.input("x", kFloat, {1, 256, 32, 32}).output("v8", kFloat, {1, 256, 32, 32});
  std::string prev = "x";
  for (int i = 1; i <= 8; ++i) {
    m.node("Relu", {prev}, {"v" + std::to_string(i)});
    prev = "v" + std::to_string(i);
  }
  auto g = frontend::import_onnx(m.bytes());
  ASSERT_TRUE(g.is_ok()) << g.status().message();
  const graph::MemoryPlan plan = graph::plan_memory(*g);
  EXPECT_EQ(plan.unshared_bytes, 7 * 256 * 32 * 32 * 4);
  EXPECT_EQ(plan.arena_bytes, 2 * 256 * 32 * 32 * 4);
}

class ModuleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto imported = frontend::import_onnx(residual_block_model());
    ASSERT_TRUE(imported.is_ok()) << imported.status().message();
    original_ = *imported;
    graph::Graph g = original_;
    ASSERT_TRUE(graph::optimize_graph(g).is_ok());
    path_ = temp_path("kiln_module_test.kmod");
    auto target = core::parse_target("llvm");
    ASSERT_TRUE(target.is_ok());
    auto summary = graph::compile_module(g, *target, nullptr, path_.string(), 0);
    ASSERT_TRUE(summary.is_ok()) << summary.status().message();
    EXPECT_EQ(summary->kernel_nodes, 2);
    EXPECT_EQ(summary->host_nodes, 1);
  }
  void TearDown() override { fs::remove(path_); }

  graph::Graph original_;
  fs::path path_;
};

TEST_F(ModuleTest, ComputesWhatTheInterpreterComputesOnTheUnoptimizedGraph) {
  auto module = graph::ModuleRuntime::load(path_.string());
  ASSERT_TRUE(module.is_ok()) << module.status().message();
  const graph::Tensor x = random_input(original_.inputs[0].info, 11);
  auto reference = graph::interpret(original_, {{"x", x}});
  ASSERT_TRUE(reference.is_ok()) << reference.status().message();
  for (int threads : {1, 2}) {
    (*module)->set_threads(threads);
    ASSERT_TRUE((*module)->set_input("x", x.info, x.data()).is_ok());
    ASSERT_TRUE((*module)->run().is_ok());
    auto y = (*module)->output("y");
    ASSERT_TRUE(y.is_ok());
    const graph::Tensor& want = reference->at("y");
    ASSERT_EQ(y->info, want.info);
    for (int64_t i = 0; i < want.num_elements(); ++i) {
      ASSERT_NEAR(y->f32()[i], want.f32[size_t(i)], 1e-4 * (1 + std::fabs(want.f32[size_t(i)])))
          << "element " << i << " with " << threads << " threads";
    }
  }
}

TEST_F(ModuleTest, RefusesWrongInputsBeforeRunning) {
  auto module = graph::ModuleRuntime::load(path_.string());
  ASSERT_TRUE(module.is_ok()) << module.status().message();
  EXPECT_EQ((*module)->run().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ((*module)->output("y").status().code(), StatusCode::kFailedPrecondition);
  const graph::Tensor wrong_shape = random_input({graph::DType::kFloat32, {1, 8, 10, 11}}, 1);
  Status s = (*module)->set_input("x", wrong_shape.info, wrong_shape.data());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("float32[1,8,10,10]"));
  EXPECT_THAT(s.message(), HasSubstr("float32[1,8,10,11]"));
  const graph::Tensor wrong_dtype =
      graph::Tensor::from_ints({1, 8, 10, 10}, std::vector<int64_t>(800));
  EXPECT_EQ((*module)->set_input("x", wrong_dtype.info, wrong_dtype.data()).code(),
            StatusCode::kInvalidArgument);
  const graph::Tensor x = random_input({graph::DType::kFloat32, {1, 8, 10, 10}}, 1);
  s = (*module)->set_input("image", x.info, x.data());
  EXPECT_THAT(s.message(), HasSubstr("no input 'image' (its inputs: x)"));
  EXPECT_EQ((*module)->output("z").status().code(), StatusCode::kNotFound);
}

TEST_F(ModuleTest, DamagedFilesAreRefusedNotCrashedOn) {
  std::ifstream in(path_, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(graph::ModuleRuntime::load((path_.string() + ".missing")).status().code(),
            StatusCode::kNotFound);
  for (size_t keep : {size_t(0), size_t(10), bytes.size() / 3, bytes.size() - 1}) {
    auto module = graph::ModuleRuntime::load_bytes(bytes.substr(0, keep));
    EXPECT_EQ(module.status().code(), StatusCode::kInvalidArgument) << keep << " bytes";
  }
  auto onnx_file = graph::ModuleRuntime::load_bytes(residual_block_model());
  EXPECT_THAT(onnx_file.status().message(), HasSubstr("not a valid kiln module"));
}

// `kiln compile` as users run it: a task with a record in the tuning log is built with it, the
// others with their defaults, and the summary counts them.
TEST(KilnCompile, TakesTunedRecordsFromTheLogAndSaysSo) {
  const fs::path dir = temp_path("kiln_compile_cli");
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path model = dir / "block.onnx";
  std::ofstream(model, std::ios::binary) << residual_block_model();
  const std::string db = (dir / "log.db").string();
  const std::string module = (dir / "block.kmod").string();

  auto compile = [&](const std::string& tag) {
    test::Finished f = test::run_to_end({KILN_BINARY, "compile", model.string(), "--target", "llvm",
                                         "--db", db, "-o", module, "--json"},
                                        dir, tag);
    EXPECT_EQ(f.code, 0) << f.err;
    return nlohmann::json::parse(f.out);
  };
  nlohmann::json first = compile("compile1");
  EXPECT_EQ(first["tasks"], 2);
  EXPECT_EQ(first["tuned_tasks"], 0);
  EXPECT_EQ(first["kernel_nodes"], 2);
  const std::string workload = first["task_list"][0]["workload"];

  test::Finished tuned =
      test::run_to_end({KILN_BINARY, "tune", "--workload", workload, "--target", "llvm", "--trials",
                        "4", "--tuner", "random", "--db", db},
                       dir, "tune");
  ASSERT_EQ(tuned.code, 0) << tuned.err;
  nlohmann::json second = compile("compile2");
  EXPECT_EQ(second["tuned_tasks"], 1);
  EXPECT_EQ(second["task_list"][0]["source"], "record");
  EXPECT_EQ(second["task_list"][1]["source"], "default");

  // The module runs without the log or the model; a wrong input shape is refused (exit 2).
  fs::remove(db);
  fs::remove(model);
  const std::string wrong = (dir / "wrong.npz").string();
  ASSERT_TRUE(
      graph::write_npz(wrong, {{"x", random_input({graph::DType::kFloat32, {1, 8, 9, 9}}, 3)}})
          .is_ok());
  test::Finished refused =
      test::run_to_end({KILN_BINARY, "run", "--module", module, "--inputs", wrong}, dir, "wrong");
  EXPECT_EQ(refused.code, 2);
  EXPECT_THAT(refused.err, HasSubstr("input 'x' is float32[1,8,10,10], got float32[1,8,9,9]"));
  test::Finished ran = test::run_to_end(
      {KILN_BINARY, "run", "--module", module, "--repeat", "3", "--json"}, dir, "run");
  ASSERT_EQ(ran.code, 0) << ran.err;
  nlohmann::json report = nlohmann::json::parse(ran.out);
  EXPECT_EQ(report["outputs"][0]["shape"], nlohmann::json::array({1, 8, 5, 5}));
  EXPECT_GT(report["latency_ms"]["median"].get<double>(), 0.0);
  // --profile names each node's work: the two kernels' workloads and the host's MaxPool.
  test::Finished profiled = test::run_to_end(
      {KILN_BINARY, "run", "--module", module, "--repeat", "3", "--profile", "--json"}, dir,
      "profile");
  ASSERT_EQ(profiled.code, 0) << profiled.err;
  nlohmann::json rows = nlohmann::json::parse(profiled.out)["profile"];
  std::set<std::string> what;
  int64_t nodes = 0;
  for (const nlohmann::json& row : rows) {
    what.insert(row["what"].get<std::string>());
    nodes += row["nodes"].get<int64_t>();
    EXPECT_GE(row["median_ms"].get<double>(), 0.0);
  }
  EXPECT_EQ(nodes, 3);
  EXPECT_TRUE(what.count(first["task_list"][0]["workload"].get<std::string>())) << rows.dump();
  EXPECT_TRUE(what.count(first["task_list"][1]["workload"].get<std::string>())) << rows.dump();
  EXPECT_TRUE(what.count("MaxPool")) << rows.dump();

  // An unsupported operator ends the import with exit 2, naming the node and its operator.
  ModelBuilder m(13);
  m.input("x", kFloat, {1, 4}).output("y", kFloat, {1, 4});
  m.node("Erf", {"x"}, {"y"}, "the_erf");
  std::ofstream(model, std::ios::binary) << m.bytes();
  test::Finished unsupported = test::run_to_end(
      {KILN_BINARY, "compile", model.string(), "--target", "llvm", "-o", module}, dir, "erf");
  EXPECT_EQ(unsupported.code, 2);
  EXPECT_THAT(unsupported.err, HasSubstr("node 'the_erf' (Erf)"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kiln
