// kiln_kernel_bench: kiln's kernels against the libraries, in one process.
//
// For each workload and thread count it builds a short hand-picked list of kiln configs,
// checks each against the reference kernel once per thread count (a wrong or unbuildable
// config is reported and skipped), times the rest and the library baselines with kiln's timer
// (medians), and prints a table of GFLOP/s with the ratio of kiln's best to the fastest
// library. `--json` prints one JSON object with every figure instead.
//
// The libraries are the ones ANCHORS.md measured: OpenBLAS sgemm (restarted without this
// machine's OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE overrides), oneDNN matmul with plain and with
// packed weights, oneDNN convolution in its blocked layouts (and with NCHW in and out).

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "compiler_core/build.h"
#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/runtime/buffer.h"
#include "compiler_core/runtime/thread_pool.h"
#include "compiler_core/runtime/timer.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/support/check.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/reference.h"
#include "compiler_core/te/workload.h"
#include "tuner/baseline/baselines.h"

namespace {

using nlohmann::json;
namespace core = kiln::core;
namespace baseline = kiln::baseline;

/// Largest relative error (te/reference.h's measure) a kernel may have against the reference.
/// Float accumulation over K = 1024 or C·R·S = 576 terms stays near 1e-6.
constexpr double kTolerance = 1e-4;

/// Pause between libraries so that threads one library left spinning (OpenBLAS's workers
/// busy-wait for a while after a call, libgomp's too) do not steal cycles from the next.
constexpr auto kSettle = std::chrono::milliseconds(150);

struct Case {
  std::string workload;
  /// kiln configs as `{"knobs":{...}}`; knobs left out take the space's default (or, in a space
  /// without one, the knob's first choice), so the list survives knobs added to a template.
  std::vector<std::string> configs;
};

/// Hand-picked configs: register tiles that fill most of AVX-512's 32 vector registers
/// (tile_m × tile_n_vectors accumulators plus the B vectors and a broadcast) and a few
/// smaller ones.
std::vector<Case> default_cases() {
  auto mm = [](int tm, int tnv, int uk, int order, const char* extra = "") {
    return "{\"knobs\":{\"tile_m\":" + std::to_string(tm) +
           ",\"tile_n_vectors\":" + std::to_string(tnv) + ",\"unroll_k\":" + std::to_string(uk) +
           ",\"order\":" + std::to_string(order) + ",\"pack_b\":1,\"parallel\":1" + extra + "}}";
  };
  auto conv = [](int bkv, int bc, int tow, int uc) {
    return "{\"knobs\":{\"block_k_vectors\":" + std::to_string(bkv) +
           ",\"block_c\":" + std::to_string(bc) + ",\"tile_ow\":" + std::to_string(tow) +
           ",\"unroll_c\":" + std::to_string(uc) + ",\"parallel\":1}}";
  };
  return {
      {"matmul:M=1024,N=1024,K=1024",
       {mm(6, 2, 4, 0), mm(12, 2, 4, 0), mm(14, 2, 4, 0), mm(8, 3, 4, 0), mm(6, 4, 4, 0),
        mm(4, 4, 8, 0), mm(12, 2, 4, 1), mm(6, 2, 4, 0, ",\"pack_a\":0"),
        mm(6, 2, 4, 0, ",\"k_block\":256"), mm(12, 2, 4, 0, ",\"k_block\":256"),
        mm(14, 2, 4, 0, ",\"k_block\":128")}},
      {"conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1",
       {conv(2, 16, 14, 4), conv(2, 32, 8, 4), conv(4, 16, 7, 4), conv(1, 16, 28, 4),
        conv(2, 64, 14, 8), conv(4, 64, 6, 2), conv(2, 8, 12, 8)}},
  };
}

/// The point of `space` that `text` (`{"knobs":{...}}`) names, with unnamed knobs at their
/// defaults. InvalidConfig for malformed JSON, unknown knobs and values not in the space.
kiln::Result<core::Config> complete_config(const core::ConfigSpace& space,
                                           const std::string& text) {
  const json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("knobs") ||
      !doc["knobs"].is_object()) {
    return kiln::invalid_config("config '" + text + "' is not {\"knobs\":{...}}");
  }
  const std::vector<core::Knob>& knobs = space.knobs();
  std::vector<int64_t> values = space.default_config().values;
  if (values.size() != knobs.size()) {
    values.clear();
    for (const core::Knob& k : knobs) values.push_back(k.choices.front());
  }
  for (const auto& [name, value] : doc["knobs"].items()) {
    size_t i = 0;
    while (i < knobs.size() && knobs[i].name != name) ++i;
    if (i == knobs.size() || !value.is_number_integer()) {
      return kiln::invalid_config("config '" + text + "': knob '" + name +
                                  "' is not an integer knob of " + space.template_name());
    }
    values[i] = value.get<int64_t>();
  }
  return space.from_values(values);
}

