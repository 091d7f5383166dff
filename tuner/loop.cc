#include "tuner/loop.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/support/log.h"
#include "tuner/strategy/strategy.h"

namespace kiln::tuner {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void tag_remeasurement(core::TuningRecord& record) {
  nlohmann::json options = nlohmann::json::parse(record.measure_options, nullptr, false);
  if (!options.is_object()) options = nlohmann::json::object();
  options["remeasure"] = true;
  record.measure_options = options.dump();
}

}  // namespace

Result<std::unique_ptr<TuningProblem>> prepare_tuning(const std::string& workload,
                                                      const std::string& target,
                                                      bool through_fleet) {
  auto problem = std::make_unique<TuningProblem>();
  KILN_ASSIGN_OR_RETURN(problem->workload, core::parse_workload(workload));
  KILN_ASSIGN_OR_RETURN(core::Target parsed, core::parse_target(target));
  if (!parsed.is_host && !through_fleet) {
    return invalid_argument("target '" + parsed.str() +
                            "' is not this machine; measure it through the fleet (a device key "
                            "and its tracker)");
  }
  KILN_ASSIGN_OR_RETURN(problem->target, core::resolve_host_target(parsed));
  KILN_ASSIGN_OR_RETURN(problem->space, core::config_space(problem->workload, problem->target));
  return problem;
}

bool is_remeasurement(const core::TuningRecord& record) {
  nlohmann::json options = nlohmann::json::parse(record.measure_options, nullptr, false);
  return options.is_object() && options.value("remeasure", false) == true;
}

