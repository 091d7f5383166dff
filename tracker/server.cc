#include "tracker/server.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "compiler_core/support/log.h"
#include "kiln/v1/tracker.grpc.pb.h"

namespace kiln::tracker {
namespace {

using grpc::ServerContext;
namespace pb = kiln::v1;

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

grpc::Status to_grpc(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk:
      return grpc::Status::OK;
    case StatusCode::kInvalidArgument:
    case StatusCode::kInvalidConfig:
      return {grpc::StatusCode::INVALID_ARGUMENT, s.message()};
    case StatusCode::kOutOfRange:
      return {grpc::StatusCode::OUT_OF_RANGE, s.message()};
    case StatusCode::kNotFound:
      return {grpc::StatusCode::NOT_FOUND, s.message()};
    case StatusCode::kAlreadyExists:
      return {grpc::StatusCode::ALREADY_EXISTS, s.message()};
    case StatusCode::kResourceExhausted:
      return {grpc::StatusCode::RESOURCE_EXHAUSTED, s.message()};
    case StatusCode::kFailedPrecondition:
      return {grpc::StatusCode::FAILED_PRECONDITION, s.message()};
    case StatusCode::kAborted:
      return {grpc::StatusCode::ABORTED, s.message()};
    case StatusCode::kUnavailable:
      return {grpc::StatusCode::UNAVAILABLE, s.message()};
    case StatusCode::kDataLoss:
      return {grpc::StatusCode::DATA_LOSS, s.message()};
    case StatusCode::kInternal:
      return {grpc::StatusCode::INTERNAL, s.message()};
  }
  return {grpc::StatusCode::INTERNAL, s.message()};
}

/// One connected agent.
struct Session {
  std::string agent_id;
  std::string device_key;
  std::string target;
  pb::DeviceFacts facts;
  int capacity = 1;
  ServerContext* context = nullptr;
  grpc::ServerReaderWriter<pb::TrackerMessage, pb::AgentMessage>* stream = nullptr;
  // Messages to the agent go through an outbox that one writer thread drains, so that no
  // thread that reads a stream ever blocks writing to another: with HTTP/2 flow control, a
  // reader blocked on a full window could stop the whole fleet.
  std::mutex outbox_mutex;
  std::condition_variable outbox_ready;
  std::deque<pb::TrackerMessage> outbox;
  bool closing = false;
  std::thread writer;
  // Guarded by the service's mutex:
  std::set<std::string> tasks;  ///< leased to it now
  Clock::time_point last_seen;
  bool lost = false;
};

/// The results one Submit call is waiting for.
struct Job {
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<pb::MeasureResult> results;
};

/// Figures for `kiln status`, kept after an agent leaves.
struct AgentRecord {
  std::string device_key, target, state;
  pb::DeviceFacts facts;
  int64_t done = 0, errors = 0;
};

class TrackerService final : public pb::Tracker::Service {
 public:
  explicit TrackerService(TrackerOptions options)
      : options_(std::move(options)), broker_(options_.broker) {}

  void start_reaper() {
    reaper_ = std::thread([this] { reap(); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      for (auto& [id, session] : sessions_) session->context->TryCancel();
    }
    reaper_wake_.notify_all();
    if (reaper_.joinable()) reaper_.join();
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [id, job] : jobs_by_task_) job->ready.notify_all();
  }

