/// \file
/// The tuning loop: plan a batch with a strategy, measure it, store every result in the
/// tuning log, learn, repeat until the trials are done, the search stops improving (early
/// stopping) or the space is exhausted; then re-measure the fastest few and declare the best as
/// apply-best picks it (the fastest median of any record of a config).
///
/// Resuming is reading: the records of (workload, target) already in the log count as trials
/// and their configs are never proposed again, so a job interrupted at any moment and run
/// again with the same arguments loses no committed trial and repeats none (a batch that was
/// not committed is measured again).
///
/// Re-measurements are records too, tagged `"remeasure": true` in their measure options: they
/// keep their own samples (the spread of each result stays visible), never count as trials,
/// and a config is re-measured at most once.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "compiler_core/db/tuning_log.h"
#include "compiler_core/runtime/timer.h"
#include "compiler_core/schedule/config_space.h"
#include "compiler_core/support/status.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"
#include "tuner/measure/measurer.h"
#include "tuner/strategy/strategy.h"

namespace kiln::tuner {

struct TuneOptions {
  std::string tuner = "xgb";
  int64_t trials = 200;  ///< total trials of the job, those of earlier runs included
  /// The thread count the kernels are timed with. It keys the records the search resumes from
  /// and its cost model learns from; 0 takes every count (a fleet job whose boards choose).
  int threads = 0;
  int batch = 16;
  /// The template's default config is a trial of the first batch that finds it unmeasured:
  /// what `kiln run` builds without a record, so the declared best is never a config slower
  /// than it (ResNet-50's 1x1 1024->2048 of stride 2: 300 trials of xgb never proposed the
  /// default, 113-115 GFLOP/s, and declared one that ran at 95-111 from process to process).
  /// Off only to compare strategies alone (kiln_search_bench).
  bool default_first = true;
  uint64_t seed = 1;
  /// Stop once this many trials in a row brought no new best (0: never stop early).
  int64_t early_stopping = 0;
  /// How each trial is timed: a warm-up run, then 3 samples of at least 20 ms each.
  core::TimingOptions timing{.number = 1, .repeat = 3, .min_repeat_ms = 20, .warmup = 1};
  /// The fastest this many configs are re-measured at the end, before the best is declared.
  /// 0 turns re-measuring off.
  int remeasure_top = 5;
  core::TimingOptions remeasure_timing{.number = 1, .repeat = 10, .min_repeat_ms = 50, .warmup = 2};
  /// Asked before each batch: true ends the job there, with TuneSummary::stopped and no
  /// re-measuring. Empty: never.
  std::function<bool()> stop_requested;
};

struct TuneProgress {
  int64_t trials = 0;
  int64_t valid = 0;
  double best_gflops = 0;
  double elapsed_s = 0;
  double eta_s = 0;   ///< 0 until a batch of this run has finished
  core::Config best;  ///< the fastest valid trial so far (when best_gflops > 0)
  double best_time_s = 0;
};

struct TuneSummary {
  int64_t trials = 0;
  int64_t valid = 0;
  int64_t resumed = 0;  ///< trials found in the log at the start
  bool found = false;   ///< a valid config exists
  bool stopped_early = false;
  bool stopped = false;  ///< TuneOptions::stop_requested ended it
  core::Config best;
  double best_time_s = 0;  ///< the median of the best's fastest record
  double best_gflops = 0;
  std::vector<double> best_costs;  ///< every sample behind best_time_s, in seconds
  bool best_remeasured = false;    ///< that record is a re-measurement
  /// Trials until the best of the trials so far reached 95% of the final one.
  int64_t trials_to_95pct = 0;
  /// The best trial GFLOP/s after each trial, in trial order (resumed trials first).
  std::vector<double> best_so_far;
  double wall_s = 0;
  double measure_s = 0;  ///< time spent inside the measurer (building and timing)
};

/// What a job tunes, parsed and resolved.
struct TuningProblem {
  core::Workload workload;
  core::Target target;  ///< a host target resolved to this machine's CPU
  core::ConfigSpace space;
};

/// Parses `target` and resolves a host target to this machine's CPU. InvalidArgument for a
/// string that does not parse, and for a target that is not this machine unless `through_fleet`.
Result<core::Target> prepare_target(const std::string& target, bool through_fleet);

/// Parses `workload` and `target` and builds the config space. InvalidArgument for a string
/// that does not parse, and for a target that is not this machine unless `through_fleet`.
Result<std::unique_ptr<TuningProblem>> prepare_tuning(const std::string& workload,
                                                      const std::string& target,
                                                      bool through_fleet);

/// Creates the measurer when the first batch needs one (a job that is already complete never
/// prepares inputs or references).
using MeasurerFactory = std::function<Result<std::unique_ptr<Measurer>>()>;

/// One workload's search, a batch at a time: run_tuning drives one to its end, the model
/// scheduler (model_tuning.h) interleaves many. Creating it reads the workload's history from
/// the log (its trials count, its configs are never proposed again) and trains the strategy on
/// it; nothing is measured until the first step.
class TaskSearch {
 public:
  /// The workload, target and space must outlive the search, as must `log`.
  static Result<std::unique_ptr<TaskSearch>> start(const core::Workload& workload,
                                                   const core::Target& target,
                                                   const core::ConfigSpace& space,
                                                   core::TuningLog& log, const TuneOptions& options,
                                                   MeasurerFactory make_measurer);
  ~TaskSearch();

