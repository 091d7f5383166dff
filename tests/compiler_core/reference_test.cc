#include "compiler_core/te/reference.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace kiln::core {
namespace {

Workload parse_ok(std::string_view text) {
  Result<Workload> w = parse_workload(text);
  EXPECT_TRUE(w.is_ok()) << text << ": " << w.status().to_string();
  return *w;
}

std::vector<float> run(const Workload& w, const std::vector<std::vector<float>>& inputs,
                       int threads = 1) {
  std::vector<const float*> ptrs;
  for (const auto& in : inputs) ptrs.push_back(in.data());
  std::vector<float> out(num_elements(w.output_shape()), std::nanf(""));
  run_reference(w, ptrs, out.data(), threads);
  return out;
}

std::vector<float> random_values(int64_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1, 1);
  std::vector<float> v(count);
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<std::vector<float>> random_inputs(const Workload& w, uint64_t seed) {
  std::vector<std::vector<float>> inputs;
  for (const Shape& s : w.input_shapes()) inputs.push_back(random_values(num_elements(s), seed++));
  return inputs;
}

/// NCHW [n,c,h,w] -> NHWC [n,h,w,c].
std::vector<float> nchw_to_nhwc(const std::vector<float>& x, int64_t n, int64_t c, int64_t h,
                                int64_t w) {
  std::vector<float> y(x.size());
  for (int64_t a = 0; a < n; ++a)
    for (int64_t b = 0; b < c; ++b)
      for (int64_t i = 0; i < h; ++i)
        for (int64_t j = 0; j < w; ++j)
          y[((a * h + i) * w + j) * c + b] = x[((a * c + b) * h + i) * w + j];
  return y;
}

/// OIHW weights [k,c,r,s] -> HWIO [r,s,c,k].
std::vector<float> oihw_to_hwio(const std::vector<float>& x, int64_t k, int64_t c, int64_t r,
                                int64_t s) {
  std::vector<float> y(x.size());
  for (int64_t a = 0; a < k; ++a)
    for (int64_t b = 0; b < c; ++b)
      for (int64_t i = 0; i < r; ++i)
        for (int64_t j = 0; j < s; ++j)
          y[((i * s + j) * c + b) * k + a] = x[((a * c + b) * r + i) * s + j];
  return y;
}

TEST(Reference, Matmul2x2) {
  Workload w = parse_ok("matmul:M=2,N=2,K=2");
  // [1 2; 3 4] x [5 6; 7 8] = [19 22; 43 50]
  EXPECT_EQ(run(w, {{1, 2, 3, 4}, {5, 6, 7, 8}}), (std::vector<float>{19, 22, 43, 50}));
}

TEST(Reference, MatmulRectangular) {
  Workload w = parse_ok("matmul:M=1,N=3,K=2");
  // [1 2] x [1 2 3; 4 5 6] = [9 12 15]
  EXPECT_EQ(run(w, {{1, 2}, {1, 2, 3, 4, 5, 6}}), (std::vector<float>{9, 12, 15}));
}

TEST(Reference, DenseBiasRelu) {
  // Y = relu(X·Wᵀ + b), X [1,2], W [3,2].
  std::vector<float> x = {1, 2};
  std::vector<float> weight = {1, 1, -1, -1, 2, 0};
  std::vector<float> bias = {0.5f, 1, -3};
  EXPECT_EQ(run(parse_ok("dense:M=1,N=3,K=2"), {x, weight}), (std::vector<float>{3, -3, 2}));
  EXPECT_EQ(run(parse_ok("dense:M=1,N=3,K=2,bias=1"), {x, weight, bias}),
            (std::vector<float>{3.5f, -2, -1}));
  EXPECT_EQ(run(parse_ok("dense:M=1,N=3,K=2,bias=1,act=relu"), {x, weight, bias}),
            (std::vector<float>{3.5f, 0, 0}));
  EXPECT_EQ(run(parse_ok("dense:M=1,N=3,K=2,act=relu"), {x, weight}),
            (std::vector<float>{3, 0, 2}));
}

void expect_near(const std::vector<float>& actual, const std::vector<double>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    EXPECT_NEAR(actual[i], expected[i], 1e-6) << "element " << i;
  }
}

