/// \file
/// The tracker's core, without the network: per-device-key queues of measure tasks, fair share
/// between the jobs that queue on one key, leases that give each task to one agent until a
/// deadline, re-queueing when an agent goes away or a lease runs out, a bounded number of
/// attempts after which a task ends as DEVICE_LOST, and de-duplication of results by task id.
///
/// Tasks are opaque to the broker (a payload it hands out as it was given): the tracker never
/// compiles or inspects kernels. What it does read is each task's Requirement (the CPU
/// architecture and features its target needs) and each asking agent's Capability: one device
/// key may hold boards of several architectures, and a task is only ever leased to an agent that
/// can run it. Time is passed in, never read, so that leases and expiry are tested without
/// sleeping. All methods are thread-safe.
///
/// Invariants: a task is in exactly one of queued (on its key), leased (to one agent) or
/// finished; a finished task id is remembered, so a result that arrives twice, or after its
/// task was re-leased and finished elsewhere, is recognised and dropped. A queued task that no
/// agent can run stays queued (see waiting()) until one that can asks, or its job is cancelled.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "compiler_core/support/status.h"

namespace kiln::tracker {

using Clock = std::chrono::steady_clock;

/// What a task needs of the agent that runs it.
struct Requirement {
  /// The CPU architecture, as the first part of an LLVM triple ("x86_64", "aarch64"); empty
  /// when any architecture will do.
  std::string architecture;
  /// CPU features the agent must all have, named without '+' ("dotprod"). Order and
  /// repetitions do not matter.
  std::vector<std::string> features;
  /// The target the task names ("llvm -mtriple=aarch64-linux-gnu"), for messages and to group
  /// the tasks that wait.
  std::string target;
};

/// What an agent can run.
struct Capability {
  /// As Requirement::architecture; an agent that names none runs only tasks that need none.
  std::string architecture;
  /// Its CPU features, named without '+'.
  std::set<std::string> features;

  auto operator<=>(const Capability&) const = default;
};

/// True when an agent of `capability` can run a task of `requirement`: the same architecture
/// (or a task that needs none) and every required feature present.
bool can_run(const Capability& capability, const Requirement& requirement);

/// Why no agent among `agents` (the capabilities of those connected on `device_key`) can run
/// tasks of `requirement`, e.g. "no agent of key K runs aarch64 (agents: x86_64)" or "no aarch64
/// agent of key K has +dotprod"; empty when one can.
std::string why_no_agent_fits(const std::string& device_key, const Requirement& requirement,
                              const std::vector<Capability>& agents);

struct BrokerOptions {
  /// Leases one task may have; when the last one is lost too, the task ends as DEVICE_LOST.
  int max_attempts = 3;
  /// Tasks queued on one device key at most (RESOURCE_EXHAUSTED beyond).
  size_t max_queued_per_key = size_t{1} << 20;
  /// Finished task ids remembered (to drop duplicate results and refuse a reused id); beyond
  /// it the oldest are forgotten, so the set does not grow with every task ever run. A result
  /// for a forgotten id is NotFound, dropped just the same.
  size_t max_finished_remembered = size_t{1} << 20;
};

/// A task to queue.
struct TaskSpec {
  std::string task_id;     ///< unique among live and finished tasks
  std::string job_id;      ///< the job it belongs to: jobs on a key share it fairly
  std::string device_key;  ///< the kind of board that must run it
  std::string payload;     ///< handed to the agent as it is (a serialized MeasureTask)
  Clock::duration lease = std::chrono::seconds(60);  ///< how long an agent may hold it
  Requirement requirement;  ///< only an agent that meets it may lease the task
};

/// A task given to an agent.
struct Assignment {
  std::string task_id;
  std::string job_id;
  std::string payload;
  int attempt = 1;  ///< 1 for the first lease
  Clock::time_point deadline;
  Clock::duration queued_for{};  ///< how long it waited in the queue for this lease
};

/// A task that finished, or a lease that was taken back.
struct Finished {
  std::string task_id;
  std::string job_id;
  std::string agent_id;      ///< the agent that completed it (or held the lease taken back)
  bool device_lost = false;  ///< a lease taken back was the last attempt: the task ended
  int attempts = 0;
  std::string device_key;
  Clock::duration held{};  ///< from the lease to its end
};

/// Counts per device key, for `kiln status`.
struct KeyStats {
  size_t queued = 0;
  size_t leased = 0;
};

/// Queued tasks of one target that no agent of their key can run.
struct WaitingTasks {
  std::string target;
  size_t tasks = 0;
  std::string reason;  ///< as why_no_agent_fits
};

class Broker {
 public:
  explicit Broker(BrokerOptions options = {}) : options_(options) {}

