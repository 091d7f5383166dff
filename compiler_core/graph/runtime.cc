#include "compiler_core/graph/runtime.h"

#include <zip.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "compiler_core/codegen/llvm/codegen_llvm.h"
#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/graph/module.h"
#include "compiler_core/graph/module_internal.h"
#include "compiler_core/runtime/thread_pool.h"
#include "compiler_core/support/architecture.h"

namespace kiln::graph {
namespace {

using nlohmann::json;

/// 64-byte aligned bytes.
class AlignedBytes {
 public:
  AlignedBytes() = default;
  explicit AlignedBytes(int64_t size)
      : data_(static_cast<char*>(
            ::operator new[](size_t(std::max<int64_t>(size, 64)), std::align_val_t(64)))),
        size_(size) {
    std::memset(data_.get(), 0, size_t(std::max<int64_t>(size, 64)));
  }
  char* data() const { return data_.get(); }
  int64_t size() const { return size_; }

 private:
  struct Free {
    void operator()(char* p) const { ::operator delete[](p, std::align_val_t(64)); }
  };
  std::unique_ptr<char[], Free> data_;
  int64_t size_ = 0;
};

Status bad_module(const std::string& what) {
  return invalid_argument("not a valid kiln module: " + what);
}

/// The entries of a zip archive held in memory.
class ZipReader {
 public:
  static Result<ZipReader> open(const std::string& bytes) {
    zip_error_t error;
    zip_error_init(&error);
    zip_source_t* source = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &error);
    if (source == nullptr) return bad_module(zip_error_strerror(&error));
    zip_t* archive = zip_open_from_source(source, ZIP_RDONLY, &error);
    if (archive == nullptr) {
      zip_source_free(source);
      std::string message = zip_error_strerror(&error);
      zip_error_fini(&error);
      return bad_module("not a zip archive (" + message + ")");
    }
    ZipReader reader;
    reader.archive_.reset(archive);
    return reader;
  }

  /// The entry `name`, at most `max_bytes` long.
  Result<std::string> read(const std::string& name, int64_t max_bytes) const {
    zip_stat_t stat;
    zip_stat_init(&stat);
    if (zip_stat(archive_.get(), name.c_str(), 0, &stat) != 0 || !(stat.valid & ZIP_STAT_SIZE)) {
      return bad_module("no entry '" + name + "'");
    }
    if (int64_t(stat.size) > max_bytes) return bad_module("entry '" + name + "' is too large");
    zip_file_t* file = zip_fopen(archive_.get(), name.c_str(), 0);
    if (file == nullptr) return bad_module("cannot open entry '" + name + "'");
    std::string out(size_t(stat.size), '\0');
    const zip_int64_t n = zip_fread(file, out.data(), stat.size);
    zip_fclose(file);
    if (n < 0 || zip_uint64_t(n) != stat.size) return bad_module("entry '" + name + "' is damaged");
    return out;
  }

 private:
  struct Close {
    void operator()(zip_t* z) const { zip_discard(z); }
  };
  std::unique_ptr<zip_t, Close> archive_;
};

constexpr int64_t kMaxEntryBytes = int64_t{4} << 30;

Result<DType> parse_dtype(const json& j) {
  if (!j.is_string()) return bad_module("dtype is not a string");
  const std::string s = j.get<std::string>();
  if (s == "float32") return DType::kFloat32;
  if (s == "int64") return DType::kInt64;
  return bad_module("unknown dtype '" + s + "'");
}

Result<TensorInfo> parse_info(const json& j) {
  if (!j.is_object() || !j.contains("dtype") || !j.contains("shape") || !j["shape"].is_array()) {
    return bad_module("a tensor type lacks dtype or shape");
  }
  TensorInfo info;
  KILN_ASSIGN_OR_RETURN(info.dtype, parse_dtype(j["dtype"]));
  int64_t elements = 1;
  for (const json& d : j["shape"]) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0 || d.get<int64_t>() > (int64_t{1} << 32)) {
      return bad_module("a dimension is not a size");
    }
    info.shape.push_back(d.get<int64_t>());
    elements *= std::max<int64_t>(info.shape.back(), 1);
    if (elements > (int64_t{1} << 34)) return bad_module("a tensor is too large");
  }
  return info;
}

