// The neural-network operators on the host: Conv, Gemm, MatMul, BatchNormalization (inference),
// MaxPool, AveragePool and GlobalAveragePool, on float32 tensors. These are the fallbacks for
// what no compiled kernel expresses and the references the compiled kernels are checked
// against: plain loops, ordered so that the innermost one runs along contiguous memory.
#include <algorithm>
#include <cmath>
#include <limits>

#include "compiler_core/graph/ops_internal.h"
#include "compiler_core/runtime/thread_pool.h"

namespace kiln::graph::ops_internal {
namespace {

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string ints_str(const std::vector<int64_t>& v) { return shape_str(v); }

// Input `index` of the node, which must be present: its type.
Result<const TensorInfo*> required_input(const Node& node, const InferContext& context,
                                         size_t index, const char* role) {
  if (index >= context.inputs.size() || context.inputs[index] == nullptr) {
    return node_error(node,
                      "the required input " + std::to_string(index) + " (" + role + ") is missing");
  }
  return context.inputs[index];
}

// A present input's type, or nullptr for an absent optional one.
const TensorInfo* optional_input(const InferContext& context, size_t index) {
  return index < context.inputs.size() ? context.inputs[index] : nullptr;
}

Status expect_float(const Node& node, const TensorInfo& info, const char* role) {
  if (info.dtype != DType::kFloat32) {
    return node_error(node, std::string(role) + " is " + to_string(info) +
                                ", kiln runs this operator on float32 only");
  }
  return Status::ok();
}

// An INTS attribute of `size` entries (or absent: `fill` repeated), each >= `min_value`.
Result<std::vector<int64_t>> ints_attr(const Node& node, const std::string& key, size_t size,
                                       int64_t fill, int64_t min_value) {
  const Attr* attr = node.attr(key);
  if (attr == nullptr) return std::vector<int64_t>(size, fill);
  if (attr->kind != Attr::Kind::kInts) {
    return node_error(node, "attribute '" + key + "' must be a list of ints");
  }
  if (attr->ints.size() != size) {
    return node_error(node, "attribute '" + key + "' " + ints_str(attr->ints) + " has " +
                                std::to_string(attr->ints.size()) + " entries, " +
                                std::to_string(size) + " expected");
  }
  for (int64_t v : attr->ints) {
    if (v < min_value) {
      return node_error(node, "attribute '" + key + "' " + ints_str(attr->ints) +
                                  " has an entry below " + std::to_string(min_value));
    }
  }
  return attr->ints;
}

Result<int64_t> int_attr(const Node& node, const std::string& key, int64_t default_value) {
  const Attr* attr = node.attr(key);
  if (attr == nullptr) return default_value;
  if (attr->kind != Attr::Kind::kInt)
    return node_error(node, "attribute '" + key + "' must be an int");
  return attr->i;
}

Result<float> float_attr(const Node& node, const std::string& key, float default_value) {
  const Attr* attr = node.attr(key);
  if (attr == nullptr) return default_value;
  if (attr->kind != Attr::Kind::kFloat) {
    return node_error(node, "attribute '" + key + "' must be a float");
  }
  return attr->f;
}

// Refuses a second output that the operator has in ONNX and kiln does not compute.
Status refuse_extra_outputs(const Node& node, size_t supported, const char* what) {
  for (size_t i = supported; i < node.outputs.size(); ++i) {
    if (!node.outputs[i].empty()) {
      return node_error(node, "output " + std::to_string(i) + " ('" + node.outputs[i] + "', " +
                                  what + ") is not supported");
    }
  }
  return Status::ok();
}

// A 2-D sliding window (Conv, MaxPool, AveragePool) over the last two axes of a 4-D input.
struct Window {
  int64_t kernel[2];
  int64_t stride[2];
  int64_t dilation[2];
  int64_t pad_begin[2];
  int64_t pad_end[2];
  int64_t in[2];
  int64_t out[2];
};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The window of `node` over an input of spatial size `in` and kernel `kernel`, from the
// attributes strides, dilations, pads, auto_pad and (pools) ceil_mode.
Result<Window> make_window(const Node& node, const int64_t in[2], const int64_t kernel[2],
                           bool has_ceil_mode) {
  Window w;
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> strides, ints_attr(node, "strides", 2, 1, 1));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dilations, ints_attr(node, "dilations", 2, 1, 1));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> pads, ints_attr(node, "pads", 4, 0, 0));
  KILN_ASSIGN_OR_RETURN(int64_t ceil_mode, int_attr(node, "ceil_mode", 0));
  if (!has_ceil_mode) ceil_mode = 0;
  const std::string auto_pad = node.attr_string("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER" &&
      auto_pad != "VALID") {
    return node_error(
        node, "auto_pad '" + auto_pad + "' is not one of NOTSET, SAME_UPPER, SAME_LOWER and VALID");
  }
  for (int a = 0; a < 2; ++a) {
    w.kernel[a] = kernel[a];
    w.stride[a] = strides[size_t(a)];
    w.dilation[a] = dilations[size_t(a)];
    w.in[a] = in[a];
    const int64_t extent = (kernel[a] - 1) * w.dilation[a] + 1;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      w.out[a] = ceil_div(in[a], w.stride[a]);
      const int64_t total = std::max<int64_t>(0, (w.out[a] - 1) * w.stride[a] + extent - in[a]);
      const int64_t small = total / 2;
      w.pad_begin[a] = auto_pad == "SAME_UPPER" ? small : total - small;
      w.pad_end[a] = total - w.pad_begin[a];
      continue;
    }
    w.pad_begin[a] = auto_pad == "VALID" ? 0 : pads[size_t(a)];
    w.pad_end[a] = auto_pad == "VALID" ? 0 : pads[size_t(a) + 2];
    const int64_t span = in[a] + w.pad_begin[a] + w.pad_end[a] - extent;
    if (span < 0) {
      return node_error(node, "the window (kernel " + std::to_string(kernel[a]) + ", dilation " +
                                  std::to_string(w.dilation[a]) +
                                  ") is larger than the padded "
                                  "input (" +
                                  std::to_string(in[a] + w.pad_begin[a] + w.pad_end[a]) +
                                  ") along spatial axis " + std::to_string(a));
    }
    w.out[a] = (ceil_mode != 0 ? ceil_div(span, w.stride[a]) : span / w.stride[a]) + 1;
    // A last window that would start in the end padding is dropped (as PyTorch and ONNX
    // Runtime do).
    if (ceil_mode != 0 && (w.out[a] - 1) * w.stride[a] >= in[a] + w.pad_begin[a]) --w.out[a];
  }
  return w;
}

