// The host neural-network operators (ops_nn.cc) on cases that ONNX's node tests leave out:
// grouped and dilated convolutions with asymmetric padding, batched and 1-D MatMul, Gemm's
// transposes with a broadcast C, pooling with ceil_mode and count_include_pad.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "compiler_core/graph/ops.h"

namespace kiln::graph {
namespace {

using ::testing::HasSubstr;

std::vector<float> ramp(int64_t n, float scale = 0.1f) {
  std::vector<float> v(static_cast<size_t>(n));
  uint32_t state = 12345;
  for (auto& x : v) {
    state = state * 1664525u + 1013904223u;
    x = scale * float(int(state >> 24) - 128) / 16.0f;
  }
  return v;
}

// Infers and runs `node` on `inputs` (nullopt: absent); returns its first output.
Result<Tensor> run_one(const Node& node, const std::vector<std::optional<Tensor>>& inputs,
                       int64_t opset = 13) {
  InferContext context;
  context.opset = opset;
  std::vector<TensorView> views;
  for (const auto& t : inputs) {
    context.inputs.push_back(t ? &t->info : nullptr);
    context.constants.push_back(nullptr);
    views.push_back(t ? TensorView{t->info, const_cast<void*>(t->data())} : TensorView{});
  }
  KILN_ASSIGN_OR_RETURN(std::vector<TensorInfo> infos, infer_node(node, context));
  Tensor out = Tensor::zeros(infos[0]);
  std::vector<TensorView> outs{{out.info, out.data()}};
  KILN_RETURN_IF_ERROR(run_node(node, opset, views, outs));
  return out;
}

Node make_node(const std::string& op, std::map<std::string, Attr> attrs = {}) {
  Node n;
  n.name = "n";
  n.op = op;
  n.attrs = std::move(attrs);
  n.outputs = {"y"};
  return n;
}

void expect_near(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], 1e-4f + 1e-4f * std::abs(want[i])) << "at " << i;
  }
}

TEST(OpsNn, GroupedDilatedStridedConvMatchesDirectFormula) {
  const int64_t n = 2, c = 4, h = 7, w = 6, m = 6, group = 2, kh = 3, kw = 2;
  const int64_t sh = 2, sw = 1, dh = 2, dw = 2, pt = 1, pl = 0, pb = 2, pr = 1;
  Tensor x = Tensor::from_floats({n, c, h, w}, ramp(n * c * h * w));
  Tensor wt = Tensor::from_floats({m, c / group, kh, kw}, ramp(m * c / group * kh * kw, 0.3f));
  Tensor b = Tensor::from_floats({m}, ramp(m, 1.0f));
  Node node = make_node("Conv", {{"group", Attr::of_int(group)},
                                 {"strides", Attr::of_ints({sh, sw})},
                                 {"dilations", Attr::of_ints({dh, dw})},
                                 {"pads", Attr::of_ints({pt, pl, pb, pr})},
                                 {"kernel_shape", Attr::of_ints({kh, kw})}});
  auto y = run_one(node, {x, wt, b});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  const int64_t oh = (h + pt + pb - (dh * (kh - 1) + 1)) / sh + 1;  // 3
  const int64_t ow = (w + pl + pr - (dw * (kw - 1) + 1)) / sw + 1;  // 6
  ASSERT_EQ(y->info.shape, (Shape{n, m, oh, ow}));
  std::vector<float> want;
  const int64_t cg = c / group;
  for (int64_t in = 0; in < n; ++in) {
    for (int64_t im = 0; im < m; ++im) {
      for (int64_t i = 0; i < oh; ++i) {
        for (int64_t j = 0; j < ow; ++j) {
          double acc = b.f32[size_t(im)];
          for (int64_t ic = 0; ic < cg; ++ic) {
            for (int64_t r = 0; r < kh; ++r) {
              for (int64_t s = 0; s < kw; ++s) {
                const int64_t ih = i * sh - pt + r * dh, iw = j * sw - pl + s * dw;
                if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
                const int64_t channel = (im / (m / group)) * cg + ic;
                acc += double(x.f32[size_t(((in * c + channel) * h + ih) * w + iw)]) *
                       wt.f32[size_t(((im * cg + ic) * kh + r) * kw + s)];
              }
            }
          }
          want.push_back(float(acc));
        }
      }
    }
  }
  expect_near(y->f32, want);
}

