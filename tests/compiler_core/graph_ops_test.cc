// The host operators of ops_elementwise.cc and ops_tensor.cc through infer_node and run_node:
// small cases with known results, the ONNX corner cases (broadcasting, negative axes, Slice with
// negative steps, Pad modes, Softmax before and after opset 13, both forms of Split and of
// Squeeze/Unsqueeze axes) and the int64 shape chains exporters emit.
#include "compiler_core/graph/ops.h"

#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "compiler_core/graph/graph.h"

namespace kiln::graph {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::FloatNear;
using ::testing::HasSubstr;
using ::testing::Pointwise;

using Attrs = std::map<std::string, Attr>;
using Inputs = std::vector<std::optional<Tensor>>;

Tensor floats(Shape shape, std::vector<float> values) {
  return Tensor::from_floats(std::move(shape), std::move(values));
}
Tensor ints(Shape shape, std::vector<int64_t> values) {
  return Tensor::from_ints(std::move(shape), std::move(values));
}
Tensor iota(Shape shape) {
  Tensor t = Tensor::zeros({DType::kFloat32, shape});
  for (size_t i = 0; i < t.f32.size(); ++i) t.f32[i] = float(i);
  return t;
}

// A node "n" of `op` reading in0, in1, ... ("" for an absent input), writing out0, out1, ...
Node make_node(const std::string& op, const Inputs& inputs, Attrs attrs, size_t num_outputs) {
  Node node;
  node.name = "n";
  node.op = op;
  for (size_t i = 0; i < inputs.size(); ++i) {
    node.inputs.push_back(inputs[i] ? "in" + std::to_string(i) : "");
  }
  for (size_t i = 0; i < num_outputs; ++i) node.outputs.push_back("out" + std::to_string(i));
  node.attrs = std::move(attrs);
  return node;
}

struct Options {
  int64_t opset = 13;
  size_t num_outputs = 1;
  std::set<size_t> variable;  ///< inputs that type inference does not see as constants
};

InferContext context_of(const Inputs& inputs, const Options& options) {
  InferContext context;
  context.opset = options.opset;
  for (size_t i = 0; i < inputs.size(); ++i) {
    context.inputs.push_back(inputs[i] ? &inputs[i]->info : nullptr);
    context.constants.push_back(inputs[i] && !options.variable.count(i) ? &*inputs[i] : nullptr);
  }
  return context;
}

Result<std::vector<TensorInfo>> infer(const std::string& op, const Inputs& inputs, Attrs attrs = {},
                                      Options options = {}) {
  Node node = make_node(op, inputs, std::move(attrs), options.num_outputs);
  return infer_node(node, context_of(inputs, options));
}

// Infers `op`'s output types, then runs it on `inputs`.
Result<std::vector<Tensor>> eval(const std::string& op, Inputs inputs, Attrs attrs = {},
                                 Options options = {}) {
  Node node = make_node(op, inputs, std::move(attrs), options.num_outputs);
  KILN_ASSIGN_OR_RETURN(std::vector<TensorInfo> types,
                        infer_node(node, context_of(inputs, options)));
  std::vector<Tensor> outputs;
  for (const TensorInfo& info : types) outputs.push_back(Tensor::zeros(info));
  std::vector<TensorView> in_views;
  for (auto& input : inputs) {
    in_views.push_back(input ? TensorView{input->info, input->data()} : TensorView{});
  }
  std::vector<TensorView> out_views;
  for (Tensor& output : outputs) out_views.push_back({output.info, output.data()});
  KILN_RETURN_IF_ERROR(run_node(node, options.opset, in_views, out_views));
  return outputs;
}

// The single output of a run that must succeed.
Tensor eval1(const std::string& op, Inputs inputs, Attrs attrs = {}, Options options = {}) {
  auto result = eval(op, std::move(inputs), std::move(attrs), options);
  EXPECT_TRUE(result.is_ok()) << result.status().to_string();
  if (!result.is_ok() || result->empty()) return Tensor{};
  return std::move(result->front());
}

std::string error_of(const Status& status) {
  EXPECT_FALSE(status.is_ok());
  return status.message();
}
template <typename T>
std::string error_of(const Result<T>& result) {
  EXPECT_FALSE(result.is_ok());
  return result.status().message();
}

Shape shape_of(const Tensor& t) { return t.info.shape; }

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

// ---- Elementwise -------------------------------------------------------------------------------

TEST(GraphOps, AddBroadcastsNumpyStyle) {
  Tensor out = eval1("Add", {iota({2, 3}), floats({3}, {10, 20, 30})});
  EXPECT_EQ(shape_of(out), (Shape{2, 3}));
  EXPECT_THAT(out.f32, ElementsAre(10, 21, 32, 13, 24, 35));

  // [2,1,3] + [4,1] -> [2,4,3]: both sides broadcast.
  Tensor a = iota({2, 1, 3});
  Tensor b = floats({4, 1}, {0, 100, 200, 300});
  out = eval1("Add", {a, b});
  ASSERT_EQ(shape_of(out), (Shape{2, 4, 3}));
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t j = 0; j < 4; ++j) {
      for (int64_t k = 0; k < 3; ++k) {
        EXPECT_EQ(out.f32[size_t((i * 4 + j) * 3 + k)], float(i * 3 + k + 100 * j));
      }
    }
  }
  // A scalar on the left.
  out = eval1("Sub", {floats({}, {1}), iota({3})});
  EXPECT_THAT(out.f32, ElementsAre(1, 0, -1));
}