struct Options {
  bool json = false;
  std::vector<int> threads = {1, 2};
  std::string only;  ///< run only workloads whose string starts with this
  core::TimingOptions timing{.number = 1, .repeat = 7, .min_repeat_ms = 200, .warmup = 2};
};

constexpr const char* kUsage =
    "usage: kiln_kernel_bench [--json] [--threads=1,2] [--repeat=7] "
    "[--min-repeat-ms=200] [--warmup=2] [--only=matmul|conv2d]\n";

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "error: " << message << "\n" << kUsage;
  std::exit(2);
}

int parse_int(const std::string& flag, const std::string& text, int lo, int hi) {
  try {
    size_t used = 0;
    const int v = std::stoi(text, &used);
    if (used == text.size() && v >= lo && v <= hi) return v;
  } catch (const std::exception&) {
  }
  usage_error(flag + " takes an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
              "], got '" + text + "'");
}

Options parse_flags(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    const size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto need_value = [&]() -> const std::string& {
      if (eq == std::string::npos) {
        if (i + 1 >= argc) usage_error(arg + " needs a value");
        value = argv[++i];
      }
      return value;
    };
    if (arg == "--json" && eq == std::string::npos) {
      o.json = true;
    } else if (arg == "--threads") {
      o.threads.clear();
      std::stringstream ss(need_value());
      for (std::string item; std::getline(ss, item, ',');) {
        o.threads.push_back(parse_int("--threads", item, 1, 256));
      }
      if (o.threads.empty()) usage_error("--threads needs a list such as 1,2");
    } else if (arg == "--repeat") {
      o.timing.repeat = parse_int(arg, need_value(), 1, 1000);
    } else if (arg == "--warmup") {
      o.timing.warmup = parse_int(arg, need_value(), 0, 1000);
    } else if (arg == "--min-repeat-ms") {
      o.timing.min_repeat_ms = parse_int(arg, need_value(), 0, 100000);
    } else if (arg == "--only") {
      o.only = need_value();
    } else if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else {
      usage_error(std::string("unknown flag '") + argv[i] + "'");
    }
  }
  return o;
}

/// Progress lines go to stderr; stdout holds the table or the JSON object.
template <typename... Args>
void progress(const char* format, Args... args) {
  std::fprintf(stderr, format, args...);
  std::fflush(stderr);
}

double gflops(double flops, double seconds) { return seconds > 0 ? flops / seconds / 1e9 : 0; }

json timing_json(const core::TimingResult& r, double flops) {
  return {{"median_s", r.median()},
          {"min_s", r.min()},
          {"samples_s", r.seconds},
          {"number", r.number},
          {"gflops", gflops(flops, r.median())}};
}

struct KilnCandidate {
  std::string config_json;  ///< the space's canonical form, {"index":N,"knobs":{...}}
  std::unique_ptr<core::Kernel> kernel;
  std::string build_error;
};

