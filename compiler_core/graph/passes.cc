#include "compiler_core/graph/passes.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "compiler_core/graph/ops.h"
#include "compiler_core/support/log.h"

namespace kiln::graph {
namespace {

bool is_graph_output(const Graph& graph, const std::string& value) {
  for (const Value& output : graph.outputs) {
    if (output.name == value) return true;
  }
  return false;
}

/// A fresh value name that starts with `base`.
std::string fresh_name(const Graph& graph, const std::string& base) {
  std::string name = base;
  for (int i = 1; graph.info(name) != nullptr; ++i) name = base + "." + std::to_string(i);
  return name;
}

void add_constant(Graph& graph, const std::string& name, Tensor tensor) {
  graph.infos[name] = tensor.info;
  graph.constants[name] = std::move(tensor);
}

/// The index of the node that reads `value` when exactly one node reads it and it is not a
/// graph output; -1 otherwise.
int sole_reader(const Graph& graph, const std::string& value) {
  if (is_graph_output(graph, value)) return -1;
  int reader = -1;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    for (const std::string& input : graph.nodes[i].inputs) {
      if (input != value) continue;
      if (reader >= 0 && reader != int(i)) return -1;
      reader = int(i);
    }
  }
  if (reader >= 0 && graph.use_count(value) != 1) return -1;
  return reader;
}

bool parses(const std::string& workload) { return core::parse_workload(workload).is_ok(); }

}  // namespace

std::string kernel_workload(const Node& node) {
  std::string w = node.attr_string("base", "");
  if (node.attr_int("bias", 0) != 0) w += ",bias=1";
  const std::string act = node.attr_string("act", "");
  if (!act.empty()) w += ",act=" + act;
  if (node.attr_int("residual", 0) != 0) w += ",residual=1";
  return w;
}

Status remove_identities(Graph& graph) {
  std::map<std::string, std::string> renamed;
  std::vector<Node> kept;
  for (Node& node : graph.nodes) {
    for (std::string& input : node.inputs) {
      auto it = renamed.find(input);
      if (it != renamed.end()) input = it->second;
    }
    const bool identity =
        node.op == "Identity" ||
        (node.op == "Dropout" && (node.outputs.size() == 1 || node.outputs[1].empty()));
    if (identity && !node.inputs.empty() && !is_graph_output(graph, node.outputs[0])) {
      renamed[node.outputs[0]] = node.inputs[0];
      graph.infos.erase(node.outputs[0]);
      continue;
    }
    kept.push_back(std::move(node));
  }
  graph.nodes = std::move(kept);
  return Status::ok();
}

Status fold_constants(Graph& graph) {
  std::vector<Node> kept;
  for (Node& node : graph.nodes) {
    if (node.op == "Shape" && graph.info(node.inputs[0]) != nullptr) {
      // The static shape decides the output; the input's values do not matter.
      const Shape& shape = graph.info(node.inputs[0])->shape;
      const int64_t rank = int64_t(shape.size());
      int64_t start = node.attr_int("start", 0), end = node.attr_int("end", rank);
      if (start < 0) start += rank;
      if (end < 0) end += rank;
      start = std::clamp<int64_t>(start, 0, rank);
      end = std::clamp<int64_t>(end, start, rank);
      std::vector<int64_t> dims(shape.begin() + start, shape.begin() + end);
      const int64_t n = int64_t(dims.size());
      add_constant(graph, node.outputs[0], Tensor::from_ints({n}, std::move(dims)));
      continue;
    }
    bool all_constant = !node.inputs.empty();
    for (const std::string& input : node.inputs) {
      if (!input.empty() && graph.constant(input) == nullptr) all_constant = false;
    }
    if (node.op == "Constant") all_constant = true;
    if (!all_constant) {
      kept.push_back(std::move(node));
      continue;
    }
    std::vector<TensorView> inputs;
    for (const std::string& input : node.inputs) {
      TensorView view;
      if (!input.empty()) {
        Tensor& t = graph.constants[input];
        view.info = t.info;
        view.data = t.data();
      }
      inputs.push_back(view);
    }
    std::vector<Tensor> results;
    std::vector<TensorView> outputs;
    results.reserve(node.outputs.size());
    for (const std::string& output : node.outputs) {
      const TensorInfo* info = graph.info(output);
      if (info == nullptr) return internal_error("value '" + output + "' has no type");
      results.push_back(Tensor::zeros(*info));
    }
    for (Tensor& t : results) outputs.push_back({t.info, t.data()});
    KILN_RETURN_IF_ERROR(run_node(node, graph.opset, inputs, outputs));
    for (size_t i = 0; i < node.outputs.size(); ++i) {
      if (!node.outputs[i].empty()) add_constant(graph, node.outputs[i], std::move(results[i]));
    }
  }
  graph.nodes = std::move(kept);
  return eliminate_dead_code(graph);
}

