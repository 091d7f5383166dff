#include "tracker/metrics_internal.h"

#include <chrono>

namespace kiln::tracker::internal {
namespace {

/// From a millisecond to five minutes: a queue wait, a kernel's measurement with its build.
const prometheus::Histogram::BucketBoundaries& latency_buckets() {
  static const prometheus::Histogram::BucketBoundaries buckets = {
      0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
  return buckets;
}

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

prometheus::ClientMetric gauge(std::vector<prometheus::ClientMetric::Label> labels, double value) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  return m;
}

prometheus::MetricFamily gauge_family(std::string name, std::string help) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = prometheus::MetricType::Gauge;
  return f;
}

}  // namespace

TrackerMetrics::TrackerMetrics(std::function<TrackerGauges()> gauges)
    : gauges_(std::move(gauges)),
      submitted_(prometheus::BuildCounter()
                     .Name("kiln_tracker_tasks_submitted_total")
                     .Help("Tasks queued by clients' submissions")
                     .Register(registry_)),
      dispatched_(prometheus::BuildCounter()
                      .Name("kiln_tracker_tasks_dispatched_total")
                      .Help("Leases given to agents (a re-queued task counts again)")
                      .Register(registry_)),
      completed_(prometheus::BuildCounter()
                     .Name("kiln_tracker_tasks_completed_total")
                     .Help("Results that agents reported, by result (ok or error)")
                     .Register(registry_)),
      requeued_(prometheus::BuildCounter()
                    .Name("kiln_tracker_tasks_requeued_total")
                    .Help("Leases taken back (agent lost, lease expired) and queued again")
                    .Register(registry_)),
      device_lost_(prometheus::BuildCounter()
                       .Name("kiln_tracker_tasks_device_lost_total")
                       .Help("Tasks that ended as DEVICE_LOST after their last attempt")
                       .Register(registry_)),
      dispatch_latency_(prometheus::BuildHistogram()
                            .Name("kiln_tracker_dispatch_latency_seconds")
                            .Help("How long a task waited in the queue before its lease")
                            .Register(registry_)),
      measurement_latency_(prometheus::BuildHistogram()
                               .Name("kiln_tracker_measurement_latency_seconds")
                               .Help("From a task's lease to its agent's result")
                               .Register(registry_)) {}

std::string TrackerMetrics::label(const std::string& key) {
  std::lock_guard<std::mutex> lock(keys_mutex_);
  if (keys_.count(key)) return key;
  if (keys_.size() >= kMaxMetricDeviceKeys) return kOtherDeviceKeys;
  keys_.insert(key);
  return key;
}

void TrackerMetrics::submitted(const std::string& key, size_t tasks) {
  submitted_.Add({{"device_key", label(key)}}).Increment(double(tasks));
}

void TrackerMetrics::dispatched(const std::string& key, Clock::duration queued_for) {
  const std::string l = label(key);
  dispatched_.Add({{"device_key", l}}).Increment();
  dispatch_latency_.Add({{"device_key", l}}, latency_buckets()).Observe(seconds(queued_for));
}

void TrackerMetrics::completed(const std::string& key, Clock::duration held, bool ok) {
  const std::string l = label(key);
  completed_.Add({{"device_key", l}, {"result", ok ? "ok" : "error"}}).Increment();
  measurement_latency_.Add({{"device_key", l}}, latency_buckets()).Observe(seconds(held));
}

void TrackerMetrics::requeued(const std::string& key) {
  requeued_.Add({{"device_key", label(key)}}).Increment();
}

void TrackerMetrics::device_lost(const std::string& key) {
  device_lost_.Add({{"device_key", label(key)}}).Increment();
}

std::vector<prometheus::MetricFamily> TrackerMetrics::Collect() const {
  std::vector<prometheus::MetricFamily> out = registry_.Collect();
  const TrackerGauges state = gauges_();
  // The first kMaxMetricDeviceKeys keys in order keep their names; the rest add up under one.
  std::set<std::string> named;
  auto key_label = [&](const std::string& key) -> std::string {
    if (named.count(key)) return key;
    if (named.size() >= kMaxMetricDeviceKeys) return kOtherDeviceKeys;
    named.insert(key);
    return key;
  };
  std::map<std::pair<std::string, std::string>, int64_t> agents;
  for (const auto& [key_state, n] : state.agents) {
    agents[{key_label(key_state.first), key_state.second}] += n;
  }
  std::map<std::string, KeyStats> keys;
  for (const auto& [key, stats] : state.keys) {
    KeyStats& k = keys[key_label(key)];
    k.queued += stats.queued;
    k.leased += stats.leased;
  }
  prometheus::MetricFamily a = gauge_family("kiln_tracker_agents",
                                            "Agents the tracker knows, by device key and state "
                                            "(idle, busy or lost)");
  for (const auto& [key_state, n] : agents) {
    a.metric.push_back(
        gauge({{"device_key", key_state.first}, {"state", key_state.second}}, double(n)));
  }
  prometheus::MetricFamily queued =
      gauge_family("kiln_tracker_queued_tasks", "Tasks waiting for an agent, by device key");
  prometheus::MetricFamily leased =
      gauge_family("kiln_tracker_leased_tasks", "Tasks an agent holds, by device key");
  for (const auto& [key, stats] : keys) {
    queued.metric.push_back(gauge({{"device_key", key}}, double(stats.queued)));
    leased.metric.push_back(gauge({{"device_key", key}}, double(stats.leased)));
  }
  out.push_back(std::move(a));
  out.push_back(std::move(queued));
  out.push_back(std::move(leased));
  return out;
}

}  // namespace kiln::tracker::internal
