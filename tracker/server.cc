#include "tracker/server.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "compiler_core/support/log.h"
#include "kiln/v1/tracker.grpc.pb.h"
#include "proto/kiln/grpc_status.h"

namespace kiln::tracker {
namespace {

namespace pb = kiln::v1;

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class TrackerService;

/// Figures for `kiln status`, kept after an agent leaves.
struct AgentRecord {
  std::string device_key, target, state;
  pb::DeviceFacts facts;
  int64_t done = 0, errors = 0;
};

/// One connected agent: the reactor of its Connect stream. Reactions run on gRPC's callback
/// threads and never block; at most one write is in flight, the rest wait in an outbox.
class AgentSession final : public grpc::ServerBidiReactor<pb::AgentMessage, pb::TrackerMessage>,
                           public std::enable_shared_from_this<AgentSession> {
 public:
  AgentSession(TrackerService* service, grpc::CallbackServerContext* context)
      : service_(service), context_(context) {}

  /// Starts reading; the session keeps itself alive until gRPC is done with it.
  void start() {
    self_ = shared_from_this();
    StartRead(&in_);
  }

  /// Queues a message to the agent (dropped once the stream ends).
  void send(pb::TrackerMessage message) {
    std::unique_lock<std::recursive_mutex> lock(mutex_);
    if (finishing_) return;
    if (write_in_flight_) {
      outbox_.push_back(std::move(message));
      return;
    }
    writing_ = std::move(message);
    write_in_flight_ = true;
    StartWrite(&writing_);
  }

  /// Ends the stream with `status`, once the write in flight (if any) is done. A write that
  /// cannot finish (an agent that stopped reading) is cancelled.
  void end(grpc::Status status) {
    std::unique_lock<std::recursive_mutex> lock(mutex_);
    if (finishing_) return;
    finishing_ = true;
    final_ = std::move(status);
    outbox_.clear();
    if (write_in_flight_) {
      context_->TryCancel();  // OnDone cannot come before the write completes: safe
      return;
    }
    finished_ = true;
    Finish(final_);
  }

  void OnReadDone(bool ok) override;

  void OnWriteDone(bool ok) override {
    std::unique_lock<std::recursive_mutex> lock(mutex_);
    write_in_flight_ = false;
    if (!ok && !finishing_) {
      // The stream broke: the pending read fails too and ends the session.
      outbox_.clear();
      context_->TryCancel();
      return;
    }
    if (!finishing_ && !outbox_.empty()) {
      writing_ = std::move(outbox_.front());
      outbox_.pop_front();
      write_in_flight_ = true;
      StartWrite(&writing_);
      return;
    }
    if (finishing_ && !finished_) {
      finished_ = true;
      Finish(final_);
    }
  }

  void OnDone() override {
    std::shared_ptr<AgentSession> self = std::move(self_);  // may be the last reference
  }

  // Set at registration, then read-only:
  std::string agent_id, device_key, target;
  pb::DeviceFacts facts;
  int capacity = 1;
  bool registered = false;
  // Guarded by the service's mutex:
  AgentRecord* record = nullptr;          ///< its figures for `kiln status`
  std::unordered_set<std::string> tasks;  ///< leased to it now
  Clock::time_point last_seen;
  bool lost = false;

 private:
  TrackerService* service_;
  grpc::CallbackServerContext* context_;
  pb::AgentMessage in_;
  std::recursive_mutex mutex_;  // a reaction may run inline from a call made under it
  std::deque<pb::TrackerMessage> outbox_;
  pb::TrackerMessage writing_;
  bool write_in_flight_ = false, finishing_ = false, finished_ = false;
  grpc::Status final_;
  std::shared_ptr<AgentSession> self_;
};

/// One Submit call: the reactor that streams its results back as they arrive, several a message
/// when they arrive faster than the client reads.
class JobStream final : public grpc::ServerWriteReactor<pb::SubmitResponse>,
                        public std::enable_shared_from_this<JobStream> {
 public:
  JobStream(TrackerService* service, std::string job_id, size_t tasks)
      : service_(service), job_id_(std::move(job_id)), remaining_(tasks) {}

  void start() { self_ = shared_from_this(); }

  void deliver(pb::MeasureResult result) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (finishing_) return;
    pending_.push_back(std::move(result));
    write_or_finish(lock);
  }