TEST(GraphOps, ArithmeticOnInt64ShapeValues) {
  EXPECT_THAT(eval1("Mul", {ints({2}, {3, 4}), ints({}, {2})}).i64, ElementsAre(6, 8));
  EXPECT_THAT(eval1("Sub", {ints({2}, {3, 4}), ints({2}, {1, 5})}).i64, ElementsAre(2, -1));
  // Integer division truncates toward zero.
  EXPECT_THAT(eval1("Div", {ints({3}, {7, -7, 6}), ints({}, {2})}).i64, ElementsAre(3, -3, 3));
  EXPECT_THAT(error_of(eval("Div", {ints({1}, {1}), ints({1}, {0})})),
              HasSubstr("division by zero"));
  EXPECT_THAT(eval1("Div", {floats({2}, {1, -3}), floats({1}, {2})}).f32, ElementsAre(0.5, -1.5));
}

TEST(GraphOps, BinaryRejectsMismatches) {
  EXPECT_THAT(error_of(infer("Add", {iota({2, 3}), iota({2})})),
              HasSubstr("shapes [2,3] and [2] do not broadcast"));
  EXPECT_THAT(error_of(infer("Mul", {iota({2}), ints({2}, {1, 2})})),
              HasSubstr("different dtypes float32 and int64"));
  EXPECT_THAT(error_of(infer("Add", {iota({2})})), HasSubstr("input 1 ('B') is missing"));
  EXPECT_THAT(error_of(infer("Add", {iota({2})})), HasSubstr("node 'n' (Add)"));
}

TEST(GraphOps, Activations) {
  Tensor x = floats({5}, {-4, -1, 0, 1, 4});
  EXPECT_THAT(eval1("Relu", {x}).f32, ElementsAre(0, 0, 0, 1, 4));
  EXPECT_THAT(eval1("Relu", {ints({2}, {-2, 3})}).i64, ElementsAre(0, 3));
  std::vector<float> sigmoid, hard_sigmoid, hard_swish, tanh;
  for (float v : x.f32) {
    sigmoid.push_back(1 / (1 + std::exp(-v)));
    hard_sigmoid.push_back(std::max(0.0f, std::min(1.0f, 0.5f * v + 0.6f)));
    hard_swish.push_back(v * std::max(0.0f, std::min(1.0f, v / 6 + 0.5f)));
    tanh.push_back(std::tanh(v));
  }
  EXPECT_THAT(eval1("Sigmoid", {x}).f32, Pointwise(FloatNear(1e-6), sigmoid));
  EXPECT_THAT(
      eval1("HardSigmoid", {x}, {{"alpha", Attr::of_float(0.5f)}, {"beta", Attr::of_float(0.6f)}})
          .f32,
      Pointwise(FloatNear(1e-6), hard_sigmoid));
  EXPECT_THAT(eval1("HardSwish", {x}).f32, Pointwise(FloatNear(1e-6), hard_swish));
  EXPECT_THAT(eval1("Tanh", {x}).f32, Pointwise(FloatNear(1e-6), tanh));
  EXPECT_THAT(error_of(infer("Sigmoid", {ints({1}, {1})})),
              HasSubstr("input dtype int64 is not supported"));
}

TEST(GraphOps, ClipBoundsAreOptionalConstantInputs) {
  Tensor x = floats({4}, {-3, -1, 1, 3});
  EXPECT_THAT(eval1("Clip", {x, floats({}, {-2}), floats({}, {2})}).f32, ElementsAre(-2, -1, 1, 2));
  // Only the max: min is an absent input.
  EXPECT_THAT(eval1("Clip", {x, std::nullopt, floats({}, {0})}).f32, ElementsAre(-3, -1, 0, 0));
  EXPECT_THAT(eval1("Clip", {x}).f32, ElementsAre(-3, -1, 1, 3));
  EXPECT_THAT(eval1("Clip", {ints({3}, {-5, 0, 5}), ints({}, {-1}), ints({}, {1})}).i64,
              ElementsAre(-1, 0, 1));
  // min > max: every value is max.
  EXPECT_THAT(eval1("Clip", {x, floats({}, {2}), floats({}, {1})}).f32, ElementsAre(1, 1, 1, 1));
  EXPECT_THAT(error_of(infer("Clip", {x, floats({}, {0})}, {}, {.variable = {1}})),
              HasSubstr("input 1 ('min', value 'in1') must be a constant"));
  // Before opset 11, attributes.
  EXPECT_THAT(
      eval1("Clip", {x}, {{"min", Attr::of_float(0)}, {"max", Attr::of_float(2)}}, {.opset = 6})
          .f32,
      ElementsAre(0, 0, 1, 2));
  EXPECT_THAT(error_of(infer("Clip", {x}, {{"min", Attr::of_float(0)}})),
              HasSubstr("attributes 'min' and 'max' are not supported in opset 13"));
}