// The output positions o along axis `a` whose input position o*stride - pad + offset lies in
// [0, in): [lo, hi).
void valid_range(const Window& w, int a, int64_t offset, int64_t* lo, int64_t* hi) {
  const int64_t shift = offset - w.pad_begin[a];  // input position of output 0
  *lo = shift >= 0 ? 0 : ceil_div(-shift, w.stride[a]);
  const int64_t last = w.in[a] - 1 - shift;  // o*stride <= last
  *hi = last < 0 ? 0 : std::min(w.out[a], last / w.stride[a] + 1);
  *lo = std::min(*lo, *hi);
}

// ---- Conv ----

Result<Window> conv_window(const Node& node, const Shape& x, const Shape& weight) {
  const int64_t in[2] = {x[2], x[3]};
  const int64_t kernel[2] = {weight[2], weight[3]};
  return make_window(node, in, kernel, /*has_ceil_mode=*/false);
}

Result<std::vector<TensorInfo>> infer_conv(const Node& node, const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* x, required_input(node, context, 0, "X"));
  KILN_ASSIGN_OR_RETURN(const TensorInfo* w, required_input(node, context, 1, "W"));
  const TensorInfo* b = optional_input(context, 2);
  KILN_RETURN_IF_ERROR(expect_float(node, *x, "input X"));
  KILN_RETURN_IF_ERROR(expect_float(node, *w, "weight W"));
  if (x->shape.size() != 4) {
    return node_error(node, "input X is " + to_string(*x) + ": " +
                                std::to_string(int64_t(x->shape.size()) - 2) +
                                "-D convolutions are not supported (kiln runs 2-D ones, on a "
                                "4-D input N,C,H,W)");
  }
  if (w->shape.size() != 4) {
    return node_error(node, "weight W is " + to_string(*w) +
                                ", a 4-D weight M,C/group,kH,kW "
                                "expected");
  }
  KILN_ASSIGN_OR_RETURN(int64_t group, int_attr(node, "group", 1));
  const int64_t channels = x->shape[1];
  const int64_t filters = w->shape[0];
  if (group < 1 || filters % group != 0 || channels != w->shape[1] * group) {
    return node_error(node, "group " + std::to_string(group) + " does not fit input X " +
                                to_string(*x) + " and weight W " + to_string(*w) +
                                " (C must be W's dimension 1 times group, M a multiple of group)");
  }
  const Attr* kernel_shape = node.attr("kernel_shape");
  if (kernel_shape != nullptr &&
      (kernel_shape->kind != Attr::Kind::kInts ||
       kernel_shape->ints != std::vector<int64_t>{w->shape[2], w->shape[3]})) {
    return node_error(node, "attribute 'kernel_shape' " + ints_str(kernel_shape->ints) +
                                " differs from weight W's kernel " +
                                ints_str({w->shape[2], w->shape[3]}));
  }
  if (b != nullptr) {
    KILN_RETURN_IF_ERROR(expect_float(node, *b, "bias B"));
    if (b->shape != Shape{filters}) {
      return node_error(
          node, "bias B is " + to_string(*b) + ", [" + std::to_string(filters) + "] expected");
    }
  }
  KILN_ASSIGN_OR_RETURN(Window win, conv_window(node, x->shape, w->shape));
  KILN_RETURN_IF_ERROR(refuse_extra_outputs(node, 1, "an extra output"));
  return std::vector<TensorInfo>{{DType::kFloat32, {x->shape[0], filters, win.out[0], win.out[1]}}};
}

