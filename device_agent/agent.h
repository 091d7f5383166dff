/// \file
/// The board-side daemon (`kiln agent`): dials out to the tracker, registers its device key,
/// target and device facts, sends heartbeats, runs the tasks it is given in worker processes
/// (worker.h) and sends the results back. When the tracker goes away it reconnects with
/// exponential backoff and jitter, as long as it runs.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "compiler_core/support/status.h"
#include "device_agent/agent_metrics.h"
#include "device_agent/worker.h"

namespace kiln::agent {

struct AgentOptions {
  std::string tracker;  ///< host:port
  std::string device_key;
  std::string target = "llvm";  ///< what this board builds for
  std::string agent_id;         ///< default: key@hostname:pid
  int capacity = 1;             ///< tasks run at once (one worker process each)
  std::string token;            ///< bearer token; empty: none
  std::string tls_ca_pem;       ///< TLS with this CA when set
  /// Program and arguments that start a worker process (kiln agent-worker).
  std::vector<std::string> worker_command;
  WorkerLimits limits;
  std::chrono::milliseconds min_backoff{100}, max_backoff{5000};
  /// Counted into when set (`kiln agent --metrics-listen`).
  std::shared_ptr<AgentMetrics> metrics;
};

/// Serves until `stop` becomes true (checked at least every 100 ms). InvalidArgument for bad
/// options (no tracker, key or worker command; a target that does not parse).
Status run_agent(const AgentOptions& options, const std::atomic<bool>& stop);

}  // namespace kiln::agent
