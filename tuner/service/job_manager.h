/// \file
/// Tuning jobs that run inside `kiln serve`: each on a thread of its own, through the tuning
/// loop (one workload) or the model tuner (every kernel task of an ONNX model, model_tuning.h),
/// measuring on the agents of a device key (through the tracker the server hosts) or on the
/// server's machine. A job does not belong to a client: it runs until it ends or is cancelled,
/// whoever watches it.
///
/// The jobs live in the tuning log (its jobs table, tuning_log.h), so every server on one log
/// (a shared PostgreSQL log) lists, watches, cancels and resumes every job. A server runs a job
/// under the log's claim on it (JobClaim), which ends with the server: a job the log says is
/// running but that nobody claims has lost its server (a restart, a crash, a SIGKILL) and is
/// shown as interrupted, and resumed (on this server or another) it continues from the log's
/// records with no committed trial lost or repeated (the batch that was being measured is
/// measured again). A job's status reaches the log after every batch; a watch of a job another
/// server runs reads it there every 100 ms, and a cancel of one asks that server through the
/// log (it stops after its batch in flight). Models are not in the log: the bytes of a model a
/// job was started with go to `SHA256.onnx` in the models folder, which the job names.
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
#include "tuner/service/job.h"
#include "tuner/service/job_measurer.h"

namespace grpc {
class Channel;
}

namespace kiln::tuner {

/// Ended jobs (succeeded, failed, cancelled) a server keeps by default: each start forgets the
/// oldest past it (their trials stay in the tuning log). Running and interrupted jobs are kept.
inline constexpr size_t kMaxEndedJobs = 1000;

struct JobManagerOptions {
  std::filesystem::path db;  ///< the tuning log that keeps the jobs and their trials
  /// Where the bytes of models sent with jobs are kept; empty: `models` beside a SQLite log,
  /// in the working folder for a PostgreSQL one.
  std::filesystem::path models_dir;
  /// A jobs file of a kiln that kept its jobs there: brought into the log at open, then renamed
  /// to FILE.imported. Empty or missing: none.
  std::filesystem::path import_jobs_file;
  std::string tracker_token;  ///< presented to the tracker by fleet jobs
  /// Measurers of the jobs without a device key; unset: in this process. `kiln serve` gives
  /// one that measures in a worker process (job_measurer.h).
  LocalMeasurerFactory local_measurer;
  size_t max_ended_jobs = kMaxEndedJobs;
};

class JobManager {
 public:
  /// Opens the tuning log (TuningLog::open's errors), brings in options.import_jobs_file, and
  /// marks the jobs that are running with no server as interrupted. InvalidArgument for an
  /// import file that is not a jobs file, naming it.
  static Result<std::unique_ptr<JobManager>> open(const JobManagerOptions& options);
  /// Stops the running jobs (interrupt_all) and waits for them.
  ~JobManager();

  /// The tracker fleet jobs measure through; until it is set, jobs with a device key are
  /// refused with FailedPrecondition.
  void set_tracker(std::shared_ptr<grpc::Channel> channel, std::string name);

  /// Starts a job, forgetting the oldest ended jobs past options.max_ended_jobs. InvalidArgument
  /// for a spec that does not parse (workload, target, tuner, counts), and for a model over
  /// kMaxModelBytes or one kiln cannot read (the importer's message); AlreadyExists while another
  /// job tunes the same workload on the same target (a model job: any workload of its tasks).
  Result<JobStatus> start(const JobSpec& spec);
  /// Runs an interrupted, failed or cancelled job again, from the tuning log, on this server
  /// (whichever server ran it before). FailedPrecondition for one that runs (here or on another
  /// server) or has succeeded; NotFound for an unknown id.
  Result<JobStatus> resume(const std::string& id);
  /// Stops a running job after its batch in flight (one another server runs: once that server
  /// has read the request from the log, at its next batch), or retires an interrupted one.
  Result<JobStatus> cancel(const std::string& id);
  Result<JobStatus> get(const std::string& id) const;
  /// Every job, oldest first.
  std::vector<JobStatus> list() const;

  /// Calls `listener` with the job's status now and after every change until it stops running
  /// (the call with its final state is the last), from the thread that changed it, or for a
  /// job that another server runs from a thread that reads the log every 100 ms. Returns a
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