/// Runs one workload at every thread count; returns its JSON results (one per thread count).
json run_case(const Case& c, const core::Target& target, const Options& o) {
  json out = json::array();
  auto parsed = core::parse_workload(c.workload);
  if (!parsed) {
    progress("error: %s: %s\n", c.workload.c_str(), parsed.status().to_string().c_str());
    return out;
  }
  const core::Workload w = *parsed;
  const double flops = w.flops();
  progress("== %s (%.3f GFLOP per run)\n", c.workload.c_str(), flops / 1e9);

  // Inputs, the reference output and one output buffer per runner.
  std::mt19937_64 rng(20240601);
  std::vector<core::Buffer> inputs;
  for (const core::Shape& shape : w.input_shapes()) {
    auto b = core::Buffer::create(shape);
    KILN_CHECK(b.is_ok()) << b.status().to_string();
    b->fill_random(rng);
    inputs.push_back(std::move(*b));
  }
  std::vector<const float*> input_ptrs;
  for (const core::Buffer& b : inputs) input_ptrs.push_back(b.data());
  auto expected = core::Buffer::create(w.output_shape());
  auto actual = core::Buffer::create(w.output_shape());
  KILN_CHECK(expected.is_ok() && actual.is_ok()) << "output buffers";
  {
    baseline::ScopedAllCpus unpinned;  // the reference's threads may use every CPU
    core::run_reference(w, input_ptrs, expected->data(),
                        static_cast<int>(std::thread::hardware_concurrency()));
  }
  const int64_t out_count = expected->size();

  // kiln's candidates, built once (a kernel does not depend on the thread count).
  auto space = core::config_space(w, target);
  KILN_CHECK(space.is_ok()) << space.status().to_string();
  std::vector<KilnCandidate> candidates;
  for (const std::string& text : c.configs) {
    KilnCandidate k;
    k.config_json = text;
    auto config = complete_config(*space, text);
    if (!config) {
      k.build_error = config.status().to_string();
    } else {
      k.config_json = space->to_json(*config);
      auto kernel = core::build_kernel(w, target, *config);
      if (kernel) {
        k.kernel = std::move(*kernel);
      } else {
        k.build_error = kernel.status().to_string();
      }
    }
    if (!k.build_error.empty()) {
      progress("  kiln %s: not built: %s\n", k.config_json.c_str(), k.build_error.c_str());
    }
    candidates.push_back(std::move(k));
  }
  std::vector<float*> kiln_args;
  for (core::Buffer& b : inputs) kiln_args.push_back(b.data());
  kiln_args.push_back(actual->data());

  for (int threads : o.threads) {
    json row = {{"workload", w.canonical()}, {"threads", threads}, {"flops", flops}};

    // kiln.
    core::set_num_threads(threads);
    json configs = json::array();
    std::optional<std::pair<double, std::string>> best;  // GFLOP/s, config
    for (KilnCandidate& k : candidates) {
      json entry = {{"config", json::parse(k.config_json, nullptr, false)}};
      if (!k.kernel) {
        entry["status"] = "build_failed";
        entry["message"] = k.build_error;
        configs.push_back(entry);
        continue;
      }
      std::fill(actual->data(), actual->data() + out_count, 0.0f);
      k.kernel->run(kiln_args);
      const double err = core::max_relative_error(actual->data(), expected->data(), out_count);
      entry["max_rel_error"] = err;
      if (!(err <= kTolerance)) {
        entry["status"] = "wrong";
        progress("  kiln %s threads=%d: WRONG (max relative error %.3g), skipped\n",
                 k.config_json.c_str(), threads, err);
        configs.push_back(entry);
        continue;
      }
      core::Kernel* kernel = k.kernel.get();
      core::TimingResult r =
          core::time_function([&] { kernel->run_prepared(kiln_args); }, o.timing);
      const double g = gflops(flops, r.median());
      entry["status"] = "ok";
      entry["timing"] = timing_json(r, flops);
      progress("  kiln %-95s threads=%d %7.1f GFLOP/s\n", k.config_json.c_str(), threads, g);
      if (!best || g > best->first) best = std::make_pair(g, k.config_json);
      configs.push_back(entry);
    }
    core::set_num_threads(1);
    row["kiln"] = {{"configs", configs}};
    if (best) {
      row["kiln"]["best_gflops"] = best->first;
      row["kiln"]["best_config"] = json::parse(best->second);
    }
    std::this_thread::sleep_for(kSettle);

    // Libraries.
    std::vector<std::pair<std::string, kiln::Result<std::unique_ptr<baseline::Baseline>>>> libs;
    auto add = [&](const std::string& name, auto result) {
      if (result) {
        libs.emplace_back(name, std::unique_ptr<baseline::Baseline>(std::move(*result)));
      } else {
        libs.emplace_back(name, result.status());
      }
    };
    if (w.op == core::OpKind::kMatmul || w.op == core::OpKind::kDense) {
      add("openblas", baseline::OpenblasSgemm::create(w, input_ptrs, threads));
    }
    if (w.op == core::OpKind::kMatmul || w.op == core::OpKind::kDense ||
        w.op == core::OpKind::kBatchMatmul) {
      add("onednn", baseline::DnnlMatmul::create(w, input_ptrs, threads, false));
      add("onednn_packed", baseline::DnnlMatmul::create(w, input_ptrs, threads, true));
    } else {
      add("onednn_blocked",
          baseline::DnnlConv2d::create(w, input_ptrs, threads, baseline::ConvIo::kBlocked));
      add("onednn_plain_io",
          baseline::DnnlConv2d::create(w, input_ptrs, threads, baseline::ConvIo::kPlainIo));
    }
    json baselines = json::object();
    std::optional<std::pair<double, std::string>> fastest;
    for (auto& [name, lib] : libs) {
      json entry;
      if (!lib) {
        entry["status"] = "unavailable";
        entry["message"] = lib.status().to_string();
        progress("  %s threads=%d: %s\n", name.c_str(), threads, lib.status().to_string().c_str());
        baselines[name] = entry;
        continue;
      }
      baseline::Baseline* b = lib->get();
      entry["implementation"] = b->implementation();
      std::fill(actual->data(), actual->data() + out_count, 0.0f);
      b->run();
      b->read_output(actual->data());
      const double err = core::max_relative_error(actual->data(), expected->data(), out_count);
      entry["max_rel_error"] = err;
      if (!(err <= kTolerance)) {
        entry["status"] = "wrong";
        progress("  %s threads=%d: WRONG (max relative error %.3g), skipped\n", name.c_str(),
                 threads, err);
        baselines[name] = entry;
        continue;
      }
      core::TimingResult r = core::time_function([b] { b->run(); }, o.timing);
      const double g = gflops(flops, r.median());
      entry["status"] = "ok";
      entry["timing"] = timing_json(r, flops);
      progress("  %-15s threads=%d %7.1f GFLOP/s  (%s)\n", name.c_str(), threads, g,
               b->implementation().c_str());
      // The plain-I/O convolution is a second view of oneDNN, not a faster library.
      if (name != "onednn_plain_io" && (!fastest || g > fastest->first)) {
        fastest = std::make_pair(g, name);
      }
      baselines[name] = entry;
      lib->reset();  // free its buffers before the next library runs
      std::this_thread::sleep_for(kSettle);
    }
    row["baselines"] = baselines;
    if (fastest) {
      row["fastest_library"] = fastest->second;
      row["fastest_library_gflops"] = fastest->first;
      if (best) row["kiln_over_fastest_library"] = best->first / fastest->first;
    }
    out.push_back(row);
  }
  return out;
}

