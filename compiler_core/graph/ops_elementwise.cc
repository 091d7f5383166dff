// The elementwise operators: Add, Sub, Mul, Div with numpy broadcasting (float32 and int64, since
// exporters compute shapes with them), the activations, Clip, Softmax, Identity and Dropout at
// inference.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include "compiler_core/graph/ops_common_internal.h"
#include "compiler_core/graph/ops_internal.h"

namespace kiln::graph::ops_internal {
namespace {

// ---- Add, Sub, Mul, Div ------------------------------------------------------------------------

enum class Binary { kAdd, kSub, kMul, kDiv };

Result<std::vector<TensorInfo>> infer_binary(const Node& node, const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* a, required_input(node, context, 0, "A"));
  KILN_ASSIGN_OR_RETURN(const TensorInfo* b, required_input(node, context, 1, "B"));
  if (a->dtype != b->dtype) {
    return node_error(node, std::string("inputs have different dtypes ") + dtype_name(a->dtype) +
                                " and " + dtype_name(b->dtype) + " (insert a Cast)");
  }
  KILN_ASSIGN_OR_RETURN(Shape shape, broadcast_shapes(node, a->shape, b->shape));
  return std::vector<TensorInfo>{{a->dtype, shape}};
}

template <Binary K, typename T>
Status binary_loop(const Node& node, const TensorView& a, const TensorView& b,
                   const TensorView& out) {
  const T* pa = view_data<T>(a);
  const T* pb = view_data<T>(b);
  T* po = view_data_mut<T>(out);
  bool failed = false;
  auto apply = [&](T x, T y) -> T {
    if constexpr (K == Binary::kAdd) return x + y;
    if constexpr (K == Binary::kSub) return x - y;
    if constexpr (K == Binary::kMul) return x * y;
    if constexpr (K == Binary::kDiv) {
      if constexpr (std::is_integral_v<T>) {
        // ONNX integer division truncates toward zero, as C++ does; zero has no result.
        if (y == 0) {
          failed = true;
          return 0;
        }
      }
      return x / y;
    }
  };
  const int64_t n = out.info.num_elements();
  if (a.info.shape == out.info.shape && b.info.shape == out.info.shape) {
    for (int64_t i = 0; i < n; ++i) po[i] = apply(pa[i], pb[i]);
  } else if (a.info.shape == out.info.shape && b.info.num_elements() == 1) {
    const T y = pb[0];
    for (int64_t i = 0; i < n; ++i) po[i] = apply(pa[i], y);
  } else {
    std::array<std::vector<int64_t>, 2> strides = {broadcast_strides(a.info.shape, out.info.shape),
                                                   broadcast_strides(b.info.shape, out.info.shape)};
    walk_strided<2>(
        out.info.shape, strides, {0, 0},
        [&](int64_t i, const std::array<int64_t, 2>& o) { po[i] = apply(pa[o[0]], pb[o[1]]); });
  }
  if (failed) return node_error(node, "integer division by zero");
  return Status::ok();
}

template <Binary K>
Status compute_binary(const Node& node, const InferContext&, std::span<const TensorView> inputs,
                      std::span<const TensorView> outputs) {
  return dispatch_dtype(outputs[0].info.dtype, [&](auto tag) {
    return binary_loop<K, decltype(tag)>(node, inputs[0], inputs[1], outputs[0]);
  });
}

// ---- Unary activations -------------------------------------------------------------------------

enum class Unary { kRelu, kSigmoid, kHardSigmoid, kHardSwish, kTanh };

template <Unary K>
Result<std::vector<TensorInfo>> infer_unary(const Node& node, const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* x, required_input(node, context, 0, "X"));
  // Relu is defined on int64 too (opset 14); the others are float functions.
  if (K != Unary::kRelu && x->dtype != DType::kFloat32) {
    return node_error(node, std::string("input dtype ") + dtype_name(x->dtype) +
                                " is not supported (float32 only)");
  }
  if constexpr (K == Unary::kHardSigmoid) {
    KILN_ASSIGN_OR_RETURN(float alpha, float_attr(node, "alpha", 0.2f));
    KILN_ASSIGN_OR_RETURN(float beta, float_attr(node, "beta", 0.5f));
    (void)alpha;
    (void)beta;
  }
  return std::vector<TensorInfo>{*x};
}