  grpc::Status Connect(
      ServerContext* context,
      grpc::ServerReaderWriter<pb::TrackerMessage, pb::AgentMessage>* stream) override {
    if (grpc::Status s = authenticate(context); !s.ok()) return s;
    pb::AgentMessage message;
    if (!stream->Read(&message)) return grpc::Status::OK;
    if (!message.has_register_()) {
      return {grpc::StatusCode::INVALID_ARGUMENT, "an agent's first message must be RegisterAgent"};
    }
    const pb::RegisterAgent& reg = message.register_();
    if (reg.agent_id().empty() || reg.device_key().empty()) {
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "RegisterAgent needs an agent_id and a device_key"};
    }
    auto session = std::make_shared<Session>();
    session->agent_id = reg.agent_id();
    session->device_key = reg.device_key();
    session->target = reg.target().canonical();
    session->facts = reg.facts();
    session->capacity = std::max(1, reg.capacity());
    session->context = context;
    session->stream = stream;
    session->last_seen = Clock::now();
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (stopping_) return {grpc::StatusCode::UNAVAILABLE, "the tracker is shutting down"};
      auto old = sessions_.find(session->agent_id);
      if (old != sessions_.end()) {
        // The same agent again (a reconnect the tracker has not noticed yet): the new stream
        // replaces the old one, whose tasks are leased again.
        std::shared_ptr<Session> previous = old->second;
        lose(lock, *previous);
        previous->context->TryCancel();
      }
      sessions_[session->agent_id] = session;
      AgentRecord& record = agents_[session->agent_id];
      record.device_key = session->device_key;
      record.target = session->target;
      record.facts = session->facts;
      record.state = "idle";
    }
    logger("tracker")->info("agent registered agent={} key={} target={} capacity={}",
                            session->agent_id, session->device_key, session->target,
                            session->capacity);
    session->writer = std::thread([session] { drain_outbox(*session); });
    pb::TrackerMessage hello;
    hello.mutable_registered()->set_agent_id(session->agent_id);
    hello.mutable_registered()->set_heartbeat_interval_s(
        std::chrono::duration<double>(options_.heartbeat_interval).count());
    write(*session, std::move(hello));
    dispatch(session->device_key);