TEST(GraphOps, SoftmaxFromOpset13IsAlongOneAxis) {
  Tensor x = floats({2, 3}, {1, 2, 3, 0, 0, 0});
  Tensor out = eval1("Softmax", {x});
  float e = std::exp(1.0f) + std::exp(2.0f) + std::exp(3.0f);
  EXPECT_THAT(out.f32,
              Pointwise(FloatNear(1e-6),
                        std::vector<float>{std::exp(1.0f) / e, std::exp(2.0f) / e,
                                           std::exp(3.0f) / e, 1 / 3.0f, 1 / 3.0f, 1 / 3.0f}));
  // axis 0 of [2,3]: columns sum to 1.
  out = eval1("Softmax", {x}, {{"axis", Attr::of_int(0)}});
  for (size_t j = 0; j < 3; ++j) EXPECT_NEAR(out.f32[j] + out.f32[3 + j], 1.0f, 1e-6);
  // A large input does not overflow.
  out = eval1("Softmax", {floats({2}, {1000, 1000})});
  EXPECT_THAT(out.f32, ElementsAre(0.5, 0.5));
}

TEST(GraphOps, SoftmaxBeforeOpset13FlattensTo2D) {
  Tensor x = iota({2, 2, 2});
  // Opset 11, default axis 1: each of the 2 rows of 4 sums to 1.
  Tensor old = eval1("Softmax", {x}, {}, {.opset = 11});
  EXPECT_NEAR(old.f32[0] + old.f32[1] + old.f32[2] + old.f32[3], 1.0f, 1e-6);
  EXPECT_NEAR(old.f32[4] + old.f32[5] + old.f32[6] + old.f32[7], 1.0f, 1e-6);
  // Opset 13 with axis 1: pairs along axis 1 sum to 1, which differs.
  Tensor now = eval1("Softmax", {x}, {{"axis", Attr::of_int(1)}}, {.opset = 13});
  EXPECT_NEAR(now.f32[0] + now.f32[2], 1.0f, 1e-6);
  EXPECT_GT(std::abs(now.f32[0] - old.f32[0]), 0.01f);
  // Opset 11 with axis -1 is the last axis alone, as in opset 13.
  Tensor last = eval1("Softmax", {x}, {{"axis", Attr::of_int(-1)}}, {.opset = 11});
  EXPECT_THAT(last.f32, Pointwise(FloatNear(1e-6), eval1("Softmax", {x}).f32));
  EXPECT_THAT(error_of(infer("Softmax", {x}, {{"axis", Attr::of_int(3)}})),
              HasSubstr("attribute 'axis' = 3 is out of range [-3, 2]"));
}