Status run_conv(const Node& node, int64_t, std::span<const TensorView> inputs,
                std::span<const TensorView> outputs) {
  const Shape& xs = inputs[0].info.shape;
  const Shape& ws = inputs[1].info.shape;
  KILN_ASSIGN_OR_RETURN(Window win, conv_window(node, xs, ws));
  KILN_ASSIGN_OR_RETURN(int64_t group, int_attr(node, "group", 1));
  const float* x = inputs[0].f32();
  const float* w = inputs[1].f32();
  const float* bias = inputs.size() > 2 && inputs[2].data != nullptr ? inputs[2].f32() : nullptr;
  float* y = outputs[0].f32();
  const int64_t batch = xs[0], channels = xs[1], in_h = xs[2], in_w = xs[3];
  const int64_t filters = ws[0], group_channels = ws[1], kh = ws[2], kw = ws[3];
  const int64_t out_h = win.out[0], out_w = win.out[1];
  const int64_t filters_per_group = filters / group;
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t m = 0; m < filters; ++m) {
      float* plane = y + (n * filters + m) * out_h * out_w;
      std::fill(plane, plane + out_h * out_w, bias != nullptr ? bias[m] : 0.0f);
      const int64_t g = m / filters_per_group;
      for (int64_t c = 0; c < group_channels; ++c) {
        const float* in = x + (n * channels + g * group_channels + c) * in_h * in_w;
        const float* filter = w + (m * group_channels + c) * kh * kw;
        for (int64_t r = 0; r < kh; ++r) {
          int64_t oh_lo, oh_hi;
          valid_range(win, 0, r * win.dilation[0], &oh_lo, &oh_hi);
          for (int64_t s = 0; s < kw; ++s) {
            const float weight = filter[r * kw + s];
            int64_t ow_lo, ow_hi;
            valid_range(win, 1, s * win.dilation[1], &ow_lo, &ow_hi);
            for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
              const int64_t ih = oh * win.stride[0] - win.pad_begin[0] + r * win.dilation[0];
              const float* row = in + ih * in_w;
              const int64_t shift = s * win.dilation[1] - win.pad_begin[1];
              float* out_row = plane + oh * out_w;
              for (int64_t ow = ow_lo; ow < ow_hi; ++ow) {
                out_row[ow] += weight * row[ow * win.stride[1] + shift];
              }
            }
          }
        }
      }
    }
  }
  return Status::ok();
}

