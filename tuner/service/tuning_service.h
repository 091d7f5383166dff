/// \file
/// The kiln.v1 Tuning service over a tuning log: QueryBest (the fastest valid records of a
/// workload on a target), ListWorkloads, and tuning jobs that run inside the server (StartJob,
/// WatchJob, CancelJob, ListJobs, ResumeJob; see job_manager.h). `kiln serve` hosts it beside
/// the tracker.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "compiler_core/support/status.h"
#include "tuner/service/job_measurer.h"

namespace grpc {
class Channel;
class Service;
}  // namespace grpc

namespace prometheus {
class Collectable;
}

namespace kiln::tuner {

struct TuningServiceOptions {
  std::filesystem::path db;  ///< the tuning log, created when missing; it keeps the jobs too
  /// JobManagerOptions's: where models sent with jobs are kept, and an older jobs file to bring
  /// into the log.
  std::filesystem::path models_dir;
  std::filesystem::path import_jobs_file;
  std::string token;  ///< the bearer token callers must present; empty accepts all
  /// Measurers of jobs on the server's machine (JobManagerOptions::local_measurer).
  LocalMeasurerFactory local_measurer;
};

class TuningService {
 public:
  /// Opens the tuning log (its errors as TuningLog::open's) and its jobs (JobManager::open).
  static Result<std::unique_ptr<TuningService>> create(const TuningServiceOptions& options);
  virtual ~TuningService() = default;
  /// The gRPC service, to register with a server's builder.
  virtual grpc::Service* service() = 0;
  /// The tracker that jobs with a device key measure through (`name` for messages); without
  /// one they are refused.
  virtual void set_tracker(std::shared_ptr<grpc::Channel> channel, std::string name) = 0;
  /// Stops the running jobs at their next batch, recording them as interrupted; waits up to
  /// `timeout` and returns how many still run.
  virtual int interrupt_jobs(std::chrono::milliseconds timeout) = 0;
  /// Its Prometheus metrics (serve_metrics.h names them), for an exposer that stops scraping
  /// before the service is destroyed.
  virtual std::shared_ptr<prometheus::Collectable> metrics() = 0;
};

}  // namespace kiln::tuner
