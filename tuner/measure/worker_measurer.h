/// \file
/// Measurement on this machine in another process: each candidate goes as a kiln.v1.MeasureTask
/// to a task runner, which in `kiln serve` is a `kiln agent-worker` child with the agent's time
/// and memory limits. A kernel that crashes, hangs or allocates without bound costs its own
/// record (RUNTIME_ERROR, TIMEOUT), never the process that tunes. The worker builds, checks and
/// times one candidate at a time.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "compiler_core/db/record.h"
#include "compiler_core/schedule/config_space.h"
#include "compiler_core/support/status.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"
#include "tuner/measure/measure_task.h"
#include "tuner/measure/measurer.h"

namespace kiln::tuner {

/// Measures one task and answers with its result: never fails, a dead worker is the task's
/// RUNTIME_ERROR (see agent::Worker::measure).
using TaskRunner = std::function<v1::MeasureResult(const v1::MeasureTask&)>;

class WorkerMeasurer : public Measurer {
 public:
  /// `target` must be the resolved host target. Records name `device` (this machine's CPU).
  static Result<std::unique_ptr<WorkerMeasurer>> create(const core::Workload& workload,
                                                        const core::Target& target,
                                                        const core::ConfigSpace& space, int threads,
                                                        TaskRunner run_task);

  Result<std::vector<core::TuningRecord>> measure(const std::vector<core::Config>& configs,
                                                  const core::TimingOptions& timing) override;

 private:
  WorkerMeasurer() = default;

  core::Workload workload_;
  core::Target target_;
  core::TargetKey key_;
  const core::ConfigSpace* space_ = nullptr;
  int threads_ = 1;
  std::string device_;
  TaskRunner run_task_;
  int64_t tasks_ = 0;
};

}  // namespace kiln::tuner