Status fold_batch_norm(Graph& graph) {
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    Node& conv = graph.nodes[i];
    if (conv.op != "Conv" || conv.inputs.size() < 2) continue;
    const int reader = sole_reader(graph, conv.outputs[0]);
    if (reader < 0) continue;
    Node& bn = graph.nodes[size_t(reader)];
    if (bn.op != "BatchNormalization" || bn.inputs[0] != conv.outputs[0] ||
        bn.outputs.size() != 1 || bn.attr_int("training_mode", 0) != 0) {
      continue;
    }
    const Tensor* weight = graph.constant(conv.inputs[1]);
    const Tensor* bias = conv.inputs.size() > 2 && !conv.inputs[2].empty()
                             ? graph.constant(conv.inputs[2])
                             : nullptr;
    if (weight == nullptr || weight->info.dtype != DType::kFloat32 ||
        (conv.inputs.size() > 2 && !conv.inputs[2].empty() && bias == nullptr)) {
      continue;
    }
    const Tensor* scale = graph.constant(bn.inputs[1]);
    const Tensor* beta = graph.constant(bn.inputs[2]);
    const Tensor* mean = graph.constant(bn.inputs[3]);
    const Tensor* var = graph.constant(bn.inputs[4]);
    if (!scale || !beta || !mean || !var) continue;
    const int64_t k = weight->info.shape[0];
    if (scale->num_elements() != k || beta->num_elements() != k || mean->num_elements() != k ||
        var->num_elements() != k) {
      continue;
    }
    const float epsilon = bn.attr_float("epsilon", 1e-5f);
    Tensor w = *weight;
    Tensor b = Tensor::from_floats({k}, std::vector<float>(size_t(k), 0.0f));
    const int64_t per_channel = w.num_elements() / k;
    for (int64_t c = 0; c < k; ++c) {
      const float s = float(scale->at(c) / std::sqrt(var->at(c) + double(epsilon)));
      for (int64_t j = 0; j < per_channel; ++j) w.f32[size_t(c * per_channel + j)] *= s;
      const double b0 = bias != nullptr ? bias->at(c) : 0.0;
      b.f32[size_t(c)] = float((b0 - mean->at(c)) * s + beta->at(c));
    }
    const std::string w_name = fresh_name(graph, conv.name + ".folded_weight");
    add_constant(graph, w_name, std::move(w));
    const std::string b_name = fresh_name(graph, conv.name + ".folded_bias");
    add_constant(graph, b_name, std::move(b));
    Node folded = conv;
    folded.inputs = {conv.inputs[0], w_name, b_name};
    folded.outputs = bn.outputs;
    graph.infos.erase(conv.outputs[0]);
    // The folded Conv takes BatchNormalization's place, after everything the BN read.
    graph.nodes[size_t(reader)] = std::move(folded);
    graph.nodes.erase(graph.nodes.begin() + int64_t(i));
    --i;
  }
  return eliminate_dead_code(graph);
}

