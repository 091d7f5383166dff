/// \file
/// The client side of tuning jobs in a `kiln serve`: the progress line `kiln tune` shows (for a
/// local job and a remote one alike), watching a job's stream until it stops, and a job's status
/// as the JSON and text `kiln tune --server` and `kiln jobs` print.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "compiler_core/support/status.h"
#include "kiln/v1/tuning.grpc.pb.h"
#include "tuner/cli/fleet_flags.h"
#include "tuner/model_tuning.h"

namespace kiln::tuner {

/// `trials 40/200  valid 38  best 123.4 GFLOP/s  elapsed 12 s  ETA 48 s` on stderr: one line
/// updated in place on a terminal, a line each otherwise.
class ProgressLine {
 public:
  ProgressLine();
  /// Ends the line on a terminal.
  ~ProgressLine() { end(); }
  void show(int64_t trials, int64_t total, int64_t valid, double best_gflops, double elapsed_s,
            double eta_s);
  void show(const v1::JobStatus& status);
  /// A model job's line: trials, estimated latency, tasks done.
  void show_model(const ModelTuneProgress& progress);
  /// Ends an updated line (a newline) so that what follows starts on its own.
  void end();
  /// Says on a line of its own that the job waits for a board that can run its target (the
  /// tracker's reason), or with "" that one has joined; until then show() ends its lines with
  /// "waiting for a board that can run it".
  void wait(const std::string& reason);

 private:
  bool terminal_ = false;
  bool open_ = false;
  bool waiting_ = false;

  void print(std::string line);
};

/// Watches job `id` until it stops, showing its progress on `line` (may be null). Returns the
/// final status. Unavailable when the stream breaks first (the job keeps running on the
/// server); NotFound for an unknown id.
Result<v1::JobStatus> watch_job(const ClientConnection& server, const std::string& id,
                                ProgressLine* line);

/// `state` as `kiln jobs` prints it: "running", "succeeded", ...
std::string job_state_text(v1::JobState state);

/// A job's status as one JSON object: id, state, error, workload, target, trials (of the job's
/// spec: total), done (trials so far), valid, best{config, time_s, gflops}, trials_to_95pct,
/// stopped_early, wall_s, spec fields (tuner, seed, threads, device_key).
nlohmann::ordered_json job_json(const v1::JobStatus& status);

/// The line `kiln tune` prints at the end of a job, for a finished remote job.
std::string job_summary_line(const v1::JobStatus& status, const std::string& server);

/// Exit code and message for a job that ended otherwise than succeeded (1), on stderr.
int report_unfinished_job(const v1::JobStatus& status, const std::string& server);

}  // namespace kiln::tuner
