#include "tuner/loop.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/support/log.h"

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

Result<core::Target> prepare_target(const std::string& target, bool through_fleet) {
  KILN_ASSIGN_OR_RETURN(core::Target parsed, core::parse_target(target));
  if (!parsed.is_host && !through_fleet) {
    return invalid_argument("target '" + parsed.str() +
                            "' is not this machine; measure it through the fleet (a device key "
                            "and its tracker)");
  }
  return core::resolve_host_target(parsed);
}

Result<std::unique_ptr<TuningProblem>> prepare_tuning(const std::string& workload,
                                                      const std::string& target,
                                                      bool through_fleet) {
  auto problem = std::make_unique<TuningProblem>();
  KILN_ASSIGN_OR_RETURN(problem->workload, core::parse_workload(workload));
  KILN_ASSIGN_OR_RETURN(problem->target, prepare_target(target, through_fleet));
  KILN_ASSIGN_OR_RETURN(problem->space, core::config_space(problem->workload, problem->target));
  return problem;
}

bool is_remeasurement(const core::TuningRecord& record) {
  nlohmann::json options = nlohmann::json::parse(record.measure_options, nullptr, false);
  return options.is_object() && options.value("remeasure", false) == true;
}

TaskSearch::TaskSearch(const core::Workload& workload, const core::Target& target,
                       const core::ConfigSpace& space, core::TuningLog& log,
                       const TuneOptions& options, MeasurerFactory make_measurer)
    : workload_(workload),
      target_(target),
      space_(space),
      log_(log),
      options_(options),
      make_measurer_(std::move(make_measurer)) {}

TaskSearch::~TaskSearch() = default;

Result<std::unique_ptr<TaskSearch>> TaskSearch::start(
    const core::Workload& workload, const core::Target& target, const core::ConfigSpace& space,
    core::TuningLog& log, const TuneOptions& options, MeasurerFactory make_measurer) {
  std::unique_ptr<TaskSearch> search(
      new TaskSearch(workload, target, space, log, options, std::move(make_measurer)));
  SearchTask task{workload, target, &space, &log, options.threads};
  KILN_ASSIGN_OR_RETURN(search->strategy_, make_strategy(options.tuner, task, options.seed));
  KILN_ASSIGN_OR_RETURN(search->key_, core::make_target_key(target, options.threads));
  KILN_ASSIGN_OR_RETURN(std::vector<core::TuningRecord> history,
                        log.history(workload, search->key_));
  std::vector<Observation> seen;
  for (const core::TuningRecord& r : history) {
    if (is_remeasurement(r)) {
      search->remeasured_.insert(r.config_index);
      continue;
    }
    Observation o = search->account(r);
    if (o.config.values.size() == space.knobs().size()) seen.push_back(o);
  }
  search->summary_.resumed = search->summary_.trials;
  search->strategy_->observe(seen);
  if (search->summary_.resumed > 0) {
    logger("tuner")->info("resuming workload={} trials={} from {}", workload.canonical(),
                          search->summary_.resumed, log.path().string());
  }
  return search;
}

Observation TaskSearch::account(const core::TuningRecord& r) {
  Observation o;
  Result<core::Config> config = space_.at(r.config_index);
  if (config.is_ok()) o.config = *config;
  o.error = r.error;
  o.valid = r.error == core::MeasureError::kOk && !r.costs.empty() && config.is_ok();
  if (o.valid) o.gflops = workload_.flops() / r.median_cost() / 1e9;
  measured_.insert(r.config_index);
  summary_.trials += 1;
  if (o.valid) {
    summary_.valid += 1;
    trial_gflops_[r.config_index] = o.gflops;
    if (o.gflops > summary_.best_gflops) {
      summary_.found = true;
      summary_.best = o.config;
      summary_.best_gflops = o.gflops;
      summary_.best_time_s = r.median_cost();
      summary_.best_costs = r.costs;
      last_improvement_ = summary_.trials;
    }
  }
  summary_.best_so_far.push_back(summary_.best_gflops);
  return o;
}

Result<std::vector<core::TuningRecord>> TaskSearch::measure(
    const std::vector<core::Config>& configs, const core::TimingOptions& timing) {
  if (!measurer_) {
    KILN_ASSIGN_OR_RETURN(measurer_, make_measurer_());
  }
  const auto begin = Clock::now();
  Result<std::vector<core::TuningRecord>> records = measurer_->measure(configs, timing);
  summary_.measure_s += seconds_since(begin);
  return records;
}