namespace {

/// The workload of a Conv node, or "" when no workload expresses it.
std::string conv_workload(const Graph& graph, const Node& node) {
  const TensorInfo* x = graph.info(node.inputs[0]);
  const Tensor* w = graph.constant(node.inputs[1]);
  if (x == nullptr || w == nullptr || x->dtype != DType::kFloat32 || x->shape.size() != 4 ||
      w->info.shape.size() != 4 || w->info.dtype != DType::kFloat32) {
    return "";
  }
  if (node.inputs.size() > 2 && !node.inputs[2].empty() &&
      graph.constant(node.inputs[2]) == nullptr) {
    return "";
  }
  const int64_t n = x->shape[0], c = x->shape[1], h = x->shape[2], wd = x->shape[3];
  const int64_t k = w->info.shape[0], r = w->info.shape[2], s = w->info.shape[3];
  const int64_t group = node.attr_int("group", 1);
  const std::vector<int64_t> strides = node.attr_ints("strides", {1, 1});
  const std::vector<int64_t> dilations = node.attr_ints("dilations", {1, 1});
  if (strides.size() != 2 || dilations.size() != 2) return "";
  std::vector<int64_t> pads = node.attr_ints("pads", {0, 0, 0, 0});
  const std::string auto_pad = node.attr_string("auto_pad", "NOTSET");
  if (auto_pad == "VALID") {
    pads = {0, 0, 0, 0};
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    const int64_t sizes[2] = {h, wd}, kernel[2] = {r, s};
    for (int a = 0; a < 2; ++a) {
      const int64_t out = (sizes[a] + strides[size_t(a)] - 1) / strides[size_t(a)];
      const int64_t total =
          std::max<int64_t>(0, (out - 1) * strides[size_t(a)] +
                                   (kernel[a] - 1) * dilations[size_t(a)] + 1 - sizes[a]);
      const int64_t small = total / 2, large = total - small;
      pads[size_t(a)] = auto_pad == "SAME_UPPER" ? small : large;
      pads[size_t(a) + 2] = auto_pad == "SAME_UPPER" ? large : small;
    }
  } else if (auto_pad != "NOTSET") {
    return "";
  }
  if (pads.size() != 4 || pads[0] != pads[2] || pads[1] != pads[3]) return "";
  const std::string shape = "N=" + std::to_string(n) + ",C=" + std::to_string(c) +
                            ",H=" + std::to_string(h) + ",W=" + std::to_string(wd);
  const std::string window =
      ",R=" + std::to_string(r) + ",S=" + std::to_string(s) +
      ",stride_h=" + std::to_string(strides[0]) + ",stride_w=" + std::to_string(strides[1]) +
      ",pad_h=" + std::to_string(pads[0]) + ",pad_w=" + std::to_string(pads[1]) +
      ",dilation_h=" + std::to_string(dilations[0]) + ",dilation_w=" + std::to_string(dilations[1]);
  std::string text;
  if (group > 1 && group == c && k == c && w->info.shape[1] == 1) {
    text = "depthwise_conv2d:" + shape + window;
  } else {
    text = "conv2d:" + shape + ",K=" + std::to_string(k) + window;
    if (group != 1) text += ",groups=" + std::to_string(group);
  }
  auto parsed = core::parse_workload(text);
  return parsed.is_ok() ? parsed->canonical() : "";
}

/// W[N,K] from a constant B[K,N] (transposed) or B[N,K] (as it is).
Tensor dense_weight(const Tensor& b, bool already_nk) {
  if (already_nk) return b;
  const int64_t rows = b.info.shape[0], cols = b.info.shape[1];
  Tensor t = Tensor::from_floats({cols, rows}, std::vector<float>(size_t(rows * cols)));
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) t.f32[size_t(j * rows + i)] = b.f32[size_t(i * cols + j)];
  }
  return t;
}

}  // namespace

