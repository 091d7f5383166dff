#include "tuner/service/tuning_service.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "compiler_core/db/record.h"
#include "compiler_core/db/tuning_log.h"
#include "compiler_core/support/log.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"
#include "kiln/v1/tuning.grpc.pb.h"
#include "proto/kiln/grpc_status.h"
#include "tuner/service/job_manager.h"
#include "tuner/service/serve_metrics.h"

namespace kiln::tuner {
namespace {

namespace pb = kiln::v1;

/// How often the log is checked for commits of other connections; a QueryBest answer is at most
/// this much older than the latest commit.
constexpr std::chrono::milliseconds kChangePollInterval{5};
/// Answers kept, and their bytes (keys and answers); the cache starts over when either is full.
constexpr size_t kMaxCachedAnswers = 1 << 16;
constexpr size_t kMaxCachedBytes = size_t{64} << 20;
/// The longest device model a QueryBest names: a CPU's brand string is under 64 characters.
constexpr size_t kMaxModelNameBytes = 256;
/// WatchJob streams one client (a peer address, whatever its port) may have open at once.
constexpr int kMaxWatchesPerClient = 256;

pb::JobState to_proto(JobState state) {
  switch (state) {
    case JobState::kRunning:
      return pb::JOB_STATE_RUNNING;
    case JobState::kSucceeded:
      return pb::JOB_STATE_SUCCEEDED;
    case JobState::kFailed:
      return pb::JOB_STATE_FAILED;
    case JobState::kCancelled:
      return pb::JOB_STATE_CANCELLED;
    case JobState::kInterrupted:
      return pb::JOB_STATE_INTERRUPTED;
  }
  return pb::JOB_STATE_UNSPECIFIED;
}

JobSpec from_proto(const pb::JobSpec& p) {
  JobSpec s;
  s.workload = p.workload();
  if (!p.target().empty()) s.target = p.target();
  s.trials = p.trials();
  if (!p.tuner().empty()) s.tuner = p.tuner();
  s.seed = p.seed();
  if (p.batch() != 0) s.batch = p.batch();
  s.early_stopping = p.early_stopping();
  s.threads = p.threads();
  s.device_key = p.device_key();
  s.model = p.model();
  s.model_path = p.model_path();
  s.model_name = p.model_name();
  s.scheduler = p.scheduler();
  s.max_task_trials = p.max_task_trials();
  s.flush_cache = p.flush_cache();
  return s;
}

/// ConfigSpace::to_json text as a Config; nothing when it is not a config.
void config_to_proto(const std::string& json, pb::Config& config) {
  nlohmann::json parsed = nlohmann::json::parse(json, nullptr, false);
  if (!parsed.is_object()) return;
  config.set_index(parsed.value("index", int64_t{0}));
  const nlohmann::json knobs = parsed.value("knobs", nlohmann::json::object());
  for (const auto& [name, value] : knobs.items()) {
    if (value.is_number_integer()) (*config.mutable_knobs())[name] = value;
  }
}

void to_proto(const JobStatus& s, pb::JobStatus& p) {
  p.set_id(s.id);
  pb::JobSpec* spec = p.mutable_spec();
  spec->set_workload(s.spec.workload);
  spec->set_target(s.spec.target);
  spec->set_trials(s.spec.trials);
  spec->set_tuner(s.spec.tuner);
  spec->set_seed(s.spec.seed);
  spec->set_batch(s.spec.batch);
  spec->set_early_stopping(s.spec.early_stopping);
  spec->set_threads(s.spec.threads);
  spec->set_device_key(s.spec.device_key);
  // A model's bytes never go back: model_path names the server's copy.
  spec->set_model_path(s.spec.model_path);
  spec->set_model_name(s.spec.model_name);
  spec->set_scheduler(s.spec.scheduler);
  spec->set_max_task_trials(s.spec.max_task_trials);
  spec->set_flush_cache(s.spec.flush_cache);
  p.set_state(to_proto(s.state));
  p.set_error(s.error);
  p.set_workload(s.workload);
  p.set_target(s.target);
  p.set_trials(s.progress.trials);
  p.set_valid(s.progress.valid);
  p.set_best_gflops(s.progress.best_gflops);
  p.set_elapsed_s(s.progress.elapsed_s);
  p.set_eta_s(s.progress.eta_s);
  p.set_best_time_s(s.progress.best_time_s);
  if (!s.best_config_json.empty()) config_to_proto(s.best_config_json, *p.mutable_best_config());
  p.set_trials_to_95pct(s.trials_to_95pct);
  p.set_stopped_early(s.stopped_early);
  if (s.state != JobState::kRunning) {
    for (double g : s.best_so_far) p.add_best_so_far(g);
  }
  p.set_created_unix_ms(s.created_ms);
  p.set_finished_unix_ms(s.finished_ms);
  if (!s.spec.is_model()) return;
  p.set_estimated_latency_s(s.latency_s);
  p.set_tasks(int32_t(s.tasks.size()));
  p.set_tasks_done(int32_t(s.tasks_done));
  if (s.state == JobState::kRunning) return;
  for (const ModelTaskSummary& t : s.tasks) {
    pb::ModelTaskStatus* task = p.add_task_status();
    task->set_workload(t.task.workload);
    task->set_weight(t.task.weight);
    task->set_trials(t.trials);
    task->set_valid(t.valid);
    task->set_best_time_s(t.best_time_s);
    task->set_best_gflops(t.best_gflops);
    if (!t.best_config_json.empty()) {
      config_to_proto(t.best_config_json, *task->mutable_best_config());
    }
    task->set_set_aside(t.set_aside);
  }
  for (const auto& [trials, latency] : s.latency_curve) {
    pb::LatencyPoint* point = p.add_latency_curve();
    point->set_trials(trials);
    point->set_latency_s(latency);
  }
}

/// One WatchJob stream: the latest status is written whenever the one before it has gone out
/// (statuses that change faster than the client reads are skipped to the newest); the stream
/// ends after the final state.
class JobWatch final : public grpc::ServerWriteReactor<pb::JobStatus> {
 public:
  /// `on_done` runs once the stream has ended.
  JobWatch(JobManager& jobs, const std::string& id, std::function<void()> on_done)
      : jobs_(jobs), on_done_(std::move(on_done)) {
    Result<uint64_t> handle = jobs_.watch(id, [this](const JobStatus& s) { on_status(s); });
    std::lock_guard<std::mutex> lock(mutex_);
    if (!handle) {
      finish(to_grpc(handle.status()));
      return;
    }
    handle_ = *handle;
    started_ = true;
    write_next();
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mutex_);
    writing_ = false;
    if (!ok) return finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
    write_next();
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!writing_) finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
    // else OnWriteDone(false) finishes
  }

