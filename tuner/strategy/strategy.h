/// \file
/// Search strategies: which configs of a space to measure next.
///
/// A strategy proposes batches of configs that have not been measured yet (the loop passes
/// the measured indices, including those of earlier runs read from the tuning log) and learns
/// from the results it observes. Proposals depend only on the seed and the observations, so a
/// run is reproducible.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "compiler_core/schedule/config_space.h"
#include "compiler_core/support/status.h"

namespace kiln::tuner {

/// One measured config: its index and its throughput (0 for a failed measurement).
struct Observation {
  core::Config config;
  double gflops = 0;
  bool valid = false;
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  /// Up to `n` distinct configs whose indices are not in `measured`; fewer only when the space
  /// has fewer unmeasured points left.
  virtual std::vector<core::Config> propose(int n, const std::set<int64_t>& measured) = 0;
  /// Learns from measured configs (in any order; repeated calls accumulate).
  virtual void observe(const std::vector<Observation>& observations) { (void)observations; }
};

/// The strategy `name` ("random", "grid" or "ga") over `space`, seeded with `seed`.
/// InvalidArgument names the accepted strategies for any other name.
Result<std::unique_ptr<Strategy>> make_strategy(const std::string& name,
                                                const core::ConfigSpace& space, uint64_t seed);

}  // namespace kiln::tuner
