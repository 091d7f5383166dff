// kiln_search_bench: how many trials the model-guided search (xgb) and random search need to
// find a fast kernel, and what the search itself costs.
//
// For each workload and each seed, it runs a tuning job of --trials trials with each strategy
// through kiln's real tuning loop (run_tuning, a fresh tuning log per job). Measurements go through
// a cache: a config is built, checked and timed once, with kiln's local measurer, and every job
// that proposes it again reads the same record. So strategies compete on identical data, and the
// benchmark measures each distinct config only once; the cache is a tuning log of its own
// (--db PATH keeps it, so a second run measures only what is missing).
//
// The pre-trained variant of xgb runs in a log that also holds random records of three other
// shapes of the operator (--pretrain-configs each, measured once into the cache), as the log of
// a user who has tuned other shapes does; the other two strategies never see them.
//
// Figures, per workload:
// - the best GFLOP/s any job found, after the fastest configs are measured again (their median
//   over four measurements counts, so one lucky sample does not set the target); for each job,
//   the trials it needed to reach 95% of that;
//   the median over seeds per strategy (a job that never gets there counts as --trials + 1),
//   cold xgb's over random's (target: at most 1/2) and pre-trained xgb's (at most 1/4); and
//   the share of the best each job holds after 16, 32, 64, ... trials;
// - tuner overhead: a job's wall time minus the time spent in its measurer, against the time
//   the job would have taken measuring for real (its overhead plus the original build-and-time
//   seconds of every trial it made). Target: at most 5%.

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/db/tuning_log.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/support/log.h"
#include "compiler_core/te/workload.h"
#include "tuner/loop.h"
#include "tuner/measure/local_measurer.h"