std::string cell(const json& row, const std::string& lib) {
  const json& b = row["baselines"];
  if (!b.contains(lib)) return "-";
  const json& e = b[lib];
  if (e.value("status", "") != "ok") return e.value("status", "?");
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", e["timing"]["gflops"].get<double>());
  return buf;
}

void print_table(const json& doc) {
  // The full target string (every -mattr) is in the JSON; the CPU model and width suffice here.
  std::printf("\nkiln_kernel_bench  cpu: %s  llvm cpu: %s  vector lanes: %d\n",
              doc["host"]["cpu"].get<std::string>().c_str(),
              doc["host"]["llvm_cpu"].get<std::string>().c_str(),
              doc["host"]["vector_lanes"].get<int>());
  std::printf("OpenBLAS %s (core %s), oneDNN %s, OMP_PROC_BIND=%s\n",
              doc["host"]["openblas_config"].get<std::string>().c_str(),
              doc["host"]["openblas_core"].get<std::string>().c_str(),
              doc["host"]["onednn_version"].get<std::string>().c_str(),
              doc["host"]["omp_proc_bind"].get<std::string>().c_str());
  const json& removed = doc["host"]["openblas_overrides_removed"];
  if (removed.empty()) {
    std::printf("OpenBLAS overrides: none were set\n");
  } else {
    std::string list;
    for (const auto& v : removed) list += " " + v.get<std::string>();
    std::printf("OpenBLAS overrides removed before the libraries loaded:%s\n", list.c_str());
  }
  std::string peaks;
  for (const auto& [t, g] : doc["host"]["fma_peak_gflops"].items()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, " %s thread(s) %.1f,", t.c_str(), g.get<double>());
    peaks += buf;
  }
  if (!peaks.empty()) peaks.pop_back();
  std::printf("AVX-512 FMA peak measured at start (GFLOP/s):%s\n", peaks.c_str());
  std::string masks;
  for (const auto& v : doc["host"]["thread_cpus_at_exit"]) masks += " " + v.get<std::string>();
  std::printf("threads at exit (tid:cpus):%s\n", masks.c_str());
  const json& t = doc["timing"];
  std::printf("GFLOP/s from medians of %d samples (each >= %g ms, %d warm-up runs)\n\n",
              t["repeat"].get<int>(), t["min_repeat_ms"].get<double>(), t["warmup"].get<int>());
  std::printf("%-56s %3s %8s %9s %8s %9s %9s %9s %10s  %s\n", "workload", "thr", "kiln", "openblas",
              "onednn", "dnn_pack", "dnn_blk", "dnn_nchw", "kiln/best", "kiln best config");
  for (const json& row : doc["results"]) {
    std::string kiln = "-", config = "(no valid config)", ratio = "-";
    char buf[64];
    if (row["kiln"].contains("best_gflops")) {
      std::snprintf(buf, sizeof buf, "%.1f", row["kiln"]["best_gflops"].get<double>());
      kiln = buf;
      config = row["kiln"]["best_config"]["knobs"].dump();
    }
    if (row.contains("kiln_over_fastest_library")) {
      std::snprintf(buf, sizeof buf, "%.2f", row["kiln_over_fastest_library"].get<double>());
      ratio = std::string(buf) + " " + row["fastest_library"].get<std::string>();
    }
    std::printf("%-56s %3d %8s %9s %8s %9s %9s %9s %10s  %s\n",
                row["workload"].get<std::string>().c_str(), row["threads"].get<int>(), kiln.c_str(),
                cell(row, "openblas").c_str(), cell(row, "onednn").c_str(),
                cell(row, "onednn_packed").c_str(), cell(row, "onednn_blocked").c_str(),
                cell(row, "onednn_plain_io").c_str(), ratio.c_str(), config.c_str());
  }
  std::printf(
      "\nColumns: kiln = best of the hand-picked configs; dnn_pack = oneDNN matmul with weights "
      "packed ahead of time;\ndnn_blk = oneDNN convolution in its blocked layouts (input and "
      "weights reordered before timing);\ndnn_nchw = the same with NCHW in and out, reorders "
      "timed (kiln's kernels take NCHW and pack inside).\nkiln/best = kiln over the fastest "
      "library (dnn_nchw excluded), named after the ratio.\n");
  for (const json& row : doc["results"]) {
    std::printf("\n%s, %d thread(s): kiln configs\n", row["workload"].get<std::string>().c_str(),
                row["threads"].get<int>());
    for (const json& e : row["kiln"]["configs"]) {
      const std::string knobs = e["config"].is_object() && e["config"].contains("knobs")
                                    ? e["config"]["knobs"].dump()
                                    : e["config"].dump();
      if (e["status"] == "ok") {
        std::printf("  %8.1f GFLOP/s  %s\n", e["timing"]["gflops"].get<double>(), knobs.c_str());
      } else {
        std::printf("  %16s  %s %s\n", e["status"].get<std::string>().c_str(), knobs.c_str(),
                    e.value("message", "").c_str());
      }
    }
  }
}

