#include "compiler_core/frontend/onnx/onnx_import.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "compiler_core/graph/ops.h"
#include "onnx/onnx_pb.h"

namespace kiln::frontend {
namespace {

using graph::Attr;
using graph::DType;
using graph::Tensor;
using graph::TensorInfo;

// raw_data is little-endian; kiln's hosts (x86-64, arm64) are too, so it is copied as it is.
static_assert(std::endian::native == std::endian::little, "raw_data is read as little-endian");

constexpr int64_t kMinOpset = 11;
constexpr int64_t kMaxOpset = 17;

std::string elem_type_name(int32_t type) {
  if (onnx::TensorProto_DataType_IsValid(type)) {
    std::string name = onnx::TensorProto_DataType_Name(onnx::TensorProto_DataType(type));
    for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
    return name;
  }
  return "type " + std::to_string(type);
}

std::string shape_string(const core::Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

// Checks that `shape`'s element count is at most graph::kMaxTensorElements; `what` names the
// tensor.
Status check_size(const core::Shape& shape, const std::string& what) {
  if (graph::bounded_num_elements(shape)) return Status::ok();
  return invalid_argument(what + " has the shape " + shape_string(shape) + ", more than " +
                          std::to_string(graph::kMaxTensorElements) + " elements");
}

// Reads a whole file, refusing it first when it is larger than `max_bytes`.
Result<std::string> read_file(const std::string& path, int64_t max_bytes, const char* what) {
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) {
    return Status(StatusCode::kNotFound,
                  "cannot read " + std::string(what) + " '" + path + "': " + ec.message());
  }
  if (size > uintmax_t(max_bytes)) {
    return invalid_argument(std::string(what) + " '" + path + "' has " + std::to_string(size) +
                            " bytes, more than the limit of " + std::to_string(max_bytes) +
                            " (raise max_file_bytes to read it)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status(StatusCode::kNotFound, "cannot open " + std::string(what) + " '" + path + "'");
  }
  std::string bytes(size_t(size), '\0');
  in.read(bytes.data(), std::streamsize(size));
  if (in.gcount() != std::streamsize(size)) {
    return invalid_argument("cannot read all " + std::to_string(size) + " bytes of " +
                            std::string(what) + " '" + path + "'");
  }
  return bytes;
}

// Copies `count` little-endian elements of type From out of raw_data into To values.
template <typename From, typename To>
std::vector<To> from_raw(const std::string& raw, size_t count) {
  std::vector<From> tmp(count);
  if (count != 0) std::memcpy(tmp.data(), raw.data(), count * sizeof(From));
  return std::vector<To>(tmp.begin(), tmp.end());
}

// The graph tensor of a TensorProto; `what` names it in messages ("initializer 'w'").
Result<Tensor> convert_tensor(const onnx::TensorProto& proto, const std::string& what) {
  if (proto.data_location() == onnx::TensorProto::EXTERNAL || proto.external_data_size() > 0) {
    return invalid_argument(what +
                            " keeps its data in an external file, which kiln does not read; "
                            "save the model with its tensors inside it");
  }
  if (proto.has_segment()) {
    return invalid_argument(what + " is a segment of a larger tensor, which kiln does not read");
  }
  core::Shape shape;
  for (int64_t dim : proto.dims()) {
    if (dim < 0) return invalid_argument(what + " has a negative dimension " + std::to_string(dim));
    shape.push_back(dim);
  }
  KILN_RETURN_IF_ERROR(check_size(shape, what));
  const int64_t count = core::num_elements(shape);
  Tensor tensor;
  const int32_t type = proto.data_type();
  const bool raw = proto.has_raw_data();
  auto check_raw = [&](size_t elem_bytes) -> Status {
    if (proto.raw_data().size() != size_t(count) * elem_bytes) {
      return invalid_argument(what + " has " + std::to_string(proto.raw_data().size()) +
                              " bytes of raw data, its shape " + shape_string(shape) + " of " +
                              elem_type_name(type) + " needs " +
                              std::to_string(size_t(count) * elem_bytes));
    }
    return Status::ok();
  };
  auto check_count = [&](int64_t have) -> Status {
    if (have != count) {
      return invalid_argument(what + " has " + std::to_string(have) + " elements, its shape " +
                              shape_string(shape) + " needs " + std::to_string(count));
    }
    return Status::ok();
  };
  switch (type) {
    case onnx::TensorProto::FLOAT:
      tensor.info = {DType::kFloat32, shape};
      if (raw) {
        KILN_RETURN_IF_ERROR(check_raw(4));
        tensor.f32 = from_raw<float, float>(proto.raw_data(), size_t(count));
      } else {
        KILN_RETURN_IF_ERROR(check_count(proto.float_data_size()));
        tensor.f32.assign(proto.float_data().begin(), proto.float_data().end());
      }
      return tensor;
    case onnx::TensorProto::INT64:
      tensor.info = {DType::kInt64, shape};
      if (raw) {
        KILN_RETURN_IF_ERROR(check_raw(8));
        tensor.i64 = from_raw<int64_t, int64_t>(proto.raw_data(), size_t(count));
      } else {
        KILN_RETURN_IF_ERROR(check_count(proto.int64_data_size()));
        tensor.i64.assign(proto.int64_data().begin(), proto.int64_data().end());
      }
      return tensor;
    case onnx::TensorProto::INT32:
      tensor.info = {DType::kInt64, shape};
      if (raw) {
        KILN_RETURN_IF_ERROR(check_raw(4));
        tensor.i64 = from_raw<int32_t, int64_t>(proto.raw_data(), size_t(count));
      } else {
        KILN_RETURN_IF_ERROR(check_count(proto.int32_data_size()));
        tensor.i64.assign(proto.int32_data().begin(), proto.int32_data().end());
      }
      return tensor;
    default:
      return invalid_argument(what + " has unsupported element type " + elem_type_name(type) +
                              " (kiln reads float32, int64 and int32 tensors)");
  }
}

// The graph attribute of an AttributeProto.
Result<Attr> convert_attr(const onnx::AttributeProto& proto, const graph::Node& node) {
  auto type = proto.type();
  if (type == onnx::AttributeProto::UNDEFINED) {
    // Models older than IR version 3 leave the type unset; the field that is set tells it.
    if (proto.has_f()) type = onnx::AttributeProto::FLOAT;
    if (proto.has_i()) type = onnx::AttributeProto::INT;
    if (proto.has_s()) type = onnx::AttributeProto::STRING;
    if (proto.has_t()) type = onnx::AttributeProto::TENSOR;
    if (proto.floats_size() > 0) type = onnx::AttributeProto::FLOATS;
    if (proto.ints_size() > 0) type = onnx::AttributeProto::INTS;
  }
  switch (type) {
    case onnx::AttributeProto::INT:
      return Attr::of_int(proto.i());
    case onnx::AttributeProto::FLOAT:
      return Attr::of_float(proto.f());
    case onnx::AttributeProto::STRING:
      return Attr::of_string(proto.s());
    case onnx::AttributeProto::INTS:
      return Attr::of_ints({proto.ints().begin(), proto.ints().end()});
    case onnx::AttributeProto::FLOATS:
      return Attr::of_floats({proto.floats().begin(), proto.floats().end()});
    case onnx::AttributeProto::TENSOR: {
      KILN_ASSIGN_OR_RETURN(Tensor t, convert_tensor(proto.t(), node.describe() + ": attribute '" +
                                                                    proto.name() + "'"));
      return Attr::of_tensor(std::move(t));
    }
    default:
      return invalid_argument(node.describe() + ": attribute '" + proto.name() + "' of type " +
                              onnx::AttributeProto_AttributeType_Name(type) +
                              " is not supported (kiln reads INT, FLOAT, STRING, INTS, FLOATS "
                              "and TENSOR attributes)");
  }
}

// The value of a Constant node, from whichever of its attributes is set.
Result<Tensor> constant_value(const graph::Node& node) {
  if (node.attrs.size() != 1) {
    return invalid_argument(node.describe() +
                            ": a Constant needs exactly one value attribute, it "
                            "has " +
                            std::to_string(node.attrs.size()));
  }
  const auto& [key, attr] = *node.attrs.begin();
  if (key == "value" && attr.kind == Attr::Kind::kTensor) return *attr.tensor;
  if (key == "value_float" && attr.kind == Attr::Kind::kFloat) {
    return Tensor::from_floats({}, {attr.f});
  }
  if (key == "value_floats" && attr.kind == Attr::Kind::kFloats) {
    return Tensor::from_floats({int64_t(attr.floats.size())}, attr.floats);
  }
  if (key == "value_int" && attr.kind == Attr::Kind::kInt) return Tensor::from_ints({}, {attr.i});
  if (key == "value_ints" && attr.kind == Attr::Kind::kInts) {
    return Tensor::from_ints({int64_t(attr.ints.size())}, attr.ints);
  }
  return invalid_argument(node.describe() + ": Constant attribute '" + key +
                          "' is not supported (kiln reads value, value_float, value_floats, "
                          "value_int and value_ints)");
}

// The dtype of a graph input or output; `what` names it.
Result<DType> value_dtype(const onnx::ValueInfoProto& value, const std::string& what) {
  if (!value.type().has_tensor_type()) {
    return invalid_argument(what + " '" + value.name() +
                            "' is not a tensor (kiln reads float32 and int64 tensors)");
  }
  const int32_t elem = value.type().tensor_type().elem_type();
  if (elem == onnx::TensorProto::FLOAT) return DType::kFloat32;
  if (elem == onnx::TensorProto::INT64) return DType::kInt64;
  return invalid_argument(what + " '" + value.name() + "' has unsupported element type " +
                          elem_type_name(elem) + " (kiln reads float32 and int64)");
}

// The static shape of graph input `value`, from the model or options.input_shapes.
Result<core::Shape> input_shape(const onnx::ValueInfoProto& value,
                                const OnnxImportOptions& options) {
  const auto& type = value.type().tensor_type();
  auto fixed = options.input_shapes.find(value.name());
  if (fixed != options.input_shapes.end()) {
    if (type.has_shape() && type.shape().dim_size() != int(fixed->second.size())) {
      return invalid_argument("input_shapes gives graph input '" + value.name() + "' the shape " +
                              shape_string(fixed->second) + " of rank " +
                              std::to_string(fixed->second.size()) + ", the model's rank is " +
                              std::to_string(type.shape().dim_size()));
    }
    for (int64_t dim : fixed->second) {
      if (dim < 0) {
        return invalid_argument("input_shapes gives graph input '" + value.name() +
                                "' the negative dimension " + std::to_string(dim));
      }
    }
    return fixed->second;
  }
  if (!type.has_shape()) {
    return invalid_argument("graph input '" + value.name() +
                            "' has no shape; give it one with input_shapes");
  }
  core::Shape shape;
  for (int i = 0; i < type.shape().dim_size(); ++i) {
    const auto& dim = type.shape().dim(i);
    if (!dim.has_dim_value()) {
      const std::string symbol = dim.has_dim_param() ? "'" + dim.dim_param() + "'" : "unknown";
      return invalid_argument("graph input '" + value.name() + "' has the symbolic dimension " +
                              symbol + " at axis " + std::to_string(i) +
                              "; fix its shape with input_shapes (--input-shape " + value.name() +
                              "=1,3,224,224)");
    }
    if (dim.dim_value() < 0) {
      return invalid_argument("graph input '" + value.name() + "' has the negative dimension " +
                              std::to_string(dim.dim_value()) + " at axis " + std::to_string(i));
    }
    shape.push_back(dim.dim_value());
  }
  return shape;
}

bool is_default_domain(const std::string& domain) { return domain.empty() || domain == "ai.onnx"; }

// Runs `node` (all of whose inputs are constants) and returns its outputs.
Result<std::vector<Tensor>> run_on_constants(const graph::Node& node, const graph::Graph& g,
                                             const std::vector<TensorInfo>& output_infos) {
  std::vector<graph::TensorView> inputs;
  for (const std::string& name : node.inputs) {
    graph::TensorView view;
    if (!name.empty()) {
      const Tensor* c = g.constant(name);
      view.info = c->info;
      view.data = const_cast<void*>(c->data());
    }
    inputs.push_back(view);
  }
  std::vector<Tensor> results;
  for (const TensorInfo& info : output_infos) results.push_back(Tensor::zeros(info));
  std::vector<graph::TensorView> outputs;
  for (Tensor& t : results) outputs.push_back({t.info, t.data()});
  KILN_RETURN_IF_ERROR(graph::run_node(node, g.opset, inputs, outputs));
  return results;
}

// The value of Shape node `node` on an input of static shape `shape` (start and end from
// opset 15).
Tensor shape_value(const graph::Node& node, const core::Shape& shape) {
  const int64_t rank = int64_t(shape.size());
  auto clamp_axis = [&](int64_t axis) {
    if (axis < 0) axis += rank;
    return std::clamp<int64_t>(axis, 0, rank);
  };
  const int64_t start = clamp_axis(node.attr_int("start", 0));
  const int64_t end = std::max(start, clamp_axis(node.attr_int("end", rank)));
  std::vector<int64_t> dims(shape.begin() + start, shape.begin() + end);
  const int64_t count = int64_t(dims.size());
  return Tensor::from_ints({count}, std::move(dims));
}

Result<graph::Graph> convert_model(const onnx::ModelProto& model,
                                   const OnnxImportOptions& options) {
  if (!model.has_graph()) {
    return invalid_argument("the model has no graph (a truncated file, or not an ONNX model)");
  }
  graph::Graph g;
  bool found_opset = false;
  for (const auto& opset : model.opset_import()) {
    if (!is_default_domain(opset.domain())) continue;
    found_opset = true;
    g.opset = opset.version();
  }
  if (!found_opset) {
    return invalid_argument(
        "the model imports no opset of the default ONNX domain (a truncated "
        "file, or not an ONNX model)");
  }
  if (g.opset < kMinOpset || g.opset > kMaxOpset) {
    return invalid_argument("the model's opset " + std::to_string(g.opset) +
                            " is outside the supported range " + std::to_string(kMinOpset) + ".." +
                            std::to_string(kMaxOpset) + "; convert it with onnx.version_converter");
  }
  const onnx::GraphProto& gp = model.graph();
  if (gp.sparse_initializer_size() > 0) {
    return invalid_argument("sparse initializer '" + gp.sparse_initializer(0).values().name() +
                            "' is not supported (kiln reads dense initializers)");
  }

  // Constants: initializers, then inputs bound by the caller.
  for (const auto& init : gp.initializer()) {
    KILN_ASSIGN_OR_RETURN(Tensor t, convert_tensor(init, "initializer '" + init.name() + "'"));
    g.infos[init.name()] = t.info;
    g.constants[init.name()] = std::move(t);
  }
  for (const auto& [name, tensor] : options.constant_inputs) {
    g.infos[name] = tensor.info;
    g.constants[name] = tensor;
  }

  // Graph inputs; those that are initializers or bound are constants, not inputs.
  for (const auto& input : gp.input()) {
    if (g.constants.count(input.name())) continue;
    KILN_ASSIGN_OR_RETURN(DType dtype, value_dtype(input, "graph input"));
    KILN_ASSIGN_OR_RETURN(core::Shape shape, input_shape(input, options));
    KILN_RETURN_IF_ERROR(check_size(shape, "graph input '" + input.name() + "'"));
    graph::Value value{input.name(), {dtype, std::move(shape)}};
    g.infos[value.name] = value.info;
    g.inputs.push_back(std::move(value));
  }
  for (const auto& [name, shape] : options.input_shapes) {
    bool known = false;
    for (const graph::Value& input : g.inputs) known = known || input.name == name;
    if (!known) {
      return invalid_argument("input_shapes names '" + name + "', which is not a graph input");
    }
  }

  // Nodes in order, typed as they come; Constant nodes and folded shape computations become
  // constants.
  std::set<std::string> names;
  for (const auto& np : gp.node()) {
    if (!np.name().empty()) names.insert(np.name());
  }
  std::set<std::string> taken;
  for (int index = 0; index < gp.node_size(); ++index) {
    const onnx::NodeProto& np = gp.node(index);
    graph::Node node;
    node.op = np.op_type();
    node.name = np.name();
    if (node.name.empty() || taken.count(node.name)) {
      std::string base = node.op + "_" + std::to_string(index);
      node.name = base;
      for (int k = 1; names.count(node.name) || taken.count(node.name); ++k) {
        node.name = base + "_" + std::to_string(k);
      }
    }
    taken.insert(node.name);
    if (!is_default_domain(np.domain())) {
      return invalid_argument(node.describe() + " is in the domain '" + np.domain() +
                              "', which kiln does not support (kiln runs the default ONNX "
                              "domain only)");
    }
    node.inputs.assign(np.input().begin(), np.input().end());
    node.outputs.assign(np.output().begin(), np.output().end());
    if (node.op != "Constant" && !graph::is_supported_op(node.op)) {
      return graph::infer_node(node, graph::InferContext{g.opset, {}, {}}).status();
    }
    for (const auto& ap : np.attribute()) {
      if (!ap.ref_attr_name().empty()) {
        return invalid_argument(node.describe() + ": attribute '" + ap.name() +
                                "' refers to a function attribute, which kiln does not support");
      }
      KILN_ASSIGN_OR_RETURN(Attr attr, convert_attr(ap, node));
      node.attrs[ap.name()] = std::move(attr);
    }
    for (const std::string& output : node.outputs) {
      if (!output.empty() && g.infos.count(output)) {
        return invalid_argument(node.describe() + " writes '" + output +
                                "', which is produced before");
      }
    }

    if (node.op == "Constant") {
      if (node.outputs.size() != 1) {
        return invalid_argument(node.describe() + ": a Constant has one output, it has " +
                                std::to_string(node.outputs.size()));
      }
      KILN_ASSIGN_OR_RETURN(Tensor t, constant_value(node));
      g.infos[node.outputs[0]] = t.info;
      g.constants[node.outputs[0]] = std::move(t);
      continue;
    }

    graph::InferContext context;
    context.opset = g.opset;
    bool all_constant = true;
    for (const std::string& input : node.inputs) {
      if (input.empty()) {
        context.inputs.push_back(nullptr);
        context.constants.push_back(nullptr);
        continue;
      }
      const TensorInfo* info = g.info(input);
      if (info == nullptr) {
        return invalid_argument(node.describe() + " reads '" + input +
                                "', which no graph input, initializer or earlier node produces");
      }
      const Tensor* constant = g.constant(input);
      all_constant = all_constant && constant != nullptr;
      context.inputs.push_back(info);
      context.constants.push_back(constant);
    }
    KILN_ASSIGN_OR_RETURN(std::vector<TensorInfo> infos, graph::infer_node(node, context));
    if (infos.size() < node.outputs.size()) {
      for (size_t i = infos.size(); i < node.outputs.size(); ++i) {
        if (!node.outputs[i].empty()) {
          return invalid_argument(node.describe() + ": output " + std::to_string(i) + " ('" +
                                  node.outputs[i] + "') is not supported");
        }
      }
    }

    bool all_int = true;
    for (size_t i = 0; i < node.outputs.size(); ++i) {
      if (!node.outputs[i].empty()) all_int = all_int && infos[i].dtype == DType::kInt64;
    }
    if (options.fold_shape_computations && node.op == "Shape" && node.outputs.size() == 1 &&
        !node.inputs.empty() && context.inputs[0] != nullptr) {
      Tensor t = shape_value(node, context.inputs[0]->shape);
      if (t.info != infos[0]) {
        return internal_error(node.describe() + ": its folded value " + graph::to_string(t.info) +
                              " differs from its inferred type " + graph::to_string(infos[0]));
      }
      g.infos[node.outputs[0]] = t.info;
      g.constants[node.outputs[0]] = std::move(t);
      continue;
    }
    if (options.fold_shape_computations && all_constant && all_int) {
      KILN_ASSIGN_OR_RETURN(std::vector<Tensor> values, run_on_constants(node, g, infos));
      for (size_t i = 0; i < node.outputs.size(); ++i) {
        if (node.outputs[i].empty()) continue;
        g.infos[node.outputs[i]] = values[i].info;
        g.constants[node.outputs[i]] = std::move(values[i]);
      }
      continue;
    }
    for (size_t i = 0; i < node.outputs.size(); ++i) {
      if (!node.outputs[i].empty()) g.infos[node.outputs[i]] = infos[i];
    }
    g.nodes.push_back(std::move(node));
  }

  for (const auto& output : gp.output()) {
    KILN_ASSIGN_OR_RETURN(DType dtype, value_dtype(output, "graph output"));
    const TensorInfo* info = g.info(output.name());
    if (info == nullptr) {
      return invalid_argument("graph output '" + output.name() + "' is never produced");
    }
    if (info->dtype != dtype) {
      return invalid_argument("graph output '" + output.name() + "' is declared " +
                              graph::dtype_name(dtype) + " but its value is " +
                              graph::to_string(*info));
    }
    g.outputs.push_back({output.name(), *info});
  }
  KILN_RETURN_IF_ERROR(g.verify());
  return g;
}

}  // namespace

Result<graph::Graph> import_onnx(const std::string& bytes, const OnnxImportOptions& options) {
  if (int64_t(bytes.size()) > options.max_file_bytes) {
    return invalid_argument("the model has " + std::to_string(bytes.size()) +
                            " bytes, more than the limit of " +
                            std::to_string(options.max_file_bytes));
  }
  onnx::ModelProto model;
  if (!model.ParseFromString(bytes)) {
    return invalid_argument("the " + std::to_string(bytes.size()) +
                            " bytes are not an ONNX model (the protobuf does not parse: a "
                            "truncated or damaged file, or another format)");
  }
  return convert_model(model, options);
}

Result<graph::Graph> import_onnx_file(const std::string& path, const OnnxImportOptions& options) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, read_file(path, options.max_file_bytes, "model"));
  Result<graph::Graph> g = import_onnx(bytes, options);
  if (!g.is_ok()) {
    return Status(g.status().code(), "model '" + path + "': " + g.status().message());
  }
  return g;
}

Result<graph::Tensor> read_onnx_tensor(const std::string& bytes) {
  onnx::TensorProto proto;
  if (!proto.ParseFromString(bytes)) {
    return invalid_argument("the " + std::to_string(bytes.size()) +
                            " bytes are not an ONNX tensor (the protobuf does not parse)");
  }
  const std::string what = proto.name().empty() ? "the tensor" : "tensor '" + proto.name() + "'";
  return convert_tensor(proto, what);
}

Result<graph::Tensor> read_onnx_tensor_file(const std::string& path, int64_t max_file_bytes) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, read_file(path, max_file_bytes, "tensor file"));
  Result<graph::Tensor> t = read_onnx_tensor(bytes);
  if (!t.is_ok()) return Status(t.status().code(), "'" + path + "': " + t.status().message());
  return t;
}

Result<std::string> onnx_tensor_name(const std::string& bytes) {
  onnx::TensorProto proto;
  if (!proto.ParseFromString(bytes)) {
    return invalid_argument("the " + std::to_string(bytes.size()) +
                            " bytes are not an ONNX tensor (the protobuf does not parse)");
  }
  return proto.name();
}

}  // namespace kiln::frontend
