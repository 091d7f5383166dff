/// \file
/// Checking and timing kernels of one workload, as every measurement back end does it (the
/// local measurer, the device agent's worker): inputs from a fixed seed, the reference output
/// once, then for each kernel one checked run and the timed samples.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "compiler_core/build.h"
#include "compiler_core/db/record.h"
#include "compiler_core/runtime/buffer.h"
#include "compiler_core/runtime/timer.h"
#include "compiler_core/support/status.h"
#include "compiler_core/te/workload.h"

namespace kiln::core {

/// The largest relative error a kernel may have against the reference (float32 kernels reorder
/// their sums; the reference accumulates in double).
inline constexpr double kMaxMeasureError = 1e-4;

/// What measuring one kernel found.
struct MeasureOutcome {
  MeasureError error = MeasureError::kOk;  ///< kOk or kWrongAnswer
  std::string message;                     ///< for kWrongAnswer, the error found
  std::vector<double> costs;               ///< seconds per run of each sample, when kOk
  double max_error = 0;
  bool weights_prepacked = false;  ///< the timing covers the kernel without its prepare step
};

class MeasureHarness {
 public:
  /// Allocates and fills the inputs of `workload` (seed fixed, so results are reproducible)
  /// and computes the reference output with `reference_threads` threads. ResourceExhausted
  /// when the buffers cannot be allocated.
  static Result<std::unique_ptr<MeasureHarness>> create(const Workload& workload,
                                                        int reference_threads);

  /// Runs `kernel` once (prepare and run) on the inputs and compares its output with the
  /// reference: WRONG_ANSWER beyond kMaxMeasureError; else times run_prepared under `timing`.
  MeasureOutcome measure(Kernel& kernel, const TimingOptions& timing);

  /// measure() in two steps, for callers that time several kernels in turn: the checked run
  /// (an outcome without costs), then timing samples of a kernel whose check passed.
  MeasureOutcome check(Kernel& kernel);
  TimingResult time(Kernel& kernel, const TimingOptions& timing);
  /// Times kernels whose checks passed in interleaved rounds (time_interleaved).
  std::vector<TimingResult> time_interleaved(const std::vector<Kernel*>& kernels,
                                             const TimingOptions& timing);

 private:
  MeasureHarness() = default;
  std::vector<float*> arguments();  ///< the buffers' data, inputs then output
  std::vector<Buffer> buffers_;     ///< inputs, then the output
  Buffer expected_;
};

}  // namespace kiln::core
