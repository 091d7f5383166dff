/// \file
/// The Tuning service's Prometheus metrics: QueryBest's latency and answers, and the jobs by
/// state (read from the job manager when a scrape asks).
///
/// Names: kiln_serve_query_best_latency_seconds (histogram),
/// kiln_serve_query_best_total{result} (result: cached, read or error) and
/// kiln_serve_jobs{state} (running, succeeded, failed, cancelled, interrupted).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace kiln::tuner {

class ServeMetrics final : public prometheus::Collectable {
 public:
  enum class Answer { kCached, kRead, kError };

  /// `jobs` gives the number of jobs in each state; called on each scrape.
  explicit ServeMetrics(std::function<std::map<std::string, int64_t>()> jobs);

  void query_best(std::chrono::steady_clock::duration latency, Answer answer);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::function<std::map<std::string, int64_t>()> jobs_;
  prometheus::Registry registry_;
  prometheus::Histogram& latency_;
  prometheus::Family<prometheus::Counter>& answers_;
};

}  // namespace kiln::tuner
