/// \file
/// An agent's Prometheus metrics: kiln_agent_connected (1 while registered with its tracker),
/// kiln_agent_registrations_total, kiln_agent_tasks_running, kiln_agent_tasks_total{result}
/// (ok or error) and kiln_agent_measurement_seconds (a task in its worker: build, check and
/// timing).
#pragma once

#include <chrono>
#include <memory>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace kiln::agent {

class AgentMetrics {
 public:
  AgentMetrics();

  /// What a scrape collects.
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  void connected(bool now);
  void task_started();
  void task_done(std::chrono::steady_clock::duration took, bool ok);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Gauge& connected_;
  prometheus::Counter& registrations_;
  prometheus::Gauge& running_;
  prometheus::Counter& ok_;
  prometheus::Counter& errors_;
  prometheus::Histogram& measurement_;
};

}  // namespace kiln::agent