TEST(GraphOps, IdentityAndDropoutCopy) {
  EXPECT_THAT(eval1("Identity", {ints({2}, {4, 5})}).i64, ElementsAre(4, 5));
  Tensor x = iota({2, 2});
  EXPECT_THAT(eval1("Dropout", {x, floats({}, {0.5f})}).f32, ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(eval1("Dropout", {x}, {{"ratio", Attr::of_float(0.3f)}}, {.opset = 11}).f32,
              ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(error_of(infer("Dropout", {x}, {}, {.num_outputs = 2})),
              HasSubstr("output 1 ('mask', value 'out1') is not supported"));
  EXPECT_THAT(error_of(infer("Dropout", {x, std::nullopt, ints({}, {1})})),
              HasSubstr("'training_mode') is true"));
  EXPECT_THAT(eval1("Dropout", {x, std::nullopt, ints({}, {0})}).f32, ElementsAre(0, 1, 2, 3));
}

// ---- Reshape, Flatten, Transpose ---------------------------------------------------------------

TEST(GraphOps, ReshapeCopiesZerosAndInfersMinusOne) {
  Tensor x = iota({2, 3, 4});
  EXPECT_EQ(shape_of(eval1("Reshape", {x, ints({2}, {0, -1})})), (Shape{2, 12}));
  EXPECT_EQ(shape_of(eval1("Reshape", {x, ints({3}, {-1, 0, 2})})), (Shape{4, 3, 2}));
  EXPECT_EQ(shape_of(eval1("Reshape", {x, ints({1}, {-1})})).size(), 1u);
  Tensor out = eval1("Reshape", {x, ints({2}, {4, 6})});
  EXPECT_EQ(out.f32, x.f32);
  // allowzero = 1: 0 is a zero dimension.
  auto zero = infer("Reshape", {Tensor::zeros({DType::kFloat32, {0, 3}}), ints({2}, {3, 0})},
                    {{"allowzero", Attr::of_int(1)}});
  ASSERT_TRUE(zero.is_ok()) << zero.status().to_string();
  EXPECT_EQ((*zero)[0].shape, (Shape{3, 0}));
  EXPECT_THAT(error_of(infer("Reshape", {x, ints({2}, {-1, -1})})), HasSubstr("more than one -1"));
  EXPECT_THAT(error_of(infer("Reshape", {x, ints({2}, {5, -1})})),
              HasSubstr("cannot reshape float32[2,3,4] to [5,-1]"));
  EXPECT_THAT(error_of(infer("Reshape", {x, ints({2}, {4, 5})})), HasSubstr("(20 elements)"));
  // A shape whose element count overflows 64 bits (found by the onnx fuzz target): refused, not
  // multiplied out.
  EXPECT_THAT(error_of(infer("Reshape", {x, ints({2}, {2, kMax - 128})})),
              HasSubstr("more than 1099511627776 elements"));
  EXPECT_THAT(error_of(infer("Reshape", {x, ints({3}, {kMax, kMax, -1})})),
              HasSubstr("more than 1099511627776 elements"));
  EXPECT_THAT(error_of(infer("Reshape", {x, ints({2}, {4, 6})}, {}, {.variable = {1}})),
              HasSubstr("input 1 ('shape', value 'in1') must be a constant"));
}

TEST(GraphOps, FlattenAtAnAxis) {
  Tensor x = iota({2, 3, 4});
  EXPECT_EQ(shape_of(eval1("Flatten", {x})), (Shape{2, 12}));
  EXPECT_EQ(shape_of(eval1("Flatten", {x}, {{"axis", Attr::of_int(0)}})), (Shape{1, 24}));
  EXPECT_EQ(shape_of(eval1("Flatten", {x}, {{"axis", Attr::of_int(3)}})), (Shape{24, 1}));
  EXPECT_EQ(shape_of(eval1("Flatten", {x}, {{"axis", Attr::of_int(-1)}})), (Shape{6, 4}));
  EXPECT_THAT(error_of(infer("Flatten", {x}, {{"axis", Attr::of_int(4)}})),
              HasSubstr("attribute 'axis' = 4 is out of range [-3, 3]"));
}

TEST(GraphOps, TransposeByPermOrReversed) {
  Tensor x = iota({2, 3});
  Tensor out = eval1("Transpose", {x});
  EXPECT_EQ(shape_of(out), (Shape{3, 2}));
  EXPECT_THAT(out.f32, ElementsAre(0, 3, 1, 4, 2, 5));
  Tensor y = iota({2, 3, 4});
  out = eval1("Transpose", {y}, {{"perm", Attr::of_ints({1, 2, 0})}});
  ASSERT_EQ(shape_of(out), (Shape{3, 4, 2}));
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < 4; ++j) {
      for (int64_t k = 0; k < 2; ++k) {
        EXPECT_EQ(out.f32[size_t((i * 4 + j) * 2 + k)], float(k * 12 + i * 4 + j));
      }
    }
  }
  EXPECT_THAT(error_of(infer("Transpose", {y}, {{"perm", Attr::of_ints({0, 0, 1})}})),
              HasSubstr("attribute 'perm' = [0,0,1] is not a permutation"));
}

// ---- Concat, Split -----------------------------------------------------------------------------

TEST(GraphOps, ConcatAlongANegativeAxis) {
  Tensor out = eval1("Concat", {iota({2, 1}), floats({2, 2}, {10, 11, 12, 13})},
                     {{"axis", Attr::of_int(-1)}});
  EXPECT_EQ(shape_of(out), (Shape{2, 3}));
  EXPECT_THAT(out.f32, ElementsAre(0, 10, 11, 1, 12, 13));
  EXPECT_THAT(eval1("Concat", {ints({1}, {1}), ints({0}, {}), ints({2}, {-1, 7})},
                    {{"axis", Attr::of_int(0)}})
                  .i64,
              ElementsAre(1, -1, 7));
  EXPECT_THAT(error_of(infer("Concat", {iota({2, 1}), iota({3, 1})}, {{"axis", Attr::of_int(1)}})),
              HasSubstr("input 1 is float32[3,1], which does not concatenate"));
  EXPECT_THAT(error_of(infer("Concat", {iota({2})})), HasSubstr("attribute 'axis' is required"));
}

TEST(GraphOps, SplitBySizesOrEqually) {
  Tensor x = iota({2, 3});
  // Opset 13: sizes as input 1.
  auto out = eval("Split", {x, ints({2}, {1, 2})}, {{"axis", Attr::of_int(1)}}, {.num_outputs = 2});
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(shape_of((*out)[0]), (Shape{2, 1}));
  EXPECT_THAT((*out)[0].f32, ElementsAre(0, 3));
  EXPECT_THAT((*out)[1].f32, ElementsAre(1, 2, 4, 5));
  // Opset 11: sizes as an attribute.
  out = eval("Split", {x}, {{"axis", Attr::of_int(-1)}, {"split", Attr::of_ints({2, 1})}},
             {.opset = 11, .num_outputs = 2});
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_THAT((*out)[0].f32, ElementsAre(0, 1, 3, 4));
  EXPECT_THAT((*out)[1].f32, ElementsAre(2, 5));
  // No sizes: equal parts, one per output.
  out = eval("Split", {iota({6})}, {}, {.num_outputs = 3});
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_THAT((*out)[2].f32, ElementsAre(4, 5));
  EXPECT_THAT(error_of(infer("Split", {iota({5})}, {}, {.num_outputs = 2})),
              HasSubstr("does not split into 2 equal parts"));
  EXPECT_THAT(error_of(infer("Split", {x, ints({2}, {1, 1})}, {{"axis", Attr::of_int(1)}},
                             {.num_outputs = 2})),
              HasSubstr("summing to dimension 1"));
  EXPECT_THAT(error_of(infer("Split", {x}, {{"split", Attr::of_ints({1, 1})}}, {.num_outputs = 2})),
              HasSubstr("attribute 'split' is not supported in opset 13"));
}

