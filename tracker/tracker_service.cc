#include "tracker/tracker_service_internal.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <tuple>
#include <unordered_set>

#include "compiler_core/support/log.h"
#include "proto/kiln/grpc_status.h"
#include "proto/kiln/measure_options.h"
#include "tracker/routing_internal.h"

namespace kiln::tracker::internal {

namespace pb = kiln::v1;

namespace {

/// 128 random bits as 32 hex digits, from the system's entropy source.
std::string random_secret() {
  std::random_device entropy;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string secret;
  for (int i = 0; i < 4; ++i) {
    uint32_t bits = entropy();
    for (int j = 0; j < 8; ++j, bits >>= 4) secret += kHex[bits & 15];
  }
  return secret;
}

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void Outgoing::send() {
  for (auto& [submission, reason] : waiting) submission->set_waiting(std::move(reason));
  for (auto& [submission, result] : results) submission->deliver(std::move(result));
  for (auto& [session, a] : tasks) {
    pb::TrackerMessage message;
    pb::TaskAssignment* task = message.mutable_task();
    task->mutable_task()->ParseFromString(a.payload);
    task->set_attempt(a.attempt);
    task->set_lease_s(std::chrono::duration<double>(a.deadline - Clock::now()).count());
    session->send(std::move(message));
  }
  waiting.clear();
  results.clear();
  tasks.clear();
}

TrackerService::TrackerService(TrackerOptions options)
    : options_(std::move(options)),
      broker_(options_.broker),
      metrics_(std::make_shared<TrackerMetrics>([this] { return gauges(); })),
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
  if (reg.capacity() > kMaxAgentCapacity) {
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "RegisterAgent capacity " + std::to_string(reg.capacity()) +
                " is above the tracker's limit of " + std::to_string(kMaxAgentCapacity) +
                " tasks at once per agent"};
  }
  session->agent_id = reg.agent_id();
  session->device_key = reg.device_key();
  session->target = reg.target().canonical();
  session->facts = reg.facts();
  session->capability = capability_of(reg);
  session->capacity = std::max(1, reg.capacity());
  std::shared_ptr<AgentSession> previous;
  Outgoing out;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return {grpc::StatusCode::UNAVAILABLE, "the tracker is shutting down"};
    auto old = sessions_.find(session->agent_id);
    // A live session keeps its id unless the newcomer proves it is that agent; one the tracker
    // has taken for lost (missed heartbeats) gives it up, so a restarted agent gets back in.
    if (old != sessions_.end() && !old->second->lost &&
        !constant_time_equal(reg.agent_secret(), old->second->secret)) {
      return {grpc::StatusCode::ALREADY_EXISTS,
              "agent id '" + session->agent_id +
                  "' is connected already; another agent cannot take it over (a reconnecting "
                  "agent presents the secret the tracker gave it)"};
    }
    session->last_seen = Clock::now();
    session->registered = true;
    // Counted before the agent it replaces leaves, so that a reconnect does not make the
    // key's submissions wait for a moment.
    count_agent(*session, +1, out);
    if (old != sessions_.end()) {
      // The same agent again (a reconnect the tracker has not noticed yet): the new stream
      // replaces the old one, whose tasks are leased again.
      previous = old->second;
      lose(*previous, out);
    }
    session->secret = random_secret();
    sessions_[session->agent_id] = session;
    AgentRecord& record = agents_[session->agent_id];
    session->record = &record;
    record.device_key = session->device_key;
    record.target = session->target;
    record.facts = session->facts;
    record.state = "idle";
    record.lost_order = 0;
    forget_lost_agents();
  }
  if (previous) previous->end({grpc::StatusCode::ABORTED, "the agent connected again"});
  logger("tracker")->info(
      "agent registered agent={} key={} target={} arch={} capacity={}", session->agent_id,
      session->device_key, session->target,
      session->capability.architecture.empty() ? "unknown" : session->capability.architecture,
      session->capacity);
  pb::TrackerMessage hello;
  hello.mutable_registered()->set_agent_id(session->agent_id);
  hello.mutable_registered()->set_agent_secret(session->secret);
  hello.mutable_registered()->set_heartbeat_interval_s(
      std::chrono::duration<double>(options_.heartbeat_interval).count());
  session->send(std::move(hello));
  {
    // Its slots open once the welcome is on its way: no task overtakes it.
    std::lock_guard<std::mutex> lock(mutex_);
    if (!session->lost) {
      for (int i = 0; i < session->capacity; ++i) free_slot(session);
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
    if (Status options = validate_measure_options(task.options()); !options.is_ok()) {
      return new Refused(
          to_grpc(Status(options.code(), "task " + task.task_id() + ": " + options.message())));
    }
    if (options_.validate) {
      Status valid = options_.validate(task);
      if (!valid.is_ok()) {
        return new Refused(
            to_grpc(Status(valid.code(), "task " + task.task_id() + ": " + valid.message())));
      }
    }
  }
  const std::string client = client_of(*context);
  {
    std::lock_guard<std::mutex> lock(clients_mutex_);
    int& open = open_submissions_[client];
    if (open >= kMaxSubmissionsPerClient) {
      return new Refused({grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "client " + client + " has " + std::to_string(open) +
                              " submissions open, the tracker's limit per client (" +
                              std::to_string(kMaxSubmissionsPerClient) +
                              "); submit again when one ends"});
    }
    ++open;
  }
  auto submission =
      std::make_shared<Submission>(this, request->job_id(), size_t(request->tasks_size()), client);
  submission->start();
  Outgoing out;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) {
      submission->end({grpc::StatusCode::UNAVAILABLE, "the tracker is shutting down"});
      return submission.get();
    }
    LiveSubmission live;
    live.stream = submission;
    live.device_key = request->device_key();
    std::map<std::tuple<std::string, std::vector<std::string>, std::string>, size_t> distinct;
    std::vector<std::string> mapped;  // the task ids this submission added to submissions_by_task_
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
      spec.requirement = requirement_of(task);
      const Requirement& r = spec.requirement;
      auto [d, added] =
          distinct.try_emplace({r.architecture, r.features, r.target}, live.requirements.size());
      if (added) {
        live.requirements.push_back(r);
        live.remaining.push_back(0);
      }
      ++live.remaining[d->second];
      Status queued = broker_.submit(std::move(spec));
      if (!queued.is_ok()) {
        // Only this submission's own tasks: a refused duplicate id may belong to another
        // submission, and the client's other submissions may share its job id.
        broker_.cancel_tasks(request->job_id(), mapped);
        for (const std::string& id : mapped) submissions_by_task_.erase(id);
        submission->end(to_grpc(queued));
        return submission.get();
      }
      submissions_by_task_[task.task_id()] = {submission, d->second};
      mapped.push_back(task.task_id());
    }
    if (request->tasks().empty()) {
      submission->end(grpc::Status::OK);
      return submission.get();
    }
    live.left = size_t(request->tasks_size());
    for (const pb::MeasureTask& task : request->tasks()) live.task_ids.push_back(task.task_id());
    LiveSubmission& stored = submissions_[submission.get()] = std::move(live);
    update_waiting(stored, capabilities_of(request->device_key()), out);
    metrics_->submitted(request->device_key(), size_t(request->tasks_size()));
    dispatch(request->device_key(), out);
  }
  logger("tracker")->debug("job={} key={} tasks={} queued", request->job_id(),
                           request->device_key(), request->tasks_size());
  out.send();
  return submission.get();
}

