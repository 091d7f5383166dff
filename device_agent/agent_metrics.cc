#include "device_agent/agent_metrics.h"

namespace kiln::agent {
namespace {

prometheus::Family<prometheus::Counter>& tasks_family(prometheus::Registry& registry) {
  return prometheus::BuildCounter()
      .Name("kiln_agent_tasks_total")
      .Help("Tasks this agent measured, by result (ok, or error: any measure error)")
      .Register(registry);
}

}  // namespace

AgentMetrics::AgentMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      connected_(prometheus::BuildGauge()
                     .Name("kiln_agent_connected")
                     .Help("1 while the agent is registered with its tracker")
                     .Register(*registry_)
                     .Add({})),
      registrations_(prometheus::BuildCounter()
                         .Name("kiln_agent_registrations_total")
                         .Help("Registrations the tracker accepted (1 plus reconnects)")
                         .Register(*registry_)
                         .Add({})),
      running_(prometheus::BuildGauge()
                   .Name("kiln_agent_tasks_running")
                   .Help("Tasks in the agent's workers now")
                   .Register(*registry_)
                   .Add({})),
      ok_(tasks_family(*registry_).Add({{"result", "ok"}})),
      errors_(tasks_family(*registry_).Add({{"result", "error"}})),
      // From a millisecond to the longest task timeout worth waiting for.
      measurement_(
          prometheus::BuildHistogram()
              .Name("kiln_agent_measurement_seconds")
              .Help("A task in its worker: build, output check and timing")
              .Register(*registry_)
              .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1,
                                                               2.5, 5, 10, 30, 60, 300})) {}

void AgentMetrics::connected(bool now) {
  connected_.Set(now ? 1 : 0);
  if (now) registrations_.Increment();
}

void AgentMetrics::task_started() { running_.Increment(); }

void AgentMetrics::task_done(std::chrono::steady_clock::duration took, bool ok) {
  running_.Decrement();
  (ok ? ok_ : errors_).Increment();
  measurement_.Observe(std::chrono::duration<double>(took).count());
}

}  // namespace kiln::agent
