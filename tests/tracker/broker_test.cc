// The broker: per-key queues shared fairly between jobs, leases with deadlines, re-queueing,
// bounded attempts ending as DEVICE_LOST, results counted once, and routing by capability (a
// task only reaches an agent of its architecture with its features; what no agent can run
// waits, with a reason).

#include "tracker/broker.h"

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace kiln::tracker {
namespace {

using std::chrono::seconds;

/// An agent that names no architecture or features: it runs the tasks that need none.
const Capability kAny{};

TaskSpec task(const std::string& id, const std::string& job, const std::string& key = "cpu") {
  return TaskSpec{id, job, key, "payload of " + id, seconds(10)};
}

/// A task for `architecture` needing `features`, on key "cpu".
TaskSpec routed(const std::string& id, const std::string& job, const std::string& architecture,
                std::vector<std::string> features = {}) {
  TaskSpec spec = task(id, job);
  spec.requirement.architecture = architecture;
  spec.requirement.features = std::move(features);
  spec.requirement.target = "llvm -mtriple=" + architecture + "-linux-gnu";
  for (const std::string& f : spec.requirement.features) spec.requirement.target += " +" + f;
  return spec;
}

const Capability kX86{"x86_64", {"avx2", "fma"}};
const Capability kArm{"aarch64", {"neon"}};
const Capability kArmDotprod{"aarch64", {"neon", "dotprod", "i8mm"}};

/// Leases for `capability` until nothing is left for it.
std::vector<std::string> drain(Broker& broker, const Capability& capability,
                               const std::string& agent = "agent") {
  std::vector<std::string> order;
  while (auto a = broker.lease(agent, "cpu", capability, Clock::time_point{})) {
    order.push_back(a->task_id);
  }
  return order;
}

TEST(Broker, JobsOnOneKeyTakeTurns) {
  Broker broker;
  for (int i = 0; i < 6; ++i)
    ASSERT_TRUE(broker.submit(task("a" + std::to_string(i), "A")).is_ok());
  for (int i = 0; i < 2; ++i)
    ASSERT_TRUE(broker.submit(task("b" + std::to_string(i), "B")).is_ok());
  const Clock::time_point now{};
  std::vector<std::string> order;
  while (auto a = broker.lease("agent", "cpu", kAny, now)) order.push_back(a->task_id);
  EXPECT_EQ(order, (std::vector<std::string>{"a0", "b0", "a1", "b1", "a2", "a3", "a4", "a5"}));
}

TEST(Broker, KeysAreSeparateQueues) {
  Broker broker;
  ASSERT_TRUE(broker.submit(task("t", "J", "arm")).is_ok());
  EXPECT_FALSE(broker.lease("x86-agent", "x86", kAny, Clock::time_point{}).has_value());
  auto a = broker.lease("arm-agent", "arm", kAny, Clock::time_point{});
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->payload, "payload of t");
  EXPECT_EQ(broker.stats()["arm"].leased, 1u);
}

TEST(Broker, ALostAgentsTasksRunElsewhereAndCountOnce) {
  Broker broker;
  ASSERT_TRUE(broker.submit(task("t1", "J")).is_ok());
  ASSERT_TRUE(broker.submit(task("t2", "J")).is_ok());
  const Clock::time_point now{};
  ASSERT_EQ(broker.lease("dead", "cpu", kAny, now)->task_id, "t1");
  std::vector<Finished> back = broker.release_agent("dead");
  ASSERT_EQ(back.size(), 1u);
  EXPECT_FALSE(back[0].device_lost);  // back in the queue, not lost yet
  // The re-queued task goes first.
  auto again = broker.lease("alive", "cpu", kAny, now);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->task_id, "t1");
  EXPECT_EQ(again->attempt, 2);
  // A late result from the lost agent is refused; the new holder's counts; a repeat is a
  // duplicate.
  EXPECT_EQ(broker.complete("dead", "t1").status().code(), StatusCode::kFailedPrecondition);
  Result<Finished> done = broker.complete("alive", "t1");
  ASSERT_TRUE(done.is_ok()) << done.status().to_string();
  EXPECT_EQ(done->agent_id, "alive");
  EXPECT_FALSE(done->device_lost);
  EXPECT_EQ(broker.complete("alive", "t1").status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(broker.complete("alive", "nope").status().code(), StatusCode::kNotFound);
}

TEST(Broker, ExpiredLeasesAreRequeuedUntilAttemptsRunOut) {
  Broker broker(BrokerOptions{.max_attempts = 2});
  ASSERT_TRUE(broker.submit(task("t", "J")).is_ok());
  Clock::time_point now{};
  auto first = broker.lease("slow", "cpu", kAny, now);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->deadline, now + seconds(10));
  EXPECT_EQ(broker.next_deadline(), now + seconds(10));
  EXPECT_TRUE(broker.expire(now + seconds(5)).empty());
  EXPECT_EQ(broker.stats()["cpu"].leased, 1u);
  std::vector<Finished> back = broker.expire(now + seconds(11));
  ASSERT_EQ(back.size(), 1u);
  EXPECT_FALSE(back[0].device_lost);  // attempt 1 of 2: re-queued
  EXPECT_EQ(broker.stats()["cpu"].queued, 1u);
  now += seconds(20);
  ASSERT_TRUE(broker.lease("slow", "cpu", kAny, now).has_value());
  std::vector<Finished> lost = broker.expire(now + seconds(11));
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].task_id, "t");
  EXPECT_TRUE(lost[0].device_lost);
  EXPECT_EQ(lost[0].attempts, 2);
  EXPECT_FALSE(broker.lease("other", "cpu", kAny, now).has_value());
  EXPECT_EQ(broker.complete("slow", "t").status().code(), StatusCode::kAlreadyExists);
  EXPECT_FALSE(broker.next_deadline().has_value());
}

