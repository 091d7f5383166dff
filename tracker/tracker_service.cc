#include "tracker/tracker_service_internal.h"

#include <algorithm>
#include <chrono>
#include <unordered_set>

#include "compiler_core/support/log.h"
#include "proto/kiln/grpc_status.h"

namespace kiln::tracker::internal {

namespace pb = kiln::v1;

namespace {

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void Outgoing::send() {
  for (auto& [submission, result] : results) submission->deliver(std::move(result));
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

TrackerService::TrackerService(TrackerOptions options)
    : options_(std::move(options)),
      broker_(options_.broker),
      reaper_(std::chrono::milliseconds(100), [this] { reap(); }) {}

void TrackerService::start_reaper() { reaper_.start(); }

void TrackerService::stop() {
  std::vector<std::shared_ptr<AgentSession>> sessions;
  std::vector<std::shared_ptr<Submission>> submissions;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    for (auto& [id, session] : sessions_) sessions.push_back(session);
    for (auto& [stream, live] : submissions_) submissions.push_back(live.stream);
  }
  reaper_.stop();
  const grpc::Status unavailable(grpc::StatusCode::UNAVAILABLE, "the tracker is shutting down");
  for (auto& session : sessions) session->end(unavailable);
  for (auto& submission : submissions) submission->end(unavailable);
}

grpc::ServerBidiReactor<pb::AgentMessage, pb::TrackerMessage>* TrackerService::Connect(
    grpc::CallbackServerContext* context) {
  if (grpc::Status s = authenticate(context); !s.ok()) {
    return new Refusal<grpc::ServerBidiReactor<pb::AgentMessage, pb::TrackerMessage>>(s);
  }
  auto session = std::make_shared<AgentSession>(this, context);
  session->start();
  return session.get();
}

grpc::Status TrackerService::on_register(const std::shared_ptr<AgentSession>& session,
                                         const pb::AgentMessage& message) {
  if (!message.has_register_()) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "an agent's first message must be RegisterAgent"};
  }
  const pb::RegisterAgent& reg = message.register_();
  if (reg.agent_id().empty() || reg.device_key().empty()) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "RegisterAgent needs an agent_id and a device_key"};
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

void TrackerService::on_message(AgentSession& session, const pb::AgentMessage& message) {
  Outgoing out;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    session.last_seen = Clock::now();
    if (message.has_result() && !session.lost) on_result(session, message.result(), out);
  }
  out.send();
}

void TrackerService::on_disconnect(AgentSession& session) {
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

grpc::ServerWriteReactor<pb::SubmitResponse>* TrackerService::Submit(
    grpc::CallbackServerContext* context, const pb::SubmitRequest* request) {
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
  auto submission =
      std::make_shared<Submission>(this, request->job_id(), size_t(request->tasks_size()));
  submission->start();
  Outgoing out;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) {
      submission->end({grpc::StatusCode::UNAVAILABLE, "the tracker is shutting down"});
      return submission.get();
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
        for (const pb::MeasureTask& t : request->tasks()) submissions_by_task_.erase(t.task_id());
        submission->end(to_grpc(queued));
        return submission.get();
      }
      submissions_by_task_[task.task_id()] = submission;
    }
    if (request->tasks().empty()) {
      submission->end(grpc::Status::OK);
      return submission.get();
    }
    LiveSubmission& live = submissions_[submission.get()];
    live.stream = submission;
    live.left = size_t(request->tasks_size());
    for (const pb::MeasureTask& task : request->tasks()) live.task_ids.push_back(task.task_id());
    dispatch(request->device_key(), out);
  }
  logger("tracker")->debug("job={} key={} tasks={} queued", request->job_id(),
                           request->device_key(), request->tasks_size());
  out.send();
  return submission.get();
}

void TrackerService::on_submission_cancelled(Submission& submission) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = submissions_.find(&submission);
  if (it == submissions_.end()) return;
  size_t dropped = broker_.cancel_job(submission.job_id());
  for (const std::string& task_id : it->second.task_ids) submissions_by_task_.erase(task_id);
  submissions_.erase(it);
  logger("tracker")->info("job={} cancelled by its client: {} queued tasks dropped",
                          submission.job_id(), dropped);
}

grpc::ServerUnaryReactor* TrackerService::GetStatus(grpc::CallbackServerContext* context,
                                                    const pb::StatusRequest*,
                                                    pb::StatusResponse* response) {
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

grpc::Status TrackerService::authenticate(grpc::CallbackServerContext* context) const {
  return check_bearer_token(*context, options_.token, "tracker");
}

void TrackerService::deliver(const std::string& task_id, pb::MeasureResult result, Outgoing& out) {
  auto it = submissions_by_task_.find(task_id);
  if (it == submissions_by_task_.end()) return;  // its client went away
  std::shared_ptr<Submission> submission = std::move(it->second);
  submissions_by_task_.erase(it);
  auto live = submissions_.find(submission.get());
  if (live != submissions_.end() && --live->second.left == 0) submissions_.erase(live);
  out.results.emplace_back(std::move(submission), std::move(result));
}

void TrackerService::lose(AgentSession& session, Outgoing& out) {
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

void TrackerService::account_taken_back(const Finished& f, Outgoing& out) {
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
  lost.set_error_message("every agent that held the task was lost (" + std::to_string(f.attempts) +
                         " attempts)");
  lost.set_agent(f.agent_id);
  lost.set_measured_at_unix_ms(unix_ms());
  deliver(f.task_id, std::move(lost), out);
}

void TrackerService::on_result(AgentSession& session, const pb::MeasureResult& result,
                               Outgoing& out) {
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

void TrackerService::dispatch(const std::string& key, Outgoing& out) {
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

std::string TrackerService::live_key_of(const std::string& agent_id) const {
  auto it = agents_.find(agent_id);
  return it == agents_.end() ? "" : it->second.device_key;
}

}  // namespace kiln::tracker::internal