// ---- Gemm ----

Result<std::vector<TensorInfo>> infer_gemm(const Node& node, const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* a, required_input(node, context, 0, "A"));
  KILN_ASSIGN_OR_RETURN(const TensorInfo* b, required_input(node, context, 1, "B"));
  const TensorInfo* c = optional_input(context, 2);
  KILN_RETURN_IF_ERROR(expect_float(node, *a, "input A"));
  KILN_RETURN_IF_ERROR(expect_float(node, *b, "input B"));
  if (a->shape.size() != 2 || b->shape.size() != 2) {
    return node_error(
        node, "inputs A " + to_string(*a) + " and B " + to_string(*b) + " must both be 2-D");
  }
  KILN_ASSIGN_OR_RETURN(int64_t trans_a, int_attr(node, "transA", 0));
  KILN_ASSIGN_OR_RETURN(int64_t trans_b, int_attr(node, "transB", 0));
  KILN_RETURN_IF_ERROR(float_attr(node, "alpha", 1.0f).status());
  KILN_RETURN_IF_ERROR(float_attr(node, "beta", 1.0f).status());
  const int64_t m = trans_a ? a->shape[1] : a->shape[0];
  const int64_t k = trans_a ? a->shape[0] : a->shape[1];
  const int64_t k2 = trans_b ? b->shape[1] : b->shape[0];
  const int64_t n = trans_b ? b->shape[0] : b->shape[1];
  if (k != k2) {
    return node_error(node, "inputs A " + to_string(*a) + " (transA " + std::to_string(trans_a) +
                                ") and B " + to_string(*b) + " (transB " + std::to_string(trans_b) +
                                ") disagree on K: " + std::to_string(k) + " and " +
                                std::to_string(k2));
  }
  if (c != nullptr) {
    KILN_RETURN_IF_ERROR(expect_float(node, *c, "input C"));
    const Shape target{m, n};
    bool fits = c->shape.size() <= 2;
    for (size_t i = 0; fits && i < c->shape.size(); ++i) {
      const int64_t dim = c->shape[c->shape.size() - 1 - i];
      fits = dim == 1 || dim == target[1 - i];
    }
    if (!fits) {
      return node_error(node, "input C " + to_string(*c) + " does not broadcast to the output " +
                                  shape_str(target));
    }
  }
  return std::vector<TensorInfo>{{DType::kFloat32, {m, n}}};
}

Status run_gemm(const Node& node, int64_t, std::span<const TensorView> inputs,
                std::span<const TensorView> outputs) {
  const bool trans_a = node.attr_int("transA", 0) != 0;
  const bool trans_b = node.attr_int("transB", 0) != 0;
  const float alpha = node.attr_float("alpha", 1.0f);
  const float beta = node.attr_float("beta", 1.0f);
  const Shape& as = inputs[0].info.shape;
  const Shape& bs = inputs[1].info.shape;
  const int64_t m = trans_a ? as[1] : as[0];
  const int64_t k = trans_a ? as[0] : as[1];
  const int64_t n = trans_b ? bs[0] : bs[1];
  const float* a = inputs[0].f32();
  const float* b = inputs[1].f32();
  float* y = outputs[0].f32();
  const TensorView* c = inputs.size() > 2 && inputs[2].data != nullptr ? &inputs[2] : nullptr;
  // C's strides over the output's rows and columns (0 along a broadcast axis).
  int64_t c_row = 0, c_col = 0;
  if (c != nullptr) {
    const Shape& cs = c->info.shape;
    if (cs.size() >= 1) c_col = cs.back() == 1 ? 0 : 1;
    if (cs.size() == 2) c_row = cs[0] == 1 ? 0 : cs[1];
  }
  for (int64_t i = 0; i < m; ++i) {
    float* row = y + i * n;
    std::fill(row, row + n, 0.0f);
    for (int64_t p = 0; p < k; ++p) {
      const float av = alpha * (trans_a ? a[p * m + i] : a[i * k + p]);
      if (trans_b) {
        for (int64_t j = 0; j < n; ++j) row[j] += av * b[j * k + p];
      } else {
        const float* b_row = b + p * n;
        for (int64_t j = 0; j < n; ++j) row[j] += av * b_row[j];
      }
    }
    if (c != nullptr) {
      for (int64_t j = 0; j < n; ++j) row[j] += beta * c->f32()[i * c_row + j * c_col];
    }
  }
  return Status::ok();
}