template <Unary K>
Status compute_unary(const Node& node, const InferContext&, std::span<const TensorView> inputs,
                     std::span<const TensorView> outputs) {
  const int64_t n = outputs[0].info.num_elements();
  if (outputs[0].info.dtype == DType::kInt64) {  // Relu only
    const int64_t* x = inputs[0].i64();
    int64_t* y = outputs[0].i64();
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] < 0 ? 0 : x[i];
    return Status::ok();
  }
  const float* x = inputs[0].f32();
  float* y = outputs[0].f32();
  if constexpr (K == Unary::kRelu) {
    // Written so that NaN passes through, as numpy's maximum does.
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] < 0.0f ? 0.0f : x[i];
  } else if constexpr (K == Unary::kSigmoid) {
    for (int64_t i = 0; i < n; ++i) {
      // Two forms so that exp never overflows.
      float v = x[i];
      if (v >= 0) {
        y[i] = 1.0f / (1.0f + std::exp(-v));
      } else {
        float e = std::exp(v);
        y[i] = e / (1.0f + e);
      }
    }
  } else if constexpr (K == Unary::kHardSigmoid) {
    KILN_ASSIGN_OR_RETURN(const float alpha, float_attr(node, "alpha", 0.2f));
    KILN_ASSIGN_OR_RETURN(const float beta, float_attr(node, "beta", 0.5f));
    for (int64_t i = 0; i < n; ++i) y[i] = std::clamp(alpha * x[i] + beta, 0.0f, 1.0f);
  } else if constexpr (K == Unary::kHardSwish) {
    for (int64_t i = 0; i < n; ++i) {
      y[i] = x[i] * std::clamp(x[i] / 6.0f + 0.5f, 0.0f, 1.0f);
    }
  } else if constexpr (K == Unary::kTanh) {
    for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
  }
  return Status::ok();
}

// ---- Clip --------------------------------------------------------------------------------------

// The bounds of a Clip node: attributes before opset 11, constant optional inputs from 11 on;
// std::nullopt for an absent bound.
struct ClipBounds {
  std::optional<double> lo;
  std::optional<double> hi;
};

Result<ClipBounds> clip_bounds(const Node& node, const InferContext& context, DType dtype) {
  ClipBounds bounds;
  if (context.opset < 11) {
    if (node.attr("min") != nullptr) {
      KILN_ASSIGN_OR_RETURN(float lo, float_attr(node, "min", 0.0f));
      bounds.lo = lo;
    }
    if (node.attr("max") != nullptr) {
      KILN_ASSIGN_OR_RETURN(float hi, float_attr(node, "max", 0.0f));
      bounds.hi = hi;
    }
    return bounds;
  }
  if (node.attr("min") != nullptr || node.attr("max") != nullptr) {
    return node_error(node, "attributes 'min' and 'max' are not supported in opset " +
                                std::to_string(context.opset) +
                                " (from opset 11 they are inputs 1 and 2)");
  }
  const char* names[2] = {"min", "max"};
  for (size_t i = 1; i <= 2; ++i) {
    KILN_ASSIGN_OR_RETURN(const Tensor* value, constant_operand(node, context, i, names[i - 1]));
    if (value == nullptr) continue;
    if (value->info.dtype != dtype) {
      return node_error(node, std::string("'") + names[i - 1] + "' is " + to_string(value->info) +
                                  ", the input is " + dtype_name(dtype));
    }
    KILN_ASSIGN_OR_RETURN(double v, scalar_operand(node, *value, names[i - 1]));
    (i == 1 ? bounds.lo : bounds.hi) = v;
  }
  return bounds;
}

Result<std::vector<TensorInfo>> infer_clip(const Node& node, const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* x, required_input(node, context, 0, "input"));
  KILN_ASSIGN_OR_RETURN(ClipBounds bounds, clip_bounds(node, context, x->dtype));
  (void)bounds;
  return std::vector<TensorInfo>{*x};
}