TEST(Reference, ConvEpilogueAddsBiasPerChannelAndResidualThenActivates) {
  // Sums: out[k] = sum_c W[k,c] * in[c] with in = [[1,2],[3,4]] are [4 6; -1 0]; bias
  // [1, -2] per channel gives [5 7; -3 -2]; the residual [2 -10; 1 4] gives [7 -3; -2 2].
  const std::string conv = "conv2d:N=1,C=2,H=1,W=2,K=2,R=1,S=1";
  std::vector<float> in = {1, 2, 3, 4}, weight = {1, 1, 2, -1}, bias = {1, -2};
  std::vector<float> residual = {2, -10, 1, 4};
  EXPECT_EQ(run(parse_ok(conv + ",bias=1"), {in, weight, bias}),
            (std::vector<float>{5, 7, -3, -2}));
  EXPECT_EQ(run(parse_ok(conv + ",residual=1"), {in, weight, residual}),
            (std::vector<float>{6, -4, 0, 4}));
  const std::vector<std::vector<float>> all = {in, weight, bias, residual};
  EXPECT_EQ(run(parse_ok(conv + ",bias=1,residual=1"), all), (std::vector<float>{7, -3, -2, 2}));
  EXPECT_EQ(run(parse_ok(conv + ",bias=1,residual=1,act=relu"), all),
            (std::vector<float>{7, 0, 0, 2}));
  EXPECT_EQ(run(parse_ok(conv + ",bias=1,residual=1,act=relu6"), all),
            (std::vector<float>{6, 0, 0, 2}));
  // x·min(max(x+3, 0), 6)/6: 7·6/6, −3·0/6, −2·1/6, 2·5/6.
  expect_near(run(parse_ok(conv + ",bias=1,residual=1,act=hardswish"), all),
              {7, 0, -2.0 / 6, 10.0 / 6});
  expect_near(run(parse_ok(conv + ",bias=1,residual=1,act=sigmoid"), all),
              {1 / (1 + std::exp(-7.0)), 1 / (1 + std::exp(3.0)), 1 / (1 + std::exp(2.0)),
               1 / (1 + std::exp(-2.0))});
}

TEST(Reference, NhwcEpilogueIndexesBiasByChannel) {
  // The convolution above in NHWC: in [pixel][c] = [[1,3],[2,4]], weights HWIO [c][k] =
  // [[1,2],[1,-1]]; sums [pixel][k] = [[4,-1],[6,0]], bias [1,-2], residual all 1.
  Workload w = parse_ok("conv2d:N=1,C=2,H=1,W=2,K=2,R=1,S=1,layout=NHWC,bias=1,residual=1");
  EXPECT_EQ(run(w, {{1, 3, 2, 4}, {1, 2, 1, -1}, {1, -2}, {1, 1, 1, 1}}),
            (std::vector<float>{6, -2, 8, -1}));
}

TEST(Reference, DepthwiseAndDenseEpilogues) {
  // Depthwise 1×1: [2, -3] · [1, 1] + bias [1, 1] = [3, -2], relu [3, 0].
  EXPECT_EQ(run(parse_ok("depthwise_conv2d:N=1,C=2,H=1,W=1,R=1,S=1,bias=1,act=relu"),
                {{2, -3}, {1, 1}, {1, 1}}),
            (std::vector<float>{3, 0}));
  // Dense: X·Wᵀ = [3, -3, 2], + bias [0.5, 1, -3] + residual [1, 1, 8] = [4.5, -1, 7], relu6.
  EXPECT_EQ(run(parse_ok("dense:M=1,N=3,K=2,bias=1,residual=1,act=relu6"),
                {{1, 2}, {1, 1, -1, -1, 2, 0}, {0.5f, 1, -3}, {1, 1, 8}}),
            (std::vector<float>{4.5f, 0, 6}));
  // Residual alone, no activation.
  EXPECT_EQ(
      run(parse_ok("dense:M=1,N=3,K=2,residual=1"), {{1, 2}, {1, 1, -1, -1, 2, 0}, {1, 1, 8}}),
      (std::vector<float>{4, -2, 10}));
}

TEST(Reference, BatchMatmulUsesEachBatchsMatrices) {
  Workload w = parse_ok("batch_matmul:B=2,M=1,N=1,K=2");
  // batch 0: [1 2]·[3;4] = 11; batch 1: [5 6]·[7;8] = 83
  EXPECT_EQ(run(w, {{1, 2, 5, 6}, {3, 4, 7, 8}}), (std::vector<float>{11, 83}));
}

TEST(Reference, Conv2dOneChannel) {
  Workload w = parse_ok("conv2d:N=1,C=1,H=3,W=3,K=1,R=2,S=2");
  // Input 1..9, kernel [1 0; 0 -1]: out[y][x] = in[y][x] - in[y+1][x+1] = -4 everywhere.
  EXPECT_EQ(run(w, {{1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 0, 0, -1}}),
            (std::vector<float>{-4, -4, -4, -4}));
}