// ---- MatMul ----

// numpy's matmul shapes: A's and B's matrices (a 1-D operand promoted), the broadcast batch.
struct MatMulShape {
  int64_t m = 1, k = 1, n = 1;
  Shape batch;
  Shape a_batch, b_batch;  // each right-aligned to batch's rank, 1 where broadcast
  Shape out;
};

Result<MatMulShape> matmul_shape(const Node& node, const Shape& a, const Shape& b) {
  if (a.empty() || b.empty()) {
    return node_error(
        node, "inputs A " + shape_str(a) + " and B " + shape_str(b) + " must have rank 1 or more");
  }
  MatMulShape s;
  const bool a_vector = a.size() == 1, b_vector = b.size() == 1;
  s.m = a_vector ? 1 : a[a.size() - 2];
  s.k = a.back();
  const int64_t k2 = b_vector ? b[0] : b[b.size() - 2];
  s.n = b_vector ? 1 : b.back();
  if (s.k != k2) {
    return node_error(node, "inputs A " + shape_str(a) + " and B " + shape_str(b) +
                                " disagree on the reduced dimension: " + std::to_string(s.k) +
                                " and " + std::to_string(k2));
  }
  Shape ab(a.begin(), a.end() - (a_vector ? 1 : 2));
  Shape bb(b.begin(), b.end() - (b_vector ? 1 : 2));
  const size_t rank = std::max(ab.size(), bb.size());
  ab.insert(ab.begin(), rank - ab.size(), 1);
  bb.insert(bb.begin(), rank - bb.size(), 1);
  for (size_t i = 0; i < rank; ++i) {
    if (ab[i] != bb[i] && ab[i] != 1 && bb[i] != 1) {
      return node_error(node, "the batch dimensions of inputs A " + shape_str(a) + " and B " +
                                  shape_str(b) + " do not broadcast");
    }
    s.batch.push_back(ab[i] == 1 ? bb[i] : ab[i]);
  }
  s.a_batch = ab;
  s.b_batch = bb;
  s.out = s.batch;
  if (!a_vector) s.out.push_back(s.m);
  if (!b_vector) s.out.push_back(s.n);
  return s;
}

Result<std::vector<TensorInfo>> infer_matmul(const Node& node, const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* a, required_input(node, context, 0, "A"));
  KILN_ASSIGN_OR_RETURN(const TensorInfo* b, required_input(node, context, 1, "B"));
  KILN_RETURN_IF_ERROR(expect_float(node, *a, "input A"));
  KILN_RETURN_IF_ERROR(expect_float(node, *b, "input B"));
  KILN_ASSIGN_OR_RETURN(MatMulShape s, matmul_shape(node, a->shape, b->shape));
  return std::vector<TensorInfo>{{DType::kFloat32, s.out}};
}

// The matrix index into an operand of batch shape `operand` for each flat index of `batch`.
std::vector<int64_t> batch_offsets(const Shape& batch, const Shape& operand) {
  const int64_t count = core::num_elements(batch);
  std::vector<int64_t> offsets(size_t(count), 0);
  for (int64_t flat = 0; flat < count; ++flat) {
    int64_t rest = flat, offset = 0, stride = 1;
    for (size_t d = batch.size(); d-- > 0;) {
      const int64_t index = rest % batch[d];
      rest /= batch[d];
      if (operand[d] != 1) offset += index * stride;
      stride *= operand[d];
    }
    offsets[size_t(flat)] = offset;
  }
  return offsets;
}

