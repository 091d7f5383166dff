/// \file
/// The client side of tuning jobs in a `kiln serve`: the progress line `kiln tune` shows (for a
/// local job and a remote one alike), watching a job's stream until it stops, and a job's status
/// as the JSON and text `kiln tune --server` and `kiln jobs` print; a model job's summary as
/// `kiln tune --model` prints it, locally or from a server.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

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
  /// A job's line from its status: show's, or for a model job show_model's.
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

/// Whether `status` is a model job's (its spec names a model file).
bool is_model_job(const v1::JobStatus& status);

/// A model job's name in listings: "model NAME".
std::string model_job_name(const v1::JobStatus& status);

/// A job's status as one JSON object: id, state, error, workload, target, trials (so far),
/// valid, best{config, time_s, gflops}, trials_to_95pct, stopped_early, wall_s, spec fields
/// (trials: in all, tuner, seed, batch, early_stopping, threads, device_key). A model job's adds
/// model (its name), model_path (the server's file), latency_s (estimated; null while unknown),
/// tasks and tasks_done (counts), the spec's scheduler and max_task_trials, and from its final
/// status task_status (model_tasks_json) and latency_curve.
nlohmann::ordered_json job_json(const v1::JobStatus& status);

/// The line `kiln tune` prints at the end of a job, for a finished remote job (a model job:
/// model_summary_text's lines).
std::string job_summary_line(const v1::JobStatus& status, const std::string& server);

/// What a model job's final status says of it, as run_model_tuning's summary (its tasks,
/// trials, latency (infinity when unknown), latency curve, trials_to_95pct, wall_s).
ModelTuneSummary model_summary_of(const v1::JobStatus& status);

/// A model's tasks as `kiln tune --model --json` lists them: workload, weight, trials, valid,
/// set_aside, and best{config, time_s, gflops} when a config is valid.
nlohmann::ordered_json model_tasks_json(const std::vector<ModelTaskSummary>& tasks);

/// A latency curve as [[trials, latency_s], ...].
nlohmann::ordered_json latency_curve_json(const std::vector<std::pair<int64_t, double>>& curve);

/// The lines `kiln tune --model` prints at the end: a line per task, then
/// `MODEL  N tasks  estimated latency X ms  (T trials, 95% of it after K; WHERE)`.
std::string model_summary_text(const ModelTuneSummary& summary, const std::string& model,
                               const std::string& where);

/// Exit code and message for a job that ended otherwise than succeeded (1), on stderr.
int report_unfinished_job(const v1::JobStatus& status, const std::string& server);

}  // namespace kiln::tuner