TEST(Reference, Conv2dPaddingSumsNeighbourhoods) {
  Workload w = parse_ok("conv2d:N=1,C=1,H=3,W=3,K=1,R=3,S=3,pad=1");
  std::vector<float> ones(9, 1.0f);
  // A 3x3 box filter over a 3x3 block of ones counts the in-bounds neighbours.
  EXPECT_EQ(run(w, {ones, ones}), (std::vector<float>{4, 6, 4, 6, 9, 6, 4, 6, 4}));
}

TEST(Reference, Conv2dStride) {
  Workload w = parse_ok("conv2d:N=1,C=1,H=4,W=4,K=1,R=1,S=1,stride=2");
  std::vector<float> in(16);
  for (int i = 0; i < 16; ++i) in[i] = static_cast<float>(i);
  EXPECT_EQ(run(w, {in, {2}}), (std::vector<float>{0, 4, 16, 20}));
}

TEST(Reference, Conv2dDilation) {
  Workload w = parse_ok("conv2d:N=1,C=1,H=3,W=3,K=1,R=2,S=2,dilation=2");
  // Taps at the four corners: 1 + 3 + 7 + 9 with weights 1, 10, 100, 1000.
  EXPECT_EQ(run(w, {{1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 10, 100, 1000}}),
            (std::vector<float>{1 + 30 + 700 + 9000}));
}

TEST(Reference, Conv2dAsymmetricStridePad) {
  Workload w = parse_ok("conv2d:N=1,C=1,H=2,W=3,K=1,R=1,S=1,stride_w=2,pad_h=1");
  // OH = 2 + 2 = 4 (rows of padding above and below), OW = (3 - 1)/2 + 1 = 2.
  EXPECT_EQ(run(w, {{1, 2, 3, 4, 5, 6}, {1}}), (std::vector<float>{0, 0, 1, 3, 4, 6, 0, 0}));
}

TEST(Reference, Conv2dSumsChannels) {
  Workload w = parse_ok("conv2d:N=1,C=2,H=1,W=2,K=2,R=1,S=1");
  // out[k] = sum_c W[k,c] * in[c]; in = [[1,2],[3,4]].
  EXPECT_EQ(run(w, {{1, 2, 3, 4}, {1, 1, 2, -1}}), (std::vector<float>{4, 6, -1, 0}));
}

TEST(Reference, GroupedConvEqualsSeparateConvs) {
  Workload grouped = parse_ok("conv2d:N=2,C=4,H=6,W=5,K=6,R=3,S=2,stride=1,pad=1,groups=2");
  Workload half = parse_ok("conv2d:N=2,C=2,H=6,W=5,K=3,R=3,S=2,stride=1,pad=1");
  auto inputs = random_inputs(grouped, 7);
  std::vector<float> out = run(grouped, inputs);

  const int64_t hw = 6 * 5, ohw = half.out_height() * half.out_width(), rs = 3 * 2;
  for (int g = 0; g < 2; ++g) {
    std::vector<float> in_g, w_g;
    for (int n = 0; n < 2; ++n) {
      auto begin = inputs[0].begin() + (n * 4 + g * 2) * hw;
      in_g.insert(in_g.end(), begin, begin + 2 * hw);
    }
    // Weights [K=6, C/g=2, 3, 2]: group g owns output channels 3g..3g+2.
    auto wbegin = inputs[1].begin() + g * 3 * 2 * rs;
    w_g.assign(wbegin, wbegin + 3 * 2 * rs);
    std::vector<float> out_g = run(half, {in_g, w_g});
    for (int n = 0; n < 2; ++n) {
      for (int64_t i = 0; i < 3 * ohw; ++i) {
        EXPECT_FLOAT_EQ(out[(n * 6 + g * 3) * ohw + i], out_g[n * 3 * ohw + i]) << g << " " << i;
      }
    }
  }
}

TEST(Reference, NhwcEqualsNchwAfterTransposing) {
  for (const char* shape : {"N=2,C=4,H=7,W=6,K=6,R=3,S=2,stride=2,pad=1",
                            "N=1,C=6,H=5,W=5,K=4,R=3,S=3,stride=1,pad=2,dilation=2,groups=2"}) {
    Workload nchw = parse_ok(std::string("conv2d:") + shape);
    Workload nhwc = parse_ok(std::string("conv2d:") + shape + ",layout=NHWC");
    auto inputs = random_inputs(nchw, 11);
    const int64_t cpg = nchw.in_channels / nchw.groups;
    std::vector<float> expected = run(nchw, inputs);
    std::vector<float> actual =
        run(nhwc, {nchw_to_nhwc(inputs[0], nchw.batch_n, nchw.in_channels, nchw.height, nchw.width),
                   oihw_to_hwio(inputs[1], nchw.out_channels, cpg, nchw.kernel_h, nchw.kernel_w)});
    std::vector<float> expected_nhwc = nchw_to_nhwc(expected, nchw.batch_n, nchw.out_channels,
                                                    nchw.out_height(), nchw.out_width());
    ASSERT_EQ(actual.size(), expected_nhwc.size());
    EXPECT_EQ(max_relative_error(actual.data(), expected_nhwc.data(), actual.size()), 0) << shape;
  }
}