Status run_matmul(const Node& node, int64_t, std::span<const TensorView> inputs,
                  std::span<const TensorView> outputs) {
  KILN_ASSIGN_OR_RETURN(MatMulShape s,
                        matmul_shape(node, inputs[0].info.shape, inputs[1].info.shape));
  const std::vector<int64_t> a_offsets = batch_offsets(s.batch, s.a_batch);
  const std::vector<int64_t> b_offsets = batch_offsets(s.batch, s.b_batch);
  const float* a = inputs[0].f32();
  const float* b = inputs[1].f32();
  float* y = outputs[0].f32();
  for (size_t t = 0; t < a_offsets.size(); ++t) {
    const float* am = a + a_offsets[t] * s.m * s.k;
    const float* bm = b + b_offsets[t] * s.k * s.n;
    float* ym = y + int64_t(t) * s.m * s.n;
    std::fill(ym, ym + s.m * s.n, 0.0f);
    for (int64_t i = 0; i < s.m; ++i) {
      for (int64_t p = 0; p < s.k; ++p) {
        const float av = am[i * s.k + p];
        const float* b_row = bm + p * s.n;
        float* y_row = ym + i * s.n;
        for (int64_t j = 0; j < s.n; ++j) y_row[j] += av * b_row[j];
      }
    }
  }
  return Status::ok();
}

// ---- BatchNormalization ----

Result<std::vector<TensorInfo>> infer_batch_norm(const Node& node, const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(int64_t training, int_attr(node, "training_mode", 0));
  if (training != 0) {
    return node_error(node, "training_mode " + std::to_string(training) +
                                " is not supported (kiln runs inference: training_mode 0)");
  }
  KILN_RETURN_IF_ERROR(
      refuse_extra_outputs(node, 1, "a training statistic, computed in training mode only"));
  KILN_RETURN_IF_ERROR(float_attr(node, "epsilon", 1e-5f).status());
  KILN_ASSIGN_OR_RETURN(const TensorInfo* x, required_input(node, context, 0, "X"));
  KILN_RETURN_IF_ERROR(expect_float(node, *x, "input X"));
  if (x->shape.size() < 2) {
    return node_error(node, "input X is " + to_string(*x) + ", rank 2 or more (N,C,...) expected");
  }
  const char* roles[] = {"scale", "B", "input_mean", "input_var"};
  for (size_t i = 1; i <= 4; ++i) {
    KILN_ASSIGN_OR_RETURN(const TensorInfo* p, required_input(node, context, i, roles[i - 1]));
    KILN_RETURN_IF_ERROR(expect_float(node, *p, roles[i - 1]));
    if (p->shape != Shape{x->shape[1]}) {
      return node_error(node, std::string(roles[i - 1]) + " is " + to_string(*p) + ", [" +
                                  std::to_string(x->shape[1]) + "] expected (one per channel)");
    }
  }
  return std::vector<TensorInfo>{*x};
}

Status run_batch_norm(const Node& node, int64_t, std::span<const TensorView> inputs,
                      std::span<const TensorView> outputs) {
  const float epsilon = node.attr_float("epsilon", 1e-5f);
  const Shape& xs = inputs[0].info.shape;
  const int64_t batch = xs[0], channels = xs[1];
  const int64_t inner = core::num_elements(xs) / std::max<int64_t>(1, batch * channels);
  const float* x = inputs[0].f32();
  float* y = outputs[0].f32();
  for (int64_t c = 0; c < channels; ++c) {
    const float scale = inputs[1].f32()[c] / std::sqrt(inputs[4].f32()[c] + epsilon);
    const float shift = inputs[2].f32()[c] - inputs[3].f32()[c] * scale;
    for (int64_t n = 0; n < batch; ++n) {
      const int64_t base = (n * channels + c) * inner;
      for (int64_t i = 0; i < inner; ++i) y[base + i] = x[base + i] * scale + shift;
    }
  }
  return Status::ok();
}

// ---- MaxPool, AveragePool ----

Result<Window> pool_window(const Node& node, const Shape& x) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> kernel, ints_attr(node, "kernel_shape", 2, 0, 1));
  if (node.attr("kernel_shape") == nullptr) {
    return node_error(node, "the required attribute 'kernel_shape' is missing");
  }
  const int64_t in[2] = {x[2], x[3]};
  const int64_t k[2] = {kernel[0], kernel[1]};
  return make_window(node, in, k, /*has_ceil_mode=*/true);
}