Status compute_clip(const Node& node, const InferContext& context,
                    std::span<const TensorView> inputs, std::span<const TensorView> outputs) {
  KILN_ASSIGN_OR_RETURN(ClipBounds bounds, clip_bounds(node, context, inputs[0].info.dtype));
  const int64_t n = outputs[0].info.num_elements();
  return dispatch_dtype(outputs[0].info.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* x = view_data<T>(inputs[0]);
    T* y = view_data_mut<T>(outputs[0]);
    if (n > 0 && y != x) std::memcpy(y, x, size_t(n) * sizeof(T));
    // max(x, lo), then min(., hi): every value becomes `hi` when lo > hi, as ONNX says; NaN
    // passes through.
    if (bounds.lo) {
      const T lo = T(*bounds.lo);
      for (int64_t i = 0; i < n; ++i) y[i] = y[i] < lo ? lo : y[i];
    }
    if (bounds.hi) {
      const T hi = T(*bounds.hi);
      for (int64_t i = 0; i < n; ++i) y[i] = y[i] > hi ? hi : y[i];
    }
    return Status::ok();
  });
}

// ---- Softmax -----------------------------------------------------------------------------------

// Softmax runs over `outer` rows of `n` elements that lie `inner` apart. From opset 13 it is the
// softmax along one axis (default -1); before, the input is flattened to 2-D at `axis` (default
// 1) and each row of the flattened matrix is one softmax.
struct SoftmaxPlan {
  int64_t outer;
  int64_t n;
  int64_t inner;
};

Result<SoftmaxPlan> softmax_plan(const Node& node, const InferContext& context,
                                 const TensorInfo& x) {
  const int64_t rank = int64_t(x.shape.size());
  const bool flatten = context.opset < 13;
  KILN_ASSIGN_OR_RETURN(int64_t axis_value, int_attr(node, "axis", flatten ? 1 : -1));
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(node, axis_value, rank, "attribute 'axis'"));
  if (flatten) {
    return SoftmaxPlan{product(x.shape, 0, size_t(axis)),
                       product(x.shape, size_t(axis), x.shape.size()), 1};
  }
  return SoftmaxPlan{product(x.shape, 0, size_t(axis)), x.shape[size_t(axis)],
                     product(x.shape, size_t(axis) + 1, x.shape.size())};
}

Result<std::vector<TensorInfo>> infer_softmax(const Node& node, const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* x, required_input(node, context, 0, "input"));
  if (x->dtype != DType::kFloat32) {
    return node_error(node, std::string("input dtype ") + dtype_name(x->dtype) +
                                " is not supported (float32 only)");
  }
  KILN_ASSIGN_OR_RETURN(SoftmaxPlan plan, softmax_plan(node, context, *x));
  (void)plan;
  return std::vector<TensorInfo>{*x};
}

Status compute_softmax(const Node& node, const InferContext& context,
                       std::span<const TensorView> inputs, std::span<const TensorView> outputs) {
  KILN_ASSIGN_OR_RETURN(SoftmaxPlan plan, softmax_plan(node, context, inputs[0].info));
  const float* x = inputs[0].f32();
  float* y = outputs[0].f32();
  std::vector<float> row_max(size_t(plan.inner));
  std::vector<double> row_sum(size_t(plan.inner));
  for (int64_t o = 0; o < plan.outer; ++o) {
    const int64_t base = o * plan.n * plan.inner;
    // The maximum is subtracted first so that exp never overflows.
    std::fill(row_max.begin(), row_max.end(), -std::numeric_limits<float>::infinity());
    std::fill(row_sum.begin(), row_sum.end(), 0.0);
    for (int64_t k = 0; k < plan.n; ++k) {
      for (int64_t j = 0; j < plan.inner; ++j) {
        row_max[size_t(j)] = std::max(row_max[size_t(j)], x[base + k * plan.inner + j]);
      }
    }
    for (int64_t k = 0; k < plan.n; ++k) {
      for (int64_t j = 0; j < plan.inner; ++j) {
        const int64_t i = base + k * plan.inner + j;
        y[i] = std::exp(x[i] - row_max[size_t(j)]);
        row_sum[size_t(j)] += y[i];
      }
    }
    for (int64_t k = 0; k < plan.n; ++k) {
      for (int64_t j = 0; j < plan.inner; ++j) {
        y[base + k * plan.inner + j] = float(y[base + k * plan.inner + j] / row_sum[size_t(j)]);
      }
    }
  }
  return Status::ok();
}