Status lower_to_kernels(Graph& graph) {
  for (Node& node : graph.nodes) {
    if (node.op == "Conv") {
      const std::string base = conv_workload(graph, node);
      if (base.empty()) continue;
      const bool has_bias = node.inputs.size() > 2 && !node.inputs[2].empty();
      Node kernel;
      kernel.name = node.name;
      kernel.op = kKernelOp;
      kernel.inputs = {node.inputs[0], node.inputs[1]};
      if (has_bias) kernel.inputs.push_back(node.inputs[2]);
      kernel.outputs = {node.outputs[0]};
      kernel.attrs["base"] = Attr::of_string(base);
      kernel.attrs["bias"] = Attr::of_int(has_bias ? 1 : 0);
      if (!parses(kernel_workload(kernel))) continue;
      node = std::move(kernel);
      continue;
    }
    if (node.op != "Gemm" && node.op != "MatMul") continue;
    const TensorInfo* a = graph.info(node.inputs[0]);
    const Tensor* b = graph.constant(node.inputs[1]);
    if (a == nullptr || b == nullptr || a->dtype != DType::kFloat32 || a->shape.size() != 2 ||
        b->info.dtype != DType::kFloat32 || b->info.shape.size() != 2 ||
        graph.constant(node.inputs[0]) != nullptr) {
      continue;
    }
    bool trans_b = false;
    const Tensor* c = nullptr;
    if (node.op == "Gemm") {
      if (node.attr_int("transA", 0) != 0 || node.attr_float("alpha", 1.0f) != 1.0f) continue;
      trans_b = node.attr_int("transB", 0) != 0;
      if (node.inputs.size() > 2 && !node.inputs[2].empty()) {
        c = graph.constant(node.inputs[2]);
        if (c == nullptr || node.attr_float("beta", 1.0f) != 1.0f) continue;
      }
    }
    const int64_t m = a->shape[0], k = a->shape[1];
    const int64_t n = trans_b ? b->info.shape[0] : b->info.shape[1];
    if ((trans_b ? b->info.shape[1] : b->info.shape[0]) != k) continue;
    if (c != nullptr) {
      const Shape& cs = c->info.shape;
      const bool per_column = (cs == Shape{n}) || (cs == Shape{1, n});
      if (!per_column || c->info.dtype != DType::kFloat32) continue;
    }
    std::string base =
        "dense:M=" + std::to_string(m) + ",N=" + std::to_string(n) + ",K=" + std::to_string(k);
    if (!parses(base)) continue;
    const std::string w_name = fresh_name(graph, node.name + ".weight_nk");
    add_constant(graph, w_name, dense_weight(*b, trans_b));
    Node kernel;
    kernel.name = node.name;
    kernel.op = kKernelOp;
    kernel.inputs = {node.inputs[0], w_name};
    kernel.outputs = {node.outputs[0]};
    kernel.attrs["base"] = Attr::of_string(base);
    kernel.attrs["bias"] = Attr::of_int(0);
    if (c != nullptr) {
      const std::string bias_name = fresh_name(graph, node.name + ".bias");
      add_constant(graph, bias_name, Tensor::from_floats({n}, c->f32));
      kernel.inputs.push_back(bias_name);
      kernel.attrs["bias"] = Attr::of_int(1);
      if (!parses(kernel_workload(kernel))) continue;
    }
    node = std::move(kernel);
  }
  return eliminate_dead_code(graph);
}

namespace {

/// The activation name of `node` when it is one a kernel can fuse, else "".
std::string fusable_activation(const Graph& graph, const Node& node) {
  if (node.op == "Relu") return "relu";
  if (node.op == "HardSwish") return "hardswish";
  if (node.op == "Sigmoid") return "sigmoid";
  if (node.op != "Clip") return "";
  double lo = -INFINITY, hi = INFINITY;
  if (graph.opset < 11) {
    lo = node.attr_float("min", -INFINITY);
    hi = node.attr_float("max", INFINITY);
  } else {
    for (size_t i = 1; i < node.inputs.size() && i < 3; ++i) {
      if (node.inputs[i].empty()) continue;
      const Tensor* t = graph.constant(node.inputs[i]);
      if (t == nullptr || t->num_elements() != 1) return "";
      (i == 1 ? lo : hi) = t->at(0);
    }
  }
  if (lo == 0 && hi == 6) return "relu6";
  if (lo == 0 && std::isinf(hi)) return "relu";
  return "";
}

/// Tries to fuse graph.nodes[reader] into the kernel node `kernel`; true when it did (then
/// `kernel` holds the fused node and reads what it needs).
bool try_fuse(Graph& graph, Node& kernel, const Node& reader) {
  const std::string& out = kernel.outputs[0];
  const TensorInfo* out_info = graph.info(out);
  const bool has_act = !kernel.attr_string("act", "").empty();
  const bool has_residual = kernel.attr_int("residual", 0) != 0;
  const bool has_bias = kernel.attr_int("bias", 0) != 0;
  Node fused = kernel;
  fused.outputs = reader.outputs;
  if (reader.op == "Add" && reader.inputs.size() == 2 && !has_act) {
    const std::string& other = reader.inputs[0] == out ? reader.inputs[1] : reader.inputs[0];
    if (other == out) return false;
    const Tensor* constant = graph.constant(other);
    const TensorInfo* other_info = graph.info(other);
    if (constant != nullptr && !has_residual && constant->info.dtype == DType::kFloat32) {
      // A per-channel bias: [K,1,1] or [1,K,1,1] for a convolution, [N] or [1,N] for dense.
      const int64_t channels =
          out_info->shape.size() == 4 ? out_info->shape[1] : out_info->shape.back();
      const Shape& cs = constant->info.shape;
      bool per_channel = false;
      if (out_info->shape.size() == 4) {
        per_channel = cs == Shape{channels, 1, 1} || cs == Shape{1, channels, 1, 1};
      } else {
        per_channel = cs == Shape{channels} || cs == Shape{1, channels};
      }
      if (!per_channel) return false;
      std::vector<float> values = constant->f32;
      if (has_bias) {
        const Tensor* old = graph.constant(kernel.inputs[2]);
        for (int64_t i = 0; i < channels; ++i) values[size_t(i)] += old->f32[size_t(i)];
      }
      const std::string name = fresh_name(graph, kernel.name + ".bias");
      fused.attrs["bias"] = Attr::of_int(1);
      if (!parses(kernel_workload(fused))) return false;
      add_constant(graph, name, Tensor::from_floats({channels}, std::move(values)));
      if (has_bias) {
        fused.inputs[2] = name;
      } else {
        fused.inputs.insert(fused.inputs.begin() + 2, name);
      }
    } else if (constant == nullptr && !has_residual && other_info != nullptr &&
               *other_info == *out_info) {
      fused.attrs["residual"] = Attr::of_int(1);
      if (!parses(kernel_workload(fused))) return false;
      fused.inputs.push_back(other);
    } else {
      return false;
    }
  } else {
    const std::string act = has_act ? "" : fusable_activation(graph, reader);
    if (act.empty()) return false;
    fused.attrs["act"] = Attr::of_string(act);
    if (!parses(kernel_workload(fused))) return false;
  }
  graph.infos.erase(out);
  kernel = std::move(fused);
  return true;
}

}  // namespace

