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
  /// Called when the tracker says a batch waits for a board that can run its target (the
  /// reason), and with "" when such a board has joined.
  std::function<void(const std::string& waiting)> on_waiting;
  /// How long fleet_target waits for a board of the key to connect, when the target means the
  /// key's boards.
  std::chrono::seconds wait_for_board{300};
};

/// The target a fleet job measures, as its boards build it. A target that names a CPU or
/// features with its -mtriple stands as it is. `llvm` alone means the key's boards, not this
/// machine, and `llvm -mtriple=T` alone the key's boards of T's architecture: it becomes the
/// target those agents registered (their triple, CPU and every feature) when they agree;
/// InvalidArgument when they differ. With none connected it waits settings.wait_for_board
/// (saying so through on_waiting); then `llvm` is FailedPrecondition and `llvm -mtriple=T`
/// stays as it is (its tasks wait at the tracker for such a board). A
/// CPU or features without -mtriple are InvalidArgument (whose CPU would they be?).
Result<std::string> fleet_target(const std::string& target_text, const FleetSettings& settings);

class FleetMeasurer : public Measurer {
 public:
  /// `target` is what the boards build for (see fleet_target); the tasks carry its triple and
  /// required features for the tracker's routing. Records carry its string with the model of
  /// the board that measured and whether it was emulated, and each result's agent.
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