TEST(Broker, RefusesBadDuplicateAndOverflowingSubmissions) {
  Broker broker(BrokerOptions{.max_queued_per_key = 2});
  EXPECT_EQ(broker.submit(task("", "J")).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(broker.submit(task("t", "")).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(broker.submit(task("t1", "J")).is_ok());
  EXPECT_EQ(broker.submit(task("t1", "K")).code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE(broker.submit(task("t2", "J")).is_ok());
  Status full = broker.submit(task("t3", "J"));
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("cpu"), std::string::npos);
  // Another key has its own room.
  EXPECT_TRUE(broker.submit(task("t3", "J", "gpu")).is_ok());
}

TEST(Broker, CancellingAJobDropsItsQueuedTasksOnly) {
  Broker broker;
  ASSERT_TRUE(broker.submit(task("a1", "A")).is_ok());
  ASSERT_TRUE(broker.submit(task("a2", "A")).is_ok());
  ASSERT_TRUE(broker.submit(task("b1", "B")).is_ok());
  auto leased = broker.lease("agent", "cpu", kAny, Clock::time_point{});
  ASSERT_EQ(leased->task_id, "a1");
  EXPECT_EQ(broker.cancel_tasks("A", {"a1", "a2"}), 1u);
  auto next = broker.lease("agent", "cpu", kAny, Clock::time_point{});
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->task_id, "b1");
  EXPECT_TRUE(broker.complete("agent", "a1").is_ok());  // the leased one still finishes
  EXPECT_EQ(broker.submit(task("a2", "A")).code(), StatusCode::kAlreadyExists);
}

TEST(Broker, CancellingOneSubmissionLeavesAnotherOfTheSameJobQueued) {
  Broker broker;
  for (const char* id : {"s1", "s2", "t1", "t2", "t3"}) {
    ASSERT_TRUE(broker.submit(task(id, "J")).is_ok());
  }
  ASSERT_TRUE(broker.submit(task("k1", "K")).is_ok());
  EXPECT_EQ(broker.cancel_tasks("J", {"t1", "t2", "t3", "k1", "unknown"}), 3u)
      << "only J's queued tasks among the ids";
  EXPECT_EQ(broker.stats()["cpu"].queued, 3u);
  std::set<std::string> leased;
  while (auto next = broker.lease("agent", "cpu", kAny, Clock::time_point{})) {
    leased.insert(next->task_id);
  }
  EXPECT_EQ(leased, (std::set<std::string>{"s1", "s2", "k1"}));
}

TEST(Broker, RemembersABoundedNumberOfFinishedTasks) {
  BrokerOptions options;
  options.max_finished_remembered = 3;
  Broker broker(options);
  for (const char* id : {"t1", "t2", "t3", "t4"}) {
    ASSERT_TRUE(broker.submit(task(id, "J")).is_ok());
    auto leased = broker.lease("agent", "cpu", kAny, Clock::time_point{});
    ASSERT_TRUE(leased.has_value());
    ASSERT_TRUE(broker.complete("agent", id).is_ok());
  }
  // The last three are remembered: a duplicate result is recognised, the id not reused.
  EXPECT_EQ(broker.complete("agent", "t4").status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(broker.submit(task("t2", "J")).code(), StatusCode::kAlreadyExists);
  // The oldest is forgotten: its late result is unknown, dropped all the same.
  EXPECT_EQ(broker.complete("agent", "t1").status().code(), StatusCode::kNotFound);
}

TEST(BrokerRouting, CanRunNeedsTheArchitectureAndEveryFeature) {
  Requirement any;
  Requirement arm{"aarch64", {}, "arm"};
  Requirement dotprod{"aarch64", {"dotprod", "neon"}, "arm+dotprod"};
  Requirement avx2{"", {"avx2"}, "any+avx2"};
  EXPECT_TRUE(can_run(kAny, any));
  EXPECT_TRUE(can_run(kX86, any));
  EXPECT_FALSE(can_run(kAny, arm));  // an agent that names no architecture runs none
  EXPECT_FALSE(can_run(kX86, arm));
  EXPECT_TRUE(can_run(kArm, arm));
  EXPECT_FALSE(can_run(kArm, dotprod));
  EXPECT_TRUE(can_run(kArmDotprod, dotprod));
  EXPECT_TRUE(can_run(kX86, avx2));
  EXPECT_FALSE(can_run(kArm, avx2));
}

TEST(BrokerRouting, EachAgentGetsOnlyTasksItCanRun) {
  Broker broker;
  ASSERT_TRUE(broker.submit(routed("x0", "J", "x86_64")).is_ok());
  ASSERT_TRUE(broker.submit(routed("a0", "J", "aarch64")).is_ok());
  ASSERT_TRUE(broker.submit(task("any0", "J")).is_ok());
  ASSERT_TRUE(broker.submit(routed("d0", "J", "aarch64", {"dotprod"})).is_ok());
  ASSERT_TRUE(broker.submit(routed("x1", "J", "x86_64", {"avx2", "fma"})).is_ok());
  ASSERT_TRUE(broker.submit(routed("x2", "J", "x86_64", {"avx512f"})).is_ok());
  // Within the job, submission order among the tasks this agent can run.
  EXPECT_EQ(drain(broker, kX86), (std::vector<std::string>{"x0", "any0", "x1"}));
  EXPECT_EQ(drain(broker, kArm), (std::vector<std::string>{"a0"}));
  EXPECT_EQ(drain(broker, kArmDotprod), (std::vector<std::string>{"d0"}));
  // Nobody runs avx512f: the task stays queued, not lost.
  EXPECT_EQ(broker.stats()["cpu"].queued, 1u);
  EXPECT_EQ(broker.stats()["cpu"].leased, 5u);
  EXPECT_EQ(drain(broker, Capability{"x86_64", {"avx512f"}}), (std::vector<std::string>{"x2"}));
}

TEST(BrokerRouting, AJobThatThisAgentCannotServeDoesNotBlockOthers) {
  Broker broker;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(broker.submit(routed("a" + std::to_string(i), "ARM", "aarch64")).is_ok());
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(broker.submit(routed("x" + std::to_string(i), "X86", "x86_64")).is_ok());
  }
  EXPECT_EQ(drain(broker, kX86), (std::vector<std::string>{"x0", "x1", "x2"}));
  EXPECT_EQ(broker.stats()["cpu"].queued, 4u);
  EXPECT_EQ(drain(broker, kArm), (std::vector<std::string>{"a0", "a1", "a2", "a3"}));
}

TEST(BrokerRouting, JobsTakeTurnsAcrossAMixOfArchitectures) {
  Broker broker;
  // Job M mixes both architectures; X has x86 tasks only, A arm tasks only.
  for (const char* id : {"m-x0", "m-a0", "m-x1", "m-a1"}) {
    const std::string arch = std::string(id).find("-x") != std::string::npos ? "x86_64" : "aarch64";
    ASSERT_TRUE(broker.submit(routed(id, "M", arch)).is_ok());
  }
  for (const char* id : {"x-0", "x-1", "x-2"}) {
    ASSERT_TRUE(broker.submit(routed(id, "X", "x86_64")).is_ok());
  }
  for (const char* id : {"a-0", "a-1"}) {
    ASSERT_TRUE(broker.submit(routed(id, "A", "aarch64")).is_ok());
  }
  // One turn order for the key: a job served by one architecture waits behind the others on
  // every architecture, and a job not served keeps its place.
  std::vector<std::string> order;
  auto take = [&](const Capability& c) {
    auto a = broker.lease(c.architecture, "cpu", c, Clock::time_point{});
    order.push_back(a ? a->task_id : "-");
  };
  for (const Capability* c :
       {&kX86, &kArm, &kX86, &kX86, &kArm, &kArm, &kX86, &kX86, &kArm, &kArm, &kX86}) {
    take(*c);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"m-x0", "a-0", "x-0", "m-x1", "a-1", "m-a0", "x-1",
                                             "x-2", "m-a1", "-", "-"}));
}

