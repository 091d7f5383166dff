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

#include "compiler_core/db/record.h"
#include "compiler_core/db/tuning_log.h"
#include "compiler_core/schedule/config_space.h"
#include "compiler_core/support/status.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"

namespace kiln::tuner {

/// One measured config: its index and its throughput (0 for a failed measurement).
struct Observation {
  core::Config config;
  double gflops = 0;
  bool valid = false;
  /// Why an invalid measurement failed. DEVICE_LOST and TIMEOUT can be faults of the
  /// infrastructure rather than properties of the config: strategies must not learn from them
  /// that the config is slow.
  core::MeasureError error = core::MeasureError::kOk;
};

/// What a strategy searches: the workload's space on one target. Strategies that rank
/// candidates by their lowered code (xgb) need the workload and target; the others the space.
struct SearchTask {
  core::Workload workload;
  core::Target target;  ///< resolved: vector widths decide what the configs lower to
  const core::ConfigSpace* space = nullptr;
  /// Records of other workloads of the same operator here pre-train the cost model (xgb), so a
  /// new shape starts with what other shapes taught. Optional.
  const core::TuningLog* log = nullptr;
  /// The thread count of the records that pre-train it (0: every count).
  int threads = 0;
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

/// The names make_strategy accepts, for help texts and errors: "xgb, ga, random, grid".
const char* strategy_names();
/// InvalidArgument, naming the accepted strategies, for a name make_strategy does not accept.
Status check_strategy_name(const std::string& name);

/// The strategy `name` over `task`, seeded with `seed`: "xgb" (simulated annealing over the
/// XGBoost cost model, see xgb_strategy.h), "ga" (genetic), "random" or "grid".
/// InvalidArgument names the accepted strategies for any other name.
Result<std::unique_ptr<Strategy>> make_strategy(const std::string& name, const SearchTask& task,
                                                uint64_t seed);

}  // namespace kiln::tuner
