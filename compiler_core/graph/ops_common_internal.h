// Helpers shared by the host operators of ops_elementwise.cc and ops_tensor.cc: reading inputs
// and attributes with checked kinds, axes, strides, numpy broadcasting, a strided walk over an
// index space, and make_op, which gives every operator the same run: it types the node again
// from the views (so run and infer cannot disagree), checks the outputs' types, then computes.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "compiler_core/graph/ops_internal.h"

namespace kiln::graph::ops_internal {

/// "[1,3,224]".
inline std::string shape_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

inline std::string ints_string(const std::vector<int64_t>& values) { return shape_string(values); }

/// True when the node names input `i` (an absent optional input is "" or past the end).
inline bool has_input(const Node& node, size_t i) {
  return i < node.inputs.size() && !node.inputs[i].empty();
}

/// Input `i`'s type, or nullptr when it is absent.
inline const TensorInfo* input_info(const InferContext& context, size_t i) {
  return i < context.inputs.size() ? context.inputs[i] : nullptr;
}

/// Input `i`'s constant value, or nullptr when it is absent or not a constant.
inline const Tensor* input_constant(const InferContext& context, size_t i) {
  return i < context.constants.size() ? context.constants[i] : nullptr;
}

/// Input `i`'s type; InvalidArgument naming the input (`what`) when it is absent.
inline Result<const TensorInfo*> required_input(const Node& node, const InferContext& context,
                                                size_t i, const std::string& what) {
  const TensorInfo* info = input_info(context, i);
  if (info == nullptr) {
    return node_error(node, "required input " + std::to_string(i) + " ('" + what + "') is missing");
  }
  return info;
}

/// Input `i`'s constant value when the input is present (nullptr when absent); InvalidArgument
/// when it is present and not a constant, since it decides the output's type.
inline Result<const Tensor*> constant_operand(const Node& node, const InferContext& context,
                                              size_t i, const std::string& what) {
  if (input_info(context, i) == nullptr) return static_cast<const Tensor*>(nullptr);
  const Tensor* value = input_constant(context, i);
  if (value == nullptr) {
    std::string name = i < node.inputs.size() ? node.inputs[i] : std::string();
    return node_error(node, "input " + std::to_string(i) + " ('" + what + "', value '" + name +
                                "') must be a constant (kiln needs static shapes); fold it or "
                                "export the model with constant " +
                                what);
  }
  return value;
}

/// The elements of an int64 operand (`what` names it in messages).
inline Result<std::vector<int64_t>> int_operand(const Node& node, const Tensor& value,
                                                const std::string& what) {
  if (value.info.dtype != DType::kInt64) {
    return node_error(node, "'" + what + "' must be int64, got " + to_string(value.info));
  }
  return value.i64;
}

/// A scalar operand (shape [] or a single element) as a double.
inline Result<double> scalar_operand(const Node& node, const Tensor& value,
                                     const std::string& what) {
  if (value.num_elements() != 1 || value.info.shape.size() > 1) {
    return node_error(node, "'" + what + "' must be a scalar, got " + to_string(value.info));
  }
  return value.at(0);
}

/// An int attribute; InvalidArgument when it is present with another kind.
inline Result<int64_t> int_attr(const Node& node, const std::string& key, int64_t default_value) {
  const Attr* a = node.attr(key);
  if (a == nullptr) return default_value;
  if (a->kind != Attr::Kind::kInt) {
    return node_error(node, "attribute '" + key + "' must be an int");
  }
  return a->i;
}

/// A float attribute (an int attribute is accepted as its value).
inline Result<float> float_attr(const Node& node, const std::string& key, float default_value) {
  const Attr* a = node.attr(key);
  if (a == nullptr) return default_value;
  if (a->kind == Attr::Kind::kInt) return float(a->i);
  if (a->kind != Attr::Kind::kFloat) {
    return node_error(node, "attribute '" + key + "' must be a float");
  }
  return a->f;
}

/// An ints attribute; std::nullopt when absent.
inline Result<std::optional<std::vector<int64_t>>> ints_attr(const Node& node,
                                                             const std::string& key) {
  const Attr* a = node.attr(key);
  if (a == nullptr) return std::optional<std::vector<int64_t>>();
  if (a->kind != Attr::Kind::kInts) {
    return node_error(node, "attribute '" + key + "' must be a list of ints");
  }
  return std::optional<std::vector<int64_t>>(a->ints);
}

inline Result<std::string> string_attr(const Node& node, const std::string& key,
                                       const std::string& default_value) {
  const Attr* a = node.attr(key);
  if (a == nullptr) return default_value;
  if (a->kind != Attr::Kind::kString) {
    return node_error(node, "attribute '" + key + "' must be a string");
  }
  return a->s;
}

/// `axis` in [-rank, rank-1] made non-negative; `what` names it ("attribute 'axis'").
inline Result<int64_t> normalize_axis(const Node& node, int64_t axis, int64_t rank,
                                      const std::string& what) {
  if (axis < -rank || axis >= rank) {
    return node_error(node, what + " = " + std::to_string(axis) + " is out of range [" +
                                std::to_string(-rank) + ", " + std::to_string(rank - 1) +
                                "] for rank " + std::to_string(rank));
  }
  return axis < 0 ? axis + rank : axis;
}

/// Every axis of `axes` normalized to [0, rank); InvalidArgument on one out of range or a
/// repeated axis.
inline Result<std::vector<int64_t>> normalize_axes(const Node& node,
                                                   const std::vector<int64_t>& axes, int64_t rank,
                                                   const std::string& what) {
  std::vector<int64_t> result;
  std::vector<bool> seen(size_t(rank), false);
  for (int64_t axis : axes) {
    KILN_ASSIGN_OR_RETURN(int64_t a, normalize_axis(node, axis, rank, what));
    if (seen[size_t(a)]) {
      return node_error(node,
                        what + " = " + ints_string(axes) + " repeats axis " + std::to_string(axis));
    }
    seen[size_t(a)] = true;
    result.push_back(a);
  }
  return result;
}

/// Row-major strides of `shape`, in elements.
inline std::vector<int64_t> strides_of(const Shape& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (size_t d = shape.size(); d-- > 1;) strides[d - 1] = strides[d] * shape[d];
  return strides;
}

/// The product of shape[begin, end).
inline int64_t product(const Shape& shape, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t d = begin; d < end && d < shape.size(); ++d) p *= shape[d];
  return p;
}

