// kiln_compile_latency_bench: how long kiln takes from (workload, config) to a callable kernel.
//
// Draws N random configs of a workload's space (seeded; the seed is printed so a run can be
// repeated), builds each with build_kernel and reports the median, p90 and max wall time.
// It also times the two halves separately on the same configs, from the same headers that
// build_kernel uses: schedule + lowering (make_schedule, lower_schedule) and LLVM (jit_compile:
// IR generation, optimization and JIT). The halves are separate builds, so their sum is close
// to, not equal to, the build_kernel figure.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compiler_core/build.h"
#include "compiler_core/codegen/llvm/codegen_llvm.h"
#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/lower/pipeline.h"
#include "compiler_core/schedule/schedule.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/support/check.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"

namespace {

using nlohmann::json;
namespace core = kiln::core;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string workload = "matmul:M=1024,N=1024,K=1024";
  int count = 50;
  uint64_t seed = 0;
  bool seed_given = false;
  bool split = true;
  bool json = false;
};

constexpr const char* kUsage =
    "usage: kiln_compile_latency_bench [--count=50] [--seed=N] "
    "[--workload=matmul:M=1024,N=1024,K=1024] [--no-split] [--json]\n";

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "error: " << message << "\n" << kUsage;
  std::exit(2);
}

uint64_t parse_u64(const std::string& flag, const std::string& text) {
  try {
    size_t used = 0;
    const unsigned long long v = std::stoull(text, &used);
    if (used == text.size() && !text.empty() && text[0] != '-') return v;
  } catch (const std::exception&) {
  }
  usage_error(flag + " takes a non-negative integer, got '" + text + "'");
}

Options parse_flags(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    const size_t eq = arg.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto need_value = [&]() -> const std::string& {
      if (!inline_value) {
        if (i + 1 >= argc) usage_error(arg + " needs a value");
        value = argv[++i];
      }
      return value;
    };
    if (arg == "--json" && !inline_value) {
      o.json = true;
    } else if (arg == "--no-split" && !inline_value) {
      o.split = false;
    } else if (arg == "--count") {
      const uint64_t n = parse_u64(arg, need_value());
      if (n < 1 || n > 100000) usage_error("--count takes an integer in [1, 100000]");
      o.count = static_cast<int>(n);
    } else if (arg == "--seed") {
      o.seed = parse_u64(arg, need_value());
      o.seed_given = true;
    } else if (arg == "--workload") {
      o.workload = need_value();
    } else if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else {
      usage_error(std::string("unknown flag '") + argv[i] + "'");
    }
  }
  return o;
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

/// The value at quantile `q` (0..1) of `values`, nearest rank; 0 for none.
double quantile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double rank = q * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(rank);
  const size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (values[hi] - values[lo]) * (rank - static_cast<double>(lo));
}

json summary(const std::vector<double>& ms) {
  if (ms.empty()) return {{"count", 0}};
  return {{"count", ms.size()},
          {"median_ms", quantile(ms, 0.5)},
          {"p90_ms", quantile(ms, 0.9)},
          {"max_ms", *std::max_element(ms.begin(), ms.end())},
          {"min_ms", *std::min_element(ms.begin(), ms.end())}};
}