    while (stream->Read(&message)) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        session->last_seen = Clock::now();
      }
      if (message.has_result()) on_result(*session, message.result());
    }
    {
      std::lock_guard<std::mutex> lock(session->outbox_mutex);
      session->closing = true;
    }
    session->outbox_ready.notify_all();
    session->writer.join();  // the stream must outlive its writes
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (!session->lost) {
        logger("tracker")->warn("agent disconnected agent={} key={} leased={}", session->agent_id,
                                session->device_key, session->tasks.size());
        lose(lock, *session);
      }
      auto it = sessions_.find(session->agent_id);
      if (it != sessions_.end() && it->second == session) sessions_.erase(it);
    }
    dispatch(session->device_key);
    return grpc::Status::OK;
  }

  grpc::Status Submit(ServerContext* context, const pb::SubmitRequest* request,
                      grpc::ServerWriter<pb::MeasureResult>* writer) override {
    if (grpc::Status s = authenticate(context); !s.ok()) return s;
    if (request->job_id().empty() || request->device_key().empty()) {
      return {grpc::StatusCode::INVALID_ARGUMENT, "a submission needs a job_id and a device_key"};
    }
    std::set<std::string> ids;
    for (const pb::MeasureTask& task : request->tasks()) {
      if (task.task_id().empty()) {
        return {grpc::StatusCode::INVALID_ARGUMENT, "every task needs a task_id"};
      }
      if (!ids.insert(task.task_id()).second) {
        return {grpc::StatusCode::INVALID_ARGUMENT,
                "task_id " + task.task_id() + " appears twice in the submission"};
      }
      if (options_.validate) {
        Status valid = options_.validate(task);
        if (!valid.is_ok()) {
          return to_grpc(Status(valid.code(), "task " + task.task_id() + ": " + valid.message()));
        }
      }
    }
    auto job = std::make_shared<Job>();
    size_t remaining = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return {grpc::StatusCode::UNAVAILABLE, "the tracker is shutting down"};
      for (const pb::MeasureTask& task : request->tasks()) {
        TaskSpec spec;
        spec.task_id = task.task_id();
        spec.job_id = request->job_id();
        spec.device_key = request->device_key();
        spec.payload = task.SerializeAsString();
        spec.lease = task.options().timeout_s() > 0
                         ? std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(2 * task.options().timeout_s() + 5))
                         : Clock::duration(options_.default_lease);
        Status queued = broker_.submit(std::move(spec));
        if (!queued.is_ok()) {
          broker_.cancel_job(request->job_id());
          for (const pb::MeasureTask& t : request->tasks()) jobs_by_task_.erase(t.task_id());
          return to_grpc(queued);
        }
        jobs_by_task_[task.task_id()] = job;
        ++remaining;
      }
    }
    logger("tracker")->debug("job={} key={} tasks={} queued", request->job_id(),
                             request->device_key(), remaining);
    dispatch(request->device_key());

    while (remaining > 0) {
      pb::MeasureResult result;
      {
        std::unique_lock<std::mutex> lock(job->mutex);
        job->ready.wait_for(lock, std::chrono::milliseconds(100),
                            [&] { return !job->results.empty(); });
        if (job->results.empty()) {
          if (context->IsCancelled() || is_stopping()) break;
          continue;
        }
        result = std::move(job->results.front());
        job->results.pop_front();
      }
      --remaining;
      if (!writer->Write(result)) break;
    }
    if (remaining > 0) {
      // The client went away (or the tracker stops): its queued tasks are dropped, and results
      // of the leased ones have nobody to go to.
      std::lock_guard<std::mutex> lock(mutex_);
      size_t dropped = broker_.cancel_job(request->job_id());
      for (const pb::MeasureTask& t : request->tasks()) jobs_by_task_.erase(t.task_id());
      logger("tracker")->info("job={} ended early: {} results undelivered, {} tasks dropped",
                              request->job_id(), remaining, dropped);
      if (is_stopping_locked()) {
        return {grpc::StatusCode::UNAVAILABLE, "the tracker is shutting down"};
      }
      return {grpc::StatusCode::CANCELLED, "the client cancelled the submission"};
    }
    return grpc::Status::OK;
  }

  grpc::Status GetStatus(ServerContext* context, const pb::StatusRequest*,
                         pb::StatusResponse* response) override {
    if (grpc::Status s = authenticate(context); !s.ok()) return s;
    std::lock_guard<std::mutex> lock(mutex_);
    std::map<std::string, int> agents_per_key;
    for (const auto& [id, record] : agents_) {
      pb::AgentStatus* a = response->add_agents();
      a->set_agent_id(id);
      a->set_device_key(record.device_key);
      a->set_target(record.target);
      auto live = sessions_.find(id);
      const bool connected = live != sessions_.end() && !live->second->lost;
      a->set_state(!connected ? "lost" : live->second->tasks.empty() ? "idle" : "busy");
      a->set_tasks_done(record.done);
      a->set_errors(record.errors);
      *a->mutable_facts() = record.facts;
      if (connected) ++agents_per_key[record.device_key];
    }
    for (const auto& [key, stats] : broker_.stats()) {
      pb::KeyStatus* k = response->add_keys();
      k->set_device_key(key);
      k->set_queued(int64_t(stats.queued));
      k->set_leased(int64_t(stats.leased));
      k->set_agents(agents_per_key[key]);
    }
    return grpc::Status::OK;
  }

 private:
  grpc::Status authenticate(ServerContext* context) const {
    if (options_.token.empty()) return grpc::Status::OK;
    const auto& metadata = context->client_metadata();
    auto it = metadata.find("authorization");
    const std::string expected = "Bearer " + options_.token;
    if (it == metadata.end() || std::string(it->second.data(), it->second.size()) != expected) {
      logger("tracker")->warn("refused a call from {}: {}", context->peer(),
                              it == metadata.end() ? "no bearer token" : "wrong bearer token");
      return {grpc::StatusCode::UNAUTHENTICATED,
              "a valid bearer token is required (--token-file on the client and the tracker)"};
    }
    return grpc::Status::OK;
  }

  /// Lock-free: Submit asks while it holds its job's mutex, which deliver() takes under mutex_.
  bool is_stopping() const { return stopping_; }
  bool is_stopping_locked() const { return stopping_; }

  static void write(Session& session, pb::TrackerMessage message) {
    {
      std::lock_guard<std::mutex> lock(session.outbox_mutex);
      if (session.closing) return;
      session.outbox.push_back(std::move(message));
    }
    session.outbox_ready.notify_one();
  }

  /// The session's writer thread. A failed write ends the session's stream: its reader then
  /// takes the agent for lost.
  static void drain_outbox(Session& session) {
    while (true) {
      pb::TrackerMessage message;
      {
        std::unique_lock<std::mutex> lock(session.outbox_mutex);
        session.outbox_ready.wait(lock, [&] { return session.closing || !session.outbox.empty(); });
        if (session.outbox.empty()) return;
        message = std::move(session.outbox.front());
        session.outbox.pop_front();
      }
      if (!session.stream->Write(message)) {
        session.context->TryCancel();
        std::lock_guard<std::mutex> lock(session.outbox_mutex);
        session.closing = true;
        session.outbox.clear();
        return;
      }
    }
  }

  /// Hands a result to the job waiting for it. Mutex held.
  void deliver(const std::string& task_id, pb::MeasureResult result) {
    auto it = jobs_by_task_.find(task_id);
    if (it == jobs_by_task_.end()) return;  // its client went away
    std::shared_ptr<Job> job = it->second;
    jobs_by_task_.erase(it);
    {
      std::lock_guard<std::mutex> lock(job->mutex);
      job->results.push_back(std::move(result));
    }
    job->ready.notify_one();
  }

  /// Takes `session` for lost: its leases go back to the broker; tasks out of attempts end
  /// as DEVICE_LOST. Mutex held.
  void lose(std::unique_lock<std::mutex>&, Session& session) {
    session.lost = true;
    agents_[session.agent_id].state = "lost";
    for (const Finished& f : broker_.release_agent(session.agent_id)) account_taken_back(f);
    session.tasks.clear();
  }

  /// A lease the broker took back. Mutex held.
  void account_taken_back(const Finished& f) {
    auto s = sessions_.find(f.agent_id);
    if (s != sessions_.end()) s->second->tasks.erase(f.task_id);
    if (!f.device_lost) {
      logger("tracker")->warn("lease re-queued task={} agent={} attempt={}", f.task_id, f.agent_id,
                              f.attempts);
      return;
    }
    logger("tracker")->warn("task={} device lost after {} attempts", f.task_id, f.attempts);
    pb::MeasureResult lost;
    lost.set_task_id(f.task_id);
    lost.set_error_code(pb::MEASURE_ERROR_CODE_DEVICE_LOST);
    lost.set_error_message("every agent that held the task was lost (" +
                           std::to_string(f.attempts) + " attempts)");
    lost.set_agent(f.agent_id);
    lost.set_measured_at_unix_ms(unix_ms());
    deliver(f.task_id, std::move(lost));
  }

  void on_result(Session& session, const pb::MeasureResult& result) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      Result<Finished> done = broker_.complete(session.agent_id, result.task_id());
      if (!done.is_ok()) {
        // A duplicate, or a result for a lease that moved on: the task is counted once.
        logger("tracker")->debug("dropped result task={} agent={}: {}", result.task_id(),
                                 session.agent_id, done.status().message());
        return;
      }
      session.tasks.erase(result.task_id());
      AgentRecord& record = agents_[session.agent_id];
      ++record.done;
      if (result.error_code() != pb::MEASURE_ERROR_CODE_OK) ++record.errors;
      pb::MeasureResult copy = result;
      copy.set_agent(session.agent_id);
      deliver(result.task_id(), std::move(copy));
    }
    dispatch(session.device_key);
  }

  /// Leases queued tasks of `key` to its agents with room, and sends them.
  void dispatch(const std::string& key) {
    std::vector<std::pair<std::shared_ptr<Session>, Assignment>> sends;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      const Clock::time_point now = Clock::now();
      bool progress = true, queue_empty = false;
      while (progress && !queue_empty) {  // one task per agent a round: agents share evenly
        progress = false;
        for (auto& [id, session] : sessions_) {
          if (session->lost || session->device_key != key ||
              int(session->tasks.size()) >= session->capacity) {
            continue;
          }
          std::optional<Assignment> a = broker_.lease(session->agent_id, key, now);
          if (!a) {
            queue_empty = true;
            break;
          }
          session->tasks.insert(a->task_id);
          sends.emplace_back(session, std::move(*a));
          progress = true;
        }
      }
    }
    send(sends);
  }

  void send(std::vector<std::pair<std::shared_ptr<Session>, Assignment>>& sends) {
    for (auto& [session, a] : sends) {
      pb::TrackerMessage message;
      pb::TaskAssignment* task = message.mutable_task();
      task->mutable_task()->ParseFromString(a.payload);
      task->set_attempt(a.attempt);
      task->set_lease_s(std::chrono::duration<double>(a.deadline - Clock::now()).count());
      write(*session, std::move(message));
    }
    sends.clear();
  }

  /// Expires leases and takes silent agents for lost, a few times a second.
  void reap() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      reaper_wake_.wait_for(lock, std::chrono::milliseconds(100));
      if (stopping_) break;
      const Clock::time_point now = Clock::now();
      std::set<std::string> keys;
      for (const Finished& f : broker_.expire(now)) {
        account_taken_back(f);
        keys.insert(live_key_of(f.agent_id));
      }
      for (auto& [id, session] : sessions_) {
        if (session->lost || now - session->last_seen < options_.heartbeat_timeout) continue;
        logger("tracker")->warn(
            "agent lost agent={} key={}: no heartbeat for {} ms", id, session->device_key,
            std::chrono::duration_cast<std::chrono::milliseconds>(now - session->last_seen)
                .count());
        lose(lock, *session);
        session->context->TryCancel();
        keys.insert(session->device_key);
      }
      lock.unlock();
      for (const std::string& key : keys) {
        if (!key.empty()) dispatch(key);
      }
      lock.lock();
    }
  }

  std::string live_key_of(const std::string& agent_id) const {
    auto it = agents_.find(agent_id);
    return it == agents_.end() ? "" : it->second.device_key;
  }

  TrackerOptions options_;
  std::mutex mutex_;
  Broker broker_;
  std::unordered_map<std::string, std::shared_ptr<Session>> sessions_;
  std::map<std::string, AgentRecord> agents_;
  std::unordered_map<std::string, std::shared_ptr<Job>> jobs_by_task_;
  std::atomic<bool> stopping_{false};  ///< written under mutex_, read anywhere
  std::thread reaper_;
  std::condition_variable reaper_wake_;
};

