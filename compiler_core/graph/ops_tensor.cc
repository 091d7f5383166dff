// The data-movement and shape operators: Reshape, Flatten, Transpose, Concat, Split, Slice, Pad,
// Squeeze, Unsqueeze, ReduceMean, Constant, Shape, Gather, Cast. All but ReduceMean move
// elements without arithmetic, so they take float32 and int64 alike: the shape chains that
// exporters emit (Shape -> Gather -> Unsqueeze -> Concat -> Reshape) run through them in int64.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include "compiler_core/graph/ops_common_internal.h"
#include "compiler_core/graph/ops_internal.h"

namespace kiln::graph::ops_internal {
namespace {

using Infos = std::vector<TensorInfo>;

std::string str(int64_t v) { return std::to_string(v); }

Status compute_copy(const Node&, const InferContext&, std::span<const TensorView> inputs,
                    std::span<const TensorView> outputs) {
  if (outputs[0].info.num_elements() > 0) {
    std::memcpy(outputs[0].data, inputs[0].data, size_t(outputs[0].info.num_bytes()));
  }
  return Status::ok();
}

// ---- Reshape, Flatten --------------------------------------------------------------------------

Status too_many_elements(const Node& node, const std::vector<int64_t>& requested) {
  return node_error(node, "shape " + ints_string(requested) + " has more than " +
                              str(kMaxTensorElements) + " elements");
}

// The output shape of Reshape: 0 copies the input's dimension at that index (unless allowzero
// = 1, opset 14, where 0 is a zero dimension), one -1 takes what is left.
Result<Shape> reshape_shape(const Node& node, const InferContext& context, const TensorInfo& x) {
  if (!has_input(node, 1) && node.attr("shape") != nullptr) {
    return node_error(node, "attribute 'shape' is not supported (opset 5+ gives it as input 1)");
  }
  KILN_ASSIGN_OR_RETURN(const TensorInfo* shape_info, required_input(node, context, 1, "shape"));
  KILN_ASSIGN_OR_RETURN(const Tensor* shape_value, constant_operand(node, context, 1, "shape"));
  if (shape_info->shape.size() != 1) {
    return node_error(node, "'shape' must be 1-D, got " + to_string(*shape_info));
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> requested, int_operand(node, *shape_value, "shape"));
  KILN_ASSIGN_OR_RETURN(int64_t allowzero, int_attr(node, "allowzero", 0));
  if (allowzero != 0 && allowzero != 1) {
    return node_error(node, "attribute 'allowzero' = " + str(allowzero) + " must be 0 or 1");
  }
  Shape out(requested.size());
  std::optional<size_t> unknown;
  bool has_zero = false;
  for (size_t i = 0; i < requested.size(); ++i) {
    int64_t d = requested[i];
    if (d == -1) {
      if (unknown) {
        return node_error(node, "shape " + ints_string(requested) + " has more than one -1");
      }
      unknown = i;
      out[i] = 1;
    } else if (d == 0 && allowzero == 0) {
      if (i >= x.shape.size()) {
        return node_error(node, "shape " + ints_string(requested) + " copies dimension " +
                                    str(int64_t(i)) + " (a 0) of the rank-" +
                                    str(int64_t(x.shape.size())) + " input " + to_string(x));
      }
      out[i] = x.shape[i];
    } else if (d < 0) {
      return node_error(node,
                        "shape " + ints_string(requested) + " has a negative dimension " + str(d));
    } else {
      has_zero = has_zero || d == 0;
      out[i] = d;
    }
  }
  const int64_t total = x.num_elements();
  if (unknown) {
    if (has_zero) {
      return node_error(
          node, "shape " + ints_string(requested) + " has both -1 and 0 with allowzero = 1");
    }
    // The requested dimensions are the model's data: counted without overflowing.
    const std::optional<int64_t> known = bounded_num_elements(out);
    if (!known) return too_many_elements(node, requested);
    if (*known == 0 || total % *known != 0) {
      return node_error(node, "cannot reshape " + to_string(x) + " to " + ints_string(requested) +
                                  " (-1 has no integer size)");
    }
    out[*unknown] = total / *known;
  }
  const std::optional<int64_t> count = bounded_num_elements(out);
  if (!count) return too_many_elements(node, requested);
  if (*count != total) {
    return node_error(node, "cannot reshape " + to_string(x) + " (" + str(total) +
                                " elements) to " + ints_string(requested) + " (" + str(*count) +
                                " elements)");
  }
  return out;
}

Result<Infos> infer_reshape(const Node& node, const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* x, required_input(node, context, 0, "data"));
  KILN_ASSIGN_OR_RETURN(Shape shape, reshape_shape(node, context, *x));
  return Infos{{x->dtype, shape}};
}

Result<Infos> infer_flatten(const Node& node, const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* x, required_input(node, context, 0, "input"));
  const int64_t rank = int64_t(x->shape.size());
  KILN_ASSIGN_OR_RETURN(int64_t axis_value, int_attr(node, "axis", 1));
  // Flatten's axis may be the rank itself (everything in the first dimension).
  int64_t axis = axis_value < 0 ? axis_value + rank : axis_value;
  if (axis < 0 || axis > rank) {
    return node_error(node, "attribute 'axis' = " + str(axis_value) + " is out of range [" +
                                str(-rank) + ", " + str(rank) + "] for rank " + str(rank));
  }
  return Infos{
      {x->dtype,
       {product(x->shape, 0, size_t(axis)), product(x->shape, size_t(axis), x->shape.size())}}};
}

