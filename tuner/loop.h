/// \file
/// The tuning loop: plan a batch with a strategy, measure it, store every result in the
/// tuning log, learn, repeat until the trials are done or the space is exhausted.
///
/// Resuming is reading: the records of (workload, target) already in the log count as trials
/// and their configs are never proposed again, so a job interrupted at any moment and run
/// again with the same arguments loses no committed trial and repeats none (a batch that was
/// not committed is measured again).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "compiler_core/db/tuning_log.h"
#include "compiler_core/schedule/config_space.h"
#include "compiler_core/support/status.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"
#include "tuner/measure/local_measurer.h"

namespace kiln::tuner {

struct TuneOptions {
  std::string tuner = "ga";
  int64_t trials = 200;  ///< total trials of the job, those of earlier runs included
  int batch = 16;
  uint64_t seed = 1;
  MeasureSettings measure;
};

struct TuneProgress {
  int64_t trials = 0;
  int64_t valid = 0;
  double best_gflops = 0;
  double elapsed_s = 0;
  double eta_s = 0;  ///< 0 until a batch of this run has finished
};

struct TuneSummary {
  int64_t trials = 0;
  int64_t valid = 0;
  int64_t resumed = 0;  ///< trials found in the log at the start
  bool found = false;   ///< a valid config exists
  core::Config best;
  double best_time_s = 0;
  double best_gflops = 0;
  int64_t trials_to_95pct = 0;  ///< trials until the best so far reached 95% of the final best
  double wall_s = 0;
};

/// Tunes `workload` on the resolved host `target`, appending every result to `log`.
Result<TuneSummary> run_tuning(const core::Workload& workload, const core::Target& target,
                               const core::ConfigSpace& space, core::TuningLog& log,
                               const TuneOptions& options,
                               const std::function<void(const TuneProgress&)>& progress);

}  // namespace kiln::tuner