// ---- Slice -------------------------------------------------------------------------------------

TEST(GraphOps, SliceClampsAndCountsFromTheEnd) {
  Tensor x = iota({3, 4});
  Tensor out = eval1("Slice", {x, ints({2}, {1, 0}), ints({2}, {kMax, -1})});
  EXPECT_EQ(shape_of(out), (Shape{2, 3}));
  EXPECT_THAT(out.f32, ElementsAre(4, 5, 6, 8, 9, 10));
  // Negative axes and steps of 2.
  out = eval1("Slice", {x, ints({1}, {0}), ints({1}, {100}), ints({1}, {-1}), ints({1}, {2})});
  EXPECT_THAT(out.f32, ElementsAre(0, 2, 4, 6, 8, 10));
  // Start beyond the end: empty.
  EXPECT_EQ(shape_of(eval1("Slice", {x, ints({1}, {5}), ints({1}, {9})})), (Shape{0, 4}));
}

TEST(GraphOps, SliceWithNegativeSteps) {
  Tensor x = iota({5});
  // The whole axis reversed: start -1, end INT64_MIN.
  EXPECT_THAT(
      eval1("Slice", {x, ints({1}, {-1}), ints({1}, {kMin}), ints({1}, {0}), ints({1}, {-1})}).f32,
      ElementsAre(4, 3, 2, 1, 0));
  // From 4 down to (not including) 0 by -2.
  EXPECT_THAT(
      eval1("Slice", {x, ints({1}, {kMax}), ints({1}, {0}), std::nullopt, ints({1}, {-2})}).f32,
      ElementsAre(4, 2));
  // Rows reversed, columns forward, on a 2-D input.
  Tensor y = iota({2, 3});
  EXPECT_THAT(eval1("Slice", {y, ints({2}, {-1, 1}), ints({2}, {-3, 3}), ints({2}, {0, 1}),
                              ints({2}, {-1, 1})})
                  .f32,
              ElementsAre(4, 5, 1, 2));
  EXPECT_THAT(
      error_of(infer("Slice", {x, ints({1}, {0}), ints({1}, {1}), std::nullopt, ints({1}, {0})})),
      HasSubstr("'steps' [0] has a 0"));
}

TEST(GraphOps, SliceOperandsBeforeOpset10AndErrors) {
  Tensor x = iota({3, 4});
  EXPECT_THAT(eval1("Slice", {x},
                    {{"starts", Attr::of_ints({1})},
                     {"ends", Attr::of_ints({3})},
                     {"axes", Attr::of_ints({1})}},
                    {.opset = 9})
                  .f32,
              ElementsAre(1, 2, 5, 6, 9, 10));
  EXPECT_THAT(error_of(infer("Slice", {x, ints({1}, {0}), ints({1}, {1})}, {}, {.variable = {2}})),
              HasSubstr("input 2 ('ends', value 'in2') must be a constant"));
  EXPECT_THAT(
      error_of(infer("Slice", {x, ints({2}, {0, 0}), ints({2}, {1, 1}), ints({2}, {1, -1})})),
      HasSubstr("repeats axis -1"));
  EXPECT_THAT(error_of(infer("Slice", {x, ints({1}, {0}), ints({1}, {1}), ints({1}, {2})})),
              HasSubstr("'axes' = 2 is out of range [-2, 1]"));
}

// ---- Pad ---------------------------------------------------------------------------------------

