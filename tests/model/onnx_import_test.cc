// The ONNX importer on small models built here with libonnx's generated classes: what it
// accepts, and the errors it gives for what it does not (STYLE.md §6: a message substring per
// user-facing error).
#include "compiler_core/frontend/onnx/onnx_import.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "compiler_core/graph/interpret.h"
#include "onnx/onnx_pb.h"
#include "tests/model/model_builder.h"

namespace kiln::frontend {
namespace {

using model_test::add_int_attr;
using model_test::add_ints_attr;
using model_test::add_string_attr;
using model_test::ModelBuilder;
using ::testing::HasSubstr;

constexpr int32_t kFloat = onnx::TensorProto::FLOAT;
constexpr int32_t kInt64 = onnx::TensorProto::INT64;

// X[1,2,4,4] -> GlobalAveragePool -> Y[1,2,1,1].
ModelBuilder pool_model(int64_t opset = 13) {
  ModelBuilder m(opset);
  m.input("x", kFloat, {1, 2, 4, 4}).output("y", kFloat, {1, 2, 1, 1});
  m.node("GlobalAveragePool", {"x"}, {"y"}, "pool");
  return m;
}

// A temporary file removed at the end of the test.
class TempFile {
 public:
  explicit TempFile(const std::string& bytes) {
    path_ = (std::filesystem::temp_directory_path() /
             ("kiln_onnx_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++)))
                .string();
    std::ofstream(path_, std::ios::binary) << bytes;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::string path_;
};

TEST(OnnxImport, ImportsATypedGraph) {
  auto g = import_onnx(pool_model().bytes());
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  EXPECT_EQ(g->opset, 13);
  ASSERT_EQ(g->inputs.size(), 1u);
  EXPECT_EQ(g->inputs[0].info, (graph::TensorInfo{graph::DType::kFloat32, {1, 2, 4, 4}}));
  ASSERT_EQ(g->nodes.size(), 1u);
  EXPECT_EQ(g->nodes[0].name, "pool");
  ASSERT_EQ(g->outputs.size(), 1u);
  EXPECT_EQ(g->outputs[0].info.shape, (core::Shape{1, 2, 1, 1}));
  EXPECT_TRUE(g->verify().is_ok());
}

TEST(OnnxImport, MalformedBytesAreInvalidArgument) {
  auto g = import_onnx(std::string("\xff\xff\xff\xff garbage", 12));
  ASSERT_FALSE(g.is_ok());
  EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(g.status().message(), HasSubstr("not an ONNX model"));

  // Bytes that happen to parse as a protobuf but hold no graph.
  auto empty = import_onnx("");
  ASSERT_FALSE(empty.is_ok());
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(empty.status().message(), HasSubstr("no graph"));
}

TEST(OnnxImport, TruncatedFileIsInvalidArgument) {
  ModelBuilder m;
  m.input("x", kFloat, {1, 64}).output("y", kFloat, {1, 64});
  m.initializer("w", {64, 64}, std::vector<float>(64 * 64, 0.5f));
  m.node("MatMul", {"x", "w"}, {"y"}, "mm");
  const std::string bytes = m.bytes();
  ASSERT_TRUE(import_onnx(bytes).is_ok());
  for (size_t cut : {bytes.size() / 2, bytes.size() - 1, size_t{3}}) {
    TempFile file(bytes.substr(0, cut));
    auto g = import_onnx_file(file.path());
    ASSERT_FALSE(g.is_ok()) << "cut at " << cut;
    EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(g.status().message(), HasSubstr(file.path()));
  }
}

TEST(OnnxImport, FileLimitIsCheckedBeforeReading) {
  TempFile file(pool_model().bytes());
  OnnxImportOptions options;
  options.max_file_bytes = 16;
  auto g = import_onnx_file(file.path(), options);
  ASSERT_FALSE(g.is_ok());
  EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(g.status().message(), HasSubstr("more than the limit of 16"));
  EXPECT_TRUE(import_onnx_file(file.path()).is_ok());
}

TEST(OnnxImport, MissingFileIsNotFound) {
  auto g = import_onnx_file("/nonexistent/kiln/model.onnx");
  ASSERT_FALSE(g.is_ok());
  EXPECT_EQ(g.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(g.status().message(), HasSubstr("/nonexistent/kiln/model.onnx"));
}

TEST(OnnxImport, UnsupportedOperatorNamesNodeAndOperator) {
  ModelBuilder m;
  m.input("x", kFloat, {4}).output("y", kFloat, {4});
  m.node("Erf", {"x"}, {"y"}, "my_erf");
  auto g = import_onnx(m.bytes());
  ASSERT_FALSE(g.is_ok());
  EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(g.status().message(), HasSubstr("node 'my_erf' (Erf)"));
  EXPECT_THAT(g.status().message(), HasSubstr("'Erf' is not supported"));
}

TEST(OnnxImport, UnsupportedAttributeValueNamesNodeAndValue) {
  ModelBuilder m;
  m.input("x", kFloat, {1, 1, 4, 4}).output("y", kFloat, {1, 1, 4, 4});
  m.initializer("w", {1, 1, 3, 3}, std::vector<float>(9, 1.0f));
  add_string_attr(m.node("Conv", {"x", "w"}, {"y"}, "conv"), "auto_pad", "SAME_MIDDLE");
  auto g = import_onnx(m.bytes());
  ASSERT_FALSE(g.is_ok());
  EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(g.status().message(), HasSubstr("node 'conv' (Conv)"));
  EXPECT_THAT(g.status().message(), HasSubstr("'SAME_MIDDLE'"));

  ModelBuilder bn(15);
  bn.input("x", kFloat, {1, 2, 3}).output("y", kFloat, {1, 2, 3});
  for (const char* p : {"s", "b", "mean", "var"}) bn.initializer(p, {2}, {1.0f, 1.0f});
  add_int_attr(bn.node("BatchNormalization", {"x", "s", "b", "mean", "var"}, {"y"}, "bn"),
               "training_mode", 1);
  auto g2 = import_onnx(bn.bytes());
  ASSERT_FALSE(g2.is_ok());
  EXPECT_THAT(g2.status().message(), HasSubstr("node 'bn' (BatchNormalization)"));
  EXPECT_THAT(g2.status().message(), HasSubstr("training_mode 1 is not supported"));
}

TEST(OnnxImport, MaxPoolIndicesAreRefusedByName) {
  ModelBuilder m(12);
  m.input("x", kFloat, {1, 1, 4, 4}).output("y", kFloat, {1, 1, 2, 2});
  m.output("idx", kInt64, {1, 1, 2, 2});
  auto& n = m.node("MaxPool", {"x"}, {"y", "idx"}, "pool");
  add_ints_attr(n, "kernel_shape", {2, 2});
  add_ints_attr(n, "strides", {2, 2});
  auto g = import_onnx(m.bytes());
  ASSERT_FALSE(g.is_ok());
  EXPECT_THAT(g.status().message(), HasSubstr("node 'pool' (MaxPool)"));
  EXPECT_THAT(g.status().message(), HasSubstr("'idx', Indices"));
}

TEST(OnnxImport, OpsetOutsideElevenToSeventeenIsRefused) {
  for (int64_t opset : {10, 18}) {
    auto g = import_onnx(pool_model(opset).bytes());
    ASSERT_FALSE(g.is_ok()) << opset;
    EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(g.status().message(), HasSubstr("opset " + std::to_string(opset)));
    EXPECT_THAT(g.status().message(), HasSubstr("11..17"));
  }
  for (int64_t opset : {11, 17}) EXPECT_TRUE(import_onnx(pool_model(opset).bytes()).is_ok());

  ModelBuilder none = pool_model();
  none.proto().clear_opset_import();
  auto g = import_onnx(none.bytes());
  ASSERT_FALSE(g.is_ok());
  EXPECT_THAT(g.status().message(), HasSubstr("no opset of the default ONNX domain"));
}

TEST(OnnxImport, NodeOfAnotherDomainIsRefused) {
  ModelBuilder m;
  m.input("x", kFloat, {4}).output("y", kFloat, {4});
  m.node("FusedGelu", {"x"}, {"y"}, "gelu").set_domain("com.microsoft");
  auto g = import_onnx(m.bytes());
  ASSERT_FALSE(g.is_ok());
  EXPECT_THAT(g.status().message(), HasSubstr("node 'gelu' (FusedGelu)"));
  EXPECT_THAT(g.status().message(), HasSubstr("'com.microsoft'"));
}

TEST(OnnxImport, SymbolicDimensionsNeedInputShapes) {
  ModelBuilder m;
  m.input("x", kFloat, {-1, 2, 4, 4}).output("y", kFloat, {-1, 2, 1, 1});
  m.node("GlobalAveragePool", {"x"}, {"y"}, "pool");
  auto g = import_onnx(m.bytes());
  ASSERT_FALSE(g.is_ok());
  EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(g.status().message(), HasSubstr("graph input 'x'"));
  EXPECT_THAT(g.status().message(), HasSubstr("symbolic dimension 'N' at axis 0"));

  OnnxImportOptions options;
  options.input_shapes["x"] = {3, 2, 4, 4};
  auto fixed = import_onnx(m.bytes(), options);
  ASSERT_TRUE(fixed.is_ok()) << fixed.status().to_string();
  EXPECT_EQ(fixed->outputs[0].info.shape, (core::Shape{3, 2, 1, 1}));

  options.input_shapes["x"] = {3, 2, 4};
  auto wrong_rank = import_onnx(m.bytes(), options);
  ASSERT_FALSE(wrong_rank.is_ok());
  EXPECT_THAT(wrong_rank.status().message(), HasSubstr("rank 3"));

  OnnxImportOptions unknown;
  unknown.input_shapes["nope"] = {1};
  auto g2 = import_onnx(pool_model().bytes(), unknown);
  ASSERT_FALSE(g2.is_ok());
  EXPECT_THAT(g2.status().message(), HasSubstr("'nope'"));
}

TEST(OnnxImport, UnsupportedInputTypeNamesInputAndType) {
  ModelBuilder m;
  m.input("pixels", onnx::TensorProto::UINT8, {1, 2, 4, 4}).output("y", kFloat, {1, 2, 1, 1});
  m.node("GlobalAveragePool", {"pixels"}, {"y"});
  auto g = import_onnx(m.bytes());
  ASSERT_FALSE(g.is_ok());
  EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(g.status().message(), HasSubstr("graph input 'pixels'"));
  EXPECT_THAT(g.status().message(), HasSubstr("element type uint8"));
}

TEST(OnnxImport, InitializersBecomeConstantsNotInputs) {
  ModelBuilder m;
  m.input("x", kFloat, {2, 3}).input("w", kFloat, {3, 2}).output("y", kFloat, {2, 2});
  // w is also listed as a graph input (as IR version 3 models do): it is a constant.
  onnx::TensorProto& w = m.initializer("w", {3, 2}, {});
  const float values[6] = {1, 2, 3, 4, 5, 6};
  w.set_raw_data(std::string(reinterpret_cast<const char*>(values), sizeof(values)));
  m.node("MatMul", {"x", "w"}, {"y"}, "mm");
  onnx::TensorProto* ints = m.proto().mutable_graph()->add_initializer();
  ints->set_name("i32");
  ints->set_data_type(onnx::TensorProto::INT32);
  ints->add_dims(2);
  ints->add_int32_data(7);
  ints->add_int32_data(-8);
  auto g = import_onnx(m.bytes());
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  ASSERT_EQ(g->inputs.size(), 1u);
  EXPECT_EQ(g->inputs[0].name, "x");
  ASSERT_NE(g->constant("w"), nullptr);
  EXPECT_EQ(g->constant("w")->f32, std::vector<float>(values, values + 6));
  ASSERT_NE(g->constant("i32"), nullptr);
  EXPECT_EQ(g->constant("i32")->info.dtype, graph::DType::kInt64);
  EXPECT_EQ(g->constant("i32")->i64, (std::vector<int64_t>{7, -8}));

  auto out = graph::interpret(*g, {{"x", graph::Tensor::from_floats({2, 3}, {1, 0, 0, 0, 1, 1})}});
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(out->at("y").f32, (std::vector<float>{1, 2, 8, 10}));
}

TEST(OnnxImport, UnsupportedInitializerTypeNamesTensor) {
  ModelBuilder m = pool_model();
  onnx::TensorProto* t = m.proto().mutable_graph()->add_initializer();
  t->set_name("weights64");
  t->set_data_type(onnx::TensorProto::DOUBLE);
  t->add_dims(1);
  t->add_double_data(1.0);
  auto g = import_onnx(m.bytes());
  ASSERT_FALSE(g.is_ok());
  EXPECT_THAT(g.status().message(), HasSubstr("initializer 'weights64'"));
  EXPECT_THAT(g.status().message(), HasSubstr("element type double"));

  ModelBuilder huge = pool_model();
  onnx::TensorProto* h = huge.proto().mutable_graph()->add_initializer();
  h->set_name("huge");
  h->set_data_type(kFloat);
  h->add_dims(int64_t{1} << 32);
  h->add_dims(int64_t{1} << 32);  // 2^64 elements: a count that wraps to 0
  auto g3 = import_onnx(huge.bytes());
  ASSERT_FALSE(g3.is_ok());
  EXPECT_THAT(g3.status().message(), HasSubstr("initializer 'huge' has the shape"));

  ModelBuilder short_data = pool_model();
  short_data.initializer("w", {2, 3}, {1, 2, 3});
  auto g2 = import_onnx(short_data.bytes());
  ASSERT_FALSE(g2.is_ok());
  EXPECT_THAT(g2.status().message(), HasSubstr("initializer 'w' has 3 elements"));
}

TEST(OnnxImport, ConstantNodesAndAttributesAreCopied) {
  ModelBuilder m;
  m.input("x", kFloat, {1, 2, 4, 4}).output("y", kFloat, {1, 2, 4, 4});
  auto& k = m.node("Constant", {}, {"kernel"});
  auto* value = k.add_attribute();
  value->set_name("value");
  value->set_type(onnx::AttributeProto::TENSOR);
  value->mutable_t()->set_data_type(kFloat);
  for (int64_t d : {2, 1, 1, 1}) value->mutable_t()->add_dims(d);
  value->mutable_t()->add_float_data(2.0f);
  value->mutable_t()->add_float_data(-1.0f);
  auto& conv = m.node("Conv", {"x", "kernel"}, {"y"});
  add_int_attr(conv, "group", 2);
  add_ints_attr(conv, "strides", {1, 1});
  auto g = import_onnx(m.bytes());
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  ASSERT_EQ(g->nodes.size(), 1u);  // the Constant is a constant
  EXPECT_EQ(g->nodes[0].name, "Conv_1");
  EXPECT_EQ(g->nodes[0].attr_int("group", 0), 2);
  EXPECT_EQ(g->nodes[0].attr_ints("strides", {}), (std::vector<int64_t>{1, 1}));
  ASSERT_NE(g->constant("kernel"), nullptr);
  EXPECT_EQ(g->constant("kernel")->f32, (std::vector<float>{2.0f, -1.0f}));
}

TEST(OnnxImport, UnnamedAndDuplicateNodesGetUniqueNames) {
  ModelBuilder m;
  m.input("x", kFloat, {1, 2, 4, 4}).output("y", kFloat, {1, 2, 1, 1});
  m.node("GlobalAveragePool", {"x"}, {"a"});
  m.node("GlobalAveragePool", {"a"}, {"b"}, "GlobalAveragePool_2");
  m.node("GlobalAveragePool", {"b"}, {"y"});
  auto g = import_onnx(m.bytes());
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  ASSERT_EQ(g->nodes.size(), 3u);
  EXPECT_EQ(g->nodes[0].name, "GlobalAveragePool_0");
  EXPECT_EQ(g->nodes[1].name, "GlobalAveragePool_2");
  EXPECT_EQ(g->nodes[2].name, "GlobalAveragePool_2_1");
}

TEST(OnnxImport, ShapeComputationsAreFolded) {
  // y = Reshape(x, Concat(Gather(Shape(x), 0), [-1])): the exporters' flatten.
  ModelBuilder m;
  m.input("x", kFloat, {2, 3, 4}).output("y", kFloat, {2, 12});
  m.node("Shape", {"x"}, {"shape"});
  auto& zero = m.node("Constant", {}, {"zero"});
  auto* a = zero.add_attribute();
  a->set_name("value_ints");
  a->set_type(onnx::AttributeProto::INTS);
  a->add_ints(0);
  m.node("Gather", {"shape", "zero"}, {"batch"});
  auto& minus = m.node("Constant", {}, {"minus_one"});
  auto* b = minus.add_attribute();
  b->set_name("value_ints");
  b->set_type(onnx::AttributeProto::INTS);
  b->add_ints(-1);
  add_int_attr(m.node("Concat", {"batch", "minus_one"}, {"target"}), "axis", 0);
  m.node("Reshape", {"x", "target"}, {"y"});
  auto g = import_onnx(m.bytes());
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  ASSERT_EQ(g->nodes.size(), 1u);
  EXPECT_EQ(g->nodes[0].op, "Reshape");
  ASSERT_NE(g->constant("target"), nullptr);
  EXPECT_EQ(g->constant("target")->i64, (std::vector<int64_t>{2, -1}));
  EXPECT_EQ(g->outputs[0].info.shape, (core::Shape{2, 12}));
}

TEST(OnnxImport, ConstantInputsBecomeConstants) {
  ModelBuilder m;
  m.input("x", kFloat, {2, 6}).input("shape", kInt64, {2}).output("y", kFloat, {3, 4});
  m.node("Reshape", {"x", "shape"}, {"y"}, "reshape");
  auto g = import_onnx(m.bytes());
  ASSERT_FALSE(g.is_ok());  // kiln needs a Reshape's shape constant
  EXPECT_THAT(g.status().message(), HasSubstr("node 'reshape' (Reshape)"));

  OnnxImportOptions options;
  options.constant_inputs["shape"] = graph::Tensor::from_ints({2}, {3, 4});
  auto bound = import_onnx(m.bytes(), options);
  ASSERT_TRUE(bound.is_ok()) << bound.status().to_string();
  ASSERT_EQ(bound->inputs.size(), 1u);
  EXPECT_EQ(bound->outputs[0].info.shape, (core::Shape{3, 4}));
}

// Every prefix of a model, and models with bytes changed at random, import or fail with
// InvalidArgument: never a crash, never another code.
TEST(OnnxImport, DamagedBytesAreInvalidArgumentNeverACrash) {
  ModelBuilder m;
  m.input("x", kFloat, {1, 2, 6, 6}).output("y", kFloat, {1, 18});
  m.initializer("w", {2, 2, 3, 3}, std::vector<float>(36, 0.25f));
  m.initializer("b", {2}, {1.0f, -1.0f});
  auto& conv = m.node("Conv", {"x", "w", "b"}, {"c"}, "conv");
  add_ints_attr(conv, "pads", {1, 1, 1, 1});
  auto& pool = m.node("MaxPool", {"c"}, {"p"}, "pool");
  add_ints_attr(pool, "kernel_shape", {2, 2});
  add_ints_attr(pool, "strides", {2, 2});
  m.node("Flatten", {"p"}, {"y"}, "flatten");
  const std::string bytes = m.bytes();
  ASSERT_TRUE(import_onnx(bytes).is_ok()) << import_onnx(bytes).status().to_string();
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    auto g = import_onnx(bytes.substr(0, cut));
    if (!g.is_ok()) {
      EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument) << g.status().to_string();
    }
  }
  const uint32_t seed = 20261205;
  SCOPED_TRACE("seed " + std::to_string(seed));
  uint32_t state = seed;
  auto next = [&state] {
    state = state * 1664525u + 1013904223u;
    return state >> 8;
  };
  for (int trial = 0; trial < 3000; ++trial) {
    std::string damaged = bytes;
    for (int k = 0, n = 1 + int(next() % 3); k < n; ++k) {
      damaged[next() % damaged.size()] = char(next() & 0xff);
    }
    auto g = import_onnx(damaged);
    if (!g.is_ok()) {
      EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument)
          << "trial " << trial << ": " << g.status().to_string();
    }
  }
}

// A small CNN as exporters write it: Conv, BatchNormalization, Relu, MaxPool, a flatten made of
// Shape, Gather, Unsqueeze, Concat and Reshape, Gemm, Softmax.
ModelBuilder small_cnn(bool shape_chain) {
  ModelBuilder m(13);
  m.input("image", kFloat, {2, 3, 8, 8}).output("probs", kFloat, {2, 5});
  std::vector<float> w(4 * 3 * 3 * 3);
  for (size_t i = 0; i < w.size(); ++i) w[i] = float(int(i % 7) - 3) * 0.05f;
  m.initializer("conv_w", {4, 3, 3, 3}, w);
  m.initializer("conv_b", {4}, {0.1f, -0.2f, 0.3f, 0.0f});
  m.initializer("bn_scale", {4}, {1.0f, 0.5f, 2.0f, 1.5f});
  m.initializer("bn_bias", {4}, {0.0f, 0.1f, -0.1f, 0.2f});
  m.initializer("bn_mean", {4}, {0.05f, -0.05f, 0.0f, 0.1f});
  m.initializer("bn_var", {4}, {1.0f, 0.5f, 2.0f, 0.25f});
  std::vector<float> fc(5 * 64);
  for (size_t i = 0; i < fc.size(); ++i) fc[i] = float(int(i % 11) - 5) * 0.02f;
  m.initializer("fc_w", {5, 64}, fc);
  m.initializer("fc_b", {5}, {0.0f, 0.1f, 0.2f, 0.3f, 0.4f});
  auto& conv = m.node("Conv", {"image", "conv_w", "conv_b"}, {"c"});
  add_ints_attr(conv, "pads", {1, 1, 1, 1});
  m.node("BatchNormalization", {"c", "bn_scale", "bn_bias", "bn_mean", "bn_var"}, {"bn"});
  m.node("Relu", {"bn"}, {"r"});
  auto& pool = m.node("MaxPool", {"r"}, {"p"});
  add_ints_attr(pool, "kernel_shape", {2, 2});
  add_ints_attr(pool, "strides", {2, 2});
  if (shape_chain) {
    m.node("Shape", {"p"}, {"p_shape"});
    onnx::TensorProto* zero = m.proto().mutable_graph()->add_initializer();
    zero->set_name("zero");
    zero->set_data_type(kInt64);
    zero->add_int64_data(0);
    m.node("Gather", {"p_shape", "zero"}, {"batch"});
    onnx::TensorProto* axes = m.proto().mutable_graph()->add_initializer();
    axes->set_name("axes");
    axes->set_data_type(kInt64);
    axes->add_dims(1);
    axes->add_int64_data(0);
    m.node("Unsqueeze", {"batch", "axes"}, {"batch_1d"});
    onnx::TensorProto* rest = m.proto().mutable_graph()->add_initializer();
    rest->set_name("minus_one");
    rest->set_data_type(kInt64);
    rest->add_dims(1);
    rest->add_int64_data(-1);
    add_int_attr(m.node("Concat", {"batch_1d", "minus_one"}, {"target"}), "axis", 0);
    m.node("Reshape", {"p", "target"}, {"flat"});
  } else {
    m.node("Flatten", {"p"}, {"flat"});
  }
  auto& gemm = m.node("Gemm", {"flat", "fc_w", "fc_b"}, {"logits"});
  add_int_attr(gemm, "transB", 1);
  add_int_attr(m.node("Softmax", {"logits"}, {"probs"}), "axis", -1);
  return m;
}

TEST(OnnxImport, SmallCnnAsExportersWriteItRuns) {
  auto g = import_onnx(small_cnn(/*shape_chain=*/true).bytes());
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  std::vector<std::string> ops;
  for (const graph::Node& node : g->nodes) ops.push_back(node.op);
  EXPECT_EQ(ops, (std::vector<std::string>{"Conv", "BatchNormalization", "Relu", "MaxPool",
                                           "Reshape", "Gemm", "Softmax"}));
  ASSERT_NE(g->constant("target"), nullptr);
  EXPECT_EQ(g->constant("target")->i64, (std::vector<int64_t>{2, -1}));
  auto plain = import_onnx(small_cnn(/*shape_chain=*/false).bytes());
  ASSERT_TRUE(plain.is_ok()) << plain.status().to_string();

  std::vector<float> image(2 * 3 * 8 * 8);
  for (size_t i = 0; i < image.size(); ++i) image[i] = float(int(i * 37 % 19) - 9) * 0.1f;
  const std::map<std::string, graph::Tensor> inputs{
      {"image", graph::Tensor::from_floats({2, 3, 8, 8}, image)}};
  auto out = graph::interpret(*g, inputs);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  auto want = graph::interpret(*plain, inputs);
  ASSERT_TRUE(want.is_ok()) << want.status().to_string();
  const graph::Tensor& probs = out->at("probs");
  ASSERT_EQ(probs.info.shape, (core::Shape{2, 5}));
  EXPECT_EQ(probs.f32, want->at("probs").f32);
  for (int64_t row = 0; row < 2; ++row) {
    float sum = 0;
    for (int64_t j = 0; j < 5; ++j) sum += probs.f32[size_t(row * 5 + j)];
    EXPECT_NEAR(sum, 1.0f, 1e-5f);
  }
}

TEST(OnnxTensor, ReadsTensorProtos) {
  onnx::TensorProto t;
  t.set_name("input_0");
  t.set_data_type(kInt64);
  t.add_dims(3);
  const int64_t values[3] = {1, -2, 3};
  t.set_raw_data(std::string(reinterpret_cast<const char*>(values), sizeof(values)));
  auto read = read_onnx_tensor(t.SerializeAsString());
  ASSERT_TRUE(read.is_ok()) << read.status().to_string();
  EXPECT_EQ(read->i64, (std::vector<int64_t>{1, -2, 3}));
  auto name = onnx_tensor_name(t.SerializeAsString());
  ASSERT_TRUE(name.is_ok());
  EXPECT_EQ(*name, "input_0");

  t.set_data_type(onnx::TensorProto::BOOL);
  auto bad = read_onnx_tensor(t.SerializeAsString());
  ASSERT_FALSE(bad.is_ok());
  EXPECT_THAT(bad.status().message(),
              HasSubstr("tensor 'input_0' has unsupported element type bool"));

  t.set_data_type(kInt64);
  t.set_raw_data(std::string(5, '\0'));
  auto short_raw = read_onnx_tensor(t.SerializeAsString());
  ASSERT_FALSE(short_raw.is_ok());
  EXPECT_THAT(short_raw.status().message(), HasSubstr("5 bytes of raw data"));

  EXPECT_FALSE(read_onnx_tensor("\xff\xff\xff").is_ok());
  EXPECT_EQ(read_onnx_tensor_file("/nonexistent/input_0.pb").status().code(),
            StatusCode::kNotFound);
}

TEST(Interpret, ChecksInputs) {
  auto g = import_onnx(pool_model().bytes());
  ASSERT_TRUE(g.is_ok());
  auto missing = graph::interpret(*g, {});
  ASSERT_FALSE(missing.is_ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("graph input 'x'"));
  auto wrong = graph::interpret(*g, {{"x", graph::Tensor::from_floats({2}, {1, 2})}});
  ASSERT_FALSE(wrong.is_ok());
  EXPECT_THAT(wrong.status().message(), HasSubstr("float32[2]"));
  auto extra =
      graph::interpret(*g, {{"x", graph::Tensor::zeros({graph::DType::kFloat32, {1, 2, 4, 4}})},
                            {"z", graph::Tensor::from_floats({1}, {1})}});
  ASSERT_FALSE(extra.is_ok());
  EXPECT_THAT(extra.status().message(), HasSubstr("'z' is not an input"));
  std::vector<float> x(32);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i);
  auto out = graph::interpret(*g, {{"x", graph::Tensor::from_floats({1, 2, 4, 4}, x)}});
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(out->at("y").f32, (std::vector<float>{7.5f, 23.5f}));
}

}  // namespace
}  // namespace kiln::frontend
