/// \file
/// The tracker's core, without the network: per-device-key queues of measure tasks, fair share
/// between the jobs that queue on one key, leases that give each task to one agent until a
/// deadline, re-queueing when an agent goes away or a lease runs out, a bounded number of
/// attempts after which a task ends as DEVICE_LOST, and de-duplication of results by task id.
///
/// Tasks are opaque to the broker (a payload it hands out as it was given): the tracker never
/// compiles or inspects kernels. Time is passed in, never read, so that leases and expiry are
/// tested without sleeping. All methods are thread-safe.
///
/// Invariants: a task is in exactly one of queued (on its key), leased (to one agent) or
/// finished; a finished task id is remembered, so a result that arrives twice, or after its
/// task was re-leased and finished elsewhere, is recognised and dropped.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "compiler_core/support/status.h"

namespace kiln::tracker {

using Clock = std::chrono::steady_clock;

struct BrokerOptions {
  /// Leases one task may have; when the last one is lost too, the task ends as DEVICE_LOST.
  int max_attempts = 3;
  /// Tasks queued on one device key at most (RESOURCE_EXHAUSTED beyond).
  size_t max_queued_per_key = size_t{1} << 20;
};

/// A task to queue.
struct TaskSpec {
  std::string task_id;     ///< unique among live and finished tasks
  std::string job_id;      ///< the job it belongs to: jobs on a key share it fairly
  std::string device_key;  ///< the kind of board that must run it
  std::string payload;     ///< handed to the agent as it is (a serialized MeasureTask)
  Clock::duration lease = std::chrono::seconds(60);  ///< how long an agent may hold it
};

/// A task given to an agent.
struct Assignment {
  std::string task_id;
  std::string job_id;
  std::string payload;
  int attempt = 1;  ///< 1 for the first lease
  Clock::time_point deadline;
};

/// A task that finished, or a lease that was taken back.
struct Finished {
  std::string task_id;
  std::string job_id;
  std::string agent_id;      ///< the agent that completed it (or held the lease taken back)
  bool device_lost = false;  ///< a lease taken back was the last attempt: the task ended
  int attempts = 0;
};

/// Counts per device key, for `kiln status`.
struct KeyStats {
  size_t queued = 0;
  size_t leased = 0;
};

class Broker {
 public:
  explicit Broker(BrokerOptions options = {}) : options_(options) {}

  /// Queues `task` at the back of its job's queue on its key. InvalidArgument for an empty
  /// task id, job id or key; AlreadyExists for a task id the broker has seen (queued, leased
  /// or finished); ResourceExhausted when the key's queue is full.
  Status submit(TaskSpec task);

  /// The next task for an agent of `device_key`, leased to `agent_id` until now + its lease:
  /// jobs with queued tasks on the key take turns (round robin); within a job, re-queued tasks
  /// first, then in submission order. Nothing when the key has no queued task.
  std::optional<Assignment> lease(const std::string& agent_id, const std::string& device_key,
                                  Clock::time_point now);

  /// Records that `agent_id` finished `task_id`. AlreadyExists when the task finished before
  /// (a duplicate result: drop it); FailedPrecondition when the agent does not hold its lease
  /// (it was re-leased after the agent was taken for lost: drop it, the new holder reports);
  /// NotFound for a task id the broker never had.
  Result<Finished> complete(const std::string& agent_id, const std::string& task_id);

  /// The agent is gone: its leased tasks go back to the front of their queues, or end as
  /// DEVICE_LOST when they have had max_attempts leases. Returns every lease taken back.
  std::vector<Finished> release_agent(const std::string& agent_id);

  /// Takes back every lease whose deadline is before `now`, as release_agent does.
  std::vector<Finished> expire(Clock::time_point now);

  /// Drops the queued tasks of `job_id` (its leased ones still finish). Returns how many.
  size_t cancel_job(const std::string& job_id);

  std::map<std::string, KeyStats> stats() const;
  /// The earliest lease deadline, if any task is leased.
  std::optional<Clock::time_point> next_deadline() const;

 private:
  using Deadlines = std::multimap<Clock::time_point, std::string>;
  struct Task {
    TaskSpec spec;
    int attempts = 0;
    std::string agent;  ///< the holder while leased; empty while queued
    Deadlines::iterator deadline;
  };
  struct KeyQueue {
    std::map<std::string, std::deque<std::string>> by_job;  ///< queued task ids per job
    std::deque<std::string> turns;                          ///< jobs with queued tasks, in turn
    size_t queued = 0;
    size_t leased = 0;
  };

  /// Ends a lease that was lost: requeue (front) or finish as DEVICE_LOST. Lock held.
  Finished take_back(const std::string& task_id);
  void enqueue(Task& task, bool front);

  BrokerOptions options_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Task> live_;  ///< queued or leased, by task id
  std::unordered_set<std::string> finished_;
  std::unordered_map<std::string, std::set<std::string>> leases_by_agent_;
  Deadlines deadlines_;
  std::map<std::string, KeyQueue> keys_;
};

}  // namespace kiln::tracker