Status fuse_epilogues(Graph& graph) {
  bool changed = true;
  while (changed) {
    changed = false;
    for (size_t i = 0; i < graph.nodes.size() && !changed; ++i) {
      if (graph.nodes[i].op != kKernelOp) continue;
      const int reader = sole_reader(graph, graph.nodes[i].outputs[0]);
      if (reader < 0) continue;
      Node kernel = graph.nodes[i];
      if (!try_fuse(graph, kernel, graph.nodes[size_t(reader)])) continue;
      // The fused node takes the reader's place, after everything either of them reads.
      graph.nodes[size_t(reader)] = std::move(kernel);
      graph.nodes.erase(graph.nodes.begin() + int64_t(i));
      changed = true;
    }
  }
  return eliminate_dead_code(graph);
}

namespace {

/// The node that produces `value`, or nullptr.
const Node* producer(const Graph& graph, const std::string& value) {
  for (const Node& node : graph.nodes) {
    for (const std::string& output : node.outputs) {
      if (output == value) return &node;
    }
  }
  return nullptr;
}

bool is_transpose(const Node* node, const std::vector<int64_t>& perm) {
  return node != nullptr && node->op == "Transpose" && node->attr_ints("perm", {}) == perm;
}

/// `w` (rank 4) with its axes permuted: out[i0..i3] = w[i at perm].
Tensor permute(const Tensor& w, const std::vector<int64_t>& perm) {
  const Shape& in = w.info.shape;
  Shape out_shape(4);
  for (size_t a = 0; a < 4; ++a) out_shape[a] = in[size_t(perm[a])];
  int64_t in_strides[4] = {in[1] * in[2] * in[3], in[2] * in[3], in[3], 1};
  Tensor out = Tensor::from_floats(out_shape, std::vector<float>(w.f32.size()));
  int64_t i = 0;
  for (int64_t a = 0; a < out_shape[0]; ++a) {
    for (int64_t b = 0; b < out_shape[1]; ++b) {
      for (int64_t c = 0; c < out_shape[2]; ++c) {
        for (int64_t d = 0; d < out_shape[3]; ++d) {
          const int64_t idx[4] = {a, b, c, d};
          int64_t src = 0;
          for (size_t k = 0; k < 4; ++k) src += idx[k] * in_strides[perm[k]];
          out.f32[size_t(i++)] = w.f32[size_t(src)];
        }
      }
    }
  }
  return out;
}

}  // namespace