  /// Ends the call early (the tracker stops).
  void end(grpc::Status status) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (finishing_) return;
    finishing_ = true;
    final_ = std::move(status);
    write_or_finish(lock);
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock<std::mutex> lock(mutex_);
    write_in_flight_ = false;
    if (!ok && !finishing_) {
      finishing_ = true;
      final_ = {grpc::StatusCode::CANCELLED, "the client went away"};
    }
    write_or_finish(lock);
  }

  void OnCancel() override;

  void OnDone() override { std::shared_ptr<JobStream> self = std::move(self_); }

  const std::string& job_id() const { return job_id_; }

 private:
  /// Sends what is pending, or finishes when nothing is left. Lock held.
  void write_or_finish(std::unique_lock<std::mutex>&) {
    if (write_in_flight_ || finished_) return;
    if (!finishing_ && !pending_.empty()) {
      writing_.Clear();
      for (pb::MeasureResult& r : pending_) *writing_.add_results() = std::move(r);
      remaining_ -= std::min(remaining_, pending_.size());
      pending_.clear();
      write_in_flight_ = true;
      StartWrite(&writing_);
      return;
    }
    if (finishing_ || remaining_ == 0) {
      finished_ = true;
      Finish(finishing_ ? final_ : grpc::Status::OK);
    }
  }

  TrackerService* service_;
  const std::string job_id_;
  std::mutex mutex_;
  size_t remaining_;
  std::vector<pb::MeasureResult> pending_;
  pb::SubmitResponse writing_;
  bool write_in_flight_ = false, finishing_ = false, finished_ = false;
  grpc::Status final_;
  std::shared_ptr<JobStream> self_;
};