// ---- Transpose ---------------------------------------------------------------------------------

Result<std::vector<int64_t>> transpose_perm(const Node& node, const TensorInfo& x) {
  const int64_t rank = int64_t(x.shape.size());
  KILN_ASSIGN_OR_RETURN(std::optional<std::vector<int64_t>> perm_attr, ints_attr(node, "perm"));
  std::vector<int64_t> perm;
  if (!perm_attr) {
    for (int64_t d = rank; d-- > 0;) perm.push_back(d);
    return perm;
  }
  perm = *perm_attr;
  std::vector<bool> seen(size_t(rank), false);
  bool valid = int64_t(perm.size()) == rank;
  for (int64_t& p : perm) {
    if (!valid) break;
    if (p < 0) p += rank;  // onnxruntime accepts negative entries; so does kiln
    valid = p >= 0 && p < rank && !seen[size_t(p)];
    if (valid) seen[size_t(p)] = true;
  }
  if (!valid) {
    return node_error(node, "attribute 'perm' = " + ints_string(*perm_attr) +
                                " is not a permutation of the " + str(rank) + " axes of " +
                                to_string(x));
  }
  return perm;
}

Result<Infos> infer_transpose(const Node& node, const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* x, required_input(node, context, 0, "data"));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> perm, transpose_perm(node, *x));
  Shape out;
  for (int64_t p : perm) out.push_back(x->shape[size_t(p)]);
  return Infos{{x->dtype, out}};
}

Status compute_transpose(const Node& node, const InferContext&, std::span<const TensorView> inputs,
                         std::span<const TensorView> outputs) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> perm, transpose_perm(node, inputs[0].info));
  std::vector<int64_t> in_strides = strides_of(inputs[0].info.shape);
  std::array<std::vector<int64_t>, 1> strides;
  for (int64_t p : perm) strides[0].push_back(in_strides[size_t(p)]);
  return dispatch_dtype(outputs[0].info.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* in = view_data<T>(inputs[0]);
    T* out = view_data_mut<T>(outputs[0]);
    walk_strided<1>(outputs[0].info.shape, strides, {0},
                    [&](int64_t i, const std::array<int64_t, 1>& o) { out[i] = in[o[0]]; });
    return Status::ok();
  });
}

// ---- Concat, Split -----------------------------------------------------------------------------

Result<int64_t> concat_axis(const Node& node, const TensorInfo& first) {
  if (node.attr("axis") == nullptr) return node_error(node, "attribute 'axis' is required");
  KILN_ASSIGN_OR_RETURN(int64_t axis, int_attr(node, "axis", 0));
  return normalize_axis(node, axis, int64_t(first.shape.size()), "attribute 'axis'");
}

Result<Infos> infer_concat(const Node& node, const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* first, required_input(node, context, 0, "inputs"));
  KILN_ASSIGN_OR_RETURN(int64_t axis, concat_axis(node, *first));
  TensorInfo out = *first;
  out.shape[size_t(axis)] = 0;
  for (size_t i = 0; i < std::max(node.inputs.size(), context.inputs.size()); ++i) {
    KILN_ASSIGN_OR_RETURN(const TensorInfo* x, required_input(node, context, i, "inputs"));
    bool same = x->dtype == first->dtype && x->shape.size() == first->shape.size();
    for (size_t d = 0; same && d < x->shape.size(); ++d) {
      same = d == size_t(axis) || x->shape[d] == first->shape[d];
    }
    if (!same) {
      return node_error(node, "input " + str(int64_t(i)) + " is " + to_string(*x) +
                                  ", which does not concatenate with input 0 " + to_string(*first) +
                                  " along axis " + str(axis));
    }
    out.shape[size_t(axis)] += x->shape[size_t(axis)];
  }
  return Infos{out};
}

Status compute_concat(const Node& node, const InferContext&, std::span<const TensorView> inputs,
                      std::span<const TensorView> outputs) {
  KILN_ASSIGN_OR_RETURN(int64_t axis, concat_axis(node, inputs[0].info));
  const Shape& out_shape = outputs[0].info.shape;
  const int64_t outer = product(out_shape, 0, size_t(axis));
  const int64_t out_block = product(out_shape, size_t(axis), out_shape.size());
  const int64_t elem = dtype_size(outputs[0].info.dtype);
  char* out = static_cast<char*>(outputs[0].data);
  int64_t offset = 0;
  for (const TensorView& in : inputs) {
    const int64_t block = product(in.info.shape, size_t(axis), in.info.shape.size());
    const char* src = static_cast<const char*>(in.data);
    for (int64_t o = 0; o < outer && block > 0; ++o) {
      std::memcpy(out + (o * out_block + offset) * elem, src + o * block * elem,
                  size_t(block * elem));
    }
    offset += block;
  }
  return Status::ok();
}

struct SplitPlan {
  int64_t axis;
  std::vector<int64_t> sizes;
};

