/// \file
/// What the tuning loop measures through: a back end that turns configs into tuning records.
/// The local measurer (this machine, the embedded default) is one; the fleet is another.
#pragma once

#include <vector>

#include "compiler_core/db/record.h"
#include "compiler_core/runtime/timer.h"
#include "compiler_core/schedule/config_space.h"
#include "compiler_core/support/status.h"

namespace kiln::tuner {

class Measurer {
 public:
  virtual ~Measurer() = default;

  /// One record per config, in order: OK with every timing sample, or the error that stopped
  /// it, with its message. `timing` says how to time each candidate. What goes wrong with a
  /// candidate is that candidate's record; a failure of the back end itself (a fleet that
  /// refuses the job) fails the whole batch, and nothing of it is recorded.
  virtual Result<std::vector<core::TuningRecord>> measure(const std::vector<core::Config>& configs,
                                                          const core::TimingOptions& timing) = 0;
};

}  // namespace kiln::tuner