int run(int argc, char** argv) {
  const Options o = parse_flags(argc, argv);
  int max_threads = 1;
  for (int t : o.threads) max_threads = std::max(max_threads, t);
  baseline::place_benchmark_threads(max_threads);

  auto target = core::parse_target("llvm");
  KILN_CHECK(target.is_ok()) << target.status().to_string();
  auto host = core::resolve_host_target(*target);
  if (!host) {
    std::cerr << "error: " << host.status().to_string() << "\n";
    return 1;
  }

  const char* bind = std::getenv("OMP_PROC_BIND");
  json doc;
  doc["host"] = {{"cpu", core::host_cpu_model_name()},
                 {"target", host->str()},
                 {"llvm_cpu", host->cpu},
                 {"vector_lanes", host->vector_lanes},
                 {"hardware_threads", std::thread::hardware_concurrency()},
                 {"openblas_core", baseline::openblas_core_name()},
                 {"openblas_config", baseline::openblas_config()},
                 {"onednn_version", baseline::onednn_version()},
                 {"omp_proc_bind", bind ? bind : "(unset)"},
                 {"main_thread_cpus", baseline::current_thread_cpus()},
                 {"openblas_overrides_removed", baseline::removed_openblas_overrides()}};
  doc["timing"] = {{"repeat", o.timing.repeat},
                   {"min_repeat_ms", o.timing.min_repeat_ms},
                   {"warmup", o.timing.warmup},
                   {"statistic", "median"}};
  doc["tolerance"] = kTolerance;
  json peak = json::object();
  for (int t : o.threads) {
    peak[std::to_string(t)] = baseline::fma_peak_gflops(t);
    progress("avx-512 fma peak, %d thread(s): %.1f GFLOP/s\n", t,
             peak[std::to_string(t)].get<double>());
  }
  doc["host"]["fma_peak_gflops"] = peak;
  doc["results"] = json::array();
  for (const Case& c : default_cases()) {
    if (!o.only.empty() && c.workload.rfind(o.only, 0) != 0) continue;
    for (json& row : run_case(c, *host, o)) doc["results"].push_back(std::move(row));
  }
  // Shows whether every worker (OpenBLAS's, libgomp's, kiln's pool) could reach every CPU.
  doc["host"]["thread_cpus_at_exit"] = baseline::thread_cpu_lists();
  if (o.json) {
    std::cout << doc.dump(2) << std::endl;
  } else {
    print_table(doc);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  baseline::reexec_without_openblas_overrides(argc, argv);
  try {
    return run(argc, argv);
  } catch (const kiln::InternalError& e) {
    std::cerr << "internal error: " << e.what() << "\nplease report this as a kiln bug\n";
    return 1;
  }
}