TEST(BrokerRouting, ARequeuedTaskKeepsItsRequirement) {
  Broker broker;
  ASSERT_TRUE(broker.submit(routed("a", "J", "aarch64")).is_ok());
  ASSERT_TRUE(broker.submit(routed("x", "J", "x86_64")).is_ok());
  ASSERT_EQ(broker.lease("arm-1", "cpu", kArm, Clock::time_point{})->task_id, "a");
  ASSERT_EQ(broker.release_agent("arm-1").size(), 1u);
  EXPECT_EQ(drain(broker, kX86, "x86"), (std::vector<std::string>{"x"}));
  auto again = broker.lease("arm-2", "cpu", kArm, Clock::time_point{});
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->task_id, "a");
  EXPECT_EQ(again->attempt, 2);
}

TEST(BrokerRouting, CancellingAJobDropsItsTasksOfEveryRequirement) {
  Broker broker;
  ASSERT_TRUE(broker.submit(routed("a", "J", "aarch64")).is_ok());
  ASSERT_TRUE(broker.submit(routed("x", "J", "x86_64")).is_ok());
  ASSERT_TRUE(broker.submit(task("any", "J")).is_ok());
  ASSERT_TRUE(broker.submit(routed("k", "K", "aarch64")).is_ok());
  EXPECT_EQ(broker.cancel_tasks("J", {"a", "x", "any"}), 3u);
  EXPECT_EQ(broker.stats()["cpu"].queued, 1u);
  EXPECT_TRUE(drain(broker, kX86).empty());
  EXPECT_EQ(drain(broker, kArm), (std::vector<std::string>{"k"}));
  EXPECT_TRUE(broker.waiting("cpu", {}).empty());
}