Result<std::vector<TensorInfo>> infer_pool(const Node& node, const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* x, required_input(node, context, 0, "X"));
  KILN_RETURN_IF_ERROR(expect_float(node, *x, "input X"));
  if (node.op == "MaxPool") {
    KILN_RETURN_IF_ERROR(refuse_extra_outputs(node, 1, "Indices"));
    KILN_ASSIGN_OR_RETURN(int64_t storage_order, int_attr(node, "storage_order", 0));
    (void)storage_order;  // decides Indices only
  } else {
    KILN_RETURN_IF_ERROR(int_attr(node, "count_include_pad", 0).status());
  }
  if (x->shape.size() != 4) {
    return node_error(node, "input X is " + to_string(*x) + ": " +
                                std::to_string(int64_t(x->shape.size()) - 2) +
                                "-D pooling is not supported (kiln pools 2-D, on a 4-D input "
                                "N,C,H,W)");
  }
  const Attr* kernel = node.attr("kernel_shape");
  if (kernel != nullptr && kernel->kind == Attr::Kind::kInts && kernel->ints.size() != 2) {
    return node_error(node, "attribute 'kernel_shape' " + ints_str(kernel->ints) +
                                " is not 2-D; pooling in other ranks is not supported");
  }
  KILN_ASSIGN_OR_RETURN(Window win, pool_window(node, x->shape));
  return std::vector<TensorInfo>{
      {DType::kFloat32, {x->shape[0], x->shape[1], win.out[0], win.out[1]}}};
}

/// MaxPool without dilation, one plane: for each output row the maximum over the window's rows
/// (a vectorizable pass over whole input rows), then over each output's columns of it. Padding
/// only narrows the window: a max ignores it.
void max_pool_plane(const Window& win, const float* in, float* out, std::vector<float>& row) {
  const int64_t in_h = win.in[0], in_w = win.in[1];
  for (int64_t oh = 0; oh < win.out[0]; ++oh) {
    const int64_t h0 = std::max<int64_t>(oh * win.stride[0] - win.pad_begin[0], 0);
    const int64_t h1 = std::min(oh * win.stride[0] - win.pad_begin[0] + win.kernel[0], in_h);
    std::fill(row.begin(), row.end(), -std::numeric_limits<float>::infinity());
    for (int64_t ih = h0; ih < h1; ++ih) {
      const float* src = in + ih * in_w;
      for (int64_t iw = 0; iw < in_w; ++iw) row[size_t(iw)] = std::max(row[size_t(iw)], src[iw]);
    }
    for (int64_t ow = 0; ow < win.out[1]; ++ow) {
      const int64_t w0 = std::max<int64_t>(ow * win.stride[1] - win.pad_begin[1], 0);
      const int64_t w1 = std::min(ow * win.stride[1] - win.pad_begin[1] + win.kernel[1], in_w);
      float max = -std::numeric_limits<float>::infinity();
      for (int64_t iw = w0; iw < w1; ++iw) max = std::max(max, row[size_t(iw)]);
      out[oh * win.out[1] + ow] = max;
    }
  }
}

struct MaxPoolJob {
  const Window* win;
  const float* in;
  float* out;
};

/// kiln_parallel_for's body: plane `p` of a MaxPoolJob.
void max_pool_plane_body(int64_t p, void* env) {
  const MaxPoolJob& job = *static_cast<const MaxPoolJob*>(env);
  const Window& win = *job.win;
  thread_local std::vector<float> row;
  row.resize(size_t(win.in[1]));
  max_pool_plane(win, job.in + p * win.in[0] * win.in[1], job.out + p * win.out[0] * win.out[1],
                 row);
}