class GrpcTrackerServer : public TrackerServer {
 public:
  GrpcTrackerServer(std::unique_ptr<TrackerService> service, std::unique_ptr<grpc::Server> server,
                    int port)
      : service_(std::move(service)), server_(std::move(server)), port_(port) {}
  ~GrpcTrackerServer() override { shutdown(); }

  int port() const override { return port_; }
  void wait() override { server_->Wait(); }
  void shutdown() override {
    if (shut_down_.exchange(true)) return;
    service_->stop();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }

 private:
  std::unique_ptr<TrackerService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_;
  std::atomic<bool> shut_down_{false};
};

}  // namespace

Result<std::unique_ptr<TrackerServer>> TrackerServer::start(TrackerOptions options) {
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!options.tls_cert_pem.empty() || !options.tls_key_pem.empty()) {
    if (options.tls_cert_pem.empty() || options.tls_key_pem.empty()) {
      return invalid_argument("TLS needs both a certificate and its key (--tls-cert, --tls-key)");
    }
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({options.tls_key_pem, options.tls_cert_pem});
    credentials = grpc::SslServerCredentials(ssl);
  }
  const std::string listen = options.listen;
  auto service = std::make_unique<TrackerService>(std::move(options));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, credentials, &port);
  builder.RegisterService(service.get());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    return Status(StatusCode::kUnavailable,
                  "cannot listen on '" + listen + "'; pass a free host:port to --listen");
  }
  service->start_reaper();
  return std::unique_ptr<TrackerServer>(
      new GrpcTrackerServer(std::move(service), std::move(server), port));
}

}  // namespace kiln::tracker
