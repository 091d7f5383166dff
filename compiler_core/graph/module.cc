#include "compiler_core/graph/module.h"

#include <zip.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "compiler_core/build.h"
#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/db/apply_best.h"
#include "compiler_core/graph/module_internal.h"
#include "compiler_core/graph/passes.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/support/architecture.h"

namespace kiln::graph {
namespace {

using nlohmann::json;

int64_t align_up(int64_t n) { return (n + 63) / 64 * 64; }

json attr_to_json(const Attr& attr) {
  switch (attr.kind) {
    case Attr::Kind::kInt:
      return {{"int", attr.i}};
    case Attr::Kind::kFloat:
      return {{"float", attr.f}};
    case Attr::Kind::kString:
      return {{"string", attr.s}};
    case Attr::Kind::kInts:
      return {{"ints", attr.ints}};
    case Attr::Kind::kFloats:
      return {{"floats", attr.floats}};
    case Attr::Kind::kTensor:
      break;
  }
  return nullptr;
}

json info_to_json(const TensorInfo& info) {
  return {{"dtype", dtype_name(info.dtype)}, {"shape", info.shape}};
}

/// Writes `entries` (name -> bytes) into a zip archive at `path`, through a temporary file.
Status write_zip(const std::string& path,
                 const std::vector<std::pair<std::string, std::string>>& entries) {
  const std::string tmp = path + ".tmp";
  std::remove(tmp.c_str());
  int error = 0;
  zip_t* archive = zip_open(tmp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
  if (archive == nullptr) {
    zip_error_t ze;
    zip_error_init_with_code(&ze, error);
    std::string message = zip_error_strerror(&ze);
    zip_error_fini(&ze);
    return internal_error("cannot create '" + tmp + "': " + message);
  }
  for (const auto& [name, bytes] : entries) {
    zip_source_t* source = zip_source_buffer(archive, bytes.data(), bytes.size(), 0);
    if (source == nullptr || zip_file_add(archive, name.c_str(), source, ZIP_FL_OVERWRITE) < 0) {
      if (source != nullptr) zip_source_free(source);
      std::string message = zip_strerror(archive);
      zip_discard(archive);
      return internal_error("cannot add '" + name + "' to '" + tmp + "': " + message);
    }
    // Code compresses well; weights barely do, and storing them keeps loading fast.
    zip_set_file_compression(archive, zip_uint64_t(zip_name_locate(archive, name.c_str(), 0)),
                             name == "weights.bin" ? ZIP_CM_STORE : ZIP_CM_DEFLATE, 0);
  }
  if (zip_close(archive) < 0) {
    std::string message = zip_strerror(archive);
    zip_discard(archive);
    return internal_error("cannot write '" + tmp + "': " + message);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return internal_error("cannot move '" + tmp + "' to '" + path + "': " + ec.message());
  return Status::ok();
}

}  // namespace

std::vector<Task> extract_tasks(const Graph& graph) {
  std::vector<Task> tasks;
  for (const Node& node : graph.nodes) {
    if (node.op != kKernelOp) continue;
    const std::string workload = core::parse_workload(kernel_workload(node))->canonical();
    auto it = std::find_if(tasks.begin(), tasks.end(),
                           [&](const Task& t) { return t.workload == workload; });
    if (it == tasks.end()) {
      tasks.push_back({workload, 1});
    } else {
      ++it->count;
    }
  }
  return tasks;
}

MemoryPlan plan_memory(const Graph& graph) {
  std::set<std::string> outside;
  for (const Value& v : graph.inputs) outside.insert(v.name);
  for (const Value& v : graph.outputs) outside.insert(v.name);
  for (const auto& [name, t] : graph.constants) outside.insert(name);
  // Lifetimes in node positions: defined at its producer, dead after its last reader.
  std::map<std::string, std::pair<size_t, size_t>> life;
  std::vector<std::string> order;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& node = graph.nodes[i];
    for (const std::string& input : node.inputs) {
      auto it = life.find(input);
      if (it != life.end()) it->second.second = i;
    }
    for (const std::string& output : node.outputs) {
      if (output.empty() || outside.count(output)) continue;
      life[output] = {i, i};
      order.push_back(output);
    }
  }
  struct Block {
    int64_t offset, size;
    size_t free_after;  // the block is free for values defined after this position
  };
  std::vector<Block> blocks;
  MemoryPlan plan;
  for (const std::string& name : order) {
    const auto [def, last] = life[name];
    const int64_t size = align_up(graph.infos.at(name).num_bytes());
    plan.unshared_bytes += size;
    Block* best = nullptr;
    for (Block& b : blocks) {
      if (b.free_after < def && b.size >= size && (best == nullptr || b.size < best->size))
        best = &b;
    }
    if (best == nullptr) {
      blocks.push_back({plan.arena_bytes, size, last});
      plan.arena_bytes += size;
      plan.offsets[name] = blocks.back().offset;
      continue;
    }
    best->free_after = last;
    plan.offsets[name] = best->offset;
  }
  return plan;
}

Result<CompileSummary> compile_module(const Graph& graph, const core::Target& target,
                                      const core::TuningLog* log, const std::string& path,
                                      int threads) {
  core::Target resolved = target;
  if (target.is_host && target.triple.empty()) {
    KILN_ASSIGN_OR_RETURN(resolved, core::resolve_host_target(target));
  }
  core::TargetKey key;
  if (log != nullptr) {
    KILN_ASSIGN_OR_RETURN(key, core::make_target_key(target, threads));
  }

  CompileSummary summary;
  summary.target = resolved.str();
  std::vector<std::pair<std::string, std::string>> entries;
  json tasks = json::array();
  std::map<std::string, int64_t> task_of;
  for (const Task& task : extract_tasks(graph)) {
    KILN_ASSIGN_OR_RETURN(const core::Workload workload, core::parse_workload(task.workload));
    KILN_ASSIGN_OR_RETURN(const core::ConfigSpace space, core::config_space(workload, resolved));
    KILN_ASSIGN_OR_RETURN(const core::BestConfig best,
                          core::select_best_config(log, workload, key, space));
    const std::string prefix = "kiln_t" + std::to_string(tasks.size());
    KILN_ASSIGN_OR_RETURN(core::KernelCode code,
                          core::build_kernel_code(workload, resolved, best.config, prefix));
    auto function_json = [&](core::CompiledFunction& fn) {
      const std::string entry = "code/" + fn.symbol + ".o";
      entries.emplace_back(entry, std::string(fn.object.begin(), fn.object.end()));
      return json{{"symbol", fn.symbol}, {"object", entry}, {"sources", fn.sources}};
    };
    json prepare = json::array();
    for (core::CompiledFunction& fn : code.prepare) prepare.push_back(function_json(fn));
    json packed = json::array();
    for (const Shape& shape : code.packed_shapes) packed.push_back(shape);
    const std::string config = space.to_json(best.config);
    tasks.push_back({{"workload", task.workload},
                     {"count", task.count},
                     {"config", json::parse(config)},
                     {"source", core::config_source_name(best.source)},
                     {"arity", code.arity},
                     {"packed_shapes", packed},
                     {"prepare", prepare},
                     {"main", function_json(code.main)}});
    task_of[task.workload] = int64_t(tasks.size()) - 1;
    summary.tasks.push_back({task, config, best.source == core::ConfigSource::kRecord});
  }

  // Constants, 64-byte aligned in weights.bin.
  std::string weights;
  json constants = json::array();
  for (const auto& [name, tensor] : graph.constants) {
    const int64_t offset = align_up(int64_t(weights.size()));
    weights.resize(size_t(offset), '\0');
    const int64_t bytes = tensor.info.num_bytes();
    weights.append(static_cast<const char*>(tensor.data()), size_t(bytes));
    json c = info_to_json(tensor.info);
    c["name"] = name;
    c["offset"] = offset;
    constants.push_back(c);
  }

  json nodes = json::array();
  for (const Node& node : graph.nodes) {
    json attrs = json::object();
    for (const auto& [name, attr] : node.attrs) {
      json a = attr_to_json(attr);
      if (a.is_null()) {
        return invalid_argument(node.describe() + ": tensor attribute '" + name +
                                "' cannot be stored in a module");
      }
      attrs[name] = a;
    }
    json n = {{"name", node.name},
              {"op", node.op},
              {"inputs", node.inputs},
              {"outputs", node.outputs},
              {"attrs", attrs}};
    if (node.op == kKernelOp) {
      n["task"] = task_of.at(core::parse_workload(kernel_workload(node))->canonical());
      ++summary.kernel_nodes;
    } else {
      ++summary.host_nodes;
    }
    nodes.push_back(n);
  }

  summary.memory = plan_memory(graph);
  json values = json::object();
  for (const auto& [name, offset] : summary.memory.offsets) {
    json v = info_to_json(graph.infos.at(name));
    v["offset"] = offset;
    values[name] = v;
  }
  auto io_json = [](const std::vector<Value>& list) {
    json out = json::array();
    for (const Value& v : list) {
      json j = info_to_json(v.info);
      j["name"] = v.name;
      out.push_back(j);
    }
    return out;
  };
  json module = {{"format", module_internal::kFormatName},
                 {"version", kModuleFormatVersion},
                 {"target", resolved.str()},
                 {"architecture", triple_architecture(resolved.triple)},
                 {"features", resolved.attrs},
                 {"opset", graph.opset},
                 {"inputs", io_json(graph.inputs)},
                 {"outputs", io_json(graph.outputs)},
                 {"constants", constants},
                 {"tasks", tasks},
                 {"nodes", nodes},
                 {"values", values},
                 {"arena_bytes", summary.memory.arena_bytes}};
  entries.emplace_back("module.json", module.dump(1));
  entries.emplace_back("weights.bin", std::move(weights));
  KILN_RETURN_IF_ERROR(write_zip(path, entries));
  std::error_code ec;
  summary.bytes = int64_t(std::filesystem::file_size(path, ec));
  return summary;
}

}  // namespace kiln::graph