// Split's sizes: input 1 from opset 13 (attribute 'split' before), else equal parts, one per
// output; with attribute num_outputs (opset 18) parts of ceil(dim / n) and a smaller last one.
Result<SplitPlan> split_plan(const Node& node, const InferContext& context, const TensorInfo& x) {
  KILN_ASSIGN_OR_RETURN(int64_t axis_value, int_attr(node, "axis", 0));
  KILN_ASSIGN_OR_RETURN(
      int64_t axis, normalize_axis(node, axis_value, int64_t(x.shape.size()), "attribute 'axis'"));
  const int64_t dim = x.shape[size_t(axis)];
  const int64_t n = int64_t(node.outputs.size());
  std::optional<std::vector<int64_t>> sizes;
  if (context.opset >= 13) {
    if (node.attr("split") != nullptr) {
      return node_error(node, "attribute 'split' is not supported in opset " + str(context.opset) +
                                  " (from opset 13 it is input 1)");
    }
    KILN_ASSIGN_OR_RETURN(const Tensor* split, constant_operand(node, context, 1, "split"));
    if (split != nullptr) {
      KILN_ASSIGN_OR_RETURN(sizes, int_operand(node, *split, "split"));
    }
  } else {
    KILN_ASSIGN_OR_RETURN(sizes, ints_attr(node, "split"));
  }
  if (n == 0) return node_error(node, "has no outputs");
  if (!sizes) {
    if (node.attr("num_outputs") != nullptr) {
      KILN_ASSIGN_OR_RETURN(int64_t num_outputs, int_attr(node, "num_outputs", n));
      if (num_outputs != n) {
        return node_error(node, "attribute 'num_outputs' = " + str(num_outputs) +
                                    " but the node "
                                    "has " +
                                    str(n) + " outputs");
      }
      const int64_t chunk = (dim + n - 1) / n;
      sizes.emplace();
      for (int64_t i = 0, left = dim; i < n; ++i, left -= chunk) {
        sizes->push_back(std::clamp<int64_t>(left, 0, chunk));
      }
    } else {
      if (dim % n != 0) {
        return node_error(node, "axis " + str(axis) + " of " + to_string(x) +
                                    " does not split into " + str(n) +
                                    " equal parts; give 'split'");
      }
      sizes = std::vector<int64_t>(size_t(n), dim / n);
    }
  }
  int64_t sum = 0;
  for (int64_t s : *sizes) {
    if (s < 0) {
      return node_error(node, "'split' = " + ints_string(*sizes) + " has a negative size");
    }
    sum += s;
  }
  if (int64_t(sizes->size()) != n || sum != dim) {
    return node_error(node, "'split' = " + ints_string(*sizes) +
                                " must have one size per output (" + str(n) +
                                ") summing to dimension " + str(axis) + " of " + to_string(x) +
                                " (" + str(dim) + ")");
  }
  return SplitPlan{axis, *sizes};
}

Result<Infos> infer_split(const Node& node, const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* x, required_input(node, context, 0, "input"));
  KILN_ASSIGN_OR_RETURN(SplitPlan plan, split_plan(node, context, *x));
  Infos outs;
  for (int64_t s : plan.sizes) {
    outs.push_back(*x);
    outs.back().shape[size_t(plan.axis)] = s;
  }
  return outs;
}

Status compute_split(const Node& node, const InferContext& context,
                     std::span<const TensorView> inputs, std::span<const TensorView> outputs) {
  KILN_ASSIGN_OR_RETURN(SplitPlan plan, split_plan(node, context, inputs[0].info));
  const Shape& in_shape = inputs[0].info.shape;
  const int64_t outer = product(in_shape, 0, size_t(plan.axis));
  const int64_t inner = product(in_shape, size_t(plan.axis) + 1, in_shape.size());
  const int64_t in_block = in_shape[size_t(plan.axis)] * inner;
  const int64_t elem = dtype_size(inputs[0].info.dtype);
  const char* in = static_cast<const char*>(inputs[0].data);
  int64_t offset = 0;
  for (size_t k = 0; k < plan.sizes.size(); ++k) {
    const int64_t block = plan.sizes[k] * inner;
    if (k < outputs.size() && outputs[k].data != nullptr) {
      char* out = static_cast<char*>(outputs[k].data);
      for (int64_t o = 0; o < outer && block > 0; ++o) {
        std::memcpy(out + o * block * elem, in + (o * in_block + offset) * elem,
                    size_t(block * elem));
      }
    }
    offset += block;
  }
  return Status::ok();
}

// ---- Slice -------------------------------------------------------------------------------------

// For every input dimension, the first element read, the step and the output size.
struct SlicePlan {
  std::vector<int64_t> start;
  std::vector<int64_t> step;
  Shape out;
};

Result<std::optional<std::vector<int64_t>>> slice_operand(const Node& node,
                                                          const InferContext& context, size_t i,
                                                          const std::string& what) {
  if (context.opset < 10) return ints_attr(node, what);
  KILN_ASSIGN_OR_RETURN(const Tensor* value, constant_operand(node, context, i, what));
  if (value == nullptr) return std::optional<std::vector<int64_t>>();
  if (value->info.shape.size() != 1) {
    return node_error(node, "'" + what + "' must be 1-D, got " + to_string(value->info));
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> ints, int_operand(node, *value, what));
  return std::optional<std::vector<int64_t>>(ints);
}

