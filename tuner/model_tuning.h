/// \file
/// Whole-model tuning: every kernel task of a model searched in one job, with trials handed out
/// across the tasks by a scheduler.
///
/// A model's tasks are its distinct fused kernel workloads (graph::extract_tasks after the
/// optimizing passes that `kiln compile` runs), each weighted by how many kernel nodes compute
/// it. The model's estimated latency is the sum over tasks of weight x the task's best time so
/// far; host operators (pooling, reshapes) are not tuned and are not in it.
///
/// The gradient scheduler (Ansor's, Zheng et al. 2020, section 6) first gives every task one
/// batch (round-robin warm-up), then the task with the steepest expected fall of the estimated
/// latency per batch: weight x (alpha x the task's own recent slope + (1 - alpha) x an
/// optimistic forward slope, best / rounds so far), with a small chance of a random task.
/// Tasks that stop improving (patience), reach their trial cap or run out of configs are set
/// aside. The round-robin scheduler cycles through the tasks that are not set aside: it is
/// the baseline the benchmark compares against.
///
/// Each task is searched by TaskSearch (loop.h): its records in the log count and are never
/// measured again, so an interrupted model job run again continues with no trial repeated or
/// lost. A task's search starts when the task first gets a batch, so the xgb strategy is
/// pre-trained on the records that the tasks before it left in the log.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "compiler_core/db/tuning_log.h"
#include "compiler_core/schedule/config_space.h"
#include "compiler_core/support/status.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"
#include "tuner/loop.h"
#include "tuner/measure/measurer.h"

namespace kiln::tuner {

/// Model files larger than this are refused (by `kiln tune --model` and by StartJob).
inline constexpr int64_t kMaxModelBytes = int64_t{256} << 20;

/// One distinct kernel workload of a model.
struct ModelTask {
  std::string workload;  ///< canonical
  int64_t weight = 1;    ///< kernel nodes that compute it
};

/// The tasks of the ONNX model in `bytes` (imported and optimized as `kiln compile` does), in
/// order of first use. InvalidArgument for a model kiln cannot read or does not support, and
/// for one over kMaxModelBytes; FailedPrecondition for a model without kernels.
Result<std::vector<ModelTask>> extract_model_tasks(const std::string& bytes);
/// extract_model_tasks of the file at `path`, its errors naming the file; NotFound when it
/// cannot be read, InvalidArgument for one over kMaxModelBytes (as read_model_file).
Result<std::vector<ModelTask>> extract_model_tasks_from_file(const std::string& path);
/// The bytes of the model file at `path`. NotFound when it cannot be read; InvalidArgument,
/// naming the limit, for a file over kMaxModelBytes (refused before it is read).
Result<std::string> read_model_file(const std::string& path);

enum class TaskSchedule { kGradient, kRoundRobin };

/// "gradient" or "round-robin"; InvalidArgument naming both for anything else.
Result<TaskSchedule> parse_task_schedule(std::string_view name);
std::string_view task_schedule_name(TaskSchedule schedule);

struct SchedulerOptions {
  TaskSchedule kind = TaskSchedule::kGradient;
  double alpha = 0.2;       ///< weight of the backward (observed) slope
  int backward_window = 3;  ///< rounds the backward slope spans
  double epsilon = 0.05;    ///< chance of a random task after the warm-up
  uint64_t seed = 1;
};

/// Which task gets the next batch. Pure bookkeeping: the caller reports each task's best time
/// after each of its rounds (a batch of trials).
class TaskScheduler {
 public:
  TaskScheduler(std::vector<int64_t> weights, SchedulerOptions options);

  /// Task `task` ran a round; `best_time_s` is its best time after it (0: no valid config).
  void record_round(size_t task, double best_time_s);
  void set_aside(size_t task);
  bool is_set_aside(size_t task) const { return set_aside_[task]; }
  int64_t rounds(size_t task) const { return int64_t(history_[task].size()); }

  /// The task for the next batch; nullopt once every task is set aside. Tasks that have had
  /// no round come first, then tasks with no valid config yet, then the schedule's choice.
  std::optional<size_t> next();

  /// Sum of weight x best time; infinity while a task has no valid config.
  double estimated_latency_s() const;

 private:
  double gradient(size_t task) const;

  std::vector<int64_t> weights_;
  SchedulerOptions options_;
  std::vector<std::vector<double>> history_;  // best time after each round (inf: none yet)
  std::vector<bool> set_aside_;
  size_t last_ = size_t(-1);  // the task round-robin gave the latest batch
  std::mt19937_64 rng_;
};

struct ModelTuneOptions {
  TuneOptions task;    ///< each task's search: tuner, batch, seed, timing, re-measuring
  int64_t trials = 0;  ///< trials of the job in all, those of its tasks already in the log included
  int64_t max_task_trials = 0;  ///< a task gets no more than this; 0: no cap
  /// A task is set aside once this many of its trials in a row brought no new best (0: never).
  int64_t task_patience = 0;
  SchedulerOptions schedule;
};

struct ModelTaskSummary {
  ModelTask task;
  int64_t trials = 0;  ///< earlier runs included
  int64_t valid = 0;
  double best_time_s = 0;  ///< 0 when no config is valid
  double best_gflops = 0;
  std::string best_config_json;
  bool set_aside = false;
};

struct ModelTuneProgress {
  int64_t trials = 0;
  int64_t tasks = 0;
  int64_t tasks_done = 0;     ///< set aside: capped, out of configs or no longer improving
  double latency_s = 0;       ///< estimated; infinity until every task has a valid config
  std::string last_workload;  ///< the task that ran the latest batch
  double elapsed_s = 0;
  double eta_s = 0;
};

struct ModelTuneSummary {
  std::vector<ModelTaskSummary> tasks;
  int64_t trials = 0;
  int64_t resumed = 0;   ///< trials found in the log at the start
  double latency_s = 0;  ///< estimated, after re-measuring
  /// (trials so far, estimated latency) after each batch of this run, from the first batch at
  /// which every task had a valid config.
  std::vector<std::pair<int64_t, double>> latency_curve;
  /// Trials until the estimated latency came within 1/0.95 of its final (pre-re-measure) value.
  int64_t trials_to_95pct = 0;
  bool stopped = false;  ///< TuneOptions::stop_requested ended it
  double wall_s = 0;
  double measure_s = 0;
};

/// Creates the measurer of one task, when its first batch needs one.
using TaskMeasurerFactory = std::function<Result<std::unique_ptr<Measurer>>(
    const core::Workload& workload, const core::ConfigSpace& space)>;

/// Tunes every task of a model on the resolved `target`, appending every result to `log`.
/// InvalidArgument for a task that does not parse or has no space on the target.
Result<ModelTuneSummary> run_model_tuning(
    const std::vector<ModelTask>& tasks, const core::Target& target, core::TuningLog& log,
    const ModelTuneOptions& options, const TaskMeasurerFactory& make_measurer,
    const std::function<void(const ModelTuneProgress&)>& progress);

}  // namespace kiln::tuner