  void OnDone() override {
    jobs_.unwatch(handle_);
    on_done_();
    delete this;
  }

 private:
  void on_status(const JobStatus& s) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (finished_) return;
    pending_.emplace();
    to_proto(s, *pending_);
    if (started_) write_next();
  }

  /// Under mutex_.
  void write_next() {
    if (writing_ || finished_) return;
    if (!pending_) {
      if (final_sent_) finish(grpc::Status::OK);
      return;
    }
    current_ = std::move(*pending_);
    pending_.reset();
    final_sent_ = current_.state() != pb::JOB_STATE_RUNNING;
    writing_ = true;
    StartWrite(&current_);
  }

  /// Under mutex_.
  void finish(const grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  JobManager& jobs_;
  std::function<void()> on_done_;
  std::mutex mutex_;
  uint64_t handle_ = 0;
  bool started_ = false, writing_ = false, final_sent_ = false, finished_ = false;
  std::optional<pb::JobStatus> pending_;
  pb::JobStatus current_;
};

class Service final : public pb::Tuning::CallbackService, public TuningService {
 public:
  Service(core::TuningLog log, std::unique_ptr<JobManager> jobs, std::string token)
      : log_(std::move(log)),
        jobs_(std::move(jobs)),
        token_(std::move(token)),
        poller_([this] { poll_for_changes(); }) {}

  void set_tracker(std::shared_ptr<grpc::Channel> channel, std::string name) override {
    jobs_->set_tracker(std::move(channel), std::move(name));
  }