Status run_pool(const Node& node, int64_t, std::span<const TensorView> inputs,
                std::span<const TensorView> outputs) {
  const Shape& xs = inputs[0].info.shape;
  KILN_ASSIGN_OR_RETURN(Window win, pool_window(node, xs));
  const bool is_max = node.op == "MaxPool";
  if (is_max && win.dilation[0] == 1 && win.dilation[1] == 1) {
    // The planes run on the kernels' thread pool.
    MaxPoolJob job{&win, inputs[0].f32(), outputs[0].f32()};
    kiln_parallel_for(xs[0] * xs[1], max_pool_plane_body, &job);
    return Status::ok();
  }
  const bool count_pad = node.attr_int("count_include_pad", 0) != 0;
  const int64_t planes = xs[0] * xs[1], in_h = xs[2], in_w = xs[3];
  const int64_t out_h = win.out[0], out_w = win.out[1];
  for (int64_t p = 0; p < planes; ++p) {
    const float* in = inputs[0].f32() + p * in_h * in_w;
    float* out = outputs[0].f32() + p * out_h * out_w;
    for (int64_t oh = 0; oh < out_h; ++oh) {
      const int64_t h0 = oh * win.stride[0] - win.pad_begin[0];
      for (int64_t ow = 0; ow < out_w; ++ow) {
        const int64_t w0 = ow * win.stride[1] - win.pad_begin[1];
        float max = -std::numeric_limits<float>::infinity();
        float sum = 0.0f;
        int64_t inside = 0, padded = 0;
        for (int64_t r = 0; r < win.kernel[0]; ++r) {
          const int64_t ih = h0 + r * win.dilation[0];
          const bool row_padded = ih >= -win.pad_begin[0] && ih < in_h + win.pad_end[0];
          for (int64_t s = 0; s < win.kernel[1]; ++s) {
            const int64_t iw = w0 + s * win.dilation[1];
            if (ih >= 0 && ih < in_h && iw >= 0 && iw < in_w) {
              const float v = in[ih * in_w + iw];
              max = std::max(max, v);
              sum += v;
              ++inside;
            }
            if (row_padded && iw >= -win.pad_begin[1] && iw < in_w + win.pad_end[1]) ++padded;
          }
        }
        if (is_max) {
          out[oh * out_w + ow] = max;
        } else {
          const int64_t count = count_pad ? padded : inside;
          out[oh * out_w + ow] = count > 0 ? sum / float(count) : 0.0f;
        }
      }
    }
  }
  return Status::ok();
}

// ---- GlobalAveragePool ----

Result<std::vector<TensorInfo>> infer_global_average_pool(const Node& node,
                                                          const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* x, required_input(node, context, 0, "X"));
  KILN_RETURN_IF_ERROR(expect_float(node, *x, "input X"));
  if (x->shape.size() < 3) {
    return node_error(node, "input X is " + to_string(*x) + ", rank 3 or more (N,C,...) expected");
  }
  Shape out(x->shape.size(), 1);
  out[0] = x->shape[0];
  out[1] = x->shape[1];
  return std::vector<TensorInfo>{{DType::kFloat32, out}};
}

Status run_global_average_pool(const Node& node, int64_t, std::span<const TensorView> inputs,
                               std::span<const TensorView> outputs) {
  const Shape& xs = inputs[0].info.shape;
  const int64_t planes = xs[0] * xs[1];
  const int64_t size = core::num_elements(xs) / std::max<int64_t>(1, planes);
  for (int64_t p = 0; p < planes; ++p) {
    const float* in = inputs[0].f32() + p * size;
    double sum = 0.0;
    for (int64_t i = 0; i < size; ++i) sum += in[i];
    outputs[0].f32()[p] = size > 0 ? float(sum / double(size)) : 0.0f;
  }
  return Status::ok();
}

}  // namespace

void add_nn_ops(OpTable& table) {
  table["Conv"] = {infer_conv, run_conv};
  table["Gemm"] = {infer_gemm, run_gemm};
  table["MatMul"] = {infer_matmul, run_matmul};
  table["BatchNormalization"] = {infer_batch_norm, run_batch_norm};
  table["MaxPool"] = {infer_pool, run_pool};
  table["AveragePool"] = {infer_pool, run_pool};
  table["GlobalAveragePool"] = {infer_global_average_pool, run_global_average_pool};
}

}  // namespace kiln::graph::ops_internal
