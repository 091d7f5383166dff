#include "compiler_core/graph/graph.h"

#include <set>
#include <sstream>

namespace kiln::graph {

const char* dtype_name(DType dtype) { return dtype == DType::kFloat32 ? "float32" : "int64"; }

int64_t dtype_size(DType dtype) { return dtype == DType::kFloat32 ? 4 : 8; }

std::optional<int64_t> bounded_num_elements(const Shape& shape) {
  int64_t count = 1;
  for (int64_t dim : shape) {
    if (dim < 0) return std::nullopt;
    if (dim != 0 && count > kMaxTensorElements / dim) return std::nullopt;
    count *= dim;
  }
  return count;
}

std::string to_string(const TensorInfo& info) {
  std::ostringstream os;
  os << dtype_name(info.dtype) << "[";
  for (size_t i = 0; i < info.shape.size(); ++i) os << (i ? "," : "") << info.shape[i];
  os << "]";
  return os.str();
}

Tensor Tensor::zeros(const TensorInfo& info) {
  Tensor t;
  t.info = info;
  if (info.dtype == DType::kFloat32) {
    t.f32.assign(size_t(info.num_elements()), 0.0f);
  } else {
    t.i64.assign(size_t(info.num_elements()), 0);
  }
  return t;
}

Tensor Tensor::from_floats(Shape shape, std::vector<float> values) {
  Tensor t;
  t.info = {DType::kFloat32, std::move(shape)};
  t.f32 = std::move(values);
  return t;
}

Tensor Tensor::from_ints(Shape shape, std::vector<int64_t> values) {
  Tensor t;
  t.info = {DType::kInt64, std::move(shape)};
  t.i64 = std::move(values);
  return t;
}

std::vector<int64_t> Tensor::as_ints() const {
  if (info.dtype == DType::kInt64) return i64;
  return std::vector<int64_t>(f32.begin(), f32.end());
}

Attr Attr::of_int(int64_t v) {
  Attr a;
  a.kind = Kind::kInt;
  a.i = v;
  return a;
}
Attr Attr::of_float(float v) {
  Attr a;
  a.kind = Kind::kFloat;
  a.f = v;
  return a;
}
Attr Attr::of_string(std::string v) {
  Attr a;
  a.kind = Kind::kString;
  a.s = std::move(v);
  return a;
}
Attr Attr::of_ints(std::vector<int64_t> v) {
  Attr a;
  a.kind = Kind::kInts;
  a.ints = std::move(v);
  return a;
}
Attr Attr::of_floats(std::vector<float> v) {
  Attr a;
  a.kind = Kind::kFloats;
  a.floats = std::move(v);
  return a;
}
Attr Attr::of_tensor(Tensor v) {
  Attr a;
  a.kind = Kind::kTensor;
  a.tensor = std::move(v);
  return a;
}

int64_t Node::attr_int(const std::string& key, int64_t default_value) const {
  const Attr* a = attr(key);
  return a != nullptr && a->kind == Attr::Kind::kInt ? a->i : default_value;
}

float Node::attr_float(const std::string& key, float default_value) const {
  const Attr* a = attr(key);
  return a != nullptr && a->kind == Attr::Kind::kFloat ? a->f : default_value;
}

std::string Node::attr_string(const std::string& key, const std::string& default_value) const {
  const Attr* a = attr(key);
  return a != nullptr && a->kind == Attr::Kind::kString ? a->s : default_value;
}

std::vector<int64_t> Node::attr_ints(const std::string& key,
                                     const std::vector<int64_t>& default_value) const {
  const Attr* a = attr(key);
  return a != nullptr && a->kind == Attr::Kind::kInts ? a->ints : default_value;
}

std::string Node::describe() const { return "node '" + name + "' (" + op + ")"; }

const TensorInfo* Graph::info(const std::string& name) const {
  auto it = infos.find(name);
  return it == infos.end() ? nullptr : &it->second;
}

const Tensor* Graph::constant(const std::string& name) const {
  auto it = constants.find(name);
  return it == constants.end() ? nullptr : &it->second;
}

int64_t Graph::use_count(const std::string& value) const {
  int64_t count = 0;
  for (const Node& node : nodes) {
    for (const std::string& input : node.inputs) count += input == value ? 1 : 0;
  }
  for (const Value& output : outputs) count += output.name == value ? 1 : 0;
  return count;
}

Status Graph::verify() const {
  std::set<std::string> produced;
  auto produce = [&](const std::string& name, const std::string& by) -> Status {
    if (!produced.insert(name).second) {
      return invalid_argument("value '" + name + "' is produced twice (again by " + by + ")");
    }
    if (info(name) == nullptr) return invalid_argument("value '" + name + "' has no type");
    return Status::ok();
  };
  for (const Value& input : inputs) KILN_RETURN_IF_ERROR(produce(input.name, "a graph input"));
  for (const auto& [name, tensor] : constants) {
    if (!produced.count(name)) KILN_RETURN_IF_ERROR(produce(name, "a constant"));
  }
  for (const Node& node : nodes) {
    for (const std::string& input : node.inputs) {
      if (!input.empty() && !produced.count(input)) {
        return invalid_argument(node.describe() + " reads '" + input +
                                "' before anything produces it");
      }
    }
    for (const std::string& output : node.outputs) {
      if (!output.empty()) KILN_RETURN_IF_ERROR(produce(output, node.describe()));
    }
  }
  for (const Value& output : outputs) {
    if (!produced.count(output.name)) {
      return invalid_argument("graph output '" + output.name + "' is never produced");
    }
  }
  return Status::ok();
}

}  // namespace kiln::graph