// ONNX Slice: negative starts and ends count from the end; then starts and ends are clamped to
// [0, dim] for a positive step and to [0, dim - 1] and [-1, dim - 1] for a negative one.
Result<SlicePlan> slice_plan(const Node& node, const InferContext& context, const TensorInfo& x) {
  const int64_t rank = int64_t(x.shape.size());
  KILN_ASSIGN_OR_RETURN(auto starts, slice_operand(node, context, 1, "starts"));
  KILN_ASSIGN_OR_RETURN(auto ends, slice_operand(node, context, 2, "ends"));
  KILN_ASSIGN_OR_RETURN(auto axes, slice_operand(node, context, 3, "axes"));
  std::optional<std::vector<int64_t>> steps;
  if (context.opset >= 10) {
    KILN_ASSIGN_OR_RETURN(steps, slice_operand(node, context, 4, "steps"));
  }
  if (!starts || !ends) {
    return node_error(node, context.opset < 10 ? "attributes 'starts' and 'ends' are required"
                                               : "inputs 1 ('starts') and 2 ('ends') are required");
  }
  const size_t n = starts->size();
  if (ends->size() != n || (axes && axes->size() != n) || (steps && steps->size() != n)) {
    return node_error(node, "'starts' " + ints_string(*starts) + ", 'ends' " + ints_string(*ends) +
                                ", 'axes' and 'steps' must have one entry "
                                "per sliced axis");
  }
  std::vector<int64_t> axis_list;
  if (axes) {
    KILN_ASSIGN_OR_RETURN(axis_list, normalize_axes(node, *axes, rank, "'axes'"));
  } else {
    if (int64_t(n) > rank) {
      return node_error(node, "'starts' " + ints_string(*starts) +
                                  " has more entries than the "
                                  "rank of " +
                                  to_string(x));
    }
    for (size_t i = 0; i < n; ++i) axis_list.push_back(int64_t(i));
  }
  SlicePlan plan{std::vector<int64_t>(size_t(rank), 0), std::vector<int64_t>(size_t(rank), 1),
                 x.shape};
  for (size_t i = 0; i < n; ++i) {
    const size_t axis = size_t(axis_list[i]);
    const int64_t dim = x.shape[axis];
    int64_t step = steps ? (*steps)[i] : 1;
    if (step == 0) return node_error(node, "'steps' " + ints_string(*steps) + " has a 0");
    int64_t start = (*starts)[i];
    int64_t end = (*ends)[i];
    if (start < 0) start += dim;
    if (end < 0) end += dim;
    int64_t size;
    if (dim == 0) {
      size = 0;
    } else if (step > 0) {
      start = std::clamp<int64_t>(start, 0, dim);
      end = std::clamp<int64_t>(end, 0, dim);
      size = end > start ? (end - start - 1) / step + 1 : 0;
    } else {
      start = std::clamp<int64_t>(start, 0, dim - 1);
      end = std::clamp<int64_t>(end, -1, dim - 1);
      // A step beyond the dimension reads one element; bounding it keeps offsets in range.
      step = std::max(step, -std::max<int64_t>(dim, 1));
      size = start > end ? (start - end - 1) / -step + 1 : 0;
    }
    step = std::min(step, std::max<int64_t>(dim, 1));
    plan.start[axis] = size > 0 ? start : 0;
    plan.step[axis] = step;
    plan.out[axis] = size;
  }
  return plan;
}

Result<Infos> infer_slice(const Node& node, const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* x, required_input(node, context, 0, "data"));
  KILN_ASSIGN_OR_RETURN(SlicePlan plan, slice_plan(node, context, *x));
  return Infos{{x->dtype, plan.out}};
}

Status compute_slice(const Node& node, const InferContext& context,
                     std::span<const TensorView> inputs, std::span<const TensorView> outputs) {
  KILN_ASSIGN_OR_RETURN(SlicePlan plan, slice_plan(node, context, inputs[0].info));
  std::vector<int64_t> in_strides = strides_of(inputs[0].info.shape);
  std::array<std::vector<int64_t>, 1> strides;
  int64_t base = 0;
  for (size_t d = 0; d < in_strides.size(); ++d) {
    strides[0].push_back(plan.step[d] * in_strides[d]);
    base += plan.start[d] * in_strides[d];
  }
  return dispatch_dtype(outputs[0].info.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* in = view_data<T>(inputs[0]);
    T* out = view_data_mut<T>(outputs[0]);
    walk_strided<1>(outputs[0].info.shape, strides, {base},
                    [&](int64_t i, const std::array<int64_t, 1>& o) { out[i] = in[o[0]]; });
    return Status::ok();
  });
}

// ---- Pad ---------------------------------------------------------------------------------------

enum class PadMode { kConstant, kReflect, kEdge };

struct PadPlan {
  PadMode mode;
  std::vector<int64_t> pads;  ///< begins of every axis, then ends; negative ones crop
  Shape out;
};