Result<Attr> parse_attr(const json& j) {
  if (!j.is_object() || j.size() != 1) return bad_module("an attribute is malformed");
  const std::string kind = j.begin().key();
  const json& value = j.begin().value();
  try {
    if (kind == "int") return Attr::of_int(value.get<int64_t>());
    if (kind == "float") return Attr::of_float(value.get<float>());
    if (kind == "string") return Attr::of_string(value.get<std::string>());
    if (kind == "ints") return Attr::of_ints(value.get<std::vector<int64_t>>());
    if (kind == "floats") return Attr::of_floats(value.get<std::vector<float>>());
  } catch (const json::exception&) {
    return bad_module("attribute of kind '" + kind + "' has a value of another type");
  }
  return bad_module("unknown attribute kind '" + kind + "'");
}

using Entry = void (*)(float* const*);

/// One step of the program: a kernel call or a host operator.
struct Step {
  const Node* node = nullptr;
  Entry main = nullptr;
  std::vector<float*> args;                 ///< the kernel's arguments, resolved
  std::vector<TensorView> inputs, outputs;  ///< a host operator's operands
  std::string what;                         ///< its task's workload, else its operator
};

class LoadedModule : public ModuleRuntime {
 public:
  const std::vector<Value>& inputs() const override { return inputs_; }
  const std::vector<Value>& outputs() const override { return outputs_; }
  const std::string& target() const override { return target_; }

  Status set_input(const std::string& name, const TensorInfo& info, const void* data) override {
    for (size_t i = 0; i < inputs_.size(); ++i) {
      if (inputs_[i].name != name) continue;
      if (!(info == inputs_[i].info)) {
        return invalid_argument("input '" + name + "' is " + to_string(inputs_[i].info) + ", got " +
                                to_string(info));
      }
      // An empty tensor may come with no data at all (memcpy's pointers must not be null).
      if (info.num_bytes() > 0)
        std::memcpy(input_buffers_[i].data(), data, size_t(info.num_bytes()));
      input_set_[i] = true;
      return Status::ok();
    }
    std::string names;
    for (const Value& v : inputs_) names += (names.empty() ? "" : ", ") + v.name;
    return invalid_argument("the module has no input '" + name + "' (its inputs: " + names + ")");
  }

  Status run() override { return run_steps(nullptr); }

  Result<std::vector<NodeTime>> run_profiled() override {
    std::vector<NodeTime> times;
    times.reserve(steps_.size());
    KILN_RETURN_IF_ERROR(run_steps(&times));
    return times;
  }

  /// Runs every step; with `times`, appends each step's time.
  Status run_steps(std::vector<NodeTime>* times) {
    for (size_t i = 0; i < inputs_.size(); ++i) {
      if (!input_set_[i]) {
        return Status(StatusCode::kFailedPrecondition,
                      "input '" + inputs_[i].name + "' has not been set");
      }
    }
    using Clock = std::chrono::steady_clock;
    for (const Step& step : steps_) {
      const Clock::time_point start = times ? Clock::now() : Clock::time_point();
      if (step.main != nullptr) {
        step.main(step.args.data());
      } else {
        KILN_RETURN_IF_ERROR(run_node(*step.node, opset_, step.inputs, step.outputs));
      }
      if (times) {
        times->push_back({step.node->name, step.what,
                          std::chrono::duration<double>(Clock::now() - start).count()});
      }
    }
    for (const auto& [output, source] : output_copies_) {
      if (outputs_[output].info.num_bytes() == 0) continue;
      std::memcpy(output_buffers_[output].data(), source,
                  size_t(outputs_[output].info.num_bytes()));
    }
    ran_ = true;
    return Status::ok();
  }

