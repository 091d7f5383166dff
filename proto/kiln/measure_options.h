/// \file
/// The bounds of a MeasureTask's options, checked where a task arrives (the tracker's Submit
/// and the agent) so that no peer can ask for an endless measurement, an overflowing duration or
/// more threads than the pool holds.
#pragma once

#include <cmath>
#include <string>

#include "compiler_core/support/status.h"
#include "kiln/v1/kiln.pb.h"

namespace kiln {

/// The largest values MeasureOptions may hold; 0 means the receiver's default where the message
/// says so.
struct MeasureOptionLimits {
  static constexpr int32_t kMaxNumber = 1'000'000;  ///< runs per sample
  static constexpr int32_t kMaxRepeat = 1'000;      ///< samples
  static constexpr int32_t kMaxWarmup = 1'000;
  static constexpr double kMaxMinRepeatMs = 60'000;  ///< one sample's minimum length
  static constexpr double kMaxCooldownMs = 60'000;
  static constexpr int32_t kMaxThreads = 1024;    ///< the kernel thread pool's limit
  static constexpr double kMaxTimeoutS = 86'400;  ///< a day
};

/// InvalidArgument naming the first option outside its bounds (a negative, a non-finite or a
/// too-large value), else OK.
inline Status validate_measure_options(const v1::MeasureOptions& o) {
  using L = MeasureOptionLimits;
  auto count = [](const char* name, int64_t v, int64_t max) -> Status {
    if (v < 0 || v > max) {
      return invalid_argument(std::string("measure option ") + name + " = " + std::to_string(v) +
                              " is outside [0, " + std::to_string(max) + "]");
    }
    return Status::ok();
  };
  auto real = [](const char* name, double v, double max) -> Status {
    if (!std::isfinite(v) || v < 0 || v > max) {
      return invalid_argument(std::string("measure option ") + name + " = " + std::to_string(v) +
                              " is outside [0, " + std::to_string(max) + "]");
    }
    return Status::ok();
  };
  KILN_RETURN_IF_ERROR(count("number", o.number(), L::kMaxNumber));
  KILN_RETURN_IF_ERROR(count("repeat", o.repeat(), L::kMaxRepeat));
  KILN_RETURN_IF_ERROR(count("warmup", o.warmup(), L::kMaxWarmup));
  KILN_RETURN_IF_ERROR(count("threads", o.threads(), L::kMaxThreads));
  KILN_RETURN_IF_ERROR(real("min_repeat_ms", o.min_repeat_ms(), L::kMaxMinRepeatMs));
  KILN_RETURN_IF_ERROR(real("cooldown_ms", o.cooldown_ms(), L::kMaxCooldownMs));
  KILN_RETURN_IF_ERROR(real("timeout_s", o.timeout_s(), L::kMaxTimeoutS));
  return Status::ok();
}

}  // namespace kiln
