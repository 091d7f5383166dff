/// \file
/// Workloads: an operator and its shape, parsed from the strings of DESIGN.md
/// (`matmul:M=1024,N=1024,K=1024`, `conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1`).
///
/// Tensor layouts (row-major, float32) that kernels, references and callers agree on:
/// - matmul:           A[M,K], B[K,N]                 -> C[M,N]
/// - dense:            X[M,K], W[N,K], bias[N] (bias=1) -> Y[M,N] = act(X·Wᵀ + bias)
/// - batch_matmul:     A[B,M,K], B[B,K,N]             -> C[B,M,N]
/// - conv2d NCHW:      I[N,C,H,W], W[K,C/groups,R,S]   -> O[N,K,OH,OW]
/// - conv2d NHWC:      I[N,H,W,C], W[R,S,C/groups,K]   -> O[N,OH,OW,K]
/// - depthwise_conv2d: NCHW I[N,C,H,W], W[C,1,R,S] -> O[N,C,OH,OW];
///                     NHWC I[N,H,W,C], W[R,S,C,1] -> O[N,OH,OW,C]
/// with OH = (H + 2·pad − dilation·(R−1) − 1) / stride + 1 (likewise OW with W, S).
///
/// Fused epilogues (dense, conv2d, depthwise_conv2d): `bias=1` adds an input bias[K] (bias[N]
/// of dense), one value per output channel (per output column of dense); `residual=1` adds an
/// input R of the output's shape and layout, element by element; `act=` applies an activation
/// last: out = act(sum + bias + R). Activations: relu max(x,0); relu6 min(max(x,0),6) (ONNX
/// Clip(0,6)); hardswish x·min(max(x+3,0),6)/6; sigmoid 1/(1+exp(−x)). The extra inputs follow
/// the operator's own: I, W, then bias (if any), then R (if any); the output is last, e.g.
/// `conv2d:...,bias=1,residual=1,act=relu` takes I, W, bias[K], R[N,K,OH,OW] -> O[N,K,OH,OW].
/// A convolution followed by BatchNorm folds the norm into W and bias before it gets here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "compiler_core/support/status.h"

namespace kiln::core {

enum class OpKind { kMatmul, kDense, kBatchMatmul, kConv2d, kDepthwiseConv2d };

enum class Layout { kNCHW, kNHWC };

/// The activation of an epilogue (see the file comment for each formula).
enum class Activation { kNone, kRelu, kRelu6, kHardSwish, kSigmoid };

/// The shape of one tensor, outermost dimension first.
using Shape = std::vector<int64_t>;

/// Elements in `shape` (1 for a scalar).
int64_t num_elements(const Shape& shape);

/// A parsed, validated workload. Fields that do not apply to the operator keep their defaults.
struct Workload {
  OpKind op = OpKind::kMatmul;
  // matmul / dense / batch_matmul
  int64_t batch = 1;  ///< B of batch_matmul
  int64_t m = 0, n = 0, k = 0;
  // The epilogue of dense, conv2d and depthwise_conv2d (see the file comment).
  bool bias = false;                   ///< a bias input, one value per output channel
  bool residual = false;               ///< an input of the output's shape added to it
  Activation act = Activation::kNone;  ///< applied last
  // conv2d / depthwise_conv2d
  int64_t batch_n = 0;  ///< N of a convolution
  int64_t in_channels = 0, height = 0, width = 0;
  int64_t out_channels = 0;  ///< K of conv2d; equals in_channels for depthwise
  int64_t kernel_h = 0, kernel_w = 0;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  Layout layout = Layout::kNCHW;

  int64_t out_height() const;
  int64_t out_width() const;

  /// Shapes of the inputs in call order (see the file comment): the operator's own, then
  /// the epilogue's bias and residual where present.
  std::vector<Shape> input_shapes() const;
  /// Shapes of the operator's own inputs only (A, B / X, W / I, W).
  std::vector<Shape> operator_input_shapes() const;
  Shape output_shape() const;

  /// Whether a bias, a residual or an activation follows the main computation.
  bool has_epilogue() const { return bias || residual || act != Activation::kNone; }

  /// Floating-point operations of one run (2 per multiply-add; padding taps included; the
  /// epilogue's few operations per output element are not counted).
  double flops() const;

  /// The canonical string: keys in a fixed order, defaults left out, so that two spellings of
  /// the same workload give the same string (it keys the tuning log).
  std::string canonical() const;

  /// Field-by-field equality; parse_workload(w.canonical()) == w for every parsed w.
  bool operator==(const Workload&) const = default;
};

/// Limits that keep a workload from asking for absurd memory or work.
struct WorkloadLimits {
  int64_t max_total_bytes = int64_t{8} << 30;  ///< inputs + output, float32
  int64_t max_dim = int64_t{1} << 24;          ///< any one size
};

/// Parses `text` as `OP:KEY=VALUE,...`. Errors (InvalidArgument, one line each): unknown
/// operator, unknown or repeated key, missing required key, non-integer or non-positive size,
/// kernel larger than the padded input, channels not divisible by groups, buffers beyond
/// `limits`, a `bias=`/`residual=` other than 0|1, an unknown `act=`. `stride=`, `pad=`,
/// `dilation=` set both axes; `stride_h=` etc. set one.
Result<Workload> parse_workload(std::string_view text, const WorkloadLimits& limits = {});

const char* op_name(OpKind op);

/// The spelling of `act` in workload strings (`none`, `relu`, `relu6`, `hardswish`, `sigmoid`).
const char* activation_name(Activation act);

}  // namespace kiln::core