Result<TuneSummary> run_tuning(const core::Workload& workload, const core::Target& target,
                               const core::ConfigSpace& space, core::TuningLog& log,
                               const TuneOptions& options, const MeasurerFactory& make_measurer,
                               const std::function<void(const TuneProgress&)>& progress) {
  const auto start = Clock::now();
  SearchTask task{workload, target, &space, &log};
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Strategy> strategy,
                        make_strategy(options.tuner, task, options.seed));
  KILN_ASSIGN_OR_RETURN(core::TargetKey key, core::make_target_key(target));
  KILN_ASSIGN_OR_RETURN(std::vector<core::TuningRecord> history, log.history(workload, key));

  TuneSummary summary;
  std::set<int64_t> measured;
  std::map<int64_t, double> trial_gflops;  // config -> GFLOP/s of its valid trial
  std::set<int64_t> remeasured;            // configs re-measured already
  int64_t last_improvement = 0;            // trial count at the latest new best
  auto gflops_of = [&](const core::TuningRecord& r) {
    return workload.flops() / r.median_cost() / 1e9;
  };
  auto account = [&](const core::TuningRecord& r) -> Observation {
    Observation o;
    Result<core::Config> config = space.at(r.config_index);
    if (config.is_ok()) o.config = *config;
    o.error = r.error;
    o.valid = r.error == core::MeasureError::kOk && !r.costs.empty() && config.is_ok();
    if (o.valid) o.gflops = gflops_of(r);
    measured.insert(r.config_index);
    summary.trials += 1;
    if (o.valid) {
      summary.valid += 1;
      trial_gflops[r.config_index] = o.gflops;
      if (o.gflops > summary.best_gflops) {
        summary.found = true;
        summary.best = o.config;
        summary.best_gflops = o.gflops;
        summary.best_time_s = r.median_cost();
        summary.best_costs = r.costs;
        last_improvement = summary.trials;
      }
    }
    summary.best_so_far.push_back(summary.best_gflops);
    return o;
  };

  std::vector<Observation> seen;
  for (const core::TuningRecord& r : history) {
    if (is_remeasurement(r)) {
      remeasured.insert(r.config_index);
      continue;
    }
    Observation o = account(r);
    if (o.config.values.size() == space.knobs().size()) seen.push_back(o);
  }
  summary.resumed = summary.trials;
  strategy->observe(seen);
  if (summary.resumed > 0) {
    logger("tuner")->info("resuming workload={} trials={} from {}", workload.canonical(),
                          summary.resumed, log.path().string());
  }

  std::unique_ptr<Measurer> measurer;
  auto measure = [&](const std::vector<core::Config>& configs,
                     const core::TimingOptions& timing) -> Result<std::vector<core::TuningRecord>> {
    if (!measurer) {
      KILN_ASSIGN_OR_RETURN(measurer, make_measurer());
    }
    const auto begin = Clock::now();
    Result<std::vector<core::TuningRecord>> records = measurer->measure(configs, timing);
    summary.measure_s += seconds_since(begin);
    return records;
  };

  const int64_t resumed = summary.trials;
  // Whether any trial of this run ran on a real board: an emulated board's timings say nothing
  // about hardware, so they are not worth measuring again.
  bool measured_on_real_board = false;
  while (summary.trials < options.trials) {
    if (options.stop_requested && options.stop_requested()) {
      summary.stopped = true;
      logger("tuner")->info("stopped workload={} after {} trials", workload.canonical(),
                            summary.trials);
      break;
    }
    if (options.early_stopping > 0 && summary.found &&
        summary.trials - last_improvement >= options.early_stopping) {
      summary.stopped_early = true;
      logger("tuner")->info("early stop workload={} after {} trials without a new best",
                            workload.canonical(), summary.trials - last_improvement);
      break;
    }
    int n = int(std::min<int64_t>(options.batch, options.trials - summary.trials));
    std::vector<core::Config> batch = strategy->propose(n, measured);
    if (batch.empty()) break;  // every point of the space is measured
    KILN_ASSIGN_OR_RETURN(std::vector<core::TuningRecord> records, measure(batch, options.timing));
    // Only a board's own results say what it is (the tracker's DEVICE_LOST names no board).
    for (const core::TuningRecord& r : records) {
      if (r.error != core::MeasureError::kDeviceLost) measured_on_real_board |= !r.target.emulated;
    }
    KILN_RETURN_IF_ERROR(log.append(records));
    std::vector<Observation> observed;
    for (const core::TuningRecord& r : records) observed.push_back(account(r));
    strategy->observe(observed);
    if (progress) {
      TuneProgress p;
      p.trials = summary.trials;
      p.valid = summary.valid;
      p.best_gflops = summary.best_gflops;
      p.best = summary.best;
      p.best_time_s = summary.best_time_s;
      p.elapsed_s = seconds_since(start);
      int64_t done = summary.trials - resumed;
      p.eta_s = done > 0 ? p.elapsed_s / double(done) * double(options.trials - summary.trials) : 0;
      progress(p);
    }
  }
  const double best_trial_gflops = summary.best_gflops;
  for (size_t i = 0; i < summary.best_so_far.size(); ++i) {
    if (best_trial_gflops > 0 && summary.best_so_far[i] >= 0.95 * best_trial_gflops) {
      summary.trials_to_95pct = int64_t(i) + 1;
      break;
    }
  }

  // Re-measure the fastest trials that have not been, then declare the best as apply-best
  // will pick it: the config with the fastest median of any of its records. Interference on a
  // shared machine only slows runs down, so a top config that was unlucky in its trial gets a
  // second, longer chance, and the declared best is the one `kiln run` builds.
  const bool emulated_only = summary.trials > resumed && !measured_on_real_board;
  if (options.remeasure_top > 0 && summary.found && !summary.stopped && !emulated_only) {
    std::vector<std::pair<double, int64_t>> ranked;
    for (const auto& [index, gflops] : trial_gflops) ranked.emplace_back(gflops, index);
    std::stable_sort(ranked.begin(), ranked.end(), std::greater<>());
    if (ranked.size() > size_t(options.remeasure_top)) ranked.resize(size_t(options.remeasure_top));
    std::vector<core::Config> again;
    for (const auto& [gflops, index] : ranked) {
      if (!remeasured.count(index)) again.push_back(*space.at(index));
    }
    if (!again.empty()) {
      KILN_ASSIGN_OR_RETURN(std::vector<core::TuningRecord> records,
                            measure(again, options.remeasure_timing));
      for (core::TuningRecord& r : records) tag_remeasurement(r);
      KILN_RETURN_IF_ERROR(log.append(records));
    }
    KILN_ASSIGN_OR_RETURN(std::vector<core::TuningRecord> best, log.best(workload, key, 1));
    if (!best.empty()) {
      const core::TuningRecord& r = best.front();
      KILN_ASSIGN_OR_RETURN(summary.best, space.at(r.config_index));
      summary.best_gflops = gflops_of(r);
      summary.best_time_s = r.median_cost();
      summary.best_costs = r.costs;
      summary.best_remeasured = is_remeasurement(r);
    }
  }
  summary.wall_s = seconds_since(start);
  return summary;
}

}  // namespace kiln::tuner
