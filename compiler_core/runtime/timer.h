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
  /// Write a buffer larger than the last-level cache before every timed run, untimed (TVM's
  /// enable_cpu_cache_flush): each run starts with its data out of the caches, as a layer of a
  /// network does after the layers before it. Runs are then timed one at a time, and
  /// min_repeat_ms counts a sample's flushes too.
  bool flush_cache = false;
};

struct TimingResult {
  std::vector<double> seconds;  ///< per-run mean of each sample
  int number = 1;               ///< runs per sample actually used
  double median() const;
  double min() const;
};

/// Times `fn` under `options`.
TimingResult time_function(const std::function<void()>& fn, const TimingOptions& options);

/// Times several functions in `options.repeat` interleaved rounds, one sample of each a round,
/// so that a slow spell of the machine falls on all of them alike. The first round settles each
/// one's runs per sample (min_repeat_ms, after `warmup` runs); later rounds keep that number,
/// each sample after at most one warm-up run. Every sample, the first round's too, follows a
/// pause of `cooldown_ms`, so that threads the function before left spinning (an OpenMP
/// runtime's, for some milliseconds after a call) are parked. One result per function.
std::vector<TimingResult> time_interleaved(const std::vector<std::function<void()>>& fns,
                                           const TimingOptions& options);

}  // namespace kiln::core