TEST(BrokerWaiting, ListsWhatNoConnectedAgentCanRunWithAReason) {
  Broker broker;
  ASSERT_TRUE(broker.submit(routed("a0", "J", "aarch64")).is_ok());
  ASSERT_TRUE(broker.submit(routed("a1", "K", "aarch64")).is_ok());
  ASSERT_TRUE(broker.submit(routed("d0", "J", "aarch64", {"dotprod"})).is_ok());
  ASSERT_TRUE(broker.submit(routed("x0", "J", "x86_64")).is_ok());

  std::vector<WaitingTasks> w = broker.waiting("cpu", {kX86});
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].target, "llvm -mtriple=aarch64-linux-gnu");
  EXPECT_EQ(w[0].tasks, 2u);
  EXPECT_EQ(w[0].reason, "no agent of key cpu runs aarch64 (agents: x86_64)");
  EXPECT_EQ(w[1].target, "llvm -mtriple=aarch64-linux-gnu +dotprod");
  EXPECT_EQ(w[1].tasks, 1u);

  w = broker.waiting("cpu", {kX86, kArm});
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].tasks, 1u);
  EXPECT_EQ(w[0].reason, "no aarch64 agent of key cpu has +dotprod");

  EXPECT_TRUE(broker.waiting("cpu", {kX86, kArmDotprod}).empty());
  w = broker.waiting("cpu", {});
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0].reason, "no agent of key cpu is connected");
  EXPECT_TRUE(broker.waiting("other-key", {}).empty());

  // Leased tasks never wait.
  EXPECT_EQ(drain(broker, kArm), (std::vector<std::string>{"a0", "a1"}));
  w = broker.waiting("cpu", {kX86});
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].target, "llvm -mtriple=aarch64-linux-gnu +dotprod");
}