Result<PadPlan> pad_plan(const Node& node, const InferContext& context, const TensorInfo& x) {
  const int64_t rank = int64_t(x.shape.size());
  KILN_ASSIGN_OR_RETURN(std::string mode_name, string_attr(node, "mode", "constant"));
  PadPlan plan;
  if (mode_name == "constant") {
    plan.mode = PadMode::kConstant;
  } else if (mode_name == "reflect") {
    plan.mode = PadMode::kReflect;
  } else if (mode_name == "edge") {
    plan.mode = PadMode::kEdge;
  } else {
    return node_error(node, "attribute 'mode' = '" + mode_name +
                                "' is not supported (constant, reflect or edge)");
  }
  if (context.opset < 11) {
    KILN_ASSIGN_OR_RETURN(auto pads, ints_attr(node, "pads"));
    if (!pads) return node_error(node, "attribute 'pads' is required");
    plan.pads = *pads;
  } else {
    if (node.attr("pads") != nullptr || node.attr("value") != nullptr) {
      return node_error(node, "attributes 'pads' and 'value' are not supported in opset " +
                                  str(context.opset) + " (from opset 11 they are inputs 1 and 2)");
    }
    if (input_info(context, 3) != nullptr) {
      return node_error(node,
                        "input 3 ('axes', opset 18) is not supported; give pads of every "
                        "axis");
    }
    KILN_ASSIGN_OR_RETURN(const TensorInfo* pads_info, required_input(node, context, 1, "pads"));
    (void)pads_info;
    KILN_ASSIGN_OR_RETURN(const Tensor* pads, constant_operand(node, context, 1, "pads"));
    KILN_ASSIGN_OR_RETURN(plan.pads, int_operand(node, *pads, "pads"));
    if (const TensorInfo* value = input_info(context, 2)) {
      if (value->dtype != x.dtype || value->num_elements() != 1) {
        return node_error(node, "'constant_value' is " + to_string(*value) + ", it must be a " +
                                    dtype_name(x.dtype) + " scalar");
      }
    }
  }
  if (int64_t(plan.pads.size()) != 2 * rank) {
    return node_error(node, "'pads' = " + ints_string(plan.pads) + " must have " + str(2 * rank) +
                                " entries for " + to_string(x));
  }
  plan.out = x.shape;
  for (size_t d = 0; d < size_t(rank); ++d) {
    plan.out[d] += plan.pads[d] + plan.pads[d + size_t(rank)];
    if (plan.out[d] < 0) {
      return node_error(node, "'pads' = " + ints_string(plan.pads) + " crops axis " +
                                  str(int64_t(d)) + " of " + to_string(x) + " below zero");
    }
    if (plan.mode != PadMode::kConstant && x.shape[d] == 0 && plan.out[d] > 0) {
      return node_error(node, "mode '" + mode_name + "' cannot pad the empty axis " +
                                  str(int64_t(d)) + " of " + to_string(x));
    }
  }
  return plan;
}

Result<Infos> infer_pad(const Node& node, const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* x, required_input(node, context, 0, "data"));
  KILN_ASSIGN_OR_RETURN(PadPlan plan, pad_plan(node, context, *x));
  return Infos{{x->dtype, plan.out}};
}

// The input coordinate of output coordinate `o` along an axis of size `dim` padded by `begin`;
// -1 for a constant element. Reflect mirrors without repeating the edge, as numpy's pad does,
// also for pads longer than the axis.
int64_t pad_source(PadMode mode, int64_t o, int64_t begin, int64_t dim) {
  int64_t c = o - begin;
  if (c >= 0 && c < dim) return c;
  if (mode == PadMode::kConstant) return -1;
  if (mode == PadMode::kEdge || dim == 1) return c < 0 ? 0 : dim - 1;
  const int64_t period = 2 * (dim - 1);
  c %= period;
  if (c < 0) c += period;
  return c < dim ? c : period - c;
}

template <typename T>
void pad_axis(size_t d, const std::vector<std::vector<int64_t>>& sources,
              const std::vector<int64_t>& strides, const T* in, int64_t in_offset, bool inside,
              T value, T* out, int64_t& out_index) {
  const bool last = d + 1 == sources.size();
  for (int64_t c : sources[d]) {
    const bool in_range = inside && c >= 0;
    const int64_t offset = in_range ? in_offset + c * strides[d] : 0;
    if (last) {
      out[out_index++] = in_range ? in[offset] : value;
    } else {
      pad_axis(d + 1, sources, strides, in, offset, in_range, value, out, out_index);
    }
  }
}

Status compute_pad(const Node& node, const InferContext& context,
                   std::span<const TensorView> inputs, std::span<const TensorView> outputs) {
  const TensorInfo& x = inputs[0].info;
  KILN_ASSIGN_OR_RETURN(PadPlan plan, pad_plan(node, context, x));
  double value = 0;
  if (context.opset < 11) {
    KILN_ASSIGN_OR_RETURN(float v, float_attr(node, "value", 0.0f));
    value = v;
  } else if (const Tensor* t = input_constant(context, 2)) {
    value = t->at(0);
  }
  const size_t rank = x.shape.size();
  std::vector<std::vector<int64_t>> sources(rank);
  for (size_t d = 0; d < rank; ++d) {
    for (int64_t o = 0; o < plan.out[d]; ++o) {
      sources[d].push_back(pad_source(plan.mode, o, plan.pads[d], x.shape[d]));
    }
  }
  return dispatch_dtype(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* in = view_data<T>(inputs[0]);
    T* out = view_data_mut<T>(outputs[0]);
    if (rank == 0) {
      out[0] = in[0];
      return Status::ok();
    }
    int64_t out_index = 0;
    if (outputs[0].info.num_elements() > 0) {
      pad_axis<T>(0, sources, strides_of(x.shape), in, 0, true, T(value), out, out_index);
    }
    return Status::ok();
  });
}

// ---- Squeeze, Unsqueeze ------------------------------------------------------------------------