namespace {

using nlohmann::json;
namespace core = kiln::core;
namespace tuner = kiln::tuner;
using Clock = std::chrono::steady_clock;

/// matmul 1024^3, and ResNet-50's 1x1 stride-2 projection 256->512 at 56x56: a space where
/// random search is slow (3 of its 4,320 configs are within 95% of its best on an AVX-512 x86,
/// so random search needs about a thousand trials), where the ResNet 3x3 layers let random
/// search reach 95% within a few trials.
const std::vector<std::string> kDefaultWorkloads = {
    "matmul:M=1024,N=1024,K=1024",
    "conv2d:N=1,C=256,H=56,W=56,K=512,R=1,S=1,stride=2,pad=0",
};
/// "xgb-pretrained" is xgb in a tuning log that also holds --pretrain-configs random records of
/// each of a few other shapes of the operator, as a log that has tuned other shapes does: its
/// model starts pre-trained on them.
const std::vector<std::string> kStrategies = {"xgb", "xgb-pretrained", "random"};
/// Before the best is declared, the kRefineTop fastest configs and all within 95% of the
/// fastest are measured kRefineTimes more, in at most kMaxRefinePasses passes.
constexpr size_t kRefineTop = 16;
constexpr int kRefineTimes = 3;
constexpr int kMaxRefinePasses = 64;

/// Other shapes of each operator, for the pre-trained xgb.
std::vector<std::string> other_shapes(const core::Workload& w) {
  if (w.op == core::OpKind::kMatmul) {
    return {"matmul:M=512,N=1024,K=1024", "matmul:M=768,N=768,K=768", "matmul:M=2048,N=256,K=1024"};
  }
  return {"conv2d:N=1,C=128,H=28,W=28,K=128,R=3,S=3,stride=1,pad=1",
          "conv2d:N=1,C=256,H=14,W=14,K=256,R=3,S=3,stride=1,pad=1",
          "conv2d:N=1,C=64,H=56,W=56,K=256,R=1,S=1,stride=1,pad=0"};
}

struct Options {
  std::vector<std::string> workloads = kDefaultWorkloads;
  std::filesystem::path db;
  int64_t trials = 400;
  int seeds = 3;
  int first_seed = 1;  ///< seeds first_seed, first_seed + 1, ...
  int pretrain_configs = 150;
  int threads = 1;
  bool measure_space = false;
  std::set<std::string> strategies;  ///< empty: all of kStrategies
  bool json_output = false;
};

[[noreturn]] void fail(const std::string& message) {
  std::cerr << "error: " << message << "\n";
  std::exit(1);
}

template <typename T>
T check(kiln::Result<T> result, const std::string& what) {
  if (!result.is_ok()) fail(what + ": " + result.status().to_string());
  return std::move(result).value();
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// Measures through the cache: records already in the cache log are returned as they are (with
/// the seconds their measurement took, in measure_options.measure_wall_s); the rest are
/// measured by the real local measurer, in one batch, and added to the cache.
class CachedMeasurer : public tuner::Measurer {
 public:
  CachedMeasurer(core::TuningLog& cache, const core::Workload& workload, const core::Target& target,
                 const core::ConfigSpace& space, const tuner::MeasureSettings& settings)
      : cache_(cache), workload_(workload), target_(target), space_(space), settings_(settings) {
    core::TargetKey key = check(core::make_target_key(target, 0), "target key");
    for (core::TuningRecord& r : check(cache.history(workload, key), "cache history")) {
      add_median(r);
      if (!records_.count(r.config_index)) records_[r.config_index] = std::move(r);
    }
  }

  kiln::Result<std::vector<core::TuningRecord>> measure(
      const std::vector<core::Config>& configs, const core::TimingOptions& timing) override {
    std::vector<core::Config> missing;
    for (const core::Config& c : configs) {
      if (!records_.count(c.index)) missing.push_back(c);
    }
    if (!missing.empty()) {
      if (!real_) {
        real_ = check(tuner::LocalMeasurer::create(workload_, target_, space_, settings_),
                      "local measurer");
      }
      const auto start = Clock::now();
      std::vector<core::TuningRecord> fresh = check(real_->measure(missing, timing), "measure");
      const double each = seconds_since(start) / double(missing.size());
      for (core::TuningRecord& r : fresh) {
        json options = json::parse(r.measure_options);
        options["measure_wall_s"] = each;
        r.measure_options = options.dump();
      }
      kiln::Status appended = cache_.append(fresh);
      if (!appended.is_ok()) fail("cache append: " + appended.to_string());
      measured_ += int64_t(fresh.size());
      for (core::TuningRecord& r : fresh) {
        add_median(r);
        records_[r.config_index] = std::move(r);
      }
    }
    std::vector<core::TuningRecord> out;
    for (const core::Config& c : configs) {
      out.push_back(records_.at(c.index));
      out.back().measured_at_ms = 0;
    }
    return out;
  }

  /// The seconds measuring `config` took when it was first measured.
  double original_seconds(int64_t index) const {
    auto it = records_.find(index);
    if (it == records_.end()) return 0;
    json options = json::parse(it->second.measure_options, nullptr, false);
    return options.is_object() ? options.value("measure_wall_s", 0.0) : 0.0;
  }

  int64_t measured() const { return measured_; }
  size_t cached() const { return records_.size(); }

  /// Seconds a run of `index`: the median of its measurements' medians (0: none valid).
  double seconds(int64_t index) const {
    auto it = medians_.find(index);
    if (it == medians_.end() || it->second.empty()) return 0;
    return core::TimingResult{.seconds = it->second}.median();
  }
  size_t measurements(int64_t index) const {
    auto it = medians_.find(index);
    return it == medians_.end() ? 0 : it->second.size();
  }

  /// Measures `indices` again, in batches, and keeps the new measurements in the cache
  /// (tagged "refine" in their measure options); every later seconds() counts them.
  void measure_again(const std::vector<int64_t>& indices, const core::TimingOptions& timing) {
    if (!real_) {
      real_ = check(tuner::LocalMeasurer::create(workload_, target_, space_, settings_),
                    "local measurer");
    }
    for (size_t i = 0; i < indices.size(); i += 16) {
      std::vector<core::Config> batch;
      for (size_t k = i; k < std::min(indices.size(), i + 16); ++k) {
        batch.push_back(*space_.at(indices[k]));
      }
      std::vector<core::TuningRecord> fresh = check(real_->measure(batch, timing), "measure");
      for (core::TuningRecord& r : fresh) {
        json options = json::parse(r.measure_options);
        options["refine"] = true;
        r.measure_options = options.dump();
        add_median(r);
      }
      kiln::Status appended = cache_.append(fresh);
      if (!appended.is_ok()) fail("cache append: " + appended.to_string());
    }
  }

 private:
  void add_median(const core::TuningRecord& r) {
    if (r.error == core::MeasureError::kOk && !r.costs.empty()) {
      medians_[r.config_index].push_back(r.median_cost());
    }
  }

  core::TuningLog& cache_;
  core::Workload workload_;
  core::Target target_;
  const core::ConfigSpace& space_;
  tuner::MeasureSettings settings_;
  std::unique_ptr<tuner::LocalMeasurer> real_;
  std::map<int64_t, core::TuningRecord> records_;   ///< the first measurement, as jobs see it
  std::map<int64_t, std::vector<double>> medians_;  ///< every valid measurement's median
  int64_t measured_ = 0;
};

/// Measures `configs` through `measurer` in batches of 16, as the tuning loop would.
std::vector<core::TuningRecord> measure_in_batches(CachedMeasurer& measurer,
                                                   const std::vector<core::Config>& configs) {
  const core::TimingOptions timing = tuner::TuneOptions{}.timing;
  std::vector<core::TuningRecord> out;
  for (size_t i = 0; i < configs.size(); i += 16) {
    std::vector<core::Config> batch(configs.begin() + long(i),
                                    configs.begin() + long(std::min(configs.size(), i + 16)));
    for (core::TuningRecord& r : check(measurer.measure(batch, timing), "measure")) {
      out.push_back(std::move(r));
    }
  }
  return out;
}

struct Job {
  std::string strategy;
  uint64_t seed = 0;
  std::vector<int64_t> trials;  ///< the config of each trial, in order
  std::vector<double> best_so_far;
  double final_best = 0;
  double overhead_s = 0;
  double real_measure_s = 0;
  int64_t trials_to_target = 0;  ///< 0: never reached
};

json run_workload(const Options& o, const std::string& text, core::TuningLog& cache,
                  const core::Target& target, const std::filesystem::path& scratch) {
  core::Workload workload = check(core::parse_workload(text), "workload");
  core::ConfigSpace space = check(core::config_space(workload, target), "config space");
  tuner::MeasureSettings settings;
  settings.threads = o.threads;
  auto measurer = std::make_shared<CachedMeasurer>(cache, workload, target, space, settings);
  std::cerr << "== " << text << ": space of " << space.size() << " configs, " << measurer->cached()
            << " in the cache\n";
  if (o.measure_space) {
    // Every config once, so that strategies can be compared on many seeds without measuring.
    std::vector<core::Config> every;
    for (int64_t i = 0; i < space.size(); ++i) every.push_back(*space.at(i));
    measure_in_batches(*measurer, every);
    std::cerr << "  measured the whole space (" << measurer->measured() << " configs now)\n";
  }

  // Records of other shapes, measured once into the cache, for the pre-trained xgb.
  std::vector<core::TuningRecord> other_records;
  for (const std::string& other_text : other_shapes(workload)) {
    if (o.pretrain_configs == 0) break;
    core::Workload other = check(core::parse_workload(other_text), "workload");
    core::ConfigSpace other_space = check(core::config_space(other, target), "config space");
    CachedMeasurer other_measurer(cache, other, target, other_space, settings);
    std::mt19937_64 rng(99);
    std::set<int64_t> picked;
    std::vector<core::Config> configs;
    std::uniform_int_distribution<int64_t> any(0, other_space.size() - 1);
    while (int(configs.size()) < std::min<int64_t>(o.pretrain_configs, other_space.size())) {
      int64_t index = any(rng);
      if (picked.insert(index).second) configs.push_back(*other_space.at(index));
    }
    for (core::TuningRecord& r : measure_in_batches(other_measurer, configs)) {
      other_records.push_back(std::move(r));
    }
    std::cerr << "  pre-training data: " << configs.size() << " configs of " << other_text << " ("
              << other_measurer.measured() << " measured now)\n";
  }

  std::vector<Job> jobs;
  for (int seed = o.first_seed; seed < o.first_seed + o.seeds; ++seed) {
    for (const std::string& strategy : kStrategies) {
      const bool pretrained = strategy == "xgb-pretrained";
      if (pretrained && other_records.empty()) continue;
      if (!o.strategies.empty() && !o.strategies.count(strategy)) continue;
      std::filesystem::path path = scratch / (strategy + "_" + std::to_string(seed) + "_" +
                                              std::to_string(jobs.size()) + ".db");
      core::TuningLog log = check(core::TuningLog::open(path), "job log");
      if (pretrained) {
        kiln::Status seeded = log.append(other_records);
        if (!seeded.is_ok()) fail("job log: " + seeded.to_string());
      }
      tuner::TuneOptions options;
      options.tuner = pretrained ? "xgb" : strategy;
      options.default_first = false;  // the strategies alone, from their first trial
      options.trials = o.trials;
      options.seed = uint64_t(seed);
      options.threads = o.threads;
      options.remeasure_top = 0;  // a cached measurement would not change
      const int64_t before = measurer->measured();
      const auto start = Clock::now();
      tuner::TuneSummary summary = check(
          tuner::run_tuning(
              workload, target, space, log, options,
              [&]() -> kiln::Result<std::unique_ptr<tuner::Measurer>> {
                // Every job measures through the workload's one cache.
                struct Shared : tuner::Measurer {
                  std::shared_ptr<CachedMeasurer> inner;
                  kiln::Result<std::vector<core::TuningRecord>> measure(
                      const std::vector<core::Config>& c, const core::TimingOptions& t) override {
                    return inner->measure(c, t);
                  }
                };
                auto shared = std::make_unique<Shared>();
                shared->inner = measurer;
                return std::unique_ptr<tuner::Measurer>(std::move(shared));
              },
              nullptr),
          "tuning job");
      Job job;
      job.strategy = strategy;
      job.seed = uint64_t(seed);
      job.best_so_far = summary.best_so_far;
      job.final_best = summary.best_gflops;
      job.overhead_s = summary.wall_s - summary.measure_s;
      for (const core::TuningRecord& r : check(
               log.history(workload, check(core::make_target_key(target, 0), "key")), "history")) {
        job.real_measure_s += measurer->original_seconds(r.config_index);
        job.trials.push_back(r.config_index);
      }
      std::cerr << "  " << strategy << " seed " << seed << ": best " << summary.best_gflops
                << " GFLOP/s, 95% of its own best after " << summary.trials_to_95pct
                << " trials; measured " << measurer->measured() - before << " new configs in "
                << seconds_since(start) << " s; tuner overhead " << job.overhead_s << " s\n";
      jobs.push_back(std::move(job));
      std::filesystem::remove(path);
    }
  }

  // The fastest configs are measured again before a best is declared, as kiln tune does, so
  // that one lucky measurement does not set the target. Until the kRefineTop fastest configs
  // any job tried, and every config within 95% of the fastest, have 1 + kRefineTimes
  // measurements each, those short of them are measured again, a round per pass (so their
  // samples spread over time). Every job's curve is then read with each config's median over
  // its measurements.
  const double flops = workload.flops();
  auto gflops_of = [&](int64_t index) {
    const double s = measurer->seconds(index);
    return s > 0 ? flops / s / 1e9 : 0.0;
  };
  std::set<int64_t> tried;
  for (const Job& j : jobs) tried.insert(j.trials.begin(), j.trials.end());
  int64_t remeasured = 0;
  bool settled = false;
  for (int pass = 0; pass < kMaxRefinePasses; ++pass) {
    std::vector<int64_t> order(tried.begin(), tried.end());
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return gflops_of(a) > gflops_of(b); });
    const double fastest = order.empty() ? 0 : gflops_of(order[0]);
    std::vector<int64_t> again;
    for (size_t k = 0; k < order.size(); ++k) {
      const double g = gflops_of(order[k]);
      if (g <= 0 || (k >= kRefineTop && g < 0.95 * fastest)) break;
      if (measurer->measurements(order[k]) < 1 + kRefineTimes) again.push_back(order[k]);
    }
    settled = again.empty();
    if (settled) break;
    measurer->measure_again(again, tuner::TuneOptions{}.timing);
    remeasured += int64_t(again.size());
  }
  std::cerr << "  measured again before declaring the best: " << remeasured << " configs"
            << (settled ? "" : " (stopped short: the fastest kept changing)") << "\n";
  for (Job& j : jobs) {
    j.best_so_far.clear();
    double best_so_far = 0;
    for (int64_t index : j.trials) {
      best_so_far = std::max(best_so_far, gflops_of(index));
      j.best_so_far.push_back(best_so_far);
    }
    j.final_best = best_so_far;
  }

