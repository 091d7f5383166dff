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
  std::filesystem::path db;         ///< the tuning log jobs append to
  std::filesystem::path jobs_file;  ///< where the jobs are kept
  std::string tracker_token;        ///< presented to the tracker by fleet jobs
  /// Measurers of the jobs without a device key; unset: in this process. `kiln serve` gives
  /// one that measures in a worker process (job_measurer.h).
  LocalMeasurerFactory local_measurer;
  size_t max_ended_jobs = kMaxEndedJobs;
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

  /// Starts a job, forgetting the oldest ended jobs past options.max_ended_jobs. InvalidArgument
  /// for a spec that does not parse (workload, target, tuner, counts), and for a model over
  /// kMaxModelBytes or one kiln cannot read (the importer's message); AlreadyExists while another
  /// job tunes the same workload on the same target (a model job: any workload of its tasks).
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