int run(int argc, char** argv) {
  Options o = parse_flags(argc, argv);
  if (!o.seed_given) o.seed = std::random_device{}();

  auto workload = core::parse_workload(o.workload);
  if (!workload) {
    std::cerr << "error: " << workload.status().to_string() << "\n";
    return 2;
  }
  auto parsed_target = core::parse_target("llvm");
  KILN_CHECK(parsed_target.is_ok()) << parsed_target.status().to_string();
  auto target = core::resolve_host_target(*parsed_target);
  if (!target) {
    std::cerr << "error: " << target.status().to_string() << "\n";
    return 1;
  }
  auto space = core::config_space(*workload, *target);
  if (!space) {
    std::cerr << "error: " << space.status().to_string() << "\n";
    return 1;
  }
  std::fprintf(stderr, "compile latency: %s, %d random configs of %lld, seed %llu\n",
               workload->canonical().c_str(), o.count, static_cast<long long>(space->size()),
               static_cast<unsigned long long>(o.seed));

  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int64_t> pick(0, space->size() - 1);
  std::vector<double> total_ms, lower_ms, llvm_ms;
  json failures = json::array();
  json trials = json::array();

  // One untimed build first: LLVM's one-time initialisation (targets, JIT) is not per kernel.
  {
    auto warm = core::build_kernel(*workload, *target, space->default_config());
    if (!warm)
      std::fprintf(stderr, "warm-up build failed: %s\n", warm.status().to_string().c_str());
  }

  for (int i = 0; i < o.count; ++i) {
    const int64_t index = pick(rng);
    auto config = space->at(index);
    KILN_CHECK(config.is_ok()) << config.status().to_string();
    json trial = {{"index", index}};

    auto start = Clock::now();
    auto kernel = core::build_kernel(*workload, *target, *config);
    const double ms = ms_since(start);
    if (!kernel) {
      failures.push_back({{"index", index}, {"error", kernel.status().to_string()}});
      std::fprintf(stderr, "  [%2d] index %lld: build failed after %.1f ms: %s\n", i,
                   static_cast<long long>(index), ms, kernel.status().to_string().c_str());
      continue;
    }
    kernel->reset();
    total_ms.push_back(ms);
    trial["build_kernel_ms"] = ms;

    if (o.split) {
      start = Clock::now();
      auto schedule = core::make_schedule(*workload, *target, *config);
      KILN_CHECK(schedule.is_ok()) << schedule.status().to_string();
      kiln::core::ir::LoweredFunc func;
      try {
        func = core::lower::lower_schedule(*schedule,
                                           std::string("kiln_") + core::op_name(workload->op));
      } catch (const core::ScheduleError& e) {
        KILN_CHECK(false) << "config built once but not lowered the second time: " << e.what();
      }
      const double lower = ms_since(start);
      start = Clock::now();
      auto fn = core::jit_compile(func, *target);
      const double llvm = ms_since(start);
      KILN_CHECK(fn.is_ok()) << fn.status().to_string();
      lower_ms.push_back(lower);
      llvm_ms.push_back(llvm);
      trial["lower_ms"] = lower;
      trial["llvm_ms"] = llvm;
    }
    std::fprintf(stderr, "  [%2d] index %6lld: %7.1f ms\n", i, static_cast<long long>(index), ms);
    trials.push_back(trial);
  }

  json doc = {{"workload", workload->canonical()},
              {"target", target->str()},
              {"cpu", core::host_cpu_model_name()},
              {"space_size", space->size()},
              {"seed", o.seed},
              {"count", o.count},
              {"build_kernel", summary(total_ms)},
              {"failures", failures},
              {"trials", trials}};
  if (o.split) {
    doc["lower"] = summary(lower_ms);
    doc["llvm"] = summary(llvm_ms);
  }
  if (o.json) {
    std::cout << doc.dump(2) << std::endl;
    return failures.empty() ? 0 : 1;
  }

  std::printf("compile latency of %s (space of %lld configs), %d random configs, seed %llu\n",
              workload->canonical().c_str(), static_cast<long long>(space->size()), o.count,
              static_cast<unsigned long long>(o.seed));
  std::printf("%-28s %6s %10s %10s %10s %10s\n", "phase", "count", "median ms", "p90 ms", "max ms",
              "min ms");
  auto line = [](const char* name, const json& s) {
    if (s["count"] == 0) {
      std::printf("%-28s %6d\n", name, 0);
      return;
    }
    std::printf("%-28s %6d %10.1f %10.1f %10.1f %10.1f\n", name, s["count"].get<int>(),
                s["median_ms"].get<double>(), s["p90_ms"].get<double>(), s["max_ms"].get<double>(),
                s["min_ms"].get<double>());
  };
  line("build_kernel (total)", doc["build_kernel"]);
  if (o.split) {
    line("  schedule + lowering", doc["lower"]);
    line("  LLVM codegen + JIT", doc["llvm"]);
  }
  if (!failures.empty()) {
    std::printf("%zu config(s) failed to build (see stderr)\n", failures.size());
  }
  return failures.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const kiln::InternalError& e) {
    std::cerr << "internal error: " << e.what() << "\nplease report this as a kiln bug\n";
    return 1;
  }
}
