/// \file
/// The tracker's Prometheus metrics. Counters and histograms move with the tasks; the gauges
/// (agents by key and state, tasks queued and leased by key) are read from the tracker's state
/// when a scrape asks, so they cannot drift from it. Private to tracker/.
///
/// Names: kiln_tracker_agents{device_key,state}, kiln_tracker_queued_tasks{device_key},
/// kiln_tracker_leased_tasks{device_key}, kiln_tracker_tasks_{submitted,dispatched,requeued,
/// device_lost}_total{device_key}, kiln_tracker_tasks_completed_total{device_key,result},
/// kiln_tracker_dispatch_latency_seconds{device_key} (queued until leased) and
/// kiln_tracker_measurement_latency_seconds{device_key} (leased until its result came).
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "tracker/broker.h"

namespace kiln::tracker::internal {

/// Device keys come from peers: past this many distinct ones, the rest share the label value
/// kOtherDeviceKeys, so a client that invents keys cannot grow the metrics without bound.
inline constexpr size_t kMaxMetricDeviceKeys = 256;
inline constexpr const char* kOtherDeviceKeys = "(other)";

/// The tracker's state as the gauges show it.
struct TrackerGauges {
  std::map<std::pair<std::string, std::string>, int64_t> agents;  ///< (key, state) -> agents
  std::map<std::string, KeyStats> keys;
};

class TrackerMetrics final : public prometheus::Collectable {
 public:
  /// `gauges` is called on each scrape, from the scraping thread.
  explicit TrackerMetrics(std::function<TrackerGauges()> gauges);

  void submitted(const std::string& key, size_t tasks);
  void dispatched(const std::string& key, Clock::duration queued_for);
  void completed(const std::string& key, Clock::duration held, bool ok);
  void requeued(const std::string& key);
  void device_lost(const std::string& key);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  /// `key`, or kOtherDeviceKeys once kMaxMetricDeviceKeys others have been seen.
  std::string label(const std::string& key);

  std::function<TrackerGauges()> gauges_;
  prometheus::Registry registry_;
  prometheus::Family<prometheus::Counter>& submitted_;
  prometheus::Family<prometheus::Counter>& dispatched_;
  prometheus::Family<prometheus::Counter>& completed_;
  prometheus::Family<prometheus::Counter>& requeued_;
  prometheus::Family<prometheus::Counter>& device_lost_;
  prometheus::Family<prometheus::Histogram>& dispatch_latency_;
  prometheus::Family<prometheus::Histogram>& measurement_latency_;
  std::mutex keys_mutex_;
  std::set<std::string> keys_;
};

}  // namespace kiln::tracker::internal