  Result<TensorView> output(const std::string& name) const override {
    for (size_t i = 0; i < outputs_.size(); ++i) {
      if (outputs_[i].name != name) continue;
      if (!ran_) return Status(StatusCode::kFailedPrecondition, "the module has not run yet");
      return TensorView{outputs_[i].info, output_buffers_[i].data()};
    }
    return Status(StatusCode::kNotFound, "the module has no output '" + name + "'");
  }

  void set_threads(int threads) override { core::set_num_threads(std::max(threads, 1)); }

  Status load(const std::string& bytes);

 private:
  Result<void*> pointer_of(const std::string& value, const TensorInfo** info);

  std::string target_;
  int64_t opset_ = 13;
  std::vector<Value> inputs_, outputs_;
  std::vector<AlignedBytes> input_buffers_, output_buffers_;
  std::vector<bool> input_set_;
  std::vector<std::pair<size_t, const void*>> output_copies_;
  AlignedBytes weights_, arena_;
  std::vector<AlignedBytes> packed_;
  std::map<std::string, std::pair<TensorInfo, void*>> values_;
  std::vector<Node> nodes_;
  std::vector<Step> steps_;
  std::unique_ptr<core::LinkedObjects> code_;
  bool ran_ = false;
};

Result<void*> LoadedModule::pointer_of(const std::string& value, const TensorInfo** info) {
  auto it = values_.find(value);
  if (it == values_.end()) return bad_module("value '" + value + "' has no storage");
  *info = &it->second.first;
  return it->second.second;
}