Result<int64_t> TaskSearch::step(int n) {
  std::vector<core::Config> batch;
  const core::Config& fallback = space_.default_config();
  if (options_.default_first && n > 0 && !measured_.count(fallback.index)) {
    batch.push_back(fallback);
    std::set<int64_t> taken = measured_;
    taken.insert(fallback.index);
    std::vector<core::Config> rest = strategy_->propose(n - 1, taken);
    batch.insert(batch.end(), rest.begin(), rest.end());
  } else {
    batch = strategy_->propose(n, measured_);
  }
  if (batch.empty()) return int64_t{0};  // every point of the space is measured
  KILN_ASSIGN_OR_RETURN(std::vector<core::TuningRecord> records, measure(batch, options_.timing));
  // Only a board's own results say what it is (the tracker's DEVICE_LOST names no board).
  for (const core::TuningRecord& r : records) {
    if (r.error != core::MeasureError::kDeviceLost) measured_on_real_board_ |= !r.target.emulated;
  }
  KILN_RETURN_IF_ERROR(log_.append(records));
  std::vector<Observation> observed;
  for (const core::TuningRecord& r : records) observed.push_back(account(r));
  strategy_->observe(observed);
  return int64_t(records.size());
}

Status TaskSearch::finish(bool remeasure) {
  const double best_trial_gflops = summary_.best_gflops;
  for (size_t i = 0; i < summary_.best_so_far.size(); ++i) {
    if (best_trial_gflops > 0 && summary_.best_so_far[i] >= 0.95 * best_trial_gflops) {
      summary_.trials_to_95pct = int64_t(i) + 1;
      break;
    }
  }
  // Re-measure the fastest trials that have not been, then declare the best as apply-best
  // will pick it: the config with the fastest median of any of its records. Interference on a
  // shared machine only slows runs down, so a top config that was unlucky in its trial gets a
  // second, longer chance, and the declared best is the one `kiln run` builds.
  const bool emulated_only = summary_.trials > summary_.resumed && !measured_on_real_board_;
  if (!remeasure || options_.remeasure_top <= 0 || !summary_.found || emulated_only) {
    return Status::ok();
  }
  std::vector<std::pair<double, int64_t>> ranked;
  for (const auto& [index, gflops] : trial_gflops_) ranked.emplace_back(gflops, index);
  std::stable_sort(ranked.begin(), ranked.end(), std::greater<>());
  if (ranked.size() > size_t(options_.remeasure_top)) ranked.resize(size_t(options_.remeasure_top));
  std::vector<core::Config> again;
  for (const auto& [gflops, index] : ranked) {
    if (!remeasured_.count(index)) again.push_back(*space_.at(index));
  }
  if (!again.empty()) {
    KILN_ASSIGN_OR_RETURN(std::vector<core::TuningRecord> records,
                          measure(again, options_.remeasure_timing));
    for (core::TuningRecord& r : records) {
      tag_remeasurement(r);
      remeasured_.insert(r.config_index);
    }
    KILN_RETURN_IF_ERROR(log_.append(records));
  }
  KILN_ASSIGN_OR_RETURN(std::vector<core::TuningRecord> best, log_.best(workload_, key_, 1));
  if (!best.empty()) {
    const core::TuningRecord& r = best.front();
    KILN_ASSIGN_OR_RETURN(summary_.best, space_.at(r.config_index));
    summary_.best_gflops = workload_.flops() / r.median_cost() / 1e9;
    summary_.best_time_s = r.median_cost();
    summary_.best_costs = r.costs;
    summary_.best_remeasured = is_remeasurement(r);
  }
  return Status::ok();
}

Result<TuneSummary> run_tuning(const core::Workload& workload, const core::Target& target,
                               const core::ConfigSpace& space, core::TuningLog& log,
                               const TuneOptions& options, const MeasurerFactory& make_measurer,
                               const std::function<void(const TuneProgress&)>& progress) {
  const auto start = Clock::now();
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<TaskSearch> search,
                        TaskSearch::start(workload, target, space, log, options, make_measurer));
  const TuneSummary& s = search->summary();
  bool stopped = false;
  bool stopped_early = false;
  while (s.trials < options.trials) {
    if (options.stop_requested && options.stop_requested()) {
      stopped = true;
      logger("tuner")->info("stopped workload={} after {} trials", workload.canonical(), s.trials);
      break;
    }
    if (options.early_stopping > 0 && s.found &&
        search->trials_since_improvement() >= options.early_stopping) {
      stopped_early = true;
      logger("tuner")->info("early stop workload={} after {} trials without a new best",
                            workload.canonical(), search->trials_since_improvement());
      break;
    }
    int n = int(std::min<int64_t>(options.batch, options.trials - s.trials));
    KILN_ASSIGN_OR_RETURN(int64_t ran, search->step(n));
    if (ran == 0) break;
    if (progress) {
      TuneProgress p;
      p.trials = s.trials;
      p.valid = s.valid;
      p.best_gflops = s.best_gflops;
      p.best = s.best;
      p.best_time_s = s.best_time_s;
      p.elapsed_s = seconds_since(start);
      int64_t done = s.trials - s.resumed;
      p.eta_s = done > 0 ? p.elapsed_s / double(done) * double(options.trials - s.trials) : 0;
      progress(p);
    }
  }
  KILN_RETURN_IF_ERROR(search->finish(/*remeasure=*/!stopped));
  TuneSummary summary = search->summary();
  summary.stopped = stopped;
  summary.stopped_early = stopped_early;
  summary.wall_s = seconds_since(start);
  return summary;
}

}  // namespace kiln::tuner