TEST(OpsNn, ConvSameLowerPadsAtTheStart) {
  // 1x1x3x3 input, 2x2 kernel of ones, SAME_LOWER: the extra padding goes first.
  Tensor x = Tensor::from_floats({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  Tensor wt = Tensor::from_floats({1, 1, 2, 2}, {1, 1, 1, 1});
  auto y = run_one(make_node("Conv", {{"auto_pad", Attr::of_string("SAME_LOWER")}}),
                   {x, wt, std::nullopt});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(y->f32, (std::vector<float>{1, 3, 5, 5, 12, 16, 11, 24, 28}));
  auto upper = run_one(make_node("Conv", {{"auto_pad", Attr::of_string("SAME_UPPER")}}),
                       {x, wt, std::nullopt});
  ASSERT_TRUE(upper.is_ok());
  EXPECT_EQ(upper->f32, (std::vector<float>{12, 16, 9, 24, 28, 15, 15, 17, 9}));
}

TEST(OpsNn, ConvRefusesOtherRanksAndMismatchedGroups) {
  Tensor x1 = Tensor::zeros({DType::kFloat32, {1, 2, 5}});
  Tensor w1 = Tensor::zeros({DType::kFloat32, {2, 2, 3}});
  auto r = run_one(make_node("Conv"), {x1, w1});
  ASSERT_FALSE(r.is_ok());
  EXPECT_THAT(r.status().message(), HasSubstr("1-D convolutions are not supported"));
  Tensor x = Tensor::zeros({DType::kFloat32, {1, 4, 5, 5}});
  Tensor w = Tensor::zeros({DType::kFloat32, {3, 2, 3, 3}});
  auto g = run_one(make_node("Conv", {{"group", Attr::of_int(2)}}), {x, w});
  ASSERT_FALSE(g.is_ok());
  EXPECT_THAT(g.status().message(), HasSubstr("group 2"));
}

TEST(OpsNn, MatMulBroadcastsBatchesAndPromotesVectors) {
  Tensor a = Tensor::from_floats({2, 1, 2, 3}, ramp(12));
  Tensor b = Tensor::from_floats({3, 3, 2}, ramp(18, 0.2f));
  auto y = run_one(make_node("MatMul"), {a, b});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  ASSERT_EQ(y->info.shape, (Shape{2, 3, 2, 2}));
  std::vector<float> want;
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t j = 0; j < 3; ++j) {
      for (int64_t r = 0; r < 2; ++r) {
        for (int64_t col = 0; col < 2; ++col) {
          double acc = 0;
          for (int64_t k = 0; k < 3; ++k) {
            acc += double(a.f32[size_t(i * 6 + r * 3 + k)]) * b.f32[size_t(j * 6 + k * 2 + col)];
          }
          want.push_back(float(acc));
        }
      }
    }
  }
  expect_near(y->f32, want);

  Tensor v = Tensor::from_floats({3}, {1, 2, 3});
  Tensor mat = Tensor::from_floats({3, 2}, {1, 2, 3, 4, 5, 6});
  auto vm = run_one(make_node("MatMul"), {v, mat});
  ASSERT_TRUE(vm.is_ok());
  EXPECT_EQ(vm->info.shape, (Shape{2}));
  EXPECT_EQ(vm->f32, (std::vector<float>{22, 28}));
  Tensor mt = Tensor::from_floats({2, 3}, {1, 2, 3, 4, 5, 6});
  auto mv = run_one(make_node("MatMul"), {mt, v});
  ASSERT_TRUE(mv.is_ok());
  EXPECT_EQ(mv->info.shape, (Shape{2}));
  EXPECT_EQ(mv->f32, (std::vector<float>{14, 32}));
  auto vv = run_one(make_node("MatMul"), {v, v});
  ASSERT_TRUE(vv.is_ok());
  EXPECT_EQ(vv->info.shape, (Shape{}));
  EXPECT_EQ(vv->f32, (std::vector<float>{14}));
  auto bad = run_one(make_node("MatMul"), {mat, mat});
  ASSERT_FALSE(bad.is_ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("disagree"));
}