/// The numpy broadcast of `a` and `b` (ONNX multidirectional broadcasting); InvalidArgument
/// naming both shapes when they do not broadcast.
inline Result<Shape> broadcast_shapes(const Node& node, const Shape& a, const Shape& b) {
  size_t rank = std::max(a.size(), b.size());
  Shape out(rank, 1);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1) {
      return node_error(node, "shapes " + shape_string(a) + " and " + shape_string(b) +
                                  " do not broadcast (dimension " + std::to_string(da) +
                                  " against " + std::to_string(db) + ")");
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

/// The strides with which an input of `shape` is read at the indices of the broadcast `out`
/// shape: 0 on broadcast (and missing leading) dimensions.
inline std::vector<int64_t> broadcast_strides(const Shape& shape, const Shape& out) {
  std::vector<int64_t> own = strides_of(shape);
  std::vector<int64_t> strides(out.size(), 0);
  size_t lead = out.size() - shape.size();
  for (size_t d = 0; d < shape.size(); ++d) strides[lead + d] = shape[d] == 1 ? 0 : own[d];
  return strides;
}

/// Walks the index space `shape` in row-major order, calling f(flat, offsets) for each index:
/// `flat` counts 0, 1, ...; offsets[k] is base[k] plus the index dotted with strides[k] (each of
/// shape.size() entries).
template <size_t N, typename F>
void walk_strided(const Shape& shape, const std::array<std::vector<int64_t>, N>& strides,
                  std::array<int64_t, N> base, F&& f) {
  if (core::num_elements(shape) == 0) return;
  const size_t rank = shape.size();
  if (rank == 0) {
    f(int64_t(0), base);
    return;
  }
  std::array<int64_t, N> inner_step;
  for (size_t k = 0; k < N; ++k) inner_step[k] = strides[k][rank - 1];
  const int64_t inner = shape[rank - 1];
  std::vector<int64_t> index(rank, 0);
  int64_t flat = 0;
  for (;;) {
    std::array<int64_t, N> offsets = base;
    for (int64_t j = 0; j < inner; ++j) {
      f(flat++, offsets);
      for (size_t k = 0; k < N; ++k) offsets[k] += inner_step[k];
    }
    size_t d = rank - 1;
    for (; d-- > 0;) {
      ++index[d];
      for (size_t k = 0; k < N; ++k) base[k] += strides[k][d];
      if (index[d] < shape[d]) break;
      for (size_t k = 0; k < N; ++k) base[k] -= strides[k][d] * shape[d];
      index[d] = 0;
    }
    if (d == size_t(-1)) return;
  }
}

/// Calls f(T{}) with T the C++ type of `dtype` (float or int64_t).
template <typename F>
decltype(auto) dispatch_dtype(DType dtype, F&& f) {
  if (dtype == DType::kFloat32) return f(float{});
  return f(int64_t{});
}

template <typename T>
const T* view_data(const TensorView& view) {
  return static_cast<const T*>(view.data);
}

template <typename T>
T* view_data_mut(const TensorView& view) {
  return static_cast<T*>(view.data);
}

/// The computation of an operator, run after make_op's wrapper typed the node again from the
/// views: `context` holds the inputs' types and, for the operand inputs, their values.
using ComputeFn = Status (*)(const Node& node, const InferContext& context,
                             std::span<const TensorView> inputs,
                             std::span<const TensorView> outputs);
using InferFn = Result<std::vector<TensorInfo>> (*)(const Node& node, const InferContext& context);

/// An OpDef from `infer` and `compute`. The run function rebuilds an InferContext from the
/// views (inputs from `first_operand` on, the small operands that decide shapes and constants,
/// are copied as constants), runs `infer` on it, checks the outputs' types against it, and calls
/// `compute`.
inline OpDef make_op(InferFn infer, ComputeFn compute, size_t first_operand = size_t(-1)) {
  OpDef def;
  def.infer = infer;
  def.run = [infer, compute, first_operand](const Node& node, int64_t opset,
                                            std::span<const TensorView> inputs,
                                            std::span<const TensorView> outputs) -> Status {
    InferContext context;
    context.opset = opset;
    std::vector<Tensor> operands(inputs.size());
    size_t count = std::max(inputs.size(), node.inputs.size());
    for (size_t i = 0; i < count; ++i) {
      // An absent input has an empty name, or is past the views, or has no data although its
      // type has elements (a present empty tensor may have no data).
      bool absent = i >= inputs.size() || (i < node.inputs.size() && node.inputs[i].empty()) ||
                    (inputs[i].data == nullptr && inputs[i].info.num_elements() != 0);
      context.inputs.push_back(absent ? nullptr : &inputs[i].info);
      context.constants.push_back(nullptr);
      if (absent || i < first_operand) continue;
      Tensor& t = operands[i];
      t = Tensor::zeros(inputs[i].info);
      if (t.num_elements() > 0) std::memcpy(t.data(), inputs[i].data, size_t(t.info.num_bytes()));
      context.constants[i] = &t;
    }
    KILN_ASSIGN_OR_RETURN(std::vector<TensorInfo> expected, infer(node, context));
    if (outputs.size() > expected.size()) {
      return node_error(node, "run with " + std::to_string(outputs.size()) +
                                  " outputs, the node has " + std::to_string(expected.size()));
    }
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (outputs[i].data == nullptr && outputs[i].info.num_elements() != 0) continue;
      if (!(outputs[i].info == expected[i])) {
        return node_error(node, "output " + std::to_string(i) + " is " +
                                    to_string(outputs[i].info) + ", type inference gives " +
                                    to_string(expected[i]));
      }
    }
    return compute(node, context, inputs, outputs);
  };
  return def;
}

}  // namespace kiln::graph::ops_internal