  int interrupt_jobs(std::chrono::milliseconds timeout) override {
    return jobs_->interrupt_all(timeout);
  }

  grpc::ServerUnaryReactor* StartJob(grpc::CallbackServerContext* context,
                                     const pb::StartJobRequest* request,
                                     pb::JobStatus* response) override {
    return answer(
        context, [&] { return to_response(jobs_->start(from_proto(request->spec())), *response); });
  }

  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const pb::JobRequest* request,
                                      pb::JobStatus* response) override {
    return answer(context, [&] { return to_response(jobs_->cancel(request->id()), *response); });
  }

  grpc::ServerUnaryReactor* ResumeJob(grpc::CallbackServerContext* context,
                                      const pb::JobRequest* request,
                                      pb::JobStatus* response) override {
    return answer(context, [&] { return to_response(jobs_->resume(request->id()), *response); });
  }

  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const pb::ListJobsRequest*,
                                     pb::ListJobsResponse* response) override {
    return answer(context, [&] {
      for (const JobStatus& s : jobs_->list()) to_proto(s, *response->add_jobs());
      return Status::ok();
    });
  }

  grpc::ServerWriteReactor<pb::JobStatus>* WatchJob(grpc::CallbackServerContext* context,
                                                    const pb::JobRequest* request) override {
    struct Refused : grpc::ServerWriteReactor<pb::JobStatus> {
      explicit Refused(const grpc::Status& s) { Finish(s); }
      void OnDone() override { delete this; }
    };
    grpc::Status s = check_bearer_token(*context, token_, "serve");
    if (!s.ok()) return new Refused(s);
    const std::string client = client_of(*context);
    {
      std::lock_guard<std::mutex> lock(watches_mutex_);
      int& open = open_watches_[client];
      if (open >= kMaxWatchesPerClient) {
        return new Refused({grpc::StatusCode::RESOURCE_EXHAUSTED,
                            "client " + client + " watches " + std::to_string(open) +
                                " jobs, the server's limit per client (" +
                                std::to_string(kMaxWatchesPerClient) +
                                "); watch again when one ends"});
      }
      ++open;
    }
    auto done = [this, client] {
      std::lock_guard<std::mutex> lock(watches_mutex_);
      if (--open_watches_[client] == 0) open_watches_.erase(client);
    };
    try {
      return new JobWatch(*jobs_, request->id(), std::move(done));
    } catch (const std::exception& e) {
      done();
      return new Refused(internal_failure("WatchJob", e));
    }
  }

  ~Service() override {
    jobs_.reset();  // stops the jobs first
    {
      std::lock_guard<std::mutex> lock(poll_mutex_);
      stopping_ = true;
    }
    poll_wake_.notify_all();
    poller_.join();
  }

  grpc::Service* service() override { return this; }

  std::shared_ptr<prometheus::Collectable> metrics() override { return metrics_; }

  grpc::ServerUnaryReactor* QueryBest(grpc::CallbackServerContext* context,
                                      const pb::QueryBestRequest* request,
                                      pb::QueryBestResponse* response) override {
    const auto started = std::chrono::steady_clock::now();
    ServeMetrics::Answer how = ServeMetrics::Answer::kError;
    grpc::ServerUnaryReactor* reactor =
        answer(context, [&] { return cached_query_best(*request, *response, how); });
    metrics_->query_best(std::chrono::steady_clock::now() - started, how);
    return reactor;
  }

  grpc::ServerUnaryReactor* ListWorkloads(grpc::CallbackServerContext* context,
                                          const pb::ListWorkloadsRequest* request,
                                          pb::ListWorkloadsResponse* response) override {
    return answer(context, [&] { return list_workloads(*request, *response); });
  }

 private:
  /// A unary call: the token, then `body`'s status.
  /// An exception a handler threw (a bug, or memory running out) fails its call with INTERNAL,
  /// never the server.
  template <typename Body>
  grpc::ServerUnaryReactor* answer(grpc::CallbackServerContext* context, Body body) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    grpc::Status s = check_bearer_token(*context, token_, "serve");
    if (s.ok()) {
      try {
        s = to_grpc(body());
      } catch (const std::exception& e) {
        s = internal_failure("a call", e);
      }
    }
    reactor->Finish(s);
    return reactor;
  }

  static grpc::Status internal_failure(const std::string& call, const std::exception& e) {
    logger("serve")->error("{} failed: {}", call, e.what());
    return {grpc::StatusCode::INTERNAL, call + " failed inside the server: " + e.what()};
  }

  static Status to_response(const Result<JobStatus>& status, pb::JobStatus& response) {
    if (!status) return status.status();
    to_proto(*status, response);
    return Status::ok();
  }

  /// The key records of `request`'s target are stored under: as given when it names a model
  /// (or is no host target); else this server's CPU.
  Result<core::TargetKey> key_of(const pb::QueryBestRequest& request) {
    KILN_ASSIGN_OR_RETURN(core::Target target, core::parse_target(request.target()));
    if (!target.is_host || !request.model().empty()) {
      return core::TargetKey{target.str(), request.model(), false, request.threads()};
    }
    if (!target.cpu.empty() || !target.attrs.empty()) {
      return core::make_target_key(target, request.threads());
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (!host_key_) {
      KILN_ASSIGN_OR_RETURN(core::TargetKey key, core::make_target_key(target, 0));
      host_key_ = key;  // resolving reads /proc/cpuinfo: once
    }
    core::TargetKey key = *host_key_;
    key.threads = request.threads();
    return key;
  }

  /// query_best through the cache of answers: every answer the log gave since its last change
  /// (in this process or another), by the request's exact strings. Only answers are cached,
  /// never errors.
  Status cached_query_best(const pb::QueryBestRequest& request, pb::QueryBestResponse& response,
                           ServeMetrics::Answer& how) {
    if (request.model().size() > kMaxModelNameBytes) {
      return invalid_argument("model must be at most " + std::to_string(kMaxModelNameBytes) +
                              " bytes, the longest device model kiln stores");
    }
    std::string key = request.workload();
    for (const std::string* part : {&request.target(), &request.model()}) {
      key += '\n';
      key += *part;
    }
    key += '\n' + std::to_string(request.k()) + '\n' + std::to_string(request.threads());
    const uint64_t generation = generation_.load();
    {
      std::shared_lock<std::shared_mutex> lock(cache_mutex_);
      auto it = cache_.find(key);
      if (it != cache_.end() && it->second.generation == generation) {
        response.CopyFrom(it->second.response);
        how = ServeMetrics::Answer::kCached;
        return Status::ok();
      }
    }
    KILN_RETURN_IF_ERROR(query_best(request, response));
    how = ServeMetrics::Answer::kRead;
    const size_t bytes = key.size() + response.ByteSizeLong();
    std::unique_lock<std::shared_mutex> lock(cache_mutex_);
    if (cache_.size() >= kMaxCachedAnswers || cache_bytes_ + bytes > kMaxCachedBytes) {
      cache_.clear();
      cache_bytes_ = 0;
    }
    // Read at `generation` or later: it is stale once the generation moves on.
    auto [it, added] = cache_.insert_or_assign(std::move(key), CachedAnswer{generation, response});
    if (added) cache_bytes_ += bytes;
    return Status::ok();
  }

  /// Moves the generation on whenever another connection commits to the log (a `kiln tune`, an
  /// import, a job of this server), which retires every cached answer.
  void poll_for_changes() {
    std::optional<int64_t> seen;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      Result<int64_t> version = log_.data_version();
      if (version) seen = *version;
    }
    std::unique_lock<std::mutex> poll_lock(poll_mutex_);
    while (!poll_wake_.wait_for(poll_lock, kChangePollInterval, [this] { return stopping_; })) {
      Result<int64_t> version = [&] {
        std::lock_guard<std::mutex> lock(mutex_);
        return log_.data_version();
      }();
      if (!version) {
        ++generation_;  // cannot tell: cache nothing from before
        continue;
      }
      if (seen && *seen != *version) ++generation_;
      seen = *version;
    }
  }

  Status query_best(const pb::QueryBestRequest& request, pb::QueryBestResponse& response) {
    KILN_ASSIGN_OR_RETURN(core::Workload workload, core::parse_workload(request.workload()));
    KILN_ASSIGN_OR_RETURN(core::TargetKey key, key_of(request));
    if (request.k() < 0 || request.k() > 1000) {
      return invalid_argument("k must be between 1 and 1000 (0 means 1)");
    }
    if (request.threads() < 0 || request.threads() > core::kMaxRecordThreads) {
      return invalid_argument("threads must be between 0 (any) and " +
                              std::to_string(core::kMaxRecordThreads));
    }
    std::vector<core::TuningRecord> best;
    {
      std::lock_guard<std::mutex> lock(mutex_);  // a TuningLog serves one thread at a time
      KILN_ASSIGN_OR_RETURN(best, log_.best(workload, key, std::max(1, request.k())));
    }
    response.set_workload(workload.canonical());
    response.set_target(key.target);
    response.set_model(key.model);
    const double flops = workload.flops();
    for (const core::TuningRecord& record : best) {
      pb::BestRecord* out = response.add_records();
      out->mutable_config()->set_index(record.config_index);
      Result<nlohmann::json> knobs = parse_knobs(record.config_knobs);
      if (knobs) {
        for (const auto& [name, value] : knobs->items()) {
          if (value.is_number_integer()) (*out->mutable_config()->mutable_knobs())[name] = value;
        }
      }
      const double time_s = record.median_cost();
      out->set_time_s(time_s);
      out->set_gflops(time_s > 0 ? flops / time_s / 1e9 : 0);
      out->set_agent(record.agent);
      out->set_device(record.device);
      out->set_measured_at_unix_ms(record.measured_at_ms);
      out->set_threads(record.target.threads);
    }
    return Status::ok();
  }

  static Result<nlohmann::json> parse_knobs(const std::string& text) {
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return Status(StatusCode::kDataLoss, "bad knobs");
    return j;
  }

  Status list_workloads(const pb::ListWorkloadsRequest& request,
                        pb::ListWorkloadsResponse& response) {
    std::vector<core::WorkloadSummary> workloads;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      KILN_ASSIGN_OR_RETURN(workloads, log_.workloads(request.op()));
    }
    for (const core::WorkloadSummary& w : workloads) {
      pb::WorkloadSummary* out = response.add_workloads();
      out->set_workload(w.workload);
      out->set_op(w.op);
      out->set_records(w.records);
      out->set_valid(w.valid);
      out->set_targets(w.targets);
    }
    return Status::ok();
  }

  std::mutex mutex_;
  core::TuningLog log_;
  std::unique_ptr<JobManager> jobs_;
  const std::string token_;
  std::optional<core::TargetKey> host_key_;

  struct CachedAnswer {
    uint64_t generation = 0;
    pb::QueryBestResponse response;
  };
  std::shared_mutex cache_mutex_;
  std::unordered_map<std::string, CachedAnswer> cache_;
  size_t cache_bytes_ = 0;  // of its keys and answers, roughly; under cache_mutex_

  std::mutex watches_mutex_;
  std::map<std::string, int> open_watches_;  // by client, never zero
  std::atomic<uint64_t> generation_{0};

  std::shared_ptr<ServeMetrics> metrics_ = std::make_shared<ServeMetrics>([this] {
    std::map<std::string, int64_t> by_state;
    for (const JobStatus& job : jobs_->list()) ++by_state[std::string(job_state_name(job.state))];
    return by_state;
  });

  std::mutex poll_mutex_;
  std::condition_variable poll_wake_;
  bool stopping_ = false;
  std::thread poller_;  // last: it starts once everything above exists
};

}  // namespace

Result<std::unique_ptr<TuningService>> TuningService::create(const TuningServiceOptions& options) {
  KILN_ASSIGN_OR_RETURN(core::TuningLog log, core::TuningLog::open(options.db));
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<JobManager> jobs,
                        JobManager::open({.db = options.db,
                                          .models_dir = options.models_dir,
                                          .import_jobs_file = options.import_jobs_file,
                                          .tracker_token = options.token,
                                          .local_measurer = options.local_measurer}));
  return std::unique_ptr<TuningService>(
      new Service(std::move(log), std::move(jobs), options.token));
}

}  // namespace kiln::tuner