void TrackerService::on_submission_done(const Submission& submission) {
  std::lock_guard<std::mutex> lock(clients_mutex_);
  auto it = open_submissions_.find(submission.client());
  if (it != open_submissions_.end() && --it->second <= 0) open_submissions_.erase(it);
}

void TrackerService::on_submission_cancelled(Submission& submission) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = submissions_.find(&submission);
  if (it == submissions_.end()) return;
  size_t dropped = broker_.cancel_tasks(submission.job_id(), it->second.task_ids);
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
      a->set_state(agent_state(id));
      const bool connected = a->state() != "lost";
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
      for (const WaitingTasks& w : broker_.waiting(key, capabilities_of(key))) {
        pb::WaitingTarget* waiting = k->add_waiting();
        waiting->set_target(w.target);
        waiting->set_tasks(int64_t(w.tasks));
        waiting->set_reason(w.reason);
      }
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
  std::shared_ptr<Submission> submission = std::move(it->second.submission);
  const size_t requirement = it->second.requirement;
  submissions_by_task_.erase(it);
  auto live = submissions_.find(submission.get());
  if (live != submissions_.end()) {
    LiveSubmission& l = live->second;
    if (--l.left == 0) {
      submissions_.erase(live);
    } else if (--l.remaining[requirement] == 0 && !l.waiting.empty()) {
      update_waiting(l, capabilities_of(l.device_key), out);  // perhaps these were what waited
    }
  }
  out.results.emplace_back(std::move(submission), std::move(result));
}

