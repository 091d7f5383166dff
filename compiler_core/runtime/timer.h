/// \file
/// The timing evaluator, with TVM's options: each of `repeat` samples runs the function
/// `number` times and reports the mean; `number` grows until a sample lasts `min_repeat_ms`.
#pragma once

#include <functional>
#include <vector>

namespace kiln::core {

struct TimingOptions {
  int number = 1;            ///< runs per sample (a lower bound when min_repeat_ms > 0)
  int repeat = 5;            ///< samples
  double min_repeat_ms = 0;  ///< grow `number` until one sample lasts at least this long
  int warmup = 1;            ///< untimed runs before the first sample
  double cooldown_ms = 0;    ///< sleep between samples
  bool flush_cache = false;  ///< write a buffer larger than the last-level cache before each sample
};

struct TimingResult {
  std::vector<double> seconds;  ///< per-run mean of each sample
  int number = 1;               ///< runs per sample actually used
  double median() const;
  double min() const;
};

/// Times `fn` under `options`.
TimingResult time_function(const std::function<void()>& fn, const TimingOptions& options);

}  // namespace kiln::core
