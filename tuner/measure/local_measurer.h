/// \file
/// Local measurement, the embedded default: builds candidates on this machine (several at
/// once), then runs and checks each, then times them one at a time with no build running, so
/// that timings are not disturbed by compilation. A batch is timed in rounds, one sample of
/// each kernel a round, so that the samples of one config are spread over the batch's timing.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "compiler_core/db/record.h"
#include "compiler_core/measure.h"
#include "compiler_core/runtime/timer.h"
#include "compiler_core/schedule/config_space.h"
#include "compiler_core/support/status.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"
#include "tuner/measure/measurer.h"

namespace kiln::tuner {

struct MeasureSettings {
  int threads = 1;        ///< threads of the kernel being timed
  int build_threads = 2;  ///< candidates compiled at once
  /// Defaults suit tuning: a warm-up run, then 3 samples of at least 20 ms each.
  core::TimingOptions timing{.number = 1, .repeat = 3, .min_repeat_ms = 20, .warmup = 1};
};

class LocalMeasurer : public Measurer {
 public:
  /// Prepares inputs (fixed seed) and the reference output of `workload`. `target` must be the
  /// resolved host target. ResourceExhausted when the buffers cannot be allocated.
  static Result<std::unique_ptr<LocalMeasurer>> create(const core::Workload& workload,
                                                       const core::Target& target,
                                                       const core::ConfigSpace& space,
                                                       const MeasureSettings& settings);

  /// One record per config, in order: OK with every timing sample, or the error that stopped
  /// it (INVALID_CONFIG, COMPILE_ERROR, WRONG_ANSWER) with its message. Builds run on
  /// `build_threads` threads first; then each kernel is checked, and the kernels are timed
  /// alone in `timing.repeat` rounds of one sample each.
  Result<std::vector<core::TuningRecord>> measure(const std::vector<core::Config>& configs,
                                                  const core::TimingOptions& timing) override;

 private:
  LocalMeasurer() = default;

  core::Workload workload_;
  core::Target target_;
  core::TargetKey target_key_;
  const core::ConfigSpace* space_ = nullptr;
  MeasureSettings settings_;
  std::string device_;
  std::unique_ptr<core::MeasureHarness> harness_;
};

}  // namespace kiln::tuner