Status LoadedModule::load(const std::string& bytes) {
  KILN_ASSIGN_OR_RETURN(ZipReader zip, ZipReader::open(bytes));
  KILN_ASSIGN_OR_RETURN(std::string text, zip.read("module.json", int64_t{256} << 20));
  json m = json::parse(text, nullptr, false);
  if (m.is_discarded() || !m.is_object()) return bad_module("module.json is not a JSON object");
  if (m.value("format", "") != module_internal::kFormatName) {
    return bad_module("module.json's format is not '" + std::string(module_internal::kFormatName) +
                      "'");
  }
  if (m.value("version", int64_t{-1}) != kModuleFormatVersion) {
    return invalid_argument("the module has format version " +
                            std::to_string(m.value("version", int64_t{-1})) +
                            "; this kiln reads version " + std::to_string(kModuleFormatVersion) +
                            ": compile the model again");
  }
  target_ = m.value("target", "");
  const std::string arch = m.value("architecture", "");
  const std::string host = host_architecture();
  if (arch != host) {
    return invalid_argument("the module was compiled for " + arch + " (target '" + target_ +
                            "'); this host is " + host +
                            ": compile it with --target for this host");
  }
  // The code may use any feature the target enabled: each must be one this host has.
  if (m.contains("features") && m["features"].is_array() && !m["features"].empty()) {
    KILN_ASSIGN_OR_RETURN(const core::Target host_target, core::parse_target("llvm"));
    KILN_ASSIGN_OR_RETURN(const core::Target resolved, core::resolve_host_target(host_target));
    for (const json& feature : m["features"]) {
      if (!feature.is_string()) return bad_module("a feature is not a string");
      const std::string f = feature.get<std::string>();
      if (f.empty() || f[0] != '+') continue;
      if (std::find(resolved.attrs.begin(), resolved.attrs.end(), f) == resolved.attrs.end()) {
        return invalid_argument("the module's code needs CPU feature " + f.substr(1) +
                                ", which this host lacks (module target '" + target_ +
                                "'): compile it with --target for this host");
      }
    }
  }
  opset_ = m.value("opset", int64_t{13});
  try {
    // Inputs and outputs get buffers of their own.
    for (const char* key : {"inputs", "outputs"}) {
      for (const json& v : m.at(key)) {
        KILN_ASSIGN_OR_RETURN(TensorInfo info, parse_info(v));
        Value value{v.at("name").get<std::string>(), info};
        const bool is_input = std::string(key) == "inputs";
        (is_input ? inputs_ : outputs_).push_back(value);
        (is_input ? input_buffers_ : output_buffers_).emplace_back(info.num_bytes());
      }
    }
    input_set_.assign(inputs_.size(), false);
    for (size_t i = 0; i < inputs_.size(); ++i) {
      values_[inputs_[i].name] = {inputs_[i].info, input_buffers_[i].data()};
    }
    for (size_t i = 0; i < outputs_.size(); ++i) {
      if (!values_.count(outputs_[i].name)) {
        values_[outputs_[i].name] = {outputs_[i].info, output_buffers_[i].data()};
      }
    }
    // Constants live in the weights, copied once into aligned memory.
    KILN_ASSIGN_OR_RETURN(std::string weights, zip.read("weights.bin", kMaxEntryBytes));
    weights_ = AlignedBytes(int64_t(weights.size()));
    if (!weights.empty()) std::memcpy(weights_.data(), weights.data(), weights.size());
    for (const json& c : m.at("constants")) {
      KILN_ASSIGN_OR_RETURN(TensorInfo info, parse_info(c));
      const int64_t offset = c.at("offset").get<int64_t>();
      if (offset < 0 || offset % 64 != 0 || offset + info.num_bytes() > weights_.size()) {
        return bad_module("constant '" + c.at("name").get<std::string>() +
                          "' lies outside the weights");
      }
      values_[c.at("name").get<std::string>()] = {info, weights_.data() + offset};
    }
    // Intermediate values share the arena.
    const int64_t arena_bytes = m.at("arena_bytes").get<int64_t>();
    if (arena_bytes < 0 || arena_bytes > (int64_t{1} << 38)) return bad_module("arena size");
    arena_ = AlignedBytes(arena_bytes);
    for (const auto& [name, v] : m.at("values").items()) {
      KILN_ASSIGN_OR_RETURN(TensorInfo info, parse_info(v));
      const int64_t offset = v.at("offset").get<int64_t>();
      if (offset < 0 || offset % 64 != 0 || offset + info.num_bytes() > arena_bytes) {
        return bad_module("value '" + name + "' lies outside the arena");
      }
      values_[name] = {info, arena_.data() + offset};
    }
    // Code: every object of every task, linked into this process.
    std::vector<std::vector<uint8_t>> objects;
    const json& tasks = m.at("tasks");
    for (const json& task : tasks) {
      auto add = [&](const json& fn) -> Status {
        KILN_ASSIGN_OR_RETURN(std::string object,
                              zip.read(fn.at("object").get<std::string>(), int64_t{256} << 20));
        objects.emplace_back(object.begin(), object.end());
        return Status::ok();
      };
      for (const json& fn : task.at("prepare")) KILN_RETURN_IF_ERROR(add(fn));
      KILN_RETURN_IF_ERROR(add(task.at("main")));
    }
    KILN_ASSIGN_OR_RETURN(code_, core::link_objects(objects));

    // Nodes, in order; a kernel node packs its weights now, once.
    for (const json& n : m.at("nodes")) {
      Node node;
      node.name = n.at("name").get<std::string>();
      node.op = n.at("op").get<std::string>();
      node.inputs = n.at("inputs").get<std::vector<std::string>>();
      node.outputs = n.at("outputs").get<std::vector<std::string>>();
      for (const auto& [key, a] : n.at("attrs").items()) {
        KILN_ASSIGN_OR_RETURN(node.attrs[key], parse_attr(a));
      }
      if (node.op != kKernelOp && !is_supported_op(node.op)) {
        return bad_module(node.describe() + " is not an operator this kiln runs");
      }
      nodes_.push_back(std::move(node));
    }
    steps_.reserve(nodes_.size());
    for (size_t index = 0; index < nodes_.size(); ++index) {
      const Node& node = nodes_[index];
      const json* task = nullptr;
      if (node.op == kKernelOp) {
        const json& entry = m.at("nodes")[index];
        const int64_t t = entry.contains("task") ? entry.at("task").get<int64_t>() : -1;
        if (t < 0 || t >= int64_t(tasks.size()))
          return bad_module(node.describe() + " has no task");
        task = &tasks[size_t(t)];
      }
      Step step;
      step.node = &node;
      step.what = task ? task->at("workload").get<std::string>() : node.op;
      for (const std::string& input : node.inputs) {
        TensorView view;
        if (!input.empty()) {
          const TensorInfo* info = nullptr;
          KILN_ASSIGN_OR_RETURN(view.data, pointer_of(input, &info));
          view.info = *info;
        }
        step.inputs.push_back(view);
      }
      for (const std::string& output : node.outputs) {
        TensorView view;
        if (!output.empty()) {
          const TensorInfo* info = nullptr;
          KILN_ASSIGN_OR_RETURN(view.data, pointer_of(output, &info));
          view.info = *info;
        }
        step.outputs.push_back(view);
      }
      if (task != nullptr) {
        // The caller's buffers: the workload's inputs, then the output.
        std::vector<float*> caller;
        for (const TensorView& v : step.inputs) caller.push_back(v.f32());
        caller.push_back(step.outputs.at(0).f32());
        if (int64_t(caller.size()) != task->at("arity").get<int64_t>()) {
          return bad_module(node.describe() + " has " + std::to_string(caller.size()) +
                            " buffers; its task takes " +
                            std::to_string(task->at("arity").get<int64_t>()));
        }
        std::vector<float*> packed;
        for (const json& shape : task->at("packed_shapes")) {
          KILN_ASSIGN_OR_RETURN(TensorInfo info,
                                parse_info(json{{"dtype", "float32"}, {"shape", shape}}));
          packed_.emplace_back(info.num_bytes());
          packed.push_back(reinterpret_cast<float*>(packed_.back().data()));
        }
        auto resolve = [&](const json& fn) -> Result<std::vector<float*>> {
          std::vector<float*> args;
          for (const json& s : fn.at("sources")) {
            const int64_t source = s.get<int64_t>();
            if (source >= 0 && source < int64_t(caller.size())) {
              args.push_back(caller[size_t(source)]);
            } else if (source < 0 && -1 - source < int64_t(packed.size())) {
              args.push_back(packed[size_t(-1 - source)]);
            } else {
              return bad_module(node.describe() + ": argument source " + std::to_string(source));
            }
          }
          return args;
        };
        for (const json& fn : task->at("prepare")) {
          KILN_ASSIGN_OR_RETURN(Entry entry, code_->lookup(fn.at("symbol").get<std::string>()));
          KILN_ASSIGN_OR_RETURN(std::vector<float*> args, resolve(fn));
          entry(args.data());
        }
        KILN_ASSIGN_OR_RETURN(step.main,
                              code_->lookup(task->at("main").at("symbol").get<std::string>()));
        KILN_ASSIGN_OR_RETURN(step.args, resolve(task->at("main")));
      }
      steps_.push_back(std::move(step));
    }
  } catch (const json::exception& e) {
    return bad_module(std::string("module.json: ") + e.what());
  }
  // An output that no node writes (an input or a constant passed through) is copied after a run.
  for (size_t i = 0; i < outputs_.size(); ++i) {
    const void* source = values_.at(outputs_[i].name).second;
    if (source != output_buffers_[i].data()) output_copies_.emplace_back(i, source);
  }
  return Status::ok();
}

}  // namespace

Result<std::unique_ptr<ModuleRuntime>> ModuleRuntime::load_bytes(const std::string& bytes) {
  auto module = std::make_unique<LoadedModule>();
  KILN_RETURN_IF_ERROR(module->load(bytes));
  return std::unique_ptr<ModuleRuntime>(std::move(module));
}

Result<std::unique_ptr<ModuleRuntime>> ModuleRuntime::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(StatusCode::kNotFound, "cannot read module '" + path + "'");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  auto module = load_bytes(bytes.str());
  if (!module.is_ok()) {
    return Status(module.status().code(), "'" + path + "': " + module.status().message());
  }
  return module;
}

}  // namespace kiln::graph