TEST(Reference, DepthwiseHandComputed) {
  Workload w = parse_ok("depthwise_conv2d:N=1,C=2,H=2,W=2,R=1,S=1");
  // Channel c is scaled by W[c]: channel 0 by 2, channel 1 by -1.
  EXPECT_EQ(run(w, {{1, 2, 3, 4, 5, 6, 7, 8}, {2, -1}}),
            (std::vector<float>{2, 4, 6, 8, -5, -6, -7, -8}));
  Workload nhwc = parse_ok("depthwise_conv2d:N=1,C=2,H=2,W=2,R=1,S=1,layout=NHWC");
  EXPECT_EQ(run(nhwc, {{1, 5, 2, 6, 3, 7, 4, 8}, {2, -1}}),
            (std::vector<float>{2, -5, 4, -6, 6, -7, 8, -8}));
}

TEST(Reference, DepthwiseEqualsGroupedConvWithGroupsC) {
  for (const char* layout : {"NCHW", "NHWC"}) {
    const std::string shape =
        "N=2,C=5,H=9,W=8,R=3,S=3,stride=2,pad=1,layout=" + std::string(layout);
    Workload dw = parse_ok("depthwise_conv2d:" + shape);
    Workload grouped = parse_ok("conv2d:" + shape + ",K=5,groups=5");
    ASSERT_EQ(dw.output_shape(), grouped.output_shape());
    ASSERT_EQ(num_elements(dw.input_shapes()[1]), num_elements(grouped.input_shapes()[1]));
    auto inputs = random_inputs(dw, 3);
    std::vector<float> a = run(dw, inputs);
    std::vector<float> b = run(grouped, inputs);
    EXPECT_EQ(max_relative_error(a.data(), b.data(), a.size()), 0) << layout;
  }
}

TEST(Reference, ThreadsGiveTheSameAnswer) {
  for (const char* text :
       {"matmul:M=17,N=9,K=13", "batch_matmul:B=3,M=5,N=7,K=4", "dense:M=5,N=6,K=7,bias=1,act=relu",
        "conv2d:N=1,C=3,H=9,W=7,K=5,R=3,S=3,stride=1,pad=1",
        "conv2d:N=2,C=4,H=6,W=6,K=4,R=3,S=3,stride=2,pad=1,layout=NHWC,groups=2",
        "depthwise_conv2d:N=1,C=3,H=5,W=5,R=3,S=3,stride=1,pad=1"}) {
    Workload w = parse_ok(text);
    auto inputs = random_inputs(w, 5);
    std::vector<float> one = run(w, inputs, 1);
    for (int threads : {2, 3, 64}) {
      std::vector<float> many = run(w, inputs, threads);
      EXPECT_EQ(one, many) << text << " threads=" << threads;
    }
  }
}

TEST(MaxRelativeError, Definition) {
  std::vector<float> expected = {1, -4, 2};
  std::vector<float> same = expected;
  EXPECT_EQ(max_relative_error(same.data(), expected.data(), 3), 0);
  std::vector<float> off = {1, -4, 2.5f};
  EXPECT_DOUBLE_EQ(max_relative_error(off.data(), expected.data(), 3), 0.5 / 4);
  EXPECT_EQ(max_relative_error(off.data(), expected.data(), 0), 0);
  std::vector<float> zeros = {0, 0}, tiny = {0, 1e-3f};
  EXPECT_GT(max_relative_error(tiny.data(), zeros.data(), 2), 1e6);
}

TEST(MaxRelativeError, NanAndInfinityAreNeverClose) {
  std::vector<float> expected = {1, 2};
  std::vector<float> nan = {1, std::nanf("")};
  std::vector<float> inf = {std::numeric_limits<float>::infinity(), 2};
  EXPECT_TRUE(std::isinf(max_relative_error(nan.data(), expected.data(), 2)));
  EXPECT_TRUE(std::isinf(max_relative_error(inf.data(), expected.data(), 2)));
}

}  // namespace
}  // namespace kiln::core