TEST(GraphOps, PadConstantReflectEdge) {
  Tensor x = floats({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor pads = ints({4}, {0, 2, 1, 1});  // begin of axes 0 and 1, then their ends
  Tensor out = eval1("Pad", {x, pads, floats({}, {9})});
  ASSERT_EQ(shape_of(out), (Shape{3, 6}));
  EXPECT_THAT(out.f32, ElementsAreArray<float>({9, 9, 1, 2, 3, 9, 9, 9, 4, 5, 6, 9,  //
                                                9, 9, 9, 9, 9, 9}));
  out = eval1("Pad", {x, pads}, {{"mode", Attr::of_string("reflect")}});
  EXPECT_THAT(out.f32, ElementsAreArray<float>({3, 2, 1, 2, 3, 2, 6, 5, 4, 5, 6, 5,  //
                                                3, 2, 1, 2, 3, 2}));
  out = eval1("Pad", {x, pads}, {{"mode", Attr::of_string("edge")}});
  EXPECT_THAT(out.f32, ElementsAreArray<float>({1, 1, 1, 2, 3, 3, 4, 4, 4, 5, 6, 6,  //
                                                4, 4, 4, 5, 6, 6}));
  // Negative pads crop; int64 pads with the default value 0.
  EXPECT_THAT(eval1("Pad", {ints({4}, {1, 2, 3, 4}), ints({2}, {-1, 1})}).i64,
              ElementsAre(2, 3, 4, 0));
  // Opset 2: attributes.
  EXPECT_THAT(eval1("Pad", {floats({2}, {1, 2})},
                    {{"pads", Attr::of_ints({1, 0})}, {"value", Attr::of_float(7)}}, {.opset = 2})
                  .f32,
              ElementsAre(7, 1, 2));
  EXPECT_THAT(error_of(infer("Pad", {x, pads}, {{"mode", Attr::of_string("wrap")}})),
              HasSubstr("attribute 'mode' = 'wrap' is not supported"));
  EXPECT_THAT(error_of(infer("Pad", {x, ints({2}, {1, 1})})),
              HasSubstr("'pads' = [1,1] must have 4 entries"));
}

TEST(GraphOps, PadReflectsAndRepeatsEdgesPastTheAxis) {
  // Pads longer than the axis reflect again, as numpy's pad does.
  Tensor x = floats({3}, {1, 2, 3});
  EXPECT_THAT(eval1("Pad", {x, ints({2}, {4, 5})}, {{"mode", Attr::of_string("reflect")}}).f32,
              ElementsAreArray<float>({1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3, 2}));
  EXPECT_THAT(eval1("Pad", {x, ints({2}, {4, 5})}, {{"mode", Attr::of_string("edge")}}).f32,
              ElementsAreArray<float>({1, 1, 1, 1, 1, 2, 3, 3, 3, 3, 3, 3}));
  EXPECT_THAT(
      eval1("Pad", {floats({1}, {7}), ints({2}, {2, 1})}, {{"mode", Attr::of_string("reflect")}})
          .f32,
      ElementsAre(7, 7, 7, 7));
  EXPECT_THAT(error_of(infer("Pad", {Tensor::zeros({DType::kFloat32, {0}}), ints({2}, {1, 0})},
                             {{"mode", Attr::of_string("edge")}})),
              HasSubstr("mode 'edge' cannot pad the empty axis 0"));
}

// ---- Squeeze, Unsqueeze, ReduceMean ------------------------------------------------------------

TEST(GraphOps, SqueezeAndUnsqueezeAxesBothForms) {
  Tensor x = iota({1, 3, 1});
  EXPECT_EQ(shape_of(eval1("Squeeze", {x})), (Shape{3}));
  EXPECT_EQ(shape_of(eval1("Squeeze", {x, ints({1}, {-1})})), (Shape{1, 3}));
  EXPECT_EQ(shape_of(eval1("Squeeze", {x}, {{"axes", Attr::of_ints({0})}}, {.opset = 11})),
            (Shape{3, 1}));
  EXPECT_THAT(error_of(infer("Squeeze", {x, ints({1}, {1})})),
              HasSubstr("cannot squeeze axis 1 of float32[1,3,1]"));
  EXPECT_EQ(shape_of(eval1("Unsqueeze", {x, ints({2}, {0, -1})})), (Shape{1, 1, 3, 1, 1}));
  EXPECT_EQ(shape_of(eval1("Unsqueeze", {iota({3}), ints({2}, {2, 0})})), (Shape{1, 3, 1}));
  EXPECT_EQ(
      shape_of(eval1("Unsqueeze", {iota({3})}, {{"axes", Attr::of_ints({1})}}, {.opset = 11})),
      (Shape{3, 1}));
  EXPECT_THAT(eval1("Unsqueeze", {ints({}, {7}), ints({1}, {0})}).i64, ElementsAre(7));
  EXPECT_THAT(error_of(infer("Unsqueeze", {iota({3})})), HasSubstr("input 1 ('axes') is required"));
  EXPECT_THAT(error_of(infer("Unsqueeze", {iota({3}), ints({1}, {0})}, {}, {.variable = {1}})),
              HasSubstr("must be a constant"));
}

TEST(GraphOps, ReduceMeanOverAxes) {
  Tensor x = iota({2, 3});
  Tensor out = eval1("ReduceMean", {x}, {{"axes", Attr::of_ints({-1})}});
  EXPECT_EQ(shape_of(out), (Shape{2, 1}));
  EXPECT_THAT(out.f32, ElementsAre(1, 4));
  out = eval1("ReduceMean", {x}, {{"axes", Attr::of_ints({0})}, {"keepdims", Attr::of_int(0)}});
  EXPECT_EQ(shape_of(out), (Shape{3}));
  EXPECT_THAT(out.f32, ElementsAre(1.5, 2.5, 3.5));
  out = eval1("ReduceMean", {x});
  EXPECT_EQ(shape_of(out), (Shape{1, 1}));
  EXPECT_THAT(out.f32, ElementsAre(2.5));
  // Global average pooling as exporters write it: axes 2 and 3 of NCHW.
  out = eval1("ReduceMean", {iota({1, 2, 2, 2})}, {{"axes", Attr::of_ints({2, 3})}});
  EXPECT_EQ(shape_of(out), (Shape{1, 2, 1, 1}));
  EXPECT_THAT(out.f32, ElementsAre(1.5, 5.5));
}

// ---- Constant, Shape, Gather, Cast -------------------------------------------------------------

TEST(GraphOps, ConstantValues) {
  Tensor out = eval1("Constant", {}, {{"value", Attr::of_tensor(floats({2}, {1, 2}))}});
  EXPECT_EQ(out.info, (TensorInfo{DType::kFloat32, {2}}));
  EXPECT_THAT(out.f32, ElementsAre(1, 2));
  out = eval1("Constant", {}, {{"value_ints", Attr::of_ints({3, -1})}});
  EXPECT_EQ(out.info, (TensorInfo{DType::kInt64, {2}}));
  EXPECT_THAT(out.i64, ElementsAre(3, -1));
  EXPECT_EQ(eval1("Constant", {}, {{"value_int", Attr::of_int(5)}}).info,
            (TensorInfo{DType::kInt64, {}}));
  EXPECT_THAT(eval1("Constant", {}, {{"value_float", Attr::of_float(0.5f)}}).f32, ElementsAre(0.5));
  EXPECT_THAT(eval1("Constant", {}, {{"value_floats", Attr::of_floats({1, 2, 3})}}).f32,
              ElementsAre(1, 2, 3));
  EXPECT_THAT(error_of(infer("Constant", {}, {{"value_string", Attr::of_string("x")}})),
              HasSubstr("attribute 'value_string' is not supported"));
  EXPECT_THAT(error_of(infer("Constant", {})), HasSubstr("has no value attribute"));
}

TEST(GraphOps, ShapeWithStartAndEnd) {
  Tensor x = iota({2, 3, 4});
  Tensor out = eval1("Shape", {x});
  EXPECT_EQ(out.info, (TensorInfo{DType::kInt64, {3}}));
  EXPECT_THAT(out.i64, ElementsAre(2, 3, 4));
  EXPECT_THAT(eval1("Shape", {x}, {{"start", Attr::of_int(1)}}, {.opset = 15}).i64,
              ElementsAre(3, 4));
  EXPECT_THAT(
      eval1("Shape", {x}, {{"start", Attr::of_int(-2)}, {"end", Attr::of_int(-1)}}, {.opset = 15})
          .i64,
      ElementsAre(3));
  // Clamped, and empty when start passes end.
  EXPECT_THAT(
      eval1("Shape", {x}, {{"start", Attr::of_int(-10)}, {"end", Attr::of_int(10)}}, {.opset = 15})
          .i64,
      ElementsAre(2, 3, 4));
  EXPECT_EQ(
      eval1("Shape", {x}, {{"start", Attr::of_int(2)}, {"end", Attr::of_int(1)}}, {.opset = 15})
          .info.shape,
      (Shape{0}));
}

TEST(GraphOps, GatherWithNegativeIndices) {
  Tensor x = iota({3, 2});
  Tensor out = eval1("Gather", {x, ints({2}, {2, -3})});
  EXPECT_EQ(shape_of(out), (Shape{2, 2}));
  EXPECT_THAT(out.f32, ElementsAre(4, 5, 0, 1));
  out = eval1("Gather", {x, ints({2, 2}, {1, 0, -1, 1})}, {{"axis", Attr::of_int(-1)}});
  EXPECT_EQ(shape_of(out), (Shape{3, 2, 2}));
  EXPECT_THAT(out.f32, ElementsAre(1, 0, 1, 1, 3, 2, 3, 3, 5, 4, 5, 5));
  // A scalar index drops the axis: the shape-chain form.
  out = eval1("Gather", {ints({4}, {1, 3, 224, 224}), ints({}, {1})});
  EXPECT_EQ(out.info, (TensorInfo{DType::kInt64, {}}));
  EXPECT_THAT(out.i64, ElementsAre(3));
  EXPECT_THAT(error_of(eval("Gather", {x, ints({1}, {3})})),
              HasSubstr("index 3 is out of range [-3, 2] of axis 0"));
  EXPECT_THAT(error_of(infer("Gather", {x, floats({1}, {0})})),
              HasSubstr("'indices' must be int64"));
}

TEST(GraphOps, CastBetweenFloatAndInt64) {
  Tensor out = eval1("Cast", {floats({4}, {1.7f, -1.7f, 0, 3})}, {{"to", Attr::of_int(7)}});
  EXPECT_EQ(out.info.dtype, DType::kInt64);
  EXPECT_THAT(out.i64, ElementsAre(1, -1, 0, 3));
  out = eval1("Cast", {ints({2}, {5, -2})}, {{"to", Attr::of_int(1)}});
  EXPECT_THAT(out.f32, ElementsAre(5, -2));
  EXPECT_THAT(eval1("Cast", {ints({1}, {9})}, {{"to", Attr::of_int(7)}}).i64, ElementsAre(9));
  EXPECT_THAT(error_of(infer("Cast", {iota({1})}, {{"to", Attr::of_int(6)}})),
              HasSubstr("attribute 'to' = 6 (INT32) is not supported"));
}

TEST(GraphOps, DataInputsNeedNotBeConstants) {
  // Only the operands that decide a type must be constants.
  Options variable{.variable = {0, 1, 2}};
  EXPECT_TRUE(infer("Gather", {iota({3}), ints({1}, {0})}, {}, variable).is_ok());
  EXPECT_TRUE(infer("Add", {iota({3}), iota({3})}, {}, variable).is_ok());
  EXPECT_TRUE(infer("Dropout", {iota({3}), floats({}, {0.1f})}, {}, variable).is_ok());
  EXPECT_TRUE(
      infer("Pad", {iota({3}), ints({2}, {1, 1}), floats({}, {2})}, {}, {.variable = {0, 2}})
          .is_ok());
  EXPECT_THAT(
      eval1("Pad", {iota({1}), ints({2}, {1, 0}), floats({}, {2})}, {}, {.variable = {0, 2}}).f32,
      ElementsAre(2, 0));
  EXPECT_THAT(error_of(infer("Pad", {iota({3}), ints({2}, {1, 1})}, {}, variable)),
              HasSubstr("input 1 ('pads', value 'in1') must be a constant"));
}

TEST(GraphOps, SplitWithNumOutputs) {
  // Opset 18's num_outputs: parts of ceil(5 / 3) = 2 and a smaller last one.
  auto out = eval("Split", {iota({5})}, {{"num_outputs", Attr::of_int(3)}},
                  {.opset = 18, .num_outputs = 3});
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_THAT((*out)[0].f32, ElementsAre(0, 1));
  EXPECT_THAT((*out)[1].f32, ElementsAre(2, 3));
  EXPECT_THAT((*out)[2].f32, ElementsAre(4));
}

// ---- Shape chains and run checks ---------------------------------------------------------------

TEST(GraphOps, ExporterShapeChainInInt64) {
  // x.view(x.size(0), -1) as PyTorch exports it:
  // Shape -> Gather(0) -> Unsqueeze(0) -> Concat with [-1] -> Reshape.
  Tensor x = iota({2, 3, 4});
  Tensor shape = eval1("Shape", {x});
  Tensor batch = eval1("Gather", {shape, ints({}, {0})});
  Tensor batch1 = eval1("Unsqueeze", {batch, ints({1}, {0})});
  Tensor target = eval1("Concat", {batch1, ints({1}, {-1})}, {{"axis", Attr::of_int(0)}});
  EXPECT_THAT(target.i64, ElementsAre(2, -1));
  Tensor out = eval1("Reshape", {x, target});
  EXPECT_EQ(shape_of(out), (Shape{2, 12}));
  // Arithmetic and slices of shapes: (H * W) and the last two dimensions.
  Tensor hw = eval1("Slice", {shape, ints({1}, {-2}), ints({1}, {kMax})});
  EXPECT_THAT(hw.i64, ElementsAre(3, 4));
  Tensor h =
      eval1("Squeeze", {eval1("Slice", {hw, ints({1}, {0}), ints({1}, {1})}), ints({1}, {0})});
  EXPECT_EQ(h.info, (TensorInfo{DType::kInt64, {}}));
  EXPECT_THAT(eval1("Mul", {h, eval1("Gather", {hw, ints({}, {1})})}).i64, ElementsAre(12));
  EXPECT_THAT(eval1("Div", {shape, ints({}, {2})}).i64, ElementsAre(1, 1, 2));
  EXPECT_THAT(
      eval1("Cast", {eval1("Cast", {shape}, {{"to", Attr::of_int(1)}})}, {{"to", Attr::of_int(7)}})
          .i64,
      ElementsAre(2, 3, 4));
}

TEST(GraphOps, RunChecksOutputTypes) {
  Node node = make_node("Relu", {iota({2})}, {}, 1);
  Tensor in = iota({2});
  Tensor wrong = Tensor::zeros({DType::kFloat32, {3}});
  std::vector<TensorView> ins{{in.info, in.data()}};
  std::vector<TensorView> outs{{wrong.info, wrong.data()}};
  EXPECT_THAT(error_of(run_node(node, 13, ins, outs)),
              HasSubstr("output 0 is float32[3], type inference gives float32[2]"));
}

TEST(GraphOps, EveryOperatorIsRegistered) {
  for (const char* op :
       {"Add",         "Sub",        "Mul",      "Div",     "Relu",     "Clip",    "Sigmoid",
        "HardSigmoid", "HardSwish",  "Tanh",     "Softmax", "Identity", "Dropout", "Reshape",
        "Flatten",     "Transpose",  "Concat",   "Split",   "Slice",    "Pad",     "Squeeze",
        "Unsqueeze",   "ReduceMean", "Constant", "Shape",   "Gather",   "Cast"}) {
    EXPECT_TRUE(is_supported_op(op)) << op;
  }
}

}  // namespace
}  // namespace kiln::graph
