#include "tuner/measure/worker_measurer.h"

#include <algorithm>
#include <utility>

#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/support/log.h"
#include "kiln/v1/kiln.pb.h"

namespace kiln::tuner {

Result<std::unique_ptr<WorkerMeasurer>> WorkerMeasurer::create(const core::Workload& workload,
                                                               const core::Target& target,
                                                               const core::ConfigSpace& space,
                                                               int threads, TaskRunner run_task) {
  std::unique_ptr<WorkerMeasurer> m(new WorkerMeasurer());
  m->workload_ = workload;
  m->target_ = target;
  m->space_ = &space;
  m->threads_ = std::max(1, threads);
  m->device_ = core::host_cpu_model_name();
  m->run_task_ = std::move(run_task);
  KILN_ASSIGN_OR_RETURN(m->key_, core::make_target_key(target, m->threads_));
  return m;
}

Result<std::vector<core::TuningRecord>> WorkerMeasurer::measure(
    const std::vector<core::Config>& configs, const core::TimingOptions& timing) {
  // No timeout of its own: the worker's (kiln serve --task-timeout-s) holds.
  const TaskSpec spec{.workload = &workload_,
                      .target = &target_,
                      .space = space_,
                      .timing = timing,
                      .threads = threads_,
                      .timeout_s = 0};
  const std::string options = measure_options_json(spec);
  std::vector<core::TuningRecord> records;
  for (const core::Config& config : configs) {
    v1::MeasureTask task;
    fill_measure_task(spec, config, "local-" + std::to_string(tasks_++), task);
    const v1::MeasureResult result = run_task_(task);
    core::TuningRecord r = record_from_result(result, spec, key_, config);
    r.target = key_;  // this machine, also when the worker died before naming it
    r.agent = "local";
    r.device = device_;
    r.measure_options = options;
    logger("tuner")->debug("measured config={} error={} median_s={}", r.config_index,
                           core::measure_error_name(r.error),
                           r.costs.empty() ? 0 : r.median_cost());
    records.push_back(std::move(r));
  }
  return records;
}

}  // namespace kiln::tuner
