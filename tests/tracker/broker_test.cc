// The broker: per-key queues shared fairly between jobs, leases with deadlines, re-queueing,
// bounded attempts ending as DEVICE_LOST, and results counted once.

#include "tracker/broker.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace kiln::tracker {
namespace {

using std::chrono::seconds;

TaskSpec task(const std::string& id, const std::string& job, const std::string& key = "cpu") {
  return TaskSpec{id, job, key, "payload of " + id, seconds(10)};
}

TEST(Broker, JobsOnOneKeyTakeTurns) {
  Broker broker;
  for (int i = 0; i < 6; ++i)
    ASSERT_TRUE(broker.submit(task("a" + std::to_string(i), "A")).is_ok());
  for (int i = 0; i < 2; ++i)
    ASSERT_TRUE(broker.submit(task("b" + std::to_string(i), "B")).is_ok());
  const Clock::time_point now{};
  std::vector<std::string> order;
  while (auto a = broker.lease("agent", "cpu", now)) order.push_back(a->task_id);
  EXPECT_EQ(order, (std::vector<std::string>{"a0", "b0", "a1", "b1", "a2", "a3", "a4", "a5"}));
}

TEST(Broker, KeysAreSeparateQueues) {
  Broker broker;
  ASSERT_TRUE(broker.submit(task("t", "J", "arm")).is_ok());
  EXPECT_FALSE(broker.lease("x86-agent", "x86", Clock::time_point{}).has_value());
  auto a = broker.lease("arm-agent", "arm", Clock::time_point{});
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->payload, "payload of t");
  EXPECT_EQ(broker.stats()["arm"].leased, 1u);
}

TEST(Broker, ALostAgentsTasksRunElsewhereAndCountOnce) {
  Broker broker;
  ASSERT_TRUE(broker.submit(task("t1", "J")).is_ok());
  ASSERT_TRUE(broker.submit(task("t2", "J")).is_ok());
  const Clock::time_point now{};
  ASSERT_EQ(broker.lease("dead", "cpu", now)->task_id, "t1");
  std::vector<Finished> back = broker.release_agent("dead");
  ASSERT_EQ(back.size(), 1u);
  EXPECT_FALSE(back[0].device_lost);  // back in the queue, not lost yet
  // The re-queued task goes first.
  auto again = broker.lease("alive", "cpu", now);
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
  auto first = broker.lease("slow", "cpu", now);
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
  ASSERT_TRUE(broker.lease("slow", "cpu", now).has_value());
  std::vector<Finished> lost = broker.expire(now + seconds(11));
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].task_id, "t");
  EXPECT_TRUE(lost[0].device_lost);
  EXPECT_EQ(lost[0].attempts, 2);
  EXPECT_FALSE(broker.lease("other", "cpu", now).has_value());
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
  auto leased = broker.lease("agent", "cpu", Clock::time_point{});
  ASSERT_EQ(leased->task_id, "a1");
  EXPECT_EQ(broker.cancel_job("A"), 1u);
  auto next = broker.lease("agent", "cpu", Clock::time_point{});
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->task_id, "b1");
  EXPECT_TRUE(broker.complete("agent", "a1").is_ok());  // the leased one still finishes
  EXPECT_EQ(broker.submit(task("a2", "A")).code(), StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace kiln::tracker
