#include "tuner/service/job_progress.h"

#include <string>
#include <vector>

#include "compiler_core/db/tuning_log.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"

namespace kiln::tuner {
namespace {

/// The trials, valid trials and best of `workload` that the log holds on `key` (re-measurements
/// are no trials); the best's config in `best_config_json` when there is one.
Result<TuneProgress> trials_in_log(core::TuningLog& log, const std::string& workload_text,
                                   const core::TargetKey& key, std::string& best_config_json) {
  KILN_ASSIGN_OR_RETURN(core::Workload workload, core::parse_workload(workload_text));
  KILN_ASSIGN_OR_RETURN(std::vector<core::TuningRecord> history, log.history(workload, key));
  TuneProgress p;
  for (const core::TuningRecord& r : history) {
    if (is_remeasurement(r)) continue;
    p.trials += 1;
    if (r.error != core::MeasureError::kOk || r.costs.empty()) continue;
    p.valid += 1;
    const double gflops = workload.flops() / r.median_cost() / 1e9;
    if (gflops > p.best_gflops) {
      p.best_gflops = gflops;
      p.best_time_s = r.median_cost();
      p.best.index = r.config_index;
      best_config_json = r.config_json();
    }
  }
  return p;
}

}  // namespace

Status count_trials_in_log(const std::filesystem::path& db, JobStatus& status) {
  KILN_ASSIGN_OR_RETURN(core::TuningLog log, core::TuningLog::open(db));
  KILN_ASSIGN_OR_RETURN(core::Target target, core::parse_target(status.target));
  KILN_ASSIGN_OR_RETURN(core::TargetKey key,
                        core::make_target_key(target, status.spec.record_threads()));
  if (!status.spec.is_model()) {
    KILN_ASSIGN_OR_RETURN(status.progress,
                          trials_in_log(log, status.workload, key, status.best_config_json));
    return Status::ok();
  }
  status.progress = TuneProgress{};
  status.latency_s = 0;
  bool every_task_valid = true;
  for (ModelTaskSummary& t : status.tasks) {
    KILN_ASSIGN_OR_RETURN(TuneProgress p,
                          trials_in_log(log, t.task.workload, key, t.best_config_json));
    t.trials = p.trials;
    t.valid = p.valid;
    t.best_time_s = p.best_time_s;
    t.best_gflops = p.best_gflops;
    status.progress.trials += p.trials;
    status.progress.valid += p.valid;
    status.latency_s += double(t.task.weight) * p.best_time_s;
    every_task_valid = every_task_valid && p.valid > 0;
  }
  if (!every_task_valid) status.latency_s = 0;
  return Status::ok();
}

}  // namespace kiln::tuner
