// The tracker's metrics in process: counters by device key, and the bound on how many keys
// get a label of their own (keys come from peers).

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "tracker/metrics_internal.h"

namespace kiln::tracker::internal {
namespace {

/// The value of the sample of `family` whose labels include device_key=`key`; -1 when none.
double sample(const std::vector<prometheus::MetricFamily>& families, const std::string& family,
              const std::string& key) {
  for (const prometheus::MetricFamily& f : families) {
    if (f.name != family) continue;
    for (const prometheus::ClientMetric& m : f.metric) {
      for (const prometheus::ClientMetric::Label& l : m.label) {
        if (l.name != "device_key" || l.value != key) continue;
        switch (f.type) {
          case prometheus::MetricType::Counter:
            return m.counter.value;
          case prometheus::MetricType::Gauge:
            return m.gauge.value;
          case prometheus::MetricType::Histogram:
            return double(m.histogram.sample_count);
          default:
            return -1;
        }
      }
    }
  }
  return -1;
}

TEST(TrackerMetrics, CountsByKeyAndReadsTheGaugesWhenCollected) {
  int collected = 0;
  TrackerMetrics metrics([&] {
    ++collected;
    TrackerGauges g;
    g.agents[{"cpu", "idle"}] = 2;
    g.keys["cpu"] = KeyStats{3, 1};
    return g;
  });
  metrics.submitted("cpu", 4);
  metrics.dispatched("cpu", std::chrono::milliseconds(5));
  metrics.completed("cpu", std::chrono::milliseconds(20), true);
  metrics.completed("cpu", std::chrono::milliseconds(20), false);
  metrics.requeued("cpu");
  metrics.device_lost("arm");
  EXPECT_EQ(collected, 0);
  const auto families = metrics.Collect();
  EXPECT_EQ(collected, 1);
  EXPECT_EQ(sample(families, "kiln_tracker_tasks_submitted_total", "cpu"), 4);
  EXPECT_EQ(sample(families, "kiln_tracker_tasks_dispatched_total", "cpu"), 1);
  EXPECT_EQ(sample(families, "kiln_tracker_measurement_latency_seconds", "cpu"), 2);
  EXPECT_EQ(sample(families, "kiln_tracker_tasks_requeued_total", "cpu"), 1);
  EXPECT_EQ(sample(families, "kiln_tracker_tasks_device_lost_total", "arm"), 1);
  EXPECT_EQ(sample(families, "kiln_tracker_agents", "cpu"), 2);
  EXPECT_EQ(sample(families, "kiln_tracker_queued_tasks", "cpu"), 3);
  EXPECT_EQ(sample(families, "kiln_tracker_leased_tasks", "cpu"), 1);
}

TEST(TrackerMetrics, KeysPastTheLimitShareOneLabel) {
  const size_t keys = kMaxMetricDeviceKeys + 100;
  TrackerMetrics metrics([&] {
    TrackerGauges g;
    for (size_t i = 0; i < keys; ++i) g.keys["g" + std::to_string(i)] = KeyStats{1, 0};
    return g;
  });
  for (size_t i = 0; i < keys; ++i) metrics.submitted("k" + std::to_string(i), 1);
  const auto families = metrics.Collect();
  for (const prometheus::MetricFamily& f : families) {
    if (f.name == "kiln_tracker_tasks_submitted_total" || f.name == "kiln_tracker_queued_tasks") {
      EXPECT_EQ(f.metric.size(), kMaxMetricDeviceKeys + 1) << f.name;
    }
  }
  EXPECT_EQ(sample(families, "kiln_tracker_tasks_submitted_total", kOtherDeviceKeys), 100);
  EXPECT_EQ(sample(families, "kiln_tracker_queued_tasks", kOtherDeviceKeys), 100);
  EXPECT_EQ(sample(families, "kiln_tracker_tasks_submitted_total", "k0"), 1);
}

}  // namespace
}  // namespace kiln::tracker::internal
