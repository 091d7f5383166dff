#include "tuner/loop.h"

#include <chrono>
#include <set>

#include "compiler_core/support/log.h"
#include "tuner/strategy/strategy.h"

namespace kiln::tuner {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

Result<TuneSummary> run_tuning(const core::Workload& workload, const core::Target& target,
                               const core::ConfigSpace& space, core::TuningLog& log,
                               const TuneOptions& options,
                               const std::function<void(const TuneProgress&)>& progress) {
  const auto start = std::chrono::steady_clock::now();
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Strategy> strategy,
                        make_strategy(options.tuner, space, options.seed));
  KILN_ASSIGN_OR_RETURN(core::TargetKey key, core::make_target_key(target));
  KILN_ASSIGN_OR_RETURN(std::vector<core::TuningRecord> history, log.history(workload, key));

  TuneSummary summary;
  std::set<int64_t> measured;
  std::vector<double> best_so_far;  // after each trial
  auto account = [&](const core::TuningRecord& r) -> Observation {
    Observation o;
    Result<core::Config> config = space.at(r.config_index);
    if (config.is_ok()) o.config = *config;
    o.valid = r.error == core::MeasureError::kOk && !r.costs.empty() && config.is_ok();
    if (o.valid) o.gflops = workload.flops() / r.median_cost() / 1e9;
    measured.insert(r.config_index);
    summary.trials += 1;
    if (o.valid) {
      summary.valid += 1;
      if (o.gflops > summary.best_gflops) {
        summary.found = true;
        summary.best = o.config;
        summary.best_gflops = o.gflops;
        summary.best_time_s = r.median_cost();
      }
    }
    best_so_far.push_back(summary.best_gflops);
    return o;
  };

  std::vector<Observation> seen;
  for (const core::TuningRecord& r : history) {
    Observation o = account(r);
    if (o.valid || o.config.values.size() == space.knobs().size()) seen.push_back(o);
  }
  summary.resumed = summary.trials;
  strategy->observe(seen);
  if (summary.resumed > 0) {
    logger("tuner")->info("resuming workload={} trials={} from {}", workload.canonical(),
                          summary.resumed, log.path().string());
  }

  std::unique_ptr<LocalMeasurer> measurer;
  const int64_t resumed = summary.trials;
  while (summary.trials < options.trials) {
    int n = int(std::min<int64_t>(options.batch, options.trials - summary.trials));
    std::vector<core::Config> batch = strategy->propose(n, measured);
    if (batch.empty()) break;  // every point of the space is measured
    if (!measurer) {
      KILN_ASSIGN_OR_RETURN(measurer,
                            LocalMeasurer::create(workload, target, space, options.measure));
    }
    std::vector<core::TuningRecord> records = measurer->measure(batch);
    KILN_RETURN_IF_ERROR(log.append(records));
    std::vector<Observation> observed;
    for (const core::TuningRecord& r : records) observed.push_back(account(r));
    strategy->observe(observed);
    if (progress) {
      TuneProgress p;
      p.trials = summary.trials;
      p.valid = summary.valid;
      p.best_gflops = summary.best_gflops;
      p.elapsed_s = seconds_since(start);
      int64_t done = summary.trials - resumed;
      p.eta_s = done > 0 ? p.elapsed_s / double(done) * double(options.trials - summary.trials) : 0;
      progress(p);
    }
  }
  for (size_t i = 0; i < best_so_far.size(); ++i) {
    if (summary.best_gflops > 0 && best_so_far[i] >= 0.95 * summary.best_gflops) {
      summary.trials_to_95pct = int64_t(i) + 1;
      break;
    }
  }
  summary.wall_s = seconds_since(start);
  return summary;
}

}  // namespace kiln::tuner
