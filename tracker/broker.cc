#include "tracker/broker.h"

#include <algorithm>

namespace kiln::tracker {

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
  Task& task = live_[spec.task_id];
  task.spec = std::move(spec);
  task.deadline = deadlines_.end();
  enqueue(task, false);
  return Status::ok();
}

void Broker::enqueue(Task& task, bool front) {
  KeyQueue& key = keys_[task.spec.device_key];
  std::deque<std::string>& queue = key.by_job[task.spec.job_id];
  if (queue.empty()) key.turns.push_back(task.spec.job_id);
  if (front) {
    queue.push_front(task.spec.task_id);
  } else {
    queue.push_back(task.spec.task_id);
  }
  ++key.queued;
}

std::optional<Assignment> Broker::lease(const std::string& agent_id, const std::string& device_key,
                                        Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto k = keys_.find(device_key);
  if (k == keys_.end() || k->second.turns.empty()) return std::nullopt;
  KeyQueue& key = k->second;
  const std::string job = key.turns.front();
  key.turns.pop_front();
  std::deque<std::string>& queue = key.by_job[job];
  const std::string task_id = queue.front();
  queue.pop_front();
  if (queue.empty()) {
    key.by_job.erase(job);
  } else {
    key.turns.push_back(job);  // the job waits for the others' turns
  }
  --key.queued;
  ++key.leased;

  Task& task = live_.at(task_id);
  task.attempts += 1;
  task.agent = agent_id;
  task.deadline = deadlines_.emplace(now + task.spec.lease, task_id);
  leases_by_agent_[agent_id].insert(task_id);
  return Assignment{task_id, task.spec.job_id, task.spec.payload, task.attempts,
                    task.deadline->first};
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
  Finished done{task_id, task.spec.job_id, agent_id, false, task.attempts};
  finished_.insert(task_id);
  live_.erase(it);
  return done;
}

Finished Broker::take_back(const std::string& task_id) {
  Task& task = live_.at(task_id);
  deadlines_.erase(task.deadline);
  task.deadline = deadlines_.end();
  leases_by_agent_[task.agent].erase(task_id);
  --keys_[task.spec.device_key].leased;
  Finished out{task_id, task.spec.job_id, task.agent, false, task.attempts};
  if (task.attempts >= options_.max_attempts) {
    out.device_lost = true;
    finished_.insert(task_id);
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

size_t Broker::cancel_job(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t dropped = 0;
  for (auto& [name, key] : keys_) {
    auto it = key.by_job.find(job_id);
    if (it == key.by_job.end()) continue;
    for (const std::string& task_id : it->second) {
      finished_.insert(task_id);
      live_.erase(task_id);
      ++dropped;
    }
    key.queued -= it->second.size();
    key.by_job.erase(it);
    key.turns.erase(std::remove(key.turns.begin(), key.turns.end(), job_id), key.turns.end());
  }
  return dropped;
}

std::map<std::string, KeyStats> Broker::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::map<std::string, KeyStats> out;
  for (const auto& [name, key] : keys_) out[name] = {key.queued, key.leased};
  return out;
}

std::optional<Clock::time_point> Broker::next_deadline() const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (deadlines_.empty()) return std::nullopt;
  return deadlines_.begin()->first;
}

}  // namespace kiln::tracker