// The axes of Squeeze or Unsqueeze: attribute before opset 13, optional constant input after.
Result<std::optional<std::vector<int64_t>>> squeeze_axes(const Node& node,
                                                         const InferContext& context) {
  if (context.opset < 13) return ints_attr(node, "axes");
  if (node.attr("axes") != nullptr) {
    return node_error(node, "attribute 'axes' is not supported in opset " + str(context.opset) +
                                " (from opset 13 it is input 1)");
  }
  KILN_ASSIGN_OR_RETURN(const Tensor* axes, constant_operand(node, context, 1, "axes"));
  if (axes == nullptr) return std::optional<std::vector<int64_t>>();
  if (axes->info.shape.size() > 1) {
    return node_error(node, "'axes' must be 1-D, got " + to_string(axes->info));
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> ints, int_operand(node, *axes, "axes"));
  return std::optional<std::vector<int64_t>>(ints);
}

Result<Infos> infer_squeeze(const Node& node, const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* x, required_input(node, context, 0, "data"));
  KILN_ASSIGN_OR_RETURN(auto axes, squeeze_axes(node, context));
  const int64_t rank = int64_t(x->shape.size());
  std::vector<bool> drop(size_t(rank), false);
  if (axes && !axes->empty()) {
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> normalized,
                          normalize_axes(node, *axes, rank, "'axes'"));
    for (int64_t a : normalized) {
      if (x->shape[size_t(a)] != 1) {
        return node_error(
            node, "cannot squeeze axis " + str(a) + " of " + to_string(*x) + ": its size is not 1");
      }
      drop[size_t(a)] = true;
    }
  } else {
    // No axes (or empty ones, as onnxruntime reads them): every axis of size 1.
    for (size_t d = 0; d < size_t(rank); ++d) drop[d] = x->shape[d] == 1;
  }
  Shape out;
  for (size_t d = 0; d < size_t(rank); ++d) {
    if (!drop[d]) out.push_back(x->shape[d]);
  }
  return Infos{{x->dtype, out}};
}

Result<Infos> infer_unsqueeze(const Node& node, const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* x, required_input(node, context, 0, "data"));
  KILN_ASSIGN_OR_RETURN(auto axes, squeeze_axes(node, context));
  if (!axes) {
    return node_error(
        node, context.opset < 13 ? "attribute 'axes' is required" : "input 1 ('axes') is required");
  }
  const int64_t out_rank = int64_t(x->shape.size() + axes->size());
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> normalized,
                        normalize_axes(node, *axes, out_rank, "'axes'"));
  std::vector<bool> inserted(size_t(out_rank), false);
  for (int64_t a : normalized) inserted[size_t(a)] = true;
  Shape out;
  size_t next = 0;
  for (size_t d = 0; d < size_t(out_rank); ++d) out.push_back(inserted[d] ? 1 : x->shape[next++]);
  return Infos{{x->dtype, out}};
}

// ---- ReduceMean --------------------------------------------------------------------------------

struct ReducePlan {
  std::vector<bool> reduced;  ///< per input axis
  Shape out;
};

Result<ReducePlan> reduce_plan(const Node& node, const InferContext& context, const TensorInfo& x) {
  const int64_t rank = int64_t(x.shape.size());
  KILN_ASSIGN_OR_RETURN(int64_t keepdims, int_attr(node, "keepdims", 1));
  KILN_ASSIGN_OR_RETURN(int64_t noop, int_attr(node, "noop_with_empty_axes", 0));
  std::optional<std::vector<int64_t>> axes;
  if (context.opset < 18) {
    KILN_ASSIGN_OR_RETURN(axes, ints_attr(node, "axes"));
  } else {
    KILN_ASSIGN_OR_RETURN(const Tensor* value, constant_operand(node, context, 1, "axes"));
    if (value != nullptr) {
      KILN_ASSIGN_OR_RETURN(axes, int_operand(node, *value, "axes"));
    }
  }
  ReducePlan plan{std::vector<bool>(size_t(rank), false), {}};
  if (axes && !axes->empty()) {
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> normalized,
                          normalize_axes(node, *axes, rank, "'axes'"));
    for (int64_t a : normalized) plan.reduced[size_t(a)] = true;
  } else if (noop == 0) {
    plan.reduced.assign(size_t(rank), true);
  }
  for (size_t d = 0; d < size_t(rank); ++d) {
    if (!plan.reduced[d]) {
      plan.out.push_back(x.shape[d]);
    } else if (keepdims != 0) {
      plan.out.push_back(1);
    }
  }
  return plan;
}

Result<Infos> infer_reduce_mean(const Node& node, const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* x, required_input(node, context, 0, "data"));
  if (x->dtype != DType::kFloat32) {
    return node_error(node, std::string("input dtype ") + dtype_name(x->dtype) +
                                " is not supported (float32 only)");
  }
  KILN_ASSIGN_OR_RETURN(ReducePlan plan, reduce_plan(node, context, *x));
  return Infos{{x->dtype, plan.out}};
}

Status compute_reduce_mean(const Node& node, const InferContext& context,
                           std::span<const TensorView> inputs,
                           std::span<const TensorView> outputs) {
  const TensorInfo& x = inputs[0].info;
  KILN_ASSIGN_OR_RETURN(ReducePlan plan, reduce_plan(node, context, x));
  // Each input element adds to the output element at its index with the reduced axes at 0.
  Shape kept = x.shape;
  int64_t count = 1;
  for (size_t d = 0; d < kept.size(); ++d) {
    if (plan.reduced[d]) {
      count *= kept[d];
      kept[d] = 1;
    }
  }
  std::array<std::vector<int64_t>, 1> strides = {broadcast_strides(kept, x.shape)};
  std::vector<double> sums(size_t(outputs[0].info.num_elements()), 0.0);
  const float* in = inputs[0].f32();
  walk_strided<1>(x.shape, strides, {0},
                  [&](int64_t i, const std::array<int64_t, 1>& o) { sums[size_t(o[0])] += in[i]; });
  float* out = outputs[0].f32();
  for (size_t i = 0; i < sums.size(); ++i) out[i] = float(sums[i] / double(count));
  return Status::ok();
}