  double best = 0;
  for (const Job& j : jobs) best = std::max(best, j.final_best);
  const double target_gflops = 0.95 * best;
  json per_strategy = json::object();
  std::map<std::string, std::vector<int64_t>> needed;
  std::map<std::string, double> overhead, real;
  json job_rows = json::array();
  for (Job& j : jobs) {
    for (size_t i = 0; i < j.best_so_far.size(); ++i) {
      if (j.best_so_far[i] >= target_gflops) {
        j.trials_to_target = int64_t(i) + 1;
        break;
      }
    }
    // A job that never reached the target counts as needing more than all its trials.
    needed[j.strategy].push_back(j.trials_to_target ? j.trials_to_target : o.trials + 1);
    overhead[j.strategy] += j.overhead_s;
    real[j.strategy] += j.real_measure_s;
    // The share of the best each job holds after 16, 32, 64, ... trials: its convergence.
    json at = json::object();
    for (size_t n = 16; n <= j.best_so_far.size(); n *= 2) {
      at[std::to_string(n)] = best > 0 ? j.best_so_far[n - 1] / best : 0.0;
    }
    job_rows.push_back({{"strategy", j.strategy},
                        {"seed", j.seed},
                        {"best_gflops", j.final_best},
                        {"share_of_best_after", at},
                        {"trials_to_95pct_of_best", j.trials_to_target},
                        {"overhead_s", j.overhead_s},
                        {"measure_s", j.real_measure_s}});
  }
  auto median = [](std::vector<int64_t> v) {
    if (v.empty()) return 0.0;  // a strategy left out (--strategy)
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? double(v[v.size() / 2])
                        : 0.5 * double(v[v.size() / 2 - 1] + v[v.size() / 2]);
  };
  for (const std::string& s : kStrategies) {
    if (needed[s].empty()) continue;
    per_strategy[s] = {{"trials_to_95pct", needed[s]},
                       {"median_trials_to_95pct", median(needed[s])},
                       {"overhead_fraction", overhead[s] / (overhead[s] + real[s])}};
  }
  const double random_median = std::max(1.0, median(needed["random"]));
  const double ratio = median(needed["xgb"]) / random_median;
  const double pretrained_ratio =
      needed["xgb-pretrained"].empty() ? 0 : median(needed["xgb-pretrained"]) / random_median;
  return {{"workload", workload.canonical()},
          {"space_size", space.size()},
          {"trials", o.trials},
          {"seeds", o.seeds},
          {"first_seed", o.first_seed},
          {"best_gflops", best},
          {"target_gflops", target_gflops},
          {"strategies", per_strategy},
          {"xgb_over_random", ratio},
          {"xgb_pretrained_over_random", pretrained_ratio},
          {"pretrain_configs_per_shape", other_records.empty() ? 0 : o.pretrain_configs},
          {"pretrain_shapes", other_records.empty() ? json::array() : json(other_shapes(workload))},
          {"configs_measured", measurer->cached()},
          {"best_measured_again",
           {{"top", kRefineTop},
            {"times", kRefineTimes},
            {"configs", remeasured},
            {"settled", settled}}},
          {"jobs", job_rows}};
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail(a + " needs a value");
      return argv[++i];
    };
    if (a == "--db") {
      o.db = value();
    } else if (a == "--trials") {
      o.trials = std::stoll(value());
    } else if (a == "--seeds") {
      o.seeds = std::stoi(value());
    } else if (a == "--first-seed") {
      o.first_seed = std::stoi(value());
    } else if (a == "--pretrain-configs") {
      o.pretrain_configs = std::stoi(value());
    } else if (a == "--threads") {
      o.threads = std::stoi(value());
    } else if (a == "--workload") {
      if (o.workloads == kDefaultWorkloads) o.workloads.clear();
      o.workloads.push_back(value());
    } else if (a == "--strategy") {
      std::string name = value();
      if (std::find(kStrategies.begin(), kStrategies.end(), name) == kStrategies.end()) {
        fail("unknown strategy '" + name + "': xgb, xgb-pretrained or random");
      }
      o.strategies.insert(name);
    } else if (a == "--measure-space") {
      o.measure_space = true;
    } else if (a == "--json") {
      o.json_output = true;
    } else if (a == "--help" || a == "-h") {
      std::cout
          << "usage: kiln_search_bench [--workload W]... [--trials N] [--seeds N]\n"
             "         [--first-seed N] [--pretrain-configs N] [--threads N] [--db PATH]\n"
             "         [--strategy xgb|xgb-pretrained|random]... [--measure-space] [--json]\n"
             "Trials xgb and random search need to reach 95% of the best GFLOP/s any job "
             "found, and the tuner's overhead. Defaults: matmul 1024^3 and conv2d 1x1 stride 2 "
             "256->512 56x56, 400 trials, 3 seeds from 1, 1 thread, every strategy; "
             "xgb-pretrained runs in a log with 150 random configs of each of three other "
             "shapes (0: left out). --measure-space measures every config of each space first "
             "(into --db), after which runs over many seeds measure nothing.\n";
      std::exit(0);
    } else {
      fail("unknown flag '" + a + "'; see --help");
    }
  }
  if (o.trials < 1 || o.seeds < 1 || o.first_seed < 0 || o.threads < 1 || o.pretrain_configs < 0) {
    fail("--trials, --seeds, --threads: >= 1; --first-seed, --pretrain-configs: >= 0");
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  kiln::logger("tuner")->set_level(spdlog::level::warn);
  core::Target target =
      check(core::resolve_host_target(check(core::parse_target("llvm"), "target")), "host");
  std::filesystem::path scratch =
      std::filesystem::temp_directory_path() / ("kiln_search_bench_" + std::to_string(getpid()));
  std::filesystem::create_directories(scratch);
  std::filesystem::path cache_path = o.db.empty() ? scratch / "cache.db" : o.db;
  core::TuningLog cache = check(core::TuningLog::open(cache_path), "cache log");

  const auto start = Clock::now();
  json results = json::array();
  for (const std::string& w : o.workloads) {
    results.push_back(run_workload(o, w, cache, target, scratch));
  }
  std::filesystem::remove_all(scratch);

  if (o.json_output) {
    std::cout << json{{"target", target.str()},
                      {"threads", o.threads},
                      {"results", results},
                      {"wall_s", seconds_since(start)}}
                     .dump()
              << "\n";
    return 0;
  }
  std::printf("search benchmark: %lld trials, %d seeds from %d, %d thread(s), cache %s\n",
              static_cast<long long>(o.trials), o.seeds, o.first_seed, o.threads,
              o.db.empty() ? "(temporary)" : o.db.c_str());
  for (const json& r : results) {
    std::printf("%s (%lld configs, %lld measured)\n", r["workload"].get<std::string>().c_str(),
                static_cast<long long>(r["space_size"].get<int64_t>()),
                static_cast<long long>(r["configs_measured"].get<int64_t>()));
    std::printf("  best %.1f GFLOP/s; 95%% of it = %.1f\n", r["best_gflops"].get<double>(),
                r["target_gflops"].get<double>());
    for (const std::string& s : kStrategies) {
      if (!r["strategies"].contains(s)) continue;
      const json& st = r["strategies"][s];
      std::ostringstream each;
      for (const json& n : st["trials_to_95pct"]) {
        // A job that never got there is shown as ">N".
        const int64_t trials = n.get<int64_t>();
        each << " "
             << (trials > o.trials ? ">" + std::to_string(o.trials) : std::to_string(trials));
      }
      std::printf("  %-14s trials to 95%%:%s (median %.0f); tuner overhead %.2f%%   [%s <= 5%%]\n",
                  s.c_str(), each.str().c_str(), st["median_trials_to_95pct"].get<double>(),
                  100 * st["overhead_fraction"].get<double>(),
                  st["overhead_fraction"].get<double>() <= 0.05 ? "ok" : "MISSED");
    }
    if (!r["strategies"].contains("random")) continue;  // no ratios without random search
    if (r["strategies"].contains("xgb")) {
      const double ratio = r["xgb_over_random"].get<double>();
      std::printf("  xgb / random = %.3f   [%s <= 0.5]\n", ratio, ratio <= 0.5 ? "ok" : "MISSED");
    }
    if (r["strategies"].contains("xgb-pretrained")) {
      const double pretrained = r["xgb_pretrained_over_random"].get<double>();
      std::printf("  xgb-pretrained / random = %.3f   [%s <= 0.25]\n", pretrained,
                  pretrained <= 0.25 ? "ok" : "MISSED");
    }
  }
  std::printf("total %.0f s\n", seconds_since(start));
  return 0;
}