void TrackerService::lose(AgentSession& session, Outgoing& out) {
  if (session.lost) return;  // a reconnect replacing a session the reaper took for lost
  session.lost = true;
  session.record->state = "lost";
  session.record->lost_order = ++losses_;
  count_agent(session, -1, out);
  for (const Finished& f : broker_.release_agent(session.agent_id)) account_taken_back(f, out);
  session.tasks.clear();
  auto key = free_slots_.find(session.device_key);
  if (key != free_slots_.end()) {
    auto slots = key->second.find(session.capability);
    if (slots != key->second.end()) {
      std::erase_if(slots->second, [&](const auto& s) { return s.get() == &session; });
      if (slots->second.empty()) key->second.erase(slots);
    }
  }
  dispatch(session.device_key, out);
}

void TrackerService::account_taken_back(const Finished& f, Outgoing& out) {
  auto s = sessions_.find(f.agent_id);
  if (s != sessions_.end() && s->second->tasks.erase(f.task_id) && !s->second->lost) {
    free_slot(s->second);
  }
  if (!f.device_lost) {
    if (!submissions_by_task_.count(f.task_id)) {
      // Its client cancelled the submission while the task was leased: nobody waits for its
      // result any more, so it leaves the queue instead of waiting there for an agent forever.
      broker_.cancel_tasks(f.job_id, {f.task_id});
      logger("tracker")->debug("lease taken back task={} agent={}: its submission is gone",
                               f.task_id, f.agent_id);
      return;
    }
    logger("tracker")->warn("lease re-queued task={} agent={} attempt={}", f.task_id, f.agent_id,
                            f.attempts);
    metrics_->requeued(f.device_key);
    return;
  }
  logger("tracker")->warn("task={} device lost after {} attempts", f.task_id, f.attempts);
  metrics_->device_lost(f.device_key);
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
  if (session.tasks.erase(result.task_id())) free_slot(session.shared_from_this());
  ++session.record->done;
  pb::MeasureResult copy = result;
  copy.set_agent(session.agent_id);
  if (copy.error_code() == pb::MEASURE_ERROR_CODE_OK) {
    // An agent's costs are not trusted: a NaN, non-positive, infinite or missing cost in an OK
    // result is that agent's fault, reported as its runtime error instead of reaching the log.
    bool valid = copy.costs_s_size() > 0;
    for (double cost : copy.costs_s()) valid = valid && std::isfinite(cost) && cost > 0;
    if (!valid) {
      logger("tracker")->warn("agent {} reported an invalid cost for task {}", session.agent_id,
                              copy.task_id());
      copy.clear_costs_s();
      copy.set_error_code(pb::MEASURE_ERROR_CODE_RUNTIME_ERROR);
      copy.set_error_message("agent " + session.agent_id +
                             " reported an invalid cost (NaN, infinite, non-positive or none)");
    }
  }
  if (copy.error_code() != pb::MEASURE_ERROR_CODE_OK) ++session.record->errors;
  metrics_->completed(session.device_key, done->held,
                      copy.error_code() == pb::MEASURE_ERROR_CODE_OK);
  deliver(result.task_id(), std::move(copy), out);
  dispatch(session.device_key, out);
}