// ---- Constant ----------------------------------------------------------------------------------

Result<Tensor> constant_value(const Node& node) {
  static const char* kSupported[] = {"value", "value_float", "value_floats", "value_int",
                                     "value_ints"};
  std::optional<Tensor> value;
  for (const auto& [key, attr] : node.attrs) {
    bool supported =
        std::find(std::begin(kSupported), std::end(kSupported), key) != std::end(kSupported);
    if (!supported) {
      return node_error(
          node, "attribute '" + key + "' is not supported (value, value_float(s) or value_int(s))");
    }
    if (value) return node_error(node, "has more than one value attribute");
    if (key == "value") {
      if (attr.kind != Attr::Kind::kTensor || !attr.tensor) {
        return node_error(node, "attribute 'value' must be a tensor");
      }
      value = *attr.tensor;
    } else if (key == "value_float") {
      KILN_ASSIGN_OR_RETURN(float f, float_attr(node, key, 0.0f));
      value = Tensor::from_floats({}, {f});
    } else if (key == "value_floats") {
      if (attr.kind != Attr::Kind::kFloats) {
        return node_error(node, "attribute 'value_floats' must be a list of floats");
      }
      value = Tensor::from_floats({int64_t(attr.floats.size())}, attr.floats);
    } else if (key == "value_int") {
      KILN_ASSIGN_OR_RETURN(int64_t i, int_attr(node, key, 0));
      value = Tensor::from_ints({}, {i});
    } else {
      KILN_ASSIGN_OR_RETURN(std::optional<std::vector<int64_t>> ints, ints_attr(node, key));
      // value_or, not *ints: GCC 12 for aarch64 warns that a dereferenced optional may be
      // uninitialized here (maybe-uninitialized), though the key is present.
      std::vector<int64_t> values = std::move(ints).value_or(std::vector<int64_t>{});
      const int64_t n = int64_t(values.size());
      value = Tensor::from_ints({n}, std::move(values));
    }
  }
  if (!value) return node_error(node, "has no value attribute");
  return *value;
}

Result<Infos> infer_constant(const Node& node, const InferContext&) {
  KILN_ASSIGN_OR_RETURN(Tensor value, constant_value(node));
  return Infos{value.info};
}

Status compute_constant(const Node& node, const InferContext&, std::span<const TensorView>,
                        std::span<const TensorView> outputs) {
  KILN_ASSIGN_OR_RETURN(Tensor value, constant_value(node));
  if (value.num_elements() > 0) {
    std::memcpy(outputs[0].data, value.data(), size_t(value.info.num_bytes()));
  }
  return Status::ok();
}

// ---- Shape -------------------------------------------------------------------------------------

// The dimensions [start, end) that Shape returns (start and end from opset 15, clamped).
Result<std::pair<int64_t, int64_t>> shape_range(const Node& node, const TensorInfo& x) {
  const int64_t rank = int64_t(x.shape.size());
  KILN_ASSIGN_OR_RETURN(int64_t start, int_attr(node, "start", 0));
  KILN_ASSIGN_OR_RETURN(int64_t end, int_attr(node, "end", rank));
  if (start < 0) start += rank;
  if (end < 0) end += rank;
  start = std::clamp<int64_t>(start, 0, rank);
  end = std::clamp<int64_t>(end, 0, rank);
  return std::make_pair(start, std::max(start, end));
}

Result<Infos> infer_shape(const Node& node, const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* x, required_input(node, context, 0, "data"));
  KILN_ASSIGN_OR_RETURN(auto range, shape_range(node, *x));
  return Infos{{DType::kInt64, {range.second - range.first}}};
}

Status compute_shape(const Node& node, const InferContext&, std::span<const TensorView> inputs,
                     std::span<const TensorView> outputs) {
  KILN_ASSIGN_OR_RETURN(auto range, shape_range(node, inputs[0].info));
  for (int64_t d = range.first; d < range.second; ++d) {
    outputs[0].i64()[d - range.first] = inputs[0].info.shape[size_t(d)];
  }
  return Status::ok();
}

// ---- Gather ------------------------------------------------------------------------------------

Result<int64_t> gather_axis(const Node& node, const TensorInfo& data) {
  KILN_ASSIGN_OR_RETURN(int64_t axis, int_attr(node, "axis", 0));
  return normalize_axis(node, axis, int64_t(data.shape.size()), "attribute 'axis'");
}

Result<Infos> infer_gather(const Node& node, const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* data, required_input(node, context, 0, "data"));
  KILN_ASSIGN_OR_RETURN(const TensorInfo* indices, required_input(node, context, 1, "indices"));
  if (indices->dtype != DType::kInt64) {
    return node_error(node, "'indices' must be int64, got " + to_string(*indices));
  }
  KILN_ASSIGN_OR_RETURN(int64_t axis, gather_axis(node, *data));
  Shape out(data->shape.begin(), data->shape.begin() + axis);
  out.insert(out.end(), indices->shape.begin(), indices->shape.end());
  out.insert(out.end(), data->shape.begin() + axis + 1, data->shape.end());
  return Infos{{data->dtype, out}};
}

