/// \file
/// The graph IR of the model path: a static-shape dataflow graph of operators on named tensors,
/// as an ONNX importer produces it and the graph passes rewrite it.
///
/// Semantics:
/// - Values are named tensors. A value is produced once: by a node, as a graph input, or as a
///   constant (an initializer or a folded subgraph). Nodes are kept in a topological order.
/// - A node's `op` is the ONNX operator type ("Conv", "Relu", ...) with its ONNX attributes, read
///   with the semantics of the graph's opset; an absent optional input is an empty name. The one
///   kiln-specific operator is kKernelOp: a call of a compiler_core kernel whose workload string
///   (attribute "workload") names the operator and its fused epilogue.
/// - Every value has a static TensorInfo (dtype and shape): batch and input sizes are fixed when
///   a model is imported.
/// - Data types: float32 at run time; int64 for the shape computations that exporters emit
///   (Shape, Gather, Concat, ...), which constant folding removes.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "compiler_core/support/status.h"
#include "compiler_core/te/workload.h"

namespace kiln::graph {

using core::Shape;

/// The element types a graph value may have.
enum class DType { kFloat32, kInt64 };

/// "float32" or "int64".
const char* dtype_name(DType dtype);

/// Bytes of one element.
int64_t dtype_size(DType dtype);

/// The static type of a value.
struct TensorInfo {
  DType dtype = DType::kFloat32;
  Shape shape;

  int64_t num_elements() const { return core::num_elements(shape); }
  int64_t num_bytes() const { return num_elements() * dtype_size(dtype); }
  bool operator==(const TensorInfo&) const = default;
};

/// "float32[1,3,224,224]".
std::string to_string(const TensorInfo& info);

/// Tensors of more elements than this are refused, by the importers and by type inference: no
/// model kiln runs has one, and a bigger count is a damaged or hostile model whose dimensions
/// would overflow the arithmetic on them.
inline constexpr int64_t kMaxTensorElements = int64_t{1} << 40;

/// The element count of `shape`, or nothing when a dimension is negative or the count is above
/// kMaxTensorElements (counted without overflowing, whatever the dimensions).
std::optional<int64_t> bounded_num_elements(const Shape& shape);

/// An owned tensor: a constant's value. Exactly one of `f32` and `i64` holds the elements,
/// row-major, as `info.dtype` says.
struct Tensor {
  TensorInfo info;
  std::vector<float> f32;
  std::vector<int64_t> i64;

  static Tensor zeros(const TensorInfo& info);
  static Tensor from_floats(Shape shape, std::vector<float> values);
  static Tensor from_ints(Shape shape, std::vector<int64_t> values);

  int64_t num_elements() const { return info.num_elements(); }
  /// The element at flat index `i` as a double, whatever the dtype.
  double at(int64_t i) const {
    return info.dtype == DType::kFloat32 ? f32[size_t(i)] : double(i64[size_t(i)]);
  }
  /// The elements as integers (an int64 tensor's values; a float32 tensor's, truncated).
  std::vector<int64_t> as_ints() const;
  void* data() {
    return info.dtype == DType::kFloat32 ? static_cast<void*>(f32.data()) : i64.data();
  }
  const void* data() const {
    return info.dtype == DType::kFloat32 ? static_cast<const void*>(f32.data()) : i64.data();
  }
};

/// An ONNX attribute value. `kind` says which field holds it.
struct Attr {
  enum class Kind { kInt, kFloat, kString, kInts, kFloats, kTensor };
  Kind kind = Kind::kInt;
  int64_t i = 0;
  float f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<float> floats;
  std::optional<Tensor> tensor;  ///< set when kind is kTensor

  static Attr of_int(int64_t v);
  static Attr of_float(float v);
  static Attr of_string(std::string v);
  static Attr of_ints(std::vector<int64_t> v);
  static Attr of_floats(std::vector<float> v);
  static Attr of_tensor(Tensor v);
};

/// The operator type of a compiled kernel call; its attribute "workload" is the kernel's
/// canonical workload string, its inputs are the workload's inputs in call order.
inline constexpr const char* kKernelOp = "kiln.Kernel";

struct Node {
  std::string name;  ///< the model's node name, or a made-up unique one when it has none
  std::string op;
  std::vector<std::string> inputs;  ///< value names; "" for an absent optional input
  std::vector<std::string> outputs;
  std::map<std::string, Attr> attrs;

  const Attr* attr(const std::string& key) const {
    auto it = attrs.find(key);
    return it == attrs.end() ? nullptr : &it->second;
  }
  /// The attribute as an int (its default when absent).
  int64_t attr_int(const std::string& key, int64_t default_value) const;
  float attr_float(const std::string& key, float default_value) const;
  std::string attr_string(const std::string& key, const std::string& default_value) const;
  std::vector<int64_t> attr_ints(const std::string& key,
                                 const std::vector<int64_t>& default_value) const;
  /// "node 'name' (Op)", the way messages name a node.
  std::string describe() const;
};

/// A graph input or output.
struct Value {
  std::string name;
  TensorInfo info;
};

struct Graph {
  int64_t opset = 13;  ///< the default-domain opset the model was written for
  std::vector<Value> inputs;
  std::vector<Value> outputs;
  std::vector<Node> nodes;                  ///< in topological order
  std::map<std::string, Tensor> constants;  ///< initializers and folded values
  std::map<std::string, TensorInfo> infos;  ///< every value's type: inputs, constants, node outputs

  /// The type of value `name`; nullptr when it is unknown.
  const TensorInfo* info(const std::string& name) const;
  /// The constant value `name`; nullptr when it is not a constant.
  const Tensor* constant(const std::string& name) const;
  /// Number of nodes that read `value` (graph outputs count as readers).
  int64_t use_count(const std::string& value) const;
  /// Checks that every node input is produced before it is read, names are produced once, and
  /// every value has a type. InvalidArgument naming the first broken value.
  Status verify() const;
};

}  // namespace kiln::graph
