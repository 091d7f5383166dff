#include "tracker/broker.h"

#include <algorithm>
#include <unordered_set>

namespace kiln::tracker {
namespace {

std::string join(const std::vector<std::string>& items, const std::string& separator,
                 const std::string& prefix = "") {
  std::string out;
  for (const std::string& item : items) {
    if (!out.empty()) out += separator;
    out += prefix + item;
  }
  return out;
}

}  // namespace

bool can_run(const Capability& capability, const Requirement& requirement) {
  if (!requirement.architecture.empty() && requirement.architecture != capability.architecture) {
    return false;
  }
  return std::all_of(requirement.features.begin(), requirement.features.end(),
                     [&](const std::string& f) { return capability.features.count(f) > 0; });
}

std::string why_no_agent_fits(const std::string& device_key, const Requirement& requirement,
                              const std::vector<Capability>& agents) {
  if (agents.empty()) return "no agent of key " + device_key + " is connected";
  for (const Capability& agent : agents) {
    if (can_run(agent, requirement)) return "";
  }
  std::vector<const Capability*> candidates;
  std::string who = "no agent of key " + device_key;
  if (!requirement.architecture.empty()) {
    std::set<std::string> architectures;
    for (const Capability& agent : agents) {
      architectures.insert(agent.architecture.empty() ? "unknown" : agent.architecture);
      if (agent.architecture == requirement.architecture) candidates.push_back(&agent);
    }
    if (candidates.empty()) {
      return who + " runs " + requirement.architecture +
             " (agents: " + join({architectures.begin(), architectures.end()}, ", ") + ")";
    }
    who = "no " + requirement.architecture + " agent of key " + device_key;
  } else {
    for (const Capability& agent : agents) candidates.push_back(&agent);
  }
  // Name the features no candidate has; when each has some, the combination is what is missing.
  std::vector<std::string> missing;
  for (const std::string& feature : requirement.features) {
    const bool anyone = std::any_of(candidates.begin(), candidates.end(), [&](const Capability* c) {
      return c->features.count(feature);
    });
    if (!anyone) missing.push_back(feature);
  }
  if (!missing.empty()) return who + " has " + join(missing, ", ", "+");
  return who + " has all of " + join(requirement.features, ", ", "+");
}

Status Broker::submit(TaskSpec spec) {
  if (spec.task_id.empty() || spec.job_id.empty() || spec.device_key.empty()) {
    return invalid_argument("a task needs a task id, a job id and a device key");
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (live_.count(spec.task_id) || finished_.count(spec.task_id)) {
    return Status(StatusCode::kAlreadyExists, "task " + spec.task_id + " was submitted before");
  }
  KeyQueue& key = keys_[spec.device_key];
  if (key.queued >= options_.max_queued_per_key) {
    return Status(StatusCode::kResourceExhausted,
                  "the queue of device key " + spec.device_key + " is full (" +
                      std::to_string(options_.max_queued_per_key) +
                      " tasks); wait for results before submitting more");
  }
  std::vector<std::string>& features = spec.requirement.features;
  std::sort(features.begin(), features.end());
  features.erase(std::unique(features.begin(), features.end()), features.end());
  Task& task = live_[spec.task_id];
  task.spec = std::move(spec);
  task.deadline = deadlines_.end();
  enqueue(task, false);
  return Status::ok();
}

void Broker::enqueue(Task& task, bool front) {
  KeyQueue& key = keys_[task.spec.device_key];
  const Requirement& requirement = task.spec.requirement;
  auto [g, created] = key.groups.try_emplace(
      GroupKey{requirement.architecture, requirement.features, requirement.target});
  Group& group = g->second;
  if (created) group.requirement = requirement;
  JobQueue& job = key.jobs[task.spec.job_id];
  if (job.queued == 0) job.turn = ++key.next_turn;  // a job with nothing queued joins last
  std::deque<Queued>& queue = job.by_group[&group];
  if (queue.empty()) group.jobs.emplace(job.turn, task.spec.job_id);
  task.queued_at = Clock::now();
  if (front) {
    queue.push_front({--key.next_front, task.spec.task_id});
  } else {
    queue.push_back({++key.next_back, task.spec.task_id});
  }
  ++group.queued;
  ++job.queued;
  ++key.queued;
}

std::string Broker::dequeue(KeyQueue& key, const std::string& job_id, Group* group) {
  JobQueue& job = key.jobs.at(job_id);
  auto q = job.by_group.find(group);
  std::string task_id = std::move(q->second.front().task_id);
  q->second.pop_front();
  if (q->second.empty()) {
    job.by_group.erase(q);
    group->jobs.erase({job.turn, job_id});
  }
  --key.queued;
  if (--group->queued == 0) {
    const Requirement& r = group->requirement;
    key.groups.erase(GroupKey{r.architecture, r.features, r.target});
  }
  if (--job.queued == 0) key.jobs.erase(job_id);
  return task_id;
}

std::optional<Assignment> Broker::lease(const std::string& agent_id, const std::string& device_key,
                                        const Capability& capability, Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto k = keys_.find(device_key);
  if (k == keys_.end() || k->second.queued == 0) return std::nullopt;
  KeyQueue& key = k->second;
  // The job next in turn among those with a task this agent can run; the others keep their
  // places for the agents that can run theirs.
  const std::pair<uint64_t, std::string>* next = nullptr;
  for (const auto& [name, group] : key.groups) {
    if (!can_run(capability, group.requirement)) continue;
    if (!next || *group.jobs.begin() < *next) next = &*group.jobs.begin();
  }
  if (!next) return std::nullopt;
  const std::string job_id = next->second;
  JobQueue& job = key.jobs.at(job_id);
  // Its oldest task this agent can run.
  Group* pick = nullptr;
  int64_t pick_order = 0;
  for (const auto& [group, queue] : job.by_group) {
    if (!can_run(capability, group->requirement)) continue;
    if (!pick || queue.front().order < pick_order) {
      pick = group;
      pick_order = queue.front().order;
    }
  }
  // The job waits for the others' turns: it moves to the back in every group it is in.
  const uint64_t turn = ++key.next_turn;
  for (const auto& [group, queue] : job.by_group) {
    group->jobs.erase({job.turn, job_id});
    group->jobs.emplace(turn, job_id);
  }
  job.turn = turn;
  const std::string task_id = dequeue(key, job_id, pick);
  ++key.leased;

  Task& task = live_.at(task_id);
  task.attempts += 1;
  task.agent = agent_id;
  task.deadline = deadlines_.emplace(now + task.spec.lease, task_id);
  task.leased_at = now;
  leases_by_agent_[agent_id].insert(task_id);
  return Assignment{task_id,       task.spec.job_id,     task.spec.payload,
                    task.attempts, task.deadline->first, now - task.queued_at};
}

void Broker::remember_finished(const std::string& task_id) {
  if (!finished_.insert(task_id).second) return;
  finished_order_.push_back(task_id);
  while (finished_order_.size() > options_.max_finished_remembered) {
    finished_.erase(finished_order_.front());
    finished_order_.pop_front();
  }
}

Result<Finished> Broker::complete(const std::string& agent_id, const std::string& task_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_.count(task_id)) {
    return Status(StatusCode::kAlreadyExists, "task " + task_id + " has a result already");
  }
  auto it = live_.find(task_id);
  if (it == live_.end()) return Status(StatusCode::kNotFound, "no task " + task_id);
  Task& task = it->second;
  if (task.agent != agent_id) {
    return Status(StatusCode::kFailedPrecondition,
                  "agent " + agent_id + " does not hold the lease of task " + task_id);
  }
  deadlines_.erase(task.deadline);
  leases_by_agent_[agent_id].erase(task_id);
  --keys_[task.spec.device_key].leased;
  Finished done{task_id,
                task.spec.job_id,
                agent_id,
                false,
                task.attempts,
                task.spec.device_key,
                Clock::now() - task.leased_at};
  remember_finished(task_id);
  live_.erase(it);
  return done;
}

Finished Broker::take_back(std::string task_id) {
  Task& task = live_.at(task_id);
  deadlines_.erase(task.deadline);
  task.deadline = deadlines_.end();
  leases_by_agent_[task.agent].erase(task_id);
  --keys_[task.spec.device_key].leased;
  Finished out{task_id,
               task.spec.job_id,
               task.agent,
               false,
               task.attempts,
               task.spec.device_key,
               Clock::now() - task.leased_at};
  if (task.attempts >= options_.max_attempts) {
    out.device_lost = true;
    remember_finished(task_id);
    live_.erase(task_id);
    return out;
  }
  task.agent.clear();
  enqueue(task, true);
  return out;
}

std::vector<Finished> Broker::release_agent(const std::string& agent_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Finished> lost;
  auto it = leases_by_agent_.find(agent_id);
  if (it == leases_by_agent_.end()) return lost;
  const std::set<std::string> held = it->second;
  for (const std::string& task_id : held) lost.push_back(take_back(task_id));
  leases_by_agent_.erase(agent_id);
  return lost;
}

std::vector<Finished> Broker::expire(Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Finished> lost;
  while (!deadlines_.empty() && deadlines_.begin()->first < now) {
    lost.push_back(take_back(deadlines_.begin()->second));
  }
  return lost;
}

size_t Broker::cancel_tasks(const std::string& job_id, const std::vector<std::string>& task_ids) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::unordered_set<std::string> ids(task_ids.begin(), task_ids.end());
  size_t dropped = 0;
  for (auto& [name, key] : keys_) {
    auto it = key.jobs.find(job_id);
    if (it == key.jobs.end()) continue;
    JobQueue& job = it->second;
    std::vector<Group*> groups;
    for (const auto& [group, queue] : job.by_group) groups.push_back(group);
    for (Group* group : groups) {
      std::deque<Queued>& queue = job.by_group.at(group);
      const size_t removed = std::erase_if(queue, [&](const Queued& q) {
        if (!ids.count(q.task_id)) return false;
        remember_finished(q.task_id);
        live_.erase(q.task_id);
        return true;
      });
      if (removed == 0) continue;
      dropped += removed;
      key.queued -= removed;
      job.queued -= removed;
      if (queue.empty()) {
        job.by_group.erase(group);
        group->jobs.erase({job.turn, job_id});
      }
      if ((group->queued -= removed) == 0) {
        const Requirement& r = group->requirement;
        key.groups.erase(GroupKey{r.architecture, r.features, r.target});
      }
    }
    if (job.queued == 0) key.jobs.erase(it);
  }
  return dropped;
}

std::map<std::string, KeyStats> Broker::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::map<std::string, KeyStats> out;
  for (const auto& [name, key] : keys_) out[name] = {key.queued, key.leased};
  return out;
}

std::vector<WaitingTasks> Broker::waiting(const std::string& device_key,
                                          const std::vector<Capability>& agents) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::map<std::string, WaitingTasks> by_target;
  auto k = keys_.find(device_key);
  if (k == keys_.end()) return {};
  for (const auto& [name, group] : k->second.groups) {
    std::string reason = why_no_agent_fits(device_key, group.requirement, agents);
    if (reason.empty()) continue;
    WaitingTasks& w = by_target[group.requirement.target];
    if (w.reason.empty()) {
      w.target = group.requirement.target;
      w.reason = std::move(reason);
    }
    w.tasks += group.queued;
  }
  std::vector<WaitingTasks> out;
  for (auto& [target, w] : by_target) out.push_back(std::move(w));
  return out;
}

std::optional<Clock::time_point> Broker::next_deadline() const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (deadlines_.empty()) return std::nullopt;
  return deadlines_.begin()->first;
}

}  // namespace kiln::tracker