Status compute_gather(const Node& node, const InferContext&, std::span<const TensorView> inputs,
                      std::span<const TensorView> outputs) {
  const TensorInfo& data = inputs[0].info;
  KILN_ASSIGN_OR_RETURN(int64_t axis, gather_axis(node, data));
  const int64_t outer = product(data.shape, 0, size_t(axis));
  const int64_t dim = data.shape[size_t(axis)];
  const int64_t inner = product(data.shape, size_t(axis) + 1, data.shape.size());
  const int64_t count = inputs[1].info.num_elements();
  const int64_t* indices = inputs[1].i64();
  const int64_t elem = dtype_size(data.dtype);
  const char* in = static_cast<const char*>(inputs[0].data);
  char* out = static_cast<char*>(outputs[0].data);
  for (int64_t k = 0; k < count; ++k) {
    if (indices[k] < -dim || indices[k] >= dim) {
      return node_error(node, "index " + str(indices[k]) + " is out of range [" + str(-dim) + ", " +
                                  str(dim - 1) + "] of axis " + str(axis) + " of " +
                                  to_string(data));
    }
  }
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t k = 0; k < count && inner > 0; ++k) {
      const int64_t index = indices[k] < 0 ? indices[k] + dim : indices[k];
      std::memcpy(out + ((o * count + k) * inner) * elem, in + ((o * dim + index) * inner) * elem,
                  size_t(inner * elem));
    }
  }
  return Status::ok();
}

// ---- Cast --------------------------------------------------------------------------------------

// ONNX TensorProto.DataType values: kiln has FLOAT (1) and INT64 (7).
const char* onnx_type_name(int64_t to) {
  static const char* kNames[] = {
      "UNDEFINED",      "FLOAT",      "UINT8",         "INT8",       "UINT16",   "INT16",
      "INT32",          "INT64",      "STRING",        "BOOL",       "FLOAT16",  "DOUBLE",
      "UINT32",         "UINT64",     "COMPLEX64",     "COMPLEX128", "BFLOAT16", "FLOAT8E4M3FN",
      "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ"};
  return to >= 0 && to < int64_t(std::size(kNames)) ? kNames[to] : "unknown";
}

Result<Infos> infer_cast(const Node& node, const InferContext& context) {
  KILN_ASSIGN_OR_RETURN(const TensorInfo* x, required_input(node, context, 0, "input"));
  if (node.attr("to") == nullptr) return node_error(node, "attribute 'to' is required");
  KILN_ASSIGN_OR_RETURN(int64_t to, int_attr(node, "to", 0));
  if (to != 1 && to != 7) {
    return node_error(node, "attribute 'to' = " + str(to) + " (" + onnx_type_name(to) +
                                ") is not supported (1 FLOAT or 7 INT64)");
  }
  return Infos{{to == 1 ? DType::kFloat32 : DType::kInt64, x->shape}};
}

Status compute_cast(const Node&, const InferContext&, std::span<const TensorView> inputs,
                    std::span<const TensorView> outputs) {
  const int64_t n = outputs[0].info.num_elements();
  const DType from = inputs[0].info.dtype;
  const DType to = outputs[0].info.dtype;
  if (from == to) {
    if (n > 0) std::memcpy(outputs[0].data, inputs[0].data, size_t(outputs[0].info.num_bytes()));
  } else if (to == DType::kFloat32) {
    for (int64_t i = 0; i < n; ++i) outputs[0].f32()[i] = float(inputs[0].i64()[i]);
  } else {
    // Truncation toward zero, as numpy's astype; NaN becomes 0 and values beyond int64
    // saturate (C++ leaves both undefined).
    constexpr float kLimit = 9.2233720368547758e18f;  // 2^63
    for (int64_t i = 0; i < n; ++i) {
      const float v = inputs[0].f32()[i];
      int64_t r = 0;
      if (v >= kLimit) {
        r = std::numeric_limits<int64_t>::max();
      } else if (v < -kLimit) {
        r = std::numeric_limits<int64_t>::lowest();
      } else if (!std::isnan(v)) {
        r = int64_t(v);
      }
      outputs[0].i64()[i] = r;
    }
  }
  return Status::ok();
}

}  // namespace

void add_tensor_ops(OpTable& table) {
  table["Reshape"] = make_op(infer_reshape, compute_copy, 1);
  table["Flatten"] = make_op(infer_flatten, compute_copy);
  table["Transpose"] = make_op(infer_transpose, compute_transpose);
  table["Concat"] = make_op(infer_concat, compute_concat);
  table["Split"] = make_op(infer_split, compute_split, 1);
  table["Slice"] = make_op(infer_slice, compute_slice, 1);
  table["Pad"] = make_op(infer_pad, compute_pad, 1);
  table["Squeeze"] = make_op(infer_squeeze, compute_copy, 1);
  table["Unsqueeze"] = make_op(infer_unsqueeze, compute_copy, 1);
  table["ReduceMean"] = make_op(infer_reduce_mean, compute_reduce_mean, 1);
  table["Constant"] = make_op(infer_constant, compute_constant);
  table["Shape"] = make_op(infer_shape, compute_shape);
  table["Gather"] = make_op(infer_gather, compute_gather);
  table["Cast"] = make_op(infer_cast, compute_cast);
}

}  // namespace kiln::graph::ops_internal