void TrackerService::dispatch(const std::string& key, Outgoing& out) {
  if (stopping_) return;
  auto it = free_slots_.find(key);
  if (it == free_slots_.end()) return;
  const Clock::time_point now = Clock::now();
  // The agents of each capability take turns, a task each, so that one capability's agents do
  // not take every task that several could run; a capability that gets nothing is done.
  std::vector<std::map<Capability, Slots>::iterator> open;
  for (auto c = it->second.begin(); c != it->second.end(); ++c) open.push_back(c);
  while (!open.empty()) {
    for (size_t i = 0; i < open.size();) {
      const Capability& capability = open[i]->first;
      Slots& slots = open[i]->second;
      while (!slots.empty() &&
             (slots.front()->lost || int(slots.front()->tasks.size()) >= slots.front()->capacity)) {
        slots.pop_front();
      }
      std::optional<Assignment> a;
      if (!slots.empty()) a = broker_.lease(slots.front()->agent_id, key, capability, now);
      if (!a) {
        open.erase(open.begin() + ptrdiff_t(i));
        continue;
      }
      metrics_->dispatched(key, a->queued_for);
      slots.front()->tasks.insert(a->task_id);
      out.tasks.emplace_back(std::move(slots.front()), std::move(*a));
      slots.pop_front();
      ++i;
    }
  }
  std::erase_if(it->second, [](const auto& entry) { return entry.second.empty(); });
}

void TrackerService::free_slot(const std::shared_ptr<AgentSession>& session) {
  free_slots_[session->device_key][session->capability].push_back(session);
}

void TrackerService::count_agent(const AgentSession& session, int delta, Outgoing& out) {
  std::map<Capability, int>& counts = capabilities_[session.device_key];
  int& n = counts[session.capability];
  const bool had = n > 0;
  n += delta;
  const bool has = n > 0;
  if (!has) counts.erase(session.capability);
  if (counts.empty()) capabilities_.erase(session.device_key);
  if (had != has) refresh_waiting(session.device_key, out);
}

std::vector<Capability> TrackerService::capabilities_of(const std::string& key) const {
  std::vector<Capability> out;
  auto it = capabilities_.find(key);
  if (it == capabilities_.end()) return out;
  for (const auto& [capability, n] : it->second) out.push_back(capability);
  return out;
}

void TrackerService::update_waiting(LiveSubmission& live, const std::vector<Capability>& agents,
                                    Outgoing& out) {
  std::vector<std::string> reasons;
  for (size_t i = 0; i < live.requirements.size(); ++i) {
    if (live.remaining[i] == 0) continue;
    std::string reason = why_no_agent_fits(live.device_key, live.requirements[i], agents);
    if (!reason.empty() && std::find(reasons.begin(), reasons.end(), reason) == reasons.end()) {
      reasons.push_back(std::move(reason));
    }
  }
  std::string waiting;
  for (const std::string& reason : reasons) waiting += (waiting.empty() ? "" : "; ") + reason;
  if (waiting == live.waiting) return;
  if (waiting.empty()) {
    logger("tracker")->info("job={} key={} waits no longer", live.stream->job_id(),
                            live.device_key);
  } else {
    logger("tracker")->info("job={} key={} waits: {}", live.stream->job_id(), live.device_key,
                            waiting);
  }
  live.waiting = waiting;
  out.waiting.emplace_back(live.stream, std::move(waiting));
}

void TrackerService::refresh_waiting(const std::string& key, Outgoing& out) {
  const std::vector<Capability> agents = capabilities_of(key);
  for (auto& [stream, live] : submissions_) {
    if (live.device_key == key) update_waiting(live, agents, out);
  }
}

void TrackerService::forget_lost_agents() {
  while (agents_.size() > options_.max_agent_records) {
    auto oldest = agents_.end();
    for (auto it = agents_.begin(); it != agents_.end(); ++it) {
      const uint64_t lost = it->second.lost_order;
      if (lost != 0 && (oldest == agents_.end() || lost < oldest->second.lost_order)) oldest = it;
    }
    if (oldest == agents_.end()) return;  // every one is connected
    agents_.erase(oldest);
  }
}

std::string TrackerService::agent_state(const std::string& agent_id) const {
  auto live = sessions_.find(agent_id);
  if (live == sessions_.end() || live->second->lost) return "lost";
  return live->second->tasks.empty() ? "idle" : "busy";
}

TrackerGauges TrackerService::gauges() {
  TrackerGauges g;
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [id, record] : agents_) ++g.agents[{record.device_key, agent_state(id)}];
  g.keys = broker_.stats();
  return g;
}

std::string TrackerService::live_key_of(const std::string& agent_id) const {
  auto it = agents_.find(agent_id);
  return it == agents_.end() ? "" : it->second.device_key;
}

}  // namespace kiln::tracker::internal