// ---- Identity, Dropout -------------------------------------------------------------------------

Result<std::vector<TensorInfo>> infer_identity(const Node& node, const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* x, required_input(node, context, 0, "input"));
  return std::vector<TensorInfo>{*x};
}

Status compute_copy(const Node&, const InferContext&, std::span<const TensorView> inputs,
                    std::span<const TensorView> outputs) {
  if (outputs[0].info.num_elements() > 0) {
    std::memcpy(outputs[0].data, inputs[0].data, size_t(outputs[0].info.num_bytes()));
  }
  return Status::ok();
}

// Dropout at inference is the identity. Its mask output would be a bool tensor, which kiln does
// not have; training mode (attribute is_test = 0 before opset 7, input 2 from opset 12) is refused.
Result<std::vector<TensorInfo>> infer_dropout(const Node& node, const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* x, required_input(node, context, 0, "data"));
  if (node.outputs.size() > 1 && !node.outputs[1].empty()) {
    return node_error(node, "output 1 ('mask', value '" + node.outputs[1] +
                                "') is not supported (kiln has no bool tensors); remove it");
  }
  if (context.opset < 7 && node.attr("is_test") != nullptr) {
    KILN_ASSIGN_OR_RETURN(int64_t is_test, int_attr(node, "is_test", 0));
    if (is_test == 0) {
      return node_error(node, "attribute 'is_test' = 0 is not supported (inference only)");
    }
  }
  if (context.opset >= 12) {
    if (input_info(context, 2) != nullptr) {
      const Tensor* training = input_constant(context, 2);
      if (training == nullptr) {
        return node_error(node, "input 2 ('training_mode', value '" + node.inputs[2] +
                                    "') must be a constant false (inference only)");
      }
      if (training->num_elements() != 1 || training->at(0) != 0) {
        return node_error(node,
                          "input 2 ('training_mode') is true, which is not supported "
                          "(inference only)");
      }
    }
  }
  std::vector<TensorInfo> outputs{*x};
  if (node.outputs.size() > 1) outputs.push_back(*x);  // an absent mask: its type is unused
  return outputs;
}

}  // namespace

void add_elementwise_ops(OpTable& table) {
  table["Add"] = make_op(infer_binary, compute_binary<Binary::kAdd>);
  table["Sub"] = make_op(infer_binary, compute_binary<Binary::kSub>);
  table["Mul"] = make_op(infer_binary, compute_binary<Binary::kMul>);
  table["Div"] = make_op(infer_binary, compute_binary<Binary::kDiv>);
  table["Relu"] = make_op(infer_unary<Unary::kRelu>, compute_unary<Unary::kRelu>);
  table["Sigmoid"] = make_op(infer_unary<Unary::kSigmoid>, compute_unary<Unary::kSigmoid>);
  table["HardSigmoid"] =
      make_op(infer_unary<Unary::kHardSigmoid>, compute_unary<Unary::kHardSigmoid>);
  table["HardSwish"] = make_op(infer_unary<Unary::kHardSwish>, compute_unary<Unary::kHardSwish>);
  table["Tanh"] = make_op(infer_unary<Unary::kTanh>, compute_unary<Unary::kTanh>);
  table["Clip"] = make_op(infer_clip, compute_clip, 1);
  table["Softmax"] = make_op(infer_softmax, compute_softmax);
  table["Identity"] = make_op(infer_identity, compute_copy);
  table["Dropout"] = make_op(infer_dropout, compute_copy, 1);
}

}  // namespace kiln::graph::ops_internal
