// `kiln run --module MODULE`: loads a compiled model, binds its inputs (from an .npz archive, or
// random), runs it --repeat times and reports the latency; its outputs can be written to .npz.

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <spdlog/fmt/fmt.h>
#include <nlohmann/json.hpp>

#include "compiler_core/graph/npz.h"
#include "compiler_core/graph/runtime.h"
#include "tuner/cli/commands.h"
#include "tuner/cli/flags.h"

namespace kiln::tuner {
namespace {

/// A resolved target without its long -mattr list, for a line of text (JSON keeps it whole).
std::string brief_target(const std::string& target) {
  return target.substr(0, target.find(" -mattr="));
}

// Random inputs are the same on every run, so that outputs can be compared across runs.
constexpr uint64_t kInputSeed = 20240601;

FlagSet make_flags() {
  FlagSet flags(
      "run",
      "Runs a module that `kiln compile` wrote: binds its inputs, runs it --repeat times after "
      "one warm-up run, and reports the latency.",
      "Inputs come from a NumPy .npz archive keyed by the model's input names (float32 arrays of "
      "the input's shape), else random values in [-1, 1). --outputs writes the last run's "
      "outputs, keyed by the model's output names. The module needs neither the ONNX file nor a "
      "tuning log; a module built for another architecture is refused.\nWith --json: one object "
      "with module, target, threads, repeat, latency_ms (median, min, max, p10, p90), inputs and "
      "outputs (name, dtype, shape), and with --profile a profile list.\n--profile times every "
      "node in a further --repeat runs and lists the nodes by their median time, with the share "
      "of the sum, what each ran (a kernel's workload string, else the operator) and how many "
      "nodes ran the same; timing each node adds a little to each.\nExit codes: 0 ran, 2 bad "
      "flags, a module or input file "
      "that cannot be used (wrong names, shapes or dtypes), 1 a failure while running.");
  flags.add_required_string("module", "MODULE", "the module file to run");
  flags.add_string("inputs", "IN.npz", "the inputs; random without it");
  flags.add_string("outputs", "OUT.npz", "where to write the outputs of the last run");
  add_threads_flag(flags, "threads for the kernels' parallel loops");
  flags.add_int("repeat", "N", "timed runs", 10, 1, 1000000);
  flags.add_bool("profile", "also time every node and list the slowest");
  flags.add_bool("json", "print one JSON object on stdout instead of a summary");
  return flags;
}

nlohmann::json describe(const std::vector<graph::Value>& values) {
  nlohmann::json out = nlohmann::json::array();
  for (const graph::Value& v : values) {
    out.push_back(
        {{"name", v.name}, {"dtype", graph::dtype_name(v.info.dtype)}, {"shape", v.info.shape}});
  }
  return out;
}

int fail(const Status& status) {
  std::cerr << "error: " << status.message() << "\n";
  return status.is_user_error() ? 2 : 1;
}

}  // namespace

bool is_module_run(const std::vector<std::string>& args) {
  return std::any_of(args.begin(), args.end(), [](const std::string& a) {
    return a == "--module" || a.rfind("--module=", 0) == 0;
  });
}

int run_module_command(const std::vector<std::string>& args) {
  FlagSet flags = make_flags();
  if (Status parsed = flags.parse(args); !parsed.is_ok()) return fail(parsed);
  if (flags.help_requested()) {
    std::cout << flags.help();
    return 0;
  }
  if (check_flags_only()) {
    std::cout << "kiln run: the command line is valid\n";
    return 0;
  }
  Result<std::unique_ptr<graph::ModuleRuntime>> loaded =
      graph::ModuleRuntime::load(flags.get_string("module"));
  if (!loaded.is_ok()) return fail(loaded.status());
  graph::ModuleRuntime& module = **loaded;
  module.set_threads(int(flags.get_int("threads")));

  if (flags.is_set("inputs")) {
    Result<std::map<std::string, graph::Tensor>> arrays =
        graph::read_npz(flags.get_string("inputs"));
    if (!arrays.is_ok()) return fail(arrays.status());
    for (const graph::Value& input : module.inputs()) {
      auto it = arrays->find(input.name);
      if (it == arrays->end()) {
        return fail(invalid_argument("'" + flags.get_string("inputs") + "' has no array '" +
                                     input.name + "' for the module's input of that name"));
      }
      if (Status s = module.set_input(input.name, it->second.info, it->second.data()); !s.is_ok()) {
        return fail(s);
      }
    }
  } else {
    std::mt19937_64 rng(kInputSeed);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (const graph::Value& input : module.inputs()) {
      graph::Tensor t = graph::Tensor::zeros(input.info);
      for (float& x : t.f32) x = uniform(rng);
      for (int64_t& x : t.i64) x = 0;
      if (Status s = module.set_input(input.name, t.info, t.data()); !s.is_ok()) return fail(s);
    }
  }

  if (Status s = module.run(); !s.is_ok()) return fail(s);  // warm-up
  const int64_t repeat = flags.get_int("repeat");
  std::vector<double> ms;
  for (int64_t i = 0; i < repeat; ++i) {
    const auto start = std::chrono::steady_clock::now();
    if (Status s = module.run(); !s.is_ok()) return fail(s);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
  }
  std::sort(ms.begin(), ms.end());
  auto quantile = [&](double q) { return ms[size_t(q * double(ms.size() - 1) + 0.5)]; };

  // The profile: per node, the median over the profiled runs; nodes that ran the same thing
  // are summed into one row.
  struct ProfileRow {
    std::string what;
    int64_t nodes = 0;
    double ms = 0;
  };
  std::vector<ProfileRow> profile;
  double profiled_ms = 0;
  if (flags.get_bool("profile")) {
    std::vector<std::vector<double>> samples;
    std::vector<graph::ModuleRuntime::NodeTime> last;
    for (int64_t i = 0; i < repeat; ++i) {
      Result<std::vector<graph::ModuleRuntime::NodeTime>> times = module.run_profiled();
      if (!times.is_ok()) return fail(times.status());
      samples.resize(times->size());
      for (size_t n = 0; n < times->size(); ++n) samples[n].push_back((*times)[n].seconds * 1e3);
      last = std::move(times).value();
    }
    std::map<std::string, size_t> row_of;
    for (size_t n = 0; n < last.size(); ++n) {
      std::vector<double>& v = samples[n];
      std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(v.size() / 2), v.end());
      auto [it, added] = row_of.emplace(last[n].what, profile.size());
      if (added) profile.push_back({last[n].what, 0, 0});
      profile[it->second].nodes += 1;
      profile[it->second].ms += v[v.size() / 2];
      profiled_ms += v[v.size() / 2];
    }
    std::sort(profile.begin(), profile.end(),
              [](const ProfileRow& a, const ProfileRow& b) { return a.ms > b.ms; });
  }