TEST(OpsNn, GemmTransposesAndBroadcastsC) {
  Tensor a = Tensor::from_floats({3, 2}, {1, 2, 3, 4, 5, 6});  // A^T is 2x3
  Tensor b = Tensor::from_floats({2, 3}, {1, 0, 1, 0, 1, 1});  // B^T is 3x2
  Tensor c = Tensor::from_floats({2, 1}, {10, 20});
  auto y = run_one(make_node("Gemm", {{"transA", Attr::of_int(1)},
                                      {"transB", Attr::of_int(1)},
                                      {"alpha", Attr::of_float(2.0f)},
                                      {"beta", Attr::of_float(0.5f)}}),
                   {a, b, c});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  // A^T B^T = [[1,3,5],[2,4,6]] x [[1,0],[0,1],[1,1]] = [[6,8],[8,10]].
  EXPECT_EQ(y->f32, (std::vector<float>{17, 21, 26, 30}));
  Tensor bad_c = Tensor::from_floats({3}, {1, 2, 3});
  auto bad = run_one(make_node("Gemm", {{"transA", Attr::of_int(1)}, {"transB", Attr::of_int(1)}}),
                     {a, b, bad_c});
  ASSERT_FALSE(bad.is_ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("does not broadcast"));
}

TEST(OpsNn, PoolsWithCeilModeAndPadding) {
  std::vector<float> values(25);
  for (size_t i = 0; i < values.size(); ++i) values[i] = float(i + 1);
  Tensor x = Tensor::from_floats({1, 1, 5, 5}, values);
  auto max = run_one(make_node("MaxPool", {{"kernel_shape", Attr::of_ints({2, 2})},
                                           {"strides", Attr::of_ints({2, 2})},
                                           {"ceil_mode", Attr::of_int(1)}}),
                     {x});
  ASSERT_TRUE(max.is_ok()) << max.status().to_string();
  ASSERT_EQ(max->info.shape, (Shape{1, 1, 3, 3}));
  EXPECT_EQ(max->f32, (std::vector<float>{7, 9, 10, 17, 19, 20, 22, 24, 25}));

  Node avg = make_node("AveragePool", {{"kernel_shape", Attr::of_ints({3, 3})},
                                       {"pads", Attr::of_ints({1, 1, 1, 1})},
                                       {"strides", Attr::of_ints({2, 2})}});
  auto excl = run_one(avg, {x});
  ASSERT_TRUE(excl.is_ok()) << excl.status().to_string();
  ASSERT_EQ(excl->info.shape, (Shape{1, 1, 3, 3}));
  EXPECT_FLOAT_EQ(excl->f32[0], (1 + 2 + 6 + 7) / 4.0f);
  avg.attrs["count_include_pad"] = Attr::of_int(1);
  auto incl = run_one(avg, {x});
  ASSERT_TRUE(incl.is_ok());
  EXPECT_FLOAT_EQ(incl->f32[0], (1 + 2 + 6 + 7) / 9.0f);
  EXPECT_FLOAT_EQ(incl->f32[4], (7 + 8 + 9 + 12 + 13 + 14 + 17 + 18 + 19) / 9.0f);

  auto no_kernel = run_one(make_node("MaxPool"), {x});
  ASSERT_FALSE(no_kernel.is_ok());
  EXPECT_THAT(no_kernel.status().message(), HasSubstr("'kernel_shape' is missing"));
}

TEST(OpsNn, BatchNormalizationAndGlobalAveragePool) {
  Tensor x = Tensor::from_floats({1, 2, 2}, {1, 2, 3, 4});
  Tensor scale = Tensor::from_floats({2}, {1, 2});
  Tensor bias = Tensor::from_floats({2}, {0, 1});
  Tensor mean = Tensor::from_floats({2}, {1, 3});
  Tensor var = Tensor::from_floats({2}, {4, 1});
  auto y = run_one(make_node("BatchNormalization", {{"epsilon", Attr::of_float(0.0f)}}),
                   {x, scale, bias, mean, var});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_near(y->f32, {0, 0.5f, 1, 3});

  auto gap =
      run_one(make_node("GlobalAveragePool"), {Tensor::from_floats({1, 2, 2}, {1, 2, 3, 5})});
  ASSERT_TRUE(gap.is_ok()) << gap.status().to_string();
  EXPECT_EQ(gap->info.shape, (Shape{1, 2, 1}));
  EXPECT_EQ(gap->f32, (std::vector<float>{1.5f, 4}));
}

}  // namespace
}  // namespace kiln::graph
