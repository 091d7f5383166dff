/// \file
/// Configs to kiln.v1.MeasureTasks and kiln.v1.MeasureResults to tuning records: what the
/// measurers that hand candidates to another process (the fleet's agents, the worker of a
/// `kiln serve` job) have in common.
#pragma once

#include <string>

#include "compiler_core/db/record.h"
#include "compiler_core/runtime/timer.h"
#include "compiler_core/schedule/config_space.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"

namespace kiln::v1 {
class MeasureTask;
class MeasureResult;
}  // namespace kiln::v1

namespace kiln::tuner {

/// What to measure of one candidate, declaratively: its workload, target, config (index and
/// knobs) and options; the kernel is built by whoever measures it.
struct TaskSpec {
  const core::Workload* workload = nullptr;
  const core::Target* target = nullptr;
  const core::ConfigSpace* space = nullptr;
  core::TimingOptions timing;
  int threads = 0;  ///< 0: the measuring machine's cores
  double timeout_s = 60;
};

/// The task that measures `config` as `spec` says, with id `task_id`. The target carries its
/// triple, CPU and required features, which the tracker routes on.
void fill_measure_task(const TaskSpec& spec, const core::Config& config, const std::string& task_id,
                       v1::MeasureTask& task);

/// The record of `config` from the result that measured it: the error, its message and every
/// sample, the agent, when; the target key `key` with the measuring board's model and whether
/// it was emulated. `device` and `measure_options` are the caller's.
core::TuningRecord record_from_result(const v1::MeasureResult& result, const TaskSpec& spec,
                                      const core::TargetKey& key, const core::Config& config);

/// The measure options a record keeps, as JSON: the timing, the threads and, when not empty,
/// the device key that measured.
std::string measure_options_json(const TaskSpec& spec, const std::string& device_key = "");

}  // namespace kiln::tuner