/// A reactor that refuses a call at once.
template <class Base>
class Refusal final : public Base {
 public:
  explicit Refusal(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

/// What a step decided under the service's mutex, sent after it is released: gRPC calls are
/// never made under the mutex.
struct Outgoing {
  std::vector<std::pair<std::shared_ptr<JobStream>, pb::MeasureResult>> results;
  std::vector<std::pair<std::shared_ptr<AgentSession>, Assignment>> tasks;

  void send() {
    for (auto& [job, result] : results) job->deliver(std::move(result));
    for (auto& [session, a] : tasks) {
      pb::TrackerMessage message;
      pb::TaskAssignment* task = message.mutable_task();
      task->mutable_task()->ParseFromString(a.payload);
      task->set_attempt(a.attempt);
      task->set_lease_s(std::chrono::duration<double>(a.deadline - Clock::now()).count());
      session->send(std::move(message));
    }
    results.clear();
    tasks.clear();
  }
};

class TrackerService final : public pb::Tracker::CallbackService {
 public:
  explicit TrackerService(TrackerOptions options)
      : options_(std::move(options)), broker_(options_.broker) {}

  void start_reaper() {
    reaper_ = std::thread([this] { reap(); });
  }

  /// Ends every stream and call; the server's shutdown then waits for them.
  void stop() {
    std::vector<std::shared_ptr<AgentSession>> sessions;
    std::vector<std::shared_ptr<JobStream>> jobs;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      for (auto& [id, session] : sessions_) sessions.push_back(session);
      for (auto& [stream, job] : jobs_) jobs.push_back(job.stream);
    }
    reaper_wake_.notify_all();
    if (reaper_.joinable()) reaper_.join();
    const grpc::Status unavailable(grpc::StatusCode::UNAVAILABLE, "the tracker is shutting down");
    for (auto& session : sessions) session->end(unavailable);
    for (auto& job : jobs) job->end(unavailable);
  }

  grpc::ServerBidiReactor<pb::AgentMessage, pb::TrackerMessage>* Connect(
      grpc::CallbackServerContext* context) override {
    if (grpc::Status s = authenticate(context); !s.ok()) {
      return new Refusal<grpc::ServerBidiReactor<pb::AgentMessage, pb::TrackerMessage>>(s);
    }
    auto session = std::make_shared<AgentSession>(this, context);
    session->start();
    return session.get();
  }

  /// The first message of a session. OK to go on reading.
  grpc::Status on_register(const std::shared_ptr<AgentSession>& session,
                           const pb::AgentMessage& message) {
    if (!message.has_register_()) {
      return {grpc::StatusCode::INVALID_ARGUMENT, "an agent's first message must be RegisterAgent"};
    }
    const pb::RegisterAgent& reg = message.register_();
    if (reg.agent_id().empty() || reg.device_key().empty()) {
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "RegisterAgent needs an agent_id and a device_key"};
    }
    session->agent_id = reg.agent_id();
    session->device_key = reg.device_key();
    session->target = reg.target().canonical();
    session->facts = reg.facts();
    session->capacity = std::max(1, reg.capacity());
    std::shared_ptr<AgentSession> previous;
    Outgoing out;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return {grpc::StatusCode::UNAVAILABLE, "the tracker is shutting down"};
      session->last_seen = Clock::now();
      session->registered = true;
      auto old = sessions_.find(session->agent_id);
      if (old != sessions_.end()) {
        // The same agent again (a reconnect the tracker has not noticed yet): the new stream
        // replaces the old one, whose tasks are leased again.
        previous = old->second;
        lose(*previous, out);
      }
      sessions_[session->agent_id] = session;
      AgentRecord& record = agents_[session->agent_id];
      session->record = &record;
      record.device_key = session->device_key;
      record.target = session->target;
      record.facts = session->facts;
      record.state = "idle";
    }
    if (previous) previous->end({grpc::StatusCode::ABORTED, "the agent connected again"});
    logger("tracker")->info("agent registered agent={} key={} target={} capacity={}",
                            session->agent_id, session->device_key, session->target,
                            session->capacity);
    pb::TrackerMessage hello;
    hello.mutable_registered()->set_agent_id(session->agent_id);
    hello.mutable_registered()->set_heartbeat_interval_s(
        std::chrono::duration<double>(options_.heartbeat_interval).count());
    session->send(std::move(hello));
    {
      // Its slots open once the welcome is on its way: no task overtakes it.
      std::lock_guard<std::mutex> lock(mutex_);
      if (!session->lost) {
        std::deque<std::shared_ptr<AgentSession>>& slots = free_slots_[session->device_key];
        for (int i = 0; i < session->capacity; ++i) slots.push_back(session);
      }
      dispatch(session->device_key, out);
    }
    out.send();
    return grpc::Status::OK;
  }

  /// A heartbeat or a result.
  void on_message(AgentSession& session, const pb::AgentMessage& message) {
    Outgoing out;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      session.last_seen = Clock::now();
      if (message.has_result() && !session.lost) on_result(session, message.result(), out);
    }
    out.send();
  }

  /// The agent's stream ended (it closed, broke, or was ended by the tracker).
  void on_disconnect(AgentSession& session) {
    Outgoing out;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!session.registered) return;
      if (!session.lost) {
        logger("tracker")->warn("agent disconnected agent={} key={} leased={}", session.agent_id,
                                session.device_key, session.tasks.size());
        lose(session, out);
      }
      auto it = sessions_.find(session.agent_id);
      if (it != sessions_.end() && it->second.get() == &session) sessions_.erase(it);
    }
    out.send();
  }

  grpc::ServerWriteReactor<pb::SubmitResponse>* Submit(grpc::CallbackServerContext* context,
                                                       const pb::SubmitRequest* request) override {
    using Refused = Refusal<grpc::ServerWriteReactor<pb::SubmitResponse>>;
    if (grpc::Status s = authenticate(context); !s.ok()) return new Refused(s);
    if (request->job_id().empty() || request->device_key().empty()) {
      return new Refused(
          {grpc::StatusCode::INVALID_ARGUMENT, "a submission needs a job_id and a device_key"});
    }
    std::unordered_set<std::string> ids;
    for (const pb::MeasureTask& task : request->tasks()) {
      if (task.task_id().empty()) {
        return new Refused({grpc::StatusCode::INVALID_ARGUMENT, "every task needs a task_id"});
      }
      if (!ids.insert(task.task_id()).second) {
        return new Refused({grpc::StatusCode::INVALID_ARGUMENT,
                            "task_id " + task.task_id() + " appears twice in the submission"});
      }
      if (options_.validate) {
        Status valid = options_.validate(task);
        if (!valid.is_ok()) {
          return new Refused(
              to_grpc(Status(valid.code(), "task " + task.task_id() + ": " + valid.message())));
        }
      }
    }
    auto job = std::make_shared<JobStream>(this, request->job_id(), size_t(request->tasks_size()));
    job->start();
    Outgoing out;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) {
        job->end({grpc::StatusCode::UNAVAILABLE, "the tracker is shutting down"});
        return job.get();
      }
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
          job->end(to_grpc(queued));
          return job.get();
        }
        jobs_by_task_[task.task_id()] = job;
      }
      if (request->tasks().empty()) {
        job->end(grpc::Status::OK);
        return job.get();
      }
      LiveJob& live = jobs_[job.get()];
      live.stream = job;
      live.left = size_t(request->tasks_size());
      for (const pb::MeasureTask& task : request->tasks()) live.task_ids.push_back(task.task_id());
      dispatch(request->device_key(), out);
    }
    logger("tracker")->debug("job={} key={} tasks={} queued", request->job_id(),
                             request->device_key(), request->tasks_size());
    out.send();
    return job.get();
  }

  /// The client of `job` went away: its queued tasks are dropped, and results of the leased
  /// ones have nobody to go to.
  void on_job_cancelled(JobStream& job) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = jobs_.find(&job);
    if (it == jobs_.end()) return;
    size_t dropped = broker_.cancel_job(job.job_id());
    for (const std::string& task_id : it->second.task_ids) jobs_by_task_.erase(task_id);
    jobs_.erase(it);
    logger("tracker")->info("job={} cancelled by its client: {} queued tasks dropped", job.job_id(),
                            dropped);
  }

  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context,
                                      const pb::StatusRequest*,
                                      pb::StatusResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    if (grpc::Status s = authenticate(context); !s.ok()) {
      reactor->Finish(s);
      return reactor;
    }
    {
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
    }
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  grpc::Status authenticate(grpc::CallbackServerContext* context) const {
    return check_bearer_token(*context, options_.token, "tracker");
  }

  /// Hands a result to the job waiting for it. Mutex held.
  void deliver(const std::string& task_id, pb::MeasureResult result, Outgoing& out) {
    auto it = jobs_by_task_.find(task_id);
    if (it == jobs_by_task_.end()) return;  // its client went away
    std::shared_ptr<JobStream> job = std::move(it->second);
    jobs_by_task_.erase(it);
    auto live = jobs_.find(job.get());
    if (live != jobs_.end() && --live->second.left == 0) jobs_.erase(live);
    out.results.emplace_back(std::move(job), std::move(result));
  }

  /// Takes `session` for lost: its leases go back to the broker; tasks out of attempts end
  /// as DEVICE_LOST. Mutex held.
  void lose(AgentSession& session, Outgoing& out) {
    session.lost = true;
    session.record->state = "lost";
    for (const Finished& f : broker_.release_agent(session.agent_id)) account_taken_back(f, out);
    session.tasks.clear();
    auto slots = free_slots_.find(session.device_key);
    if (slots != free_slots_.end()) {
      std::erase_if(slots->second, [&](const auto& s) { return s.get() == &session; });
    }
    dispatch(session.device_key, out);
  }

  /// A lease the broker took back. Mutex held.
  void account_taken_back(const Finished& f, Outgoing& out) {
    auto s = sessions_.find(f.agent_id);
    if (s != sessions_.end() && s->second->tasks.erase(f.task_id) && !s->second->lost) {
      free_slots_[s->second->device_key].push_back(s->second);
    }
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
    deliver(f.task_id, std::move(lost), out);
  }

  /// Mutex held.
  void on_result(AgentSession& session, const pb::MeasureResult& result, Outgoing& out) {
    Result<Finished> done = broker_.complete(session.agent_id, result.task_id());
    if (!done.is_ok()) {
      // A duplicate, or a result for a lease that moved on: the task is counted once.
      logger("tracker")->debug("dropped result task={} agent={}: {}", result.task_id(),
                               session.agent_id, done.status().message());
      return;
    }
    if (session.tasks.erase(result.task_id())) {
      free_slots_[session.device_key].push_back(session.shared_from_this());
    }
    ++session.record->done;
    if (result.error_code() != pb::MEASURE_ERROR_CODE_OK) ++session.record->errors;
    pb::MeasureResult copy = result;
    copy.set_agent(session.agent_id);
    deliver(result.task_id(), std::move(copy), out);
    dispatch(session.device_key, out);
  }

  /// Leases queued tasks of `key` to its agents' free slots, in turn. Mutex held.
  void dispatch(const std::string& key, Outgoing& out) {
    if (stopping_) return;
    auto it = free_slots_.find(key);
    if (it == free_slots_.end()) return;
    std::deque<std::shared_ptr<AgentSession>>& slots = it->second;
    const Clock::time_point now = Clock::now();
    while (!slots.empty()) {
      std::shared_ptr<AgentSession>& session = slots.front();
      if (session->lost || int(session->tasks.size()) >= session->capacity) {
        slots.pop_front();
        continue;
      }
      // Submitted tasks carry no requirement yet: any agent of the key runs them.
      std::optional<Assignment> a = broker_.lease(session->agent_id, key, Capability{}, now);
      if (!a) return;
      session->tasks.insert(a->task_id);
      out.tasks.emplace_back(std::move(session), std::move(*a));
      slots.pop_front();
    }
  }

  /// Expires leases and takes silent agents for lost, a few times a second.
  void reap() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      reaper_wake_.wait_for(lock, std::chrono::milliseconds(100));
      if (stopping_) break;
      const Clock::time_point now = Clock::now();
      Outgoing out;
      std::set<std::string> keys;
      for (const Finished& f : broker_.expire(now)) {
        account_taken_back(f, out);
        keys.insert(live_key_of(f.agent_id));
      }
      std::vector<std::shared_ptr<AgentSession>> silent;
      for (auto& [id, session] : sessions_) {
        if (session->lost || now - session->last_seen < options_.heartbeat_timeout) continue;
        logger("tracker")->warn(
            "agent lost agent={} key={}: no heartbeat for {} ms", id, session->device_key,
            std::chrono::duration_cast<std::chrono::milliseconds>(now - session->last_seen)
                .count());
        lose(*session, out);
        silent.push_back(session);
      }
      for (const std::string& key : keys) {
        if (!key.empty()) dispatch(key, out);
      }
      lock.unlock();
      out.send();
      for (auto& session : silent) {
        session->end({grpc::StatusCode::UNAVAILABLE, "no heartbeat within the timeout"});
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
  std::unordered_map<std::string, std::shared_ptr<AgentSession>> sessions_;
  /// Per device key, one entry per free slot of a live agent, in the order they freed.
  std::unordered_map<std::string, std::deque<std::shared_ptr<AgentSession>>> free_slots_;
  std::map<std::string, AgentRecord> agents_;
  std::unordered_map<std::string, std::shared_ptr<JobStream>> jobs_by_task_;
  struct LiveJob {
    std::shared_ptr<JobStream> stream;
    size_t left = 0;  ///< results still to come
    std::vector<std::string> task_ids;
  };
  std::unordered_map<const JobStream*, LiveJob> jobs_;  ///< submissions still streaming
  bool stopping_ = false;
  std::thread reaper_;
  std::condition_variable reaper_wake_;
};

void AgentSession::OnReadDone(bool ok) {
  if (!ok) {
    service_->on_disconnect(*this);
    end(grpc::Status::OK);
    return;
  }
  if (!registered) {
    grpc::Status s = service_->on_register(shared_from_this(), in_);
    if (!s.ok()) {
      end(s);
      return;
    }
  } else {
    service_->on_message(*this, in_);
  }
  StartRead(&in_);
}

void JobStream::OnCancel() {
  service_->on_job_cancelled(*this);
  end({grpc::StatusCode::CANCELLED, "the client cancelled the submission"});
}

class Host final : public TrackerHost {
 public:
  explicit Host(TrackerOptions options) : service_(std::move(options)) {}
  grpc::Service* service() override { return &service_; }
  void start() override { service_.start_reaper(); }
  void stop() override { service_.stop(); }

 private:
  TrackerService service_;
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

std::unique_ptr<TrackerHost> TrackerHost::create(TrackerOptions options) {
  return std::make_unique<Host>(std::move(options));
}

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
