/// \file
/// A tuning job of `kiln serve` as clients and the jobs file see it: what it tunes (JobSpec)
/// and where it stands (JobStatus). The JobManager (job_manager.h) runs them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "compiler_core/support/status.h"
#include "tuner/loop.h"
#include "tuner/model_tuning.h"

namespace kiln::tuner {

/// What a job tunes and how: the flags of `kiln tune`. Exactly one of workload, model and
/// model_path is set.
struct JobSpec {
  std::string workload;
  std::string target = "llvm";
  /// In all, earlier runs included; 0: 200, or 200 per task of a model (start() sets it).
  int64_t trials = 0;
  std::string tuner = "xgb";
  uint64_t seed = 1;
  int batch = 16;
  /// A workload job stops after this many trials in a row with no new best; a model job sets a
  /// task aside after this many of its trials with no new best of it. 0: never.
  int64_t early_stopping = 0;
  int threads = 0;         ///< 0: the measuring machine's cores
  std::string device_key;  ///< empty: measure on the server's machine
  /// The bytes of an ONNX model. start() stores them in a file beside the jobs file and names
  /// it in model_path instead: the spec of a started job never holds them.
  std::string model;
  std::string model_path;  ///< an ONNX model file the server reads
  std::string model_name;  ///< shown in listings; empty: model_path's file name (start() sets it)
  std::string scheduler;   ///< a model job's: "gradient" (when empty) or "round-robin"
  int64_t max_task_trials = 0;  ///< a model job's cap of trials per task; 0: none
  bool flush_cache = false;     ///< every timed run follows a cache flush (TimingOptions)

  bool is_model() const { return !model.empty() || !model_path.empty(); }
  /// The thread count the job's records carry, which keys its resume and its searches:
  /// `threads`, or for a job on the server's machine with none that machine's cores; 0 (any)
  /// for a fleet job that leaves the count to its boards.
  int record_threads() const;
};

enum class JobState { kRunning, kSucceeded, kFailed, kCancelled, kInterrupted };

/// "running", "succeeded", "failed", "cancelled", "interrupted".
std::string_view job_state_name(JobState state);
/// The state job_state_name names; InvalidArgument for another name.
Result<JobState> job_state_from_name(std::string_view name);

struct JobStatus {
  std::string id;
  JobSpec spec;
  JobState state = JobState::kRunning;
  std::string error;     ///< why it failed
  std::string workload;  ///< canonical
  std::string target;    ///< resolved
  TuneProgress progress;
  std::string best_config_json;  ///< ConfigSpace::to_json of the best; empty when none yet
  int64_t trials_to_95pct = 0;
  bool stopped_early = false;
  std::vector<double> best_so_far;  ///< at the end of a run of it in this server
  int64_t created_ms = 0;
  int64_t finished_ms = 0;  ///< 0 while it runs

  // A model job (workload is empty; progress counts trials across the tasks, and its best
  // fields stay empty):
  /// Its tasks, with their trials and bests as of the job's latest end or interruption.
  std::vector<ModelTaskSummary> tasks;
  int64_t tasks_done = 0;  ///< set aside
  double latency_s = 0;    ///< estimated; 0 while a task has no valid config
  /// (trials, estimated latency) after each batch, at the end of a run of it in this server.
  std::vector<std::pair<int64_t, double>> latency_curve;
};

}  // namespace kiln::tuner
