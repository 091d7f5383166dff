#include "tuner/service/tuning_service.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "compiler_core/db/record.h"
#include "compiler_core/db/tuning_log.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"
#include "kiln/v1/tuning.grpc.pb.h"
#include "proto/kiln/grpc_status.h"

namespace kiln::tuner {
namespace {

namespace pb = kiln::v1;

/// How often the log is checked for commits of other connections; a QueryBest answer is at most
/// this much older than the latest commit.
constexpr std::chrono::milliseconds kChangePollInterval{5};
/// Answers kept; the cache starts over when it is full.
constexpr size_t kMaxCachedAnswers = 1 << 16;

class Service final : public pb::Tuning::CallbackService, public TuningService {
 public:
  Service(core::TuningLog log, std::string token)
      : log_(std::move(log)), token_(std::move(token)), poller_([this] { poll_for_changes(); }) {}

  ~Service() override {
    {
      std::lock_guard<std::mutex> lock(poll_mutex_);
      stopping_ = true;
    }
    poll_wake_.notify_all();
    poller_.join();
  }

  grpc::Service* service() override { return this; }

  grpc::ServerUnaryReactor* QueryBest(grpc::CallbackServerContext* context,
                                      const pb::QueryBestRequest* request,
                                      pb::QueryBestResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    grpc::Status s = check_bearer_token(*context, token_, "serve");
    if (s.ok()) s = to_grpc(cached_query_best(*request, *response));
    reactor->Finish(s);
    return reactor;
  }

  grpc::ServerUnaryReactor* ListWorkloads(grpc::CallbackServerContext* context,
                                          const pb::ListWorkloadsRequest* request,
                                          pb::ListWorkloadsResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    grpc::Status s = check_bearer_token(*context, token_, "serve");
    if (s.ok()) s = to_grpc(list_workloads(*request, *response));
    reactor->Finish(s);
    return reactor;
  }

 private:
  /// The key records of `request`'s target are stored under: as given when it names a model
  /// (or is no host target); else this server's CPU.
  Result<core::TargetKey> key_of(const pb::QueryBestRequest& request) {
    KILN_ASSIGN_OR_RETURN(core::Target target, core::parse_target(request.target()));
    if (!target.is_host || !request.model().empty()) {
      return core::TargetKey{target.str(), request.model()};
    }
    if (!target.cpu.empty() || !target.attrs.empty()) return core::make_target_key(target);
    std::lock_guard<std::mutex> lock(mutex_);
    if (!host_key_) {
      KILN_ASSIGN_OR_RETURN(core::TargetKey key, core::make_target_key(target));
      host_key_ = key;  // resolving reads /proc/cpuinfo: once
    }
    return *host_key_;
  }

  /// query_best through the cache of answers: every answer the log gave since its last change
  /// (in this process or another), by the request's exact strings. Only answers are cached,
  /// never errors.
  Status cached_query_best(const pb::QueryBestRequest& request, pb::QueryBestResponse& response) {
    std::string key = request.workload();
    for (const std::string* part : {&request.target(), &request.model()}) {
      key += '\n';
      key += *part;
    }
    key += '\n' + std::to_string(request.k());
    const uint64_t generation = generation_.load();
    {
      std::shared_lock<std::shared_mutex> lock(cache_mutex_);
      auto it = cache_.find(key);
      if (it != cache_.end() && it->second.generation == generation) {
        response.CopyFrom(it->second.response);
        return Status::ok();
      }
    }
    KILN_RETURN_IF_ERROR(query_best(request, response));
    std::unique_lock<std::shared_mutex> lock(cache_mutex_);
    if (cache_.size() >= kMaxCachedAnswers) cache_.clear();
    // Read at `generation` or later: it is stale once the generation moves on.
    cache_[std::move(key)] = {generation, response};
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
  const std::string token_;
  std::optional<core::TargetKey> host_key_;

  struct CachedAnswer {
    uint64_t generation = 0;
    pb::QueryBestResponse response;
  };
  std::shared_mutex cache_mutex_;
  std::unordered_map<std::string, CachedAnswer> cache_;
  std::atomic<uint64_t> generation_{0};

  std::mutex poll_mutex_;
  std::condition_variable poll_wake_;
  bool stopping_ = false;
  std::thread poller_;  // last: it starts once everything above exists
};

}  // namespace

Result<std::unique_ptr<TuningService>> TuningService::create(const TuningServiceOptions& options) {
  KILN_ASSIGN_OR_RETURN(core::TuningLog log, core::TuningLog::open(options.db));
  return std::unique_ptr<TuningService>(new Service(std::move(log), options.token));
}

}  // namespace kiln::tuner
