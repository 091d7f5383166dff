/// \file
/// Measurement through the device fleet (`kiln tune --tracker ADDR --device-key KEY`): each
/// batch is submitted to the tracker as declarative tasks, and the results stream back as the
/// agents on the key finish them, in parallel across agents. When the tracker goes away mid-
/// batch (a restart), the unanswered tasks are submitted again once it is back.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "compiler_core/db/record.h"
#include "compiler_core/schedule/config_space.h"
#include "compiler_core/support/status.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"
#include "tuner/measure/measurer.h"

namespace grpc {
class Channel;
}

namespace kiln::tuner {

struct FleetSettings {
  std::string tracker;     ///< host:port
  std::string device_key;  ///< the agents that measure
  std::string token;       ///< bearer token; empty: none
  std::string tls_ca_pem;  ///< TLS with this CA when set
  int threads = 0;         ///< kernel threads on the board; 0: the agent's cores
  double task_timeout_s = 60;
  /// How long a batch may go without the tracker before the job fails.
  std::chrono::seconds give_up{300};
  /// When set, the tracker is reached through this channel (a server's in-process channel to
  /// the tracker it hosts) and `tracker` only names it in messages.
  std::shared_ptr<grpc::Channel> channel;
  /// Asked while the tracker is unreachable: true ends the batch instead of
  /// waiting for it (Aborted).
  std::function<bool()> stop_requested;
};

class FleetMeasurer : public Measurer {
 public:
  /// `target` is what the boards build for; records carry its key and each result's agent.
  static Result<std::unique_ptr<FleetMeasurer>> create(const core::Workload& workload,
                                                       const core::Target& target,
                                                       const core::ConfigSpace& space,
                                                       const FleetSettings& settings);
  ~FleetMeasurer() override;

  /// FailedPrecondition when the tracker refuses the batch (token, invalid task); Unavailable
  /// when it has been unreachable for settings.give_up.
  Result<std::vector<core::TuningRecord>> measure(const std::vector<core::Config>& configs,
                                                  const core::TimingOptions& timing) override;

 private:
  struct Impl;
  explicit FleetMeasurer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::tuner