TEST(BrokerWaiting, ReasonsNameTheMissingPiece) {
  const Requirement avx512{"", {"avx512f"}, "llvm -mattr=+avx512f"};
  EXPECT_EQ(why_no_agent_fits("k", avx512, {kX86, kArm}), "no agent of key k has +avx512f");
  const Requirement both{"aarch64", {"dotprod", "i8mm"}, "t"};
  EXPECT_EQ(why_no_agent_fits("k", both, {kArm}), "no aarch64 agent of key k has +dotprod, +i8mm");
  EXPECT_EQ(why_no_agent_fits(
                "k", both, {Capability{"aarch64", {"dotprod"}}, Capability{"aarch64", {"i8mm"}}}),
            "no aarch64 agent of key k has all of +dotprod, +i8mm");
  EXPECT_EQ(why_no_agent_fits("k", both, {kX86, Capability{}}),
            "no agent of key k runs aarch64 (agents: unknown, x86_64)");
  EXPECT_EQ(why_no_agent_fits("k", both, {kArmDotprod}), "");
}

// Random submissions, leases, results, losses and expiries by agents of two architectures:
// no agent ever holds a task of another architecture, and every task ends exactly once.
TEST(BrokerRouting, RandomTrafficNeverCrossesArchitecturesAndLosesNothing) {
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  Broker broker(BrokerOptions{.max_attempts = 3});
  const std::vector<std::string> archs = {"x86_64", "aarch64"};
  std::map<std::string, std::string> arch_of;  // task -> architecture ("" = any)
  std::map<std::string, int> ended;
  int next_task = 0;
  Clock::time_point now{};
  struct Agent {
    std::string id;
    Capability capability;
    std::set<std::string> held;
  };
  std::vector<Agent> agents;
  for (int i = 0; i < 6; ++i) {
    agents.push_back({"agent" + std::to_string(i), Capability{archs[i % 2], {}}, {}});
  }
  auto end = [&](const Finished& f) {
    ++ended[f.task_id];
    for (Agent& a : agents) a.held.erase(f.task_id);
  };
  for (int step = 0; step < 20000; ++step) {
    now += std::chrono::milliseconds(10);
    const int action = int(rng() % 10);
    Agent& agent = agents[rng() % agents.size()];
    if (action < 3 && next_task < 3000) {
      const std::string id = "t" + std::to_string(next_task++);
      const int kind = int(rng() % 3);
      TaskSpec spec = kind == 2 ? task(id, "job" + std::to_string(rng() % 4))
                                : routed(id, "job" + std::to_string(rng() % 4), archs[kind]);
      spec.lease = seconds(5);
      arch_of[id] = spec.requirement.architecture;
      ASSERT_TRUE(broker.submit(spec).is_ok());
    } else if (action < 6) {
      auto a = broker.lease(agent.id, "cpu", agent.capability, now);
      if (!a) continue;
      const std::string& need = arch_of.at(a->task_id);
      ASSERT_TRUE(need.empty() || need == agent.capability.architecture)
          << a->task_id << " needs " << need << " but went to " << agent.id;
      agent.held.insert(a->task_id);
    } else if (action < 9) {
      if (agent.held.empty()) continue;
      const std::string id = *agent.held.begin();
      agent.held.erase(id);
      Result<Finished> done = broker.complete(agent.id, id);
      if (done.is_ok()) end(*done);
    } else if (rng() % 20 == 0) {
      for (const Finished& f : broker.release_agent(agent.id)) {
        agent.held.erase(f.task_id);
        if (f.device_lost) end(f);
      }
    } else {
      for (const Finished& f : broker.expire(now)) {
        for (Agent& a : agents) a.held.erase(f.task_id);
        if (f.device_lost) end(f);
      }
    }
  }
  // Drain: every agent answers whatever it can lease until nothing is queued or leased.
  for (Agent& a : agents) {
    for (const std::string& id : a.held) {
      Result<Finished> done = broker.complete(a.id, id);
      if (done.is_ok()) end(*done);
    }
    a.held.clear();
  }
  for (bool progress = true; progress;) {
    progress = false;
    for (Agent& agent : agents) {
      while (auto a = broker.lease(agent.id, "cpu", agent.capability, now)) {
        const std::string& need = arch_of.at(a->task_id);
        ASSERT_TRUE(need.empty() || need == agent.capability.architecture);
        Result<Finished> done = broker.complete(agent.id, a->task_id);
        ASSERT_TRUE(done.is_ok()) << done.status().to_string();
        end(*done);
        progress = true;
      }
    }
  }
  EXPECT_EQ(broker.stats()["cpu"].queued, 0u);
  EXPECT_EQ(broker.stats()["cpu"].leased, 0u);
  ASSERT_EQ(ended.size(), arch_of.size());
  for (const auto& [id, n] : ended) EXPECT_EQ(n, 1) << id;
}

}  // namespace
}  // namespace kiln::tracker
