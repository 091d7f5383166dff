#include "tuner/service/serve_metrics.h"

#include "tuner/service/job.h"

namespace kiln::tuner {

ServeMetrics::ServeMetrics(std::function<std::map<std::string, int64_t>()> jobs)
    : jobs_(std::move(jobs)),
      // From 10 µs (an answer from the cache) to a second (a cold read of a large log).
      latency_(prometheus::BuildHistogram()
                   .Name("kiln_serve_query_best_latency_seconds")
                   .Help("QueryBest calls, from the request to the answer, in the handler")
                   .Register(registry_)
                   .Add({}, prometheus::Histogram::BucketBoundaries{1e-5, 2.5e-5, 5e-5, 1e-4,
                                                                    2.5e-4, 5e-4, 1e-3, 2.5e-3,
                                                                    5e-3, 0.01, 0.1, 1})),
      answers_(prometheus::BuildCounter()
                   .Name("kiln_serve_query_best_total")
                   .Help("QueryBest calls by how they were answered: cached, read (from the "
                         "tuning log) or error")
                   .Register(registry_)) {}

void ServeMetrics::query_best(std::chrono::steady_clock::duration latency, Answer answer) {
  latency_.Observe(std::chrono::duration<double>(latency).count());
  const char* name = answer == Answer::kCached ? "cached"
                     : answer == Answer::kRead ? "read"
                                               : "error";
  answers_.Add({{"result", name}}).Increment();
}

std::vector<prometheus::MetricFamily> ServeMetrics::Collect() const {
  std::vector<prometheus::MetricFamily> out = registry_.Collect();
  prometheus::MetricFamily jobs;
  jobs.name = "kiln_serve_jobs";
  jobs.help = "Jobs this server knows, by state";
  jobs.type = prometheus::MetricType::Gauge;
  std::map<std::string, int64_t> counts = jobs_();
  for (JobState state : {JobState::kRunning, JobState::kSucceeded, JobState::kFailed,
                         JobState::kCancelled, JobState::kInterrupted}) {
    counts.try_emplace(std::string(job_state_name(state)), 0);  // every state, zero or not
  }
  for (const auto& [state, n] : counts) {
    prometheus::ClientMetric m;
    m.label = {{"state", state}};
    m.gauge.value = double(n);
    jobs.metric.push_back(std::move(m));
  }
  out.push_back(std::move(jobs));
  return out;
}

}  // namespace kiln::tuner