Status choose_layouts(Graph& graph) {
  const std::vector<int64_t> to_nchw = {0, 3, 1, 2}, to_nhwc = {0, 2, 3, 1};
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    Node& kernel = graph.nodes[i];
    if (kernel.op != kKernelOp || kernel.attr_int("residual", 0) != 0) continue;
    const std::string base = kernel.attr_string("base", "");
    const bool depthwise = base.rfind("depthwise_conv2d:", 0) == 0;
    if (!depthwise && base.rfind("conv2d:", 0) != 0) continue;
    if (base.find("layout=") != std::string::npos) continue;
    const Node* before = producer(graph, kernel.inputs[0]);
    const int after_index = sole_reader(graph, kernel.outputs[0]);
    if (!is_transpose(before, to_nchw) || after_index < 0 ||
        !is_transpose(&graph.nodes[size_t(after_index)], to_nhwc)) {
      continue;
    }
    const Tensor* weight = graph.constant(kernel.inputs[1]);
    if (weight == nullptr) continue;
    Node nhwc = kernel;
    nhwc.attrs["base"] = Attr::of_string(base + ",layout=NHWC");
    if (!parses(kernel_workload(nhwc))) continue;
    // ONNX weights are W[K, C/groups, R, S]; NHWC kernels read W[R, S, C/groups, K], and
    // depthwise ones W[R, S, C, 1] from ONNX's W[C, 1, R, S].
    const std::string w_name = fresh_name(graph, kernel.name + ".weight_nhwc");
    add_constant(graph, w_name,
                 permute(*weight, depthwise ? std::vector<int64_t>{2, 3, 0, 1}
                                            : std::vector<int64_t>{2, 3, 1, 0}));
    nhwc.inputs[0] = before->inputs[0];
    nhwc.inputs[1] = w_name;
    nhwc.outputs = graph.nodes[size_t(after_index)].outputs;
    graph.infos.erase(kernel.outputs[0]);
    // The kernel takes the second Transpose's place; the first goes when nothing reads it.
    graph.nodes[size_t(after_index)] = std::move(nhwc);
    graph.nodes.erase(graph.nodes.begin() + int64_t(i));
    --i;
  }
  return eliminate_dead_code(graph);
}

Status eliminate_dead_code(Graph& graph) {
  std::set<std::string> live;
  for (const Value& output : graph.outputs) live.insert(output.name);
  std::vector<Node> kept;
  for (auto it = graph.nodes.rbegin(); it != graph.nodes.rend(); ++it) {
    bool used = false;
    for (const std::string& output : it->outputs) used = used || live.count(output) > 0;
    if (!used) {
      for (const std::string& output : it->outputs) graph.infos.erase(output);
      continue;
    }
    for (const std::string& input : it->inputs) live.insert(input);
    kept.push_back(std::move(*it));
  }
  graph.nodes.assign(std::make_move_iterator(kept.rbegin()), std::make_move_iterator(kept.rend()));
  for (auto it = graph.constants.begin(); it != graph.constants.end();) {
    if (live.count(it->first)) {
      ++it;
      continue;
    }
    graph.infos.erase(it->first);
    it = graph.constants.erase(it);
  }
  return Status::ok();
}

Status optimize_graph(Graph& graph) {
  struct Pass {
    const char* name;
    Status (*run)(Graph&);
  };
  static constexpr Pass kPipeline[] = {
      {"remove_identities", remove_identities},     {"fold_constants", fold_constants},
      {"fold_batch_norm", fold_batch_norm},         {"lower_to_kernels", lower_to_kernels},
      {"fuse_epilogues", fuse_epilogues},           {"choose_layouts", choose_layouts},
      {"eliminate_dead_code", eliminate_dead_code},
  };
  for (const Pass& pass : kPipeline) {
    KILN_RETURN_IF_ERROR(pass.run(graph));
    Status verified = graph.verify();
    if (!verified.is_ok()) {
      return internal_error(std::string("graph pass ") + pass.name +
                            " broke the graph: " + verified.message());
    }
    logger("graph")->debug("after {}: {} nodes, {} constants", pass.name, graph.nodes.size(),
                           graph.constants.size());
  }
  return Status::ok();
}

}  // namespace kiln::graph
