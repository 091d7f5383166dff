#include "compiler_core/runtime/timer.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

namespace kiln::core {
namespace {

using Clock = std::chrono::steady_clock;

/// Larger than the last-level cache of any CPU kiln targets today (Zen 5 has 32 MiB per CCD).
constexpr size_t kFlushBytes = size_t{64} << 20;

/// Growth factor of `number` when a sample is shorter than min_repeat_ms (TVM uses 1.618).
constexpr double kGrowth = 1.618;

/// Upper bound on `number`, so that a function too fast for the clock cannot loop forever.
constexpr int kMaxNumber = 1 << 30;

/// Writes every cache line of a buffer larger than the cache, evicting the kernel's data.
/// The buffer is made once per process; the mutex keeps concurrent timers from racing on it.
void flush_cache() {
  static std::mutex mutex;
  static std::unique_ptr<char[]> buffer;
  static unsigned char value = 0;
  std::lock_guard<std::mutex> lock(mutex);
  if (!buffer) buffer = std::make_unique<char[]>(kFlushBytes);
  // A different value each time, so no compiler or CPU can skip the write as redundant.
  value = static_cast<unsigned char>(value + 1);
  std::memset(buffer.get(), value, kFlushBytes);
}

/// The seconds `number` calls of `fn` took (`timed`), and the sample's wall time (`wall`):
/// with `flush`, each call follows a flush that counts in `wall` alone.
struct Sample {
  double timed = 0;
  double wall = 0;
};
Sample time_runs(const std::function<void()>& fn, int number, bool flush) {
  const auto start = Clock::now();
  if (!flush) {
    for (int i = 0; i < number; ++i) fn();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return {seconds, seconds};
  }
  Sample sample;
  for (int i = 0; i < number; ++i) {
    flush_cache();
    const auto run = Clock::now();
    fn();
    sample.timed += std::chrono::duration<double>(Clock::now() - run).count();
  }
  sample.wall = std::chrono::duration<double>(Clock::now() - start).count();
  return sample;
}

/// The next `number` for a sample of `elapsed` seconds that fell short of `min_seconds`: at least
/// a geometric step, or straight to the estimate that reaches the target when that is larger.
int grow_number(int number, double elapsed, double min_seconds) {
  double next = std::ceil(number * kGrowth);
  if (elapsed > 0) next = std::max(next, std::ceil(min_seconds / (elapsed / number)) + 1);
  if (next <= number) next = number + 1.0;
  return static_cast<int>(std::min<double>(next, kMaxNumber));
}

}  // namespace

double TimingResult::median() const {
  if (seconds.empty()) return 0;
  std::vector<double> sorted = seconds;
  std::sort(sorted.begin(), sorted.end());
  const size_t mid = sorted.size() / 2;
  if (sorted.size() % 2 == 1) return sorted[mid];
  return (sorted[mid - 1] + sorted[mid]) / 2;
}

double TimingResult::min() const {
  if (seconds.empty()) return 0;
  return *std::min_element(seconds.begin(), seconds.end());
}

TimingResult time_function(const std::function<void()>& fn, const TimingOptions& options) {
  // Options arrive from users (measure options, CLI flags); treat nonsense counts as the
  // smallest meaningful ones rather than failing a measurement.
  const int repeat = std::max(options.repeat, 1);
  const double min_seconds = options.min_repeat_ms / 1e3;
  int number = std::max(options.number, 1);

  for (int i = 0; i < options.warmup; ++i) fn();

  TimingResult result;
  result.seconds.reserve(repeat);
  for (int r = 0; r < repeat; ++r) {
    if (r > 0 && options.cooldown_ms > 0) {
      std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(options.cooldown_ms));
    }
    // Like TVM, a sample shorter than min_repeat_ms is thrown away and taken again with a
    // larger `number`, which later samples keep.
    for (;;) {
      // With flushes, min_repeat_ms bounds the sample's wall time, flushes included: a kernel
      // of microseconds would otherwise take thousands of flushes of milliseconds each.
      const Sample sample = time_runs(fn, number, options.flush_cache);
      if (min_seconds <= 0 || sample.wall >= min_seconds || number >= kMaxNumber) {
        result.seconds.push_back(sample.timed / number);
        break;
      }
      number = grow_number(number, sample.wall, min_seconds);
    }
  }
  result.number = number;
  return result;
}

std::vector<TimingResult> time_interleaved(const std::vector<std::function<void()>>& fns,
                                           const TimingOptions& options) {
  std::vector<TimingResult> results(fns.size());
  for (int round = 0; round < std::max(options.repeat, 1); ++round) {
    for (size_t i = 0; i < fns.size(); ++i) {
      TimingOptions sample = options;
      sample.repeat = 1;
      sample.cooldown_ms = 0;
      if (round > 0) {
        sample.number = results[i].number;
        sample.min_repeat_ms = 0;
        sample.warmup = std::min(options.warmup, 1);
      }
      if (options.cooldown_ms > 0) {
        std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(options.cooldown_ms));
      }
      TimingResult t = time_function(fns[i], sample);
      results[i].number = t.number;
      results[i].seconds.insert(results[i].seconds.end(), t.seconds.begin(), t.seconds.end());
    }
  }
  return results;
}

}  // namespace kiln::core
