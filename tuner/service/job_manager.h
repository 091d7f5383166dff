/// \file
/// Tuning jobs that run inside `kiln serve`: each on a thread of its own, through the tuning
/// loop (one workload) or the model tuner (every kernel task of an ONNX model, model_tuning.h),
/// measuring on the agents of a device key (through the tracker the server hosts) or on the
/// server's machine. A job does not belong to a client: it runs until it ends or is cancelled,
/// whoever watches it.
///
/// The jobs are kept in a JSON file beside the tuning log (written whole, to a temporary file
/// that replaces the old one). Trials are not: they are the tuning log's records, so a job the
/// server stopped in the middle of (a restart, a crash) is listed as interrupted when the server
/// starts again and, resumed, continues from the log with no committed trial lost or repeated
/// (the batch that was being measured is measured again). Nor are models: the bytes of a model
/// a job was started with go to `models/SHA256.onnx` beside the jobs file, which the job names.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "compiler_core/support/status.h"
#include "tuner/loop.h"
#include "tuner/model_tuning.h"

namespace grpc {
class Channel;
}

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

  bool is_model() const { return !model.empty() || !model_path.empty(); }
};

enum class JobState { kRunning, kSucceeded, kFailed, kCancelled, kInterrupted };

/// "running", "succeeded", "failed", "cancelled", "interrupted".
std::string_view job_state_name(JobState state);

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

struct JobManagerOptions {
  std::filesystem::path db;         ///< the tuning log jobs append to
  std::filesystem::path jobs_file;  ///< where the jobs are kept
  std::string tracker_token;        ///< presented to the tracker by fleet jobs
};

class JobManager {
 public:
  /// Reads `options.jobs_file` (missing: no jobs yet); jobs it lists as running are marked
  /// interrupted. InvalidArgument for a file that is not a jobs file, naming it.
  static Result<std::unique_ptr<JobManager>> open(const JobManagerOptions& options);
  /// Stops the running jobs (interrupt_all) and waits for them.
  ~JobManager();

  /// The tracker fleet jobs measure through; until it is set, jobs with a device key are
  /// refused with FailedPrecondition.
  void set_tracker(std::shared_ptr<grpc::Channel> channel, std::string name);

  /// Starts a job. InvalidArgument for a spec that does not parse (workload, target, tuner,
  /// counts), and for a model over kMaxModelBytes or one kiln cannot read (the importer's
  /// message); AlreadyExists while another job tunes the same workload on the same target (a
  /// model job: any workload of its tasks).
  Result<JobStatus> start(const JobSpec& spec);
  /// Runs an interrupted, failed or cancelled job again, from the tuning log.
  /// FailedPrecondition for one that runs or has succeeded; NotFound for an unknown id.
  Result<JobStatus> resume(const std::string& id);
  /// Stops a running job after its batch in flight, or retires an interrupted one.
  Result<JobStatus> cancel(const std::string& id);
  Result<JobStatus> get(const std::string& id) const;
  /// Every job, oldest first.
  std::vector<JobStatus> list() const;

  /// Calls `listener` with the job's status now and after every change until it stops running
  /// (the call with its final state is the last), from the thread that changed it. Returns a
  /// handle for unwatch. NotFound for an unknown id.
  using Listener = std::function<void(const JobStatus&)>;
  Result<uint64_t> watch(const std::string& id, Listener listener);
  /// No call of the watch's listener is in progress or follows once this returns.
  void unwatch(uint64_t handle);

  /// Stops every running job at its next batch and records it as interrupted (at once, so
  /// a process that ends before they stop leaves them interrupted). Waits up to `timeout`;
  /// returns how many are still running.
  int interrupt_all(std::chrono::milliseconds timeout);

 private:
  struct Impl;
  explicit JobManager(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::tuner