  /// Measures one batch of up to `n` new configs, stores the results in the log and learns from
  /// them. Returns how many trials it ran: 0 once every config of the space is measured.
  Result<int64_t> step(int n);
  /// Sets trials_to_95pct; with `remeasure`, re-measures the fastest trials
  /// (TuneOptions::remeasure_top) unless every trial of this run was emulated, then takes the
  /// declared best from the log.
  Status finish(bool remeasure = true);

  const TuneSummary& summary() const { return summary_; }
  /// Trials since the latest new best (all of them while no config is valid).
  int64_t trials_since_improvement() const { return summary_.trials - last_improvement_; }
  const core::Workload& workload() const { return workload_; }

 private:
  TaskSearch(const core::Workload& workload, const core::Target& target,
             const core::ConfigSpace& space, core::TuningLog& log, const TuneOptions& options,
             MeasurerFactory make_measurer);
  Observation account(const core::TuningRecord& record);
  Result<std::vector<core::TuningRecord>> measure(const std::vector<core::Config>& configs,
                                                  const core::TimingOptions& timing);

  const core::Workload& workload_;
  const core::Target& target_;
  const core::ConfigSpace& space_;
  core::TuningLog& log_;
  TuneOptions options_;
  MeasurerFactory make_measurer_;
  core::TargetKey key_;
  std::unique_ptr<Strategy> strategy_;
  std::unique_ptr<Measurer> measurer_;
  TuneSummary summary_;
  std::set<int64_t> measured_;
  std::map<int64_t, double> trial_gflops_;  // config -> GFLOP/s of its valid trial
  std::set<int64_t> remeasured_;            // configs re-measured already
  int64_t last_improvement_ = 0;            // trial count at the latest new best
  // Whether any trial of this run ran on a real board: an emulated board's timings say nothing
  // about hardware, so they are not worth measuring again.
  bool measured_on_real_board_ = false;
};

/// Tunes `workload` on the resolved `target`, appending every result to `log`.
Result<TuneSummary> run_tuning(const core::Workload& workload, const core::Target& target,
                               const core::ConfigSpace& space, core::TuningLog& log,
                               const TuneOptions& options, const MeasurerFactory& make_measurer,
                               const std::function<void(const TuneProgress&)>& progress);

/// True for a record the loop wrote when re-measuring (its measure options say so).
bool is_remeasurement(const core::TuningRecord& record);

}  // namespace kiln::tuner
