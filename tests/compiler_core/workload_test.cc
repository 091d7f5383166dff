#include "compiler_core/te/workload.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kiln::core {
namespace {

using ::testing::HasSubstr;

Workload parse_ok(std::string_view text) {
  Result<Workload> w = parse_workload(text);
  EXPECT_TRUE(w.is_ok()) << text << ": " << w.status().to_string();
  return w.is_ok() ? *w : Workload{};
}

/// Expects `text` to fail with InvalidArgument and a message containing `substring`.
void expect_error(std::string_view text, std::string_view substring,
                  const WorkloadLimits& limits = {}) {
  Result<Workload> w = parse_workload(text, limits);
  ASSERT_FALSE(w.is_ok()) << text << " parsed as " << w->canonical();
  EXPECT_EQ(w.status().code(), StatusCode::kInvalidArgument) << text;
  EXPECT_THAT(w.status().message(), HasSubstr(std::string(substring))) << text;
  EXPECT_EQ(w.status().message().find('\n'), std::string::npos) << "one line: " << text;
  ASSERT_FALSE(w.status().message().empty());
  EXPECT_TRUE(std::islower(static_cast<unsigned char>(w.status().message()[0])))
      << w.status().message();
}

TEST(ParseWorkload, Matmul) {
  Workload w = parse_ok("matmul:M=1024,N=512,K=256");
  EXPECT_EQ(w.op, OpKind::kMatmul);
  EXPECT_EQ(w.m, 1024);
  EXPECT_EQ(w.n, 512);
  EXPECT_EQ(w.k, 256);
  EXPECT_EQ(w.input_shapes(), (std::vector<Shape>{{1024, 256}, {256, 512}}));
  EXPECT_EQ(w.output_shape(), (Shape{1024, 512}));
}

TEST(ParseWorkload, DenseWithBiasAndRelu) {
  Workload w = parse_ok("dense:M=1,N=1000,K=2048,bias=1,act=relu");
  EXPECT_EQ(w.op, OpKind::kDense);
  EXPECT_TRUE(w.bias);
  EXPECT_EQ(w.act, Activation::kRelu);
  EXPECT_EQ(w.input_shapes(), (std::vector<Shape>{{1, 2048}, {1000, 2048}, {1000}}));
  EXPECT_EQ(w.output_shape(), (Shape{1, 1000}));

  Workload plain = parse_ok("dense:M=4,N=8,K=16");
  EXPECT_FALSE(plain.bias);
  EXPECT_EQ(plain.act, Activation::kNone);
  EXPECT_EQ(plain.input_shapes().size(), 2u);
}

TEST(ParseWorkload, ConvEpilogueInputsFollowTheOperatorsOwn) {
  Workload w = parse_ok("conv2d:N=1,C=4,H=8,W=8,K=6,R=3,S=3,pad=1,bias=1,residual=1,act=relu6");
  EXPECT_TRUE(w.bias);
  EXPECT_TRUE(w.residual);
  EXPECT_EQ(w.act, Activation::kRelu6);
  EXPECT_TRUE(w.has_epilogue());
  EXPECT_EQ(w.input_shapes(), (std::vector<Shape>{{1, 4, 8, 8}, {6, 4, 3, 3}, {6}, {1, 6, 8, 8}}));
  EXPECT_EQ(w.operator_input_shapes(), (std::vector<Shape>{{1, 4, 8, 8}, {6, 4, 3, 3}}));
  EXPECT_EQ(w.output_shape(), (Shape{1, 6, 8, 8}));

  // The residual has the output's layout; bias alone, residual alone.
  Workload nhwc = parse_ok("conv2d:N=2,C=4,H=5,W=5,K=8,R=1,S=1,layout=NHWC,residual=1");
  EXPECT_FALSE(nhwc.bias);
  EXPECT_EQ(nhwc.act, Activation::kNone);
  EXPECT_EQ(nhwc.input_shapes(), (std::vector<Shape>{{2, 5, 5, 4}, {1, 1, 4, 8}, {2, 5, 5, 8}}));
  Workload depthwise = parse_ok("depthwise_conv2d:N=1,C=16,H=9,W=9,R=3,S=3,bias=1,act=hardswish");
  EXPECT_EQ(depthwise.act, Activation::kHardSwish);
  EXPECT_EQ(depthwise.input_shapes(), (std::vector<Shape>{{1, 16, 9, 9}, {16, 1, 3, 3}, {16}}));

  Workload plain = parse_ok("conv2d:N=1,C=4,H=8,W=8,K=6,R=3,S=3,bias=0,residual=0,act=none");
  EXPECT_FALSE(plain.has_epilogue());
  EXPECT_EQ(plain.input_shapes().size(), 2u);
}

TEST(ParseWorkload, DenseResidualAndSigmoid) {
  Workload w = parse_ok("dense:M=2,N=3,K=4,bias=1,residual=1,act=sigmoid");
  EXPECT_EQ(w.act, Activation::kSigmoid);
  EXPECT_EQ(w.input_shapes(), (std::vector<Shape>{{2, 4}, {3, 4}, {3}, {2, 3}}));
  EXPECT_EQ(parse_ok("dense:M=2,N=3,K=4,residual=1").input_shapes(),
            (std::vector<Shape>{{2, 4}, {3, 4}, {2, 3}}));
}

TEST(ParseWorkload, BatchMatmul) {
  Workload w = parse_ok("batch_matmul:B=12,M=128,N=64,K=32");
  EXPECT_EQ(w.op, OpKind::kBatchMatmul);
  EXPECT_EQ(w.batch, 12);
  EXPECT_EQ(w.input_shapes(), (std::vector<Shape>{{12, 128, 32}, {12, 32, 64}}));
  EXPECT_EQ(w.output_shape(), (Shape{12, 128, 64}));
}

TEST(ParseWorkload, Conv2dNchw) {
  Workload w = parse_ok("conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1");
  EXPECT_EQ(w.op, OpKind::kConv2d);
  EXPECT_EQ(w.batch_n, 1);
  EXPECT_EQ(w.in_channels, 64);
  EXPECT_EQ(w.out_channels, 64);
  EXPECT_EQ(w.stride_h, 1);
  EXPECT_EQ(w.pad_w, 1);
  EXPECT_EQ(w.groups, 1);
  EXPECT_EQ(w.layout, Layout::kNCHW);
  EXPECT_EQ(w.out_height(), 56);
  EXPECT_EQ(w.out_width(), 56);
  EXPECT_EQ(w.input_shapes(), (std::vector<Shape>{{1, 64, 56, 56}, {64, 64, 3, 3}}));
  EXPECT_EQ(w.output_shape(), (Shape{1, 64, 56, 56}));
}

TEST(ParseWorkload, Conv2dNhwcPerAxisGroupsDilation) {
  Workload w = parse_ok(
      "conv2d:N=2,C=8,H=20,W=30,K=12,R=3,S=5,stride_h=2,stride_w=1,pad_h=1,pad_w=2,"
      "dilation_h=2,dilation_w=1,groups=4,layout=NHWC,dtype=float32");
  EXPECT_EQ(w.stride_h, 2);
  EXPECT_EQ(w.stride_w, 1);
  EXPECT_EQ(w.pad_h, 1);
  EXPECT_EQ(w.pad_w, 2);
  EXPECT_EQ(w.dilation_h, 2);
  EXPECT_EQ(w.dilation_w, 1);
  EXPECT_EQ(w.groups, 4);
  EXPECT_EQ(w.layout, Layout::kNHWC);
  // OH = (20 + 2 - 2*2 - 1)/2 + 1 = 9; OW = (30 + 4 - 4 - 1)/1 + 1 = 30.
  EXPECT_EQ(w.out_height(), 9);
  EXPECT_EQ(w.out_width(), 30);
  EXPECT_EQ(w.input_shapes(), (std::vector<Shape>{{2, 20, 30, 8}, {3, 5, 2, 12}}));
  EXPECT_EQ(w.output_shape(), (Shape{2, 9, 30, 12}));
}

TEST(ParseWorkload, DepthwiseConv2d) {
  Workload w = parse_ok("depthwise_conv2d:N=1,C=256,H=28,W=28,R=3,S=3,stride=1,pad=1");
  EXPECT_EQ(w.op, OpKind::kDepthwiseConv2d);
  EXPECT_EQ(w.out_channels, 256);
  EXPECT_EQ(w.groups, 256);
  EXPECT_EQ(w.input_shapes(), (std::vector<Shape>{{1, 256, 28, 28}, {256, 1, 3, 3}}));
  EXPECT_EQ(w.output_shape(), (Shape{1, 256, 28, 28}));

  Workload nhwc = parse_ok(
      "depthwise_conv2d:N=1,C=32,H=14,W=14,R=3,S=3,stride=2,pad=1,dilation=1,"
      "layout=NHWC");
  EXPECT_EQ(nhwc.input_shapes(), (std::vector<Shape>{{1, 14, 14, 32}, {3, 3, 32, 1}}));
  EXPECT_EQ(nhwc.output_shape(), (Shape{1, 7, 7, 32}));
}

TEST(ParseWorkload, DesignExamplesAreCanonical) {
  for (const char* text : {"matmul:M=1024,N=1024,K=1024", "dense:M=1,N=1000,K=2048,bias=1,act=relu",
                           "batch_matmul:B=12,M=128,N=128,K=64",
                           "conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1",
                           "depthwise_conv2d:N=1,C=256,H=28,W=28,R=3,S=3,stride=1,pad=1"}) {
    EXPECT_EQ(parse_ok(text).canonical(), text);
  }
}

TEST(ParseWorkload, CanonicalRoundTrips) {
  for (const char* text : {
           "matmul:M=3,N=5,K=7",
           "dense:M=2,N=3,K=4,bias=1",
           "dense:M=2,N=3,K=4,act=relu",
           "batch_matmul:B=2,M=3,N=4,K=5",
           "conv2d:N=1,C=4,H=9,W=11,K=6,R=3,S=2,stride_h=2,stride_w=3,pad_h=0,pad_w=1,"
           "dilation_h=1,dilation_w=2,groups=2,layout=NHWC",
           "conv2d:N=2,C=3,H=7,W=7,K=5,R=3,S=3,dilation=2",
           "depthwise_conv2d:N=1,C=8,H=9,W=9,R=3,S=3,stride=2,pad_h=1,pad_w=0,layout=NHWC",
           "dense:M=2,N=3,K=4,bias=1,residual=1,act=hardswish",
           "conv2d:N=1,C=4,H=8,W=8,K=6,R=3,S=3,stride=1,pad=1,bias=1,act=relu",
           "conv2d:N=1,C=4,H=8,W=8,K=6,R=1,S=1,stride=1,pad=0,layout=NHWC,residual=1,act=relu6",
           "depthwise_conv2d:N=1,C=8,H=9,W=9,R=3,S=3,stride=1,pad=1,bias=1,residual=1,act=sigmoid",
       }) {
    Workload w = parse_ok(text);
    Workload again = parse_ok(w.canonical());
    EXPECT_EQ(again, w) << text << " -> " << w.canonical();
    EXPECT_EQ(again.canonical(), w.canonical());
  }
}

TEST(ParseWorkload, SpellingsOfOneWorkloadShareTheCanonicalString) {
  const std::string expected = "conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1";
  for (const char* text : {
           "conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1",
           "conv2d:K=64,S=3,R=3,W=56,H=56,C=64,N=1,pad=1",
           "conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,pad_h=1,pad_w=1,stride_h=1,stride_w=1",
           "conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,pad=1,dilation=1,groups=1,layout=NCHW,"
           "dtype=float32",
       }) {
    EXPECT_EQ(parse_ok(text).canonical(), expected) << text;
  }
  EXPECT_EQ(parse_ok("conv2d:N=1,C=4,H=8,W=8,K=4,R=3,S=3").canonical(),
            "conv2d:N=1,C=4,H=8,W=8,K=4,R=3,S=3,stride=1,pad=0");
  EXPECT_EQ(parse_ok("dense:act=none,bias=0,K=3,N=2,M=1,dtype=float32").canonical(),
            "dense:M=1,N=2,K=3");
  EXPECT_EQ(parse_ok("matmul:K=3,M=1,N=2").canonical(), "matmul:M=1,N=2,K=3");
  // The epilogue's keys come last, in the order bias, residual, act; defaults are left out, so
  // the strings (and tuning-log keys) of workloads without an epilogue do not change.
  EXPECT_EQ(parse_ok("conv2d:act=relu,residual=1,bias=1,N=1,C=4,H=8,W=8,K=4,R=3,S=3").canonical(),
            "conv2d:N=1,C=4,H=8,W=8,K=4,R=3,S=3,stride=1,pad=0,bias=1,residual=1,act=relu");
  EXPECT_EQ(
      parse_ok("depthwise_conv2d:N=1,C=4,H=8,W=8,R=3,S=3,bias=0,residual=0,act=none").canonical(),
      "depthwise_conv2d:N=1,C=4,H=8,W=8,R=3,S=3,stride=1,pad=0");
  EXPECT_EQ(parse_ok("dense:M=1,N=2,K=3,act=relu,bias=1").canonical(),
            "dense:M=1,N=2,K=3,bias=1,act=relu");
  EXPECT_EQ(
      parse_ok("conv2d:N=1,C=4,H=8,W=8,K=4,R=3,S=3,dilation_h=2,dilation_w=2,pad=2").canonical(),
      "conv2d:N=1,C=4,H=8,W=8,K=4,R=3,S=3,stride=1,pad=2,dilation=2");
}

TEST(ParseWorkload, Flops) {
  EXPECT_DOUBLE_EQ(parse_ok("matmul:M=2,N=3,K=4").flops(), 48);
  EXPECT_DOUBLE_EQ(parse_ok("dense:M=2,N=3,K=4,bias=1,act=relu").flops(), 48);
  EXPECT_DOUBLE_EQ(parse_ok("batch_matmul:B=5,M=2,N=3,K=4").flops(), 240);
  EXPECT_DOUBLE_EQ(parse_ok("matmul:M=1024,N=1024,K=1024").flops(), 2.0 * (1 << 30));
  // 2 * N*K*OH*OW * C/groups * R*S = 2 * 1*64*56*56 * 64 * 9.
  EXPECT_DOUBLE_EQ(parse_ok("conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1").flops(),
                   2.0 * 64 * 56 * 56 * 64 * 9);
  EXPECT_DOUBLE_EQ(parse_ok("conv2d:N=2,C=8,H=5,W=5,K=4,R=3,S=3,groups=2").flops(),
                   2.0 * 2 * 4 * 3 * 3 * 4 * 9);
  EXPECT_DOUBLE_EQ(parse_ok("depthwise_conv2d:N=1,C=256,H=28,W=28,R=3,S=3,stride=2,pad=1").flops(),
                   2.0 * 256 * 14 * 14 * 9);
}

TEST(ParseWorkloadErrors, EmptyAndMissingColon) {
  expect_error("", "empty workload string");
  expect_error("   ", "empty workload string");
  expect_error("matmul", "has no ':'");
  expect_error("matmul M=1,N=2,K=3", "expected OP:KEY=VALUE");
}

TEST(ParseWorkloadErrors, UnknownOperatorListsKnownOnes) {
  expect_error("conv3d:N=1", "unknown operator 'conv3d'");
  expect_error("conv3d:N=1", "matmul, dense, batch_matmul, conv2d, depthwise_conv2d");
  expect_error("Matmul:M=1,N=1,K=1", "unknown operator 'Matmul'");
}

TEST(ParseWorkloadErrors, UnknownKeyListsAcceptedKeys) {
  expect_error("matmul:M=1,N=2,K=3,B=4", "unknown key 'B' for matmul");
  expect_error("matmul:M=1,N=2,K=3,B=4", "accepted keys: M, N, K, dtype");
  expect_error("matmul:m=1,N=2,K=3", "unknown key 'm'");
  expect_error("dense:M=1,N=2,K=3,layout=NHWC", "unknown key 'layout' for dense");
  expect_error("depthwise_conv2d:N=1,C=4,H=8,W=8,K=4,R=3,S=3", "unknown key 'K'");
  expect_error("depthwise_conv2d:N=1,C=4,H=8,W=8,R=3,S=3,groups=4", "unknown key 'groups'");
  // Only dense and the convolutions have an epilogue.
  expect_error("matmul:M=1,N=2,K=3,bias=1", "unknown key 'bias' for matmul");
  expect_error("batch_matmul:B=1,M=1,N=2,K=3,act=relu", "unknown key 'act' for batch_matmul");
  expect_error("conv2d:N=1,C=4,H=8,W=8,K=4,R=3,S=3,bias=1,bias=1", "repeated key 'bias'");
}

TEST(ParseWorkloadErrors, MalformedItems) {
  expect_error("matmul:M=1,,N=2,K=3", "malformed item ''");
  expect_error("matmul:M=1,N=2,K=3,", "ends with ','");
  expect_error("matmul:M=1,N,K=3", "malformed item 'N'");
  expect_error("matmul:M=1,=2,K=3", "malformed item '=2'");
}

TEST(ParseWorkloadErrors, RepeatedKey) {
  expect_error("matmul:M=1,N=2,K=3,M=4", "repeated key 'M'");
  expect_error("conv2d:N=1,C=4,H=8,W=8,K=4,R=3,S=3,stride=1,stride_h=2",
               "sets both stride and stride_h");
  expect_error("conv2d:N=1,C=4,H=8,W=8,K=4,R=3,S=3,pad_w=1,pad=2", "sets both pad and pad_w");
}

TEST(ParseWorkloadErrors, MissingRequiredKey) {
  expect_error("matmul:M=1,N=2", "missing required key 'K' for matmul");
  expect_error("matmul:", "missing required key 'M'");
  expect_error("batch_matmul:M=1,N=2,K=3", "missing required key 'B'");
  expect_error("conv2d:N=1,C=4,H=8,W=8,R=3,S=3", "required keys: N, C, H, W, K, R, S");
}

TEST(ParseWorkloadErrors, NonIntegerValue) {
  expect_error("matmul:M=abc,N=2,K=3", "value 'abc' of key M is not an integer");
  expect_error("matmul:M=1.5,N=2,K=3", "not an integer");
  expect_error("matmul:M=,N=2,K=3", "value '' of key M is not an integer");
  expect_error("matmul:M=12x,N=2,K=3", "not an integer");
  expect_error("matmul:M= 1,N=2,K=3", "not an integer");
  expect_error("matmul:M=99999999999999999999999,N=2,K=3", "largest allowed size");
}

TEST(ParseWorkloadErrors, NonPositiveSizes) {
  expect_error("matmul:M=0,N=2,K=3", "M=0 must be a positive integer");
  expect_error("matmul:M=-4,N=2,K=3", "M=-4 must be a positive integer");
  expect_error("conv2d:N=1,C=4,H=8,W=8,K=4,R=3,S=3,stride=0", "stride=0 must be a positive");
  expect_error("conv2d:N=1,C=4,H=8,W=8,K=4,R=3,S=3,dilation_w=0", "dilation_w=0 must be");
  expect_error("conv2d:N=1,C=4,H=8,W=8,K=4,R=3,S=3,pad=-1", "pad=-1 must be a non-negative");
  expect_error("conv2d:N=1,C=4,H=8,W=8,K=4,R=3,S=3,groups=0", "groups=0 must be");
  // pad=0 is fine.
  parse_ok("conv2d:N=1,C=4,H=8,W=8,K=4,R=3,S=3,pad=0");
}

TEST(ParseWorkloadErrors, KernelLargerThanPaddedInput) {
  expect_error("conv2d:N=1,C=1,H=2,W=8,K=1,R=3,S=3", "kernel R=3");
  expect_error("conv2d:N=1,C=1,H=2,W=8,K=1,R=3,S=3", "padded input has only 2");
  expect_error("conv2d:N=1,C=1,H=8,W=4,K=1,R=3,S=3,dilation=2", "kernel S=3 with dilation_w=2");
  expect_error("depthwise_conv2d:N=1,C=1,H=4,W=4,R=7,S=1,pad=1", "kernel R=7");
  // Padding makes room: 2 + 2*1 = 4 >= 3.
  parse_ok("conv2d:N=1,C=1,H=2,W=8,K=1,R=3,S=3,pad=1");
}

TEST(ParseWorkloadErrors, ChannelsNotDivisibleByGroups) {
  expect_error("conv2d:N=1,C=6,H=8,W=8,K=8,R=3,S=3,groups=4", "C=6 are not divisible by groups=4");
  expect_error("conv2d:N=1,C=8,H=8,W=8,K=6,R=3,S=3,groups=4", "K=6 are not divisible by groups=4");
}

TEST(ParseWorkloadErrors, BadChoices) {
  expect_error("matmul:M=1,N=2,K=3,dtype=float16",
               "unsupported dtype 'float16'; only float32 is supported");
  expect_error("conv2d:N=1,C=4,H=8,W=8,K=4,R=3,S=3,layout=NCWH", "unsupported layout 'NCWH'");
  expect_error("conv2d:N=1,C=4,H=8,W=8,K=4,R=3,S=3,layout=nchw", "layout=NCHW|NHWC");
  expect_error("dense:M=1,N=2,K=3,act=gelu", "act=none|relu");
  expect_error("dense:M=1,N=2,K=3,bias=2", "bias=0|1");
  expect_error("dense:M=1,N=2,K=3,act=gelu", "act=none|relu|relu6|hardswish|sigmoid");
  expect_error("conv2d:N=1,C=4,H=8,W=8,K=4,R=3,S=3,act=Relu", "unsupported act 'Relu'");
  expect_error("conv2d:N=1,C=4,H=8,W=8,K=4,R=3,S=3,bias=yes", "unsupported bias 'yes'");
  expect_error("depthwise_conv2d:N=1,C=4,H=8,W=8,R=3,S=3,residual=2", "residual=0|1");
  expect_error("depthwise_conv2d:N=1,C=4,H=8,W=8,R=3,S=3,act=", "unsupported act ''");
}

TEST(ParseWorkloadErrors, AbsurdSizes) {
  expect_error("matmul:M=100000000,N=2,K=3", "exceeds the largest allowed size 16777216");
  // Every dimension is allowed, but the buffers are not (about 4 * 2^72 bytes).
  expect_error("matmul:M=16777216,N=16777216,K=16777216", "more than the limit");
  expect_error("conv2d:N=16777216,C=16777216,H=16777216,W=16777216,K=16777216,R=1,S=1",
               "more than the limit");
  expect_error("conv2d:N=1,C=1,H=1,W=1,K=1,R=1,S=1,pad=16777216", "output size");

  WorkloadLimits small;
  small.max_total_bytes = 1000;
  small.max_dim = 100;
  // (10*10 + 10*10 + 10*10) * 4 = 1200 bytes.
  expect_error("matmul:M=10,N=10,K=10", "needs", small);
  expect_error("matmul:M=101,N=1,K=1", "exceeds the largest allowed size 100", small);
  EXPECT_TRUE(parse_workload("matmul:M=5,N=5,K=5", small).is_ok());
}

TEST(ParseWorkload, ToleratesSurroundingWhitespaceOnly) {
  EXPECT_EQ(parse_ok("  matmul:M=1,N=2,K=3\n").canonical(), "matmul:M=1,N=2,K=3");
  expect_error("matmul: M=1,N=2,K=3", "unknown key ' M'");
}

TEST(ActivationName, NamesEveryActivation) {
  EXPECT_STREQ(activation_name(Activation::kNone), "none");
  EXPECT_STREQ(activation_name(Activation::kRelu), "relu");
  EXPECT_STREQ(activation_name(Activation::kRelu6), "relu6");
  EXPECT_STREQ(activation_name(Activation::kHardSwish), "hardswish");
  EXPECT_STREQ(activation_name(Activation::kSigmoid), "sigmoid");
}

TEST(OpName, NamesEveryOp) {
  EXPECT_STREQ(op_name(OpKind::kMatmul), "matmul");
  EXPECT_STREQ(op_name(OpKind::kDense), "dense");
  EXPECT_STREQ(op_name(OpKind::kBatchMatmul), "batch_matmul");
  EXPECT_STREQ(op_name(OpKind::kConv2d), "conv2d");
  EXPECT_STREQ(op_name(OpKind::kDepthwiseConv2d), "depthwise_conv2d");
}

TEST(NumElements, ProductOfDims) {
  EXPECT_EQ(num_elements({}), 1);
  EXPECT_EQ(num_elements({2, 3, 4}), 24);
  EXPECT_EQ(num_elements({5, 0}), 0);
}

}  // namespace
}  // namespace kiln::core