  /// Queues `task` at the back of its job's queue on its key. InvalidArgument for an empty
  /// task id, job id or key; AlreadyExists for a task id the broker has seen (queued, leased
  /// or finished); ResourceExhausted when the key's queue is full.
  Status submit(TaskSpec task);

  /// The next task that an agent of `device_key` with `capability` can run, leased to
  /// `agent_id` until now + its lease: jobs with queued tasks on the key take turns (round
  /// robin); a job with nothing this agent can run keeps its place for agents that can. Within
  /// a job, re-queued tasks first, then in submission order. Nothing when the key has no queued
  /// task this agent can run.
  std::optional<Assignment> lease(const std::string& agent_id, const std::string& device_key,
                                  const Capability& capability, Clock::time_point now);

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

  /// Drops the queued tasks among `task_ids` of `job_id` (leased ones still finish; the job's
  /// other tasks, another submission's under the same job id, stay). Returns how many.
  size_t cancel_tasks(const std::string& job_id, const std::vector<std::string>& task_ids);

  std::map<std::string, KeyStats> stats() const;
  /// The queued tasks of `device_key` that none of `agents` (the capabilities of the agents
  /// connected on the key) can run, grouped by target, in target order. Empty when every queued
  /// task has an agent that can run it (leased tasks never count).
  std::vector<WaitingTasks> waiting(const std::string& device_key,
                                    const std::vector<Capability>& agents) const;
  /// The earliest lease deadline, if any task is leased.
  std::optional<Clock::time_point> next_deadline() const;

 private:
  using Deadlines = std::multimap<Clock::time_point, std::string>;
  struct Task {
    TaskSpec spec;
    int attempts = 0;
    std::string agent;  ///< the holder while leased; empty while queued
    Deadlines::iterator deadline;
    Clock::time_point queued_at, leased_at;
  };
  /// A queued task: `order` sorts a job's tasks (re-queued ones below zero, newest first;
  /// then submitted ones in order).
  struct Queued {
    int64_t order;
    std::string task_id;
  };
  /// The queued tasks of one requirement on a key. A lease looks at each group once, so its
  /// cost grows with the distinct requirements on the key, not with the tasks.
  using GroupKey = std::tuple<std::string, std::vector<std::string>, std::string>;
  struct Group {
    Requirement requirement;
    /// (turn, job) of every job with tasks here: begin() is the next in turn.
    std::set<std::pair<uint64_t, std::string>> jobs;
    size_t queued = 0;
  };
  struct JobQueue {
    /// Its place in the key's round robin, shared by all its groups: the lowest goes next.
    uint64_t turn = 0;
    std::map<Group*, std::deque<Queued>> by_group;  ///< never an empty deque
    size_t queued = 0;
  };
  struct KeyQueue {
    std::map<GroupKey, Group> groups;                ///< never an empty group
    std::unordered_map<std::string, JobQueue> jobs;  ///< jobs with queued tasks
    uint64_t next_turn = 0;
    int64_t next_front = 0, next_back = 0;
    size_t queued = 0;
    size_t leased = 0;
  };

  /// Ends a lease that was lost: requeue (front) or finish as DEVICE_LOST. Lock held.
  /// `task_id` is a copy: callers pass ids that live in the structures it changes (the
  /// deadline it erases).
  Finished take_back(std::string task_id);
  void enqueue(Task& task, bool front);
  /// Takes the front task of `group` in `job` off the queue. Lock held.
  std::string dequeue(KeyQueue& key, const std::string& job_id, Group* group);

  BrokerOptions options_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Task> live_;  ///< queued or leased, by task id
  std::unordered_set<std::string> finished_;
  std::deque<std::string> finished_order_;  ///< finished_'s ids, oldest first
  /// Remembers `task_id` as finished, forgetting the oldest beyond the limit. Lock held.
  void remember_finished(const std::string& task_id);
  std::unordered_map<std::string, std::set<std::string>> leases_by_agent_;
  Deadlines deadlines_;
  std::map<std::string, KeyQueue> keys_;
};

}  // namespace kiln::tracker