  if (flags.is_set("outputs")) {
    std::vector<std::pair<std::string, graph::Tensor>> arrays;
    for (const graph::Value& output : module.outputs()) {
      Result<graph::TensorView> view = module.output(output.name);
      if (!view.is_ok()) return fail(view.status());
      graph::Tensor t = graph::Tensor::zeros(view->info);
      std::memcpy(t.data(), view->data, size_t(view->info.num_bytes()));
      arrays.emplace_back(output.name, std::move(t));
    }
    if (Status s = graph::write_npz(flags.get_string("outputs"), arrays); !s.is_ok())
      return fail(s);
  }

  if (flags.get_bool("json")) {
    nlohmann::json out = {{"module", flags.get_string("module")},
                          {"target", module.target()},
                          {"threads", flags.get_int("threads")},
                          {"repeat", repeat},
                          {"latency_ms",
                           {{"median", quantile(0.5)},
                            {"min", ms.front()},
                            {"max", ms.back()},
                            {"p10", quantile(0.1)},
                            {"p90", quantile(0.9)}}},
                          {"inputs", describe(module.inputs())},
                          {"outputs", describe(module.outputs())}};
    if (flags.get_bool("profile")) {
      nlohmann::json rows = nlohmann::json::array();
      for (const ProfileRow& r : profile) {
        rows.push_back({{"what", r.what}, {"nodes", r.nodes}, {"median_ms", r.ms}});
      }
      out["profile"] = rows;
    }
    std::cout << out.dump() << "\n";
    return 0;
  }
  std::cout << fmt::format(
      "ran {} ({}) on {} threads: median {:.3f} ms over {} runs "
      "(min {:.3f}, max {:.3f})\n",
      flags.get_string("module"), brief_target(module.target()), flags.get_int("threads"),
      quantile(0.5), repeat, ms.front(), ms.back());
  for (const graph::Value& output : module.outputs()) {
    std::cout << "  output " << output.name << ": " << graph::to_string(output.info) << "\n";
  }
  if (flags.get_bool("profile")) {
    std::cout << fmt::format("profile: the nodes' medians sum to {:.3f} ms\n", profiled_ms);
    for (const ProfileRow& r : profile) {
      std::cout << fmt::format("  {:>8.3f} ms {:>5.1f}%  {:>3} x {}\n", r.ms,
                               100 * r.ms / profiled_ms, r.nodes, r.what);
    }
  }
  return 0;
}

}  // namespace kiln::tuner
