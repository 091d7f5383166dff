// The tracker's gRPC server on 127.0.0.1 with a port picked at run time, driven by scripted
// agents and a client speaking the kiln.v1 Tracker protocol: every task answered once, lost
// agents' tasks re-run elsewhere, expired leases re-queued, bounded attempts, tokens, and
// routing by architecture on a key with boards of several (tasks that no agent can run wait,
// and the submitter is told why and when that changes).

#include "tracker/server.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "kiln/v1/tracker.grpc.pb.h"
#include "proto/kiln/grpc_status.h"
#include "proto/kiln/message_limits.h"

namespace kiln::tracker {
namespace {

namespace pb = kiln::v1;
using namespace std::chrono_literals;

constexpr const char* kToken = "s3cret-token";

std::unique_ptr<grpc::ClientContext> context_with(const std::string& token) {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
  return context;
}

/// Polls `done` until it holds or `limit` passes; returns its last value.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return done();
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

/// The board a fake agent says it is: empty for one that names no architecture.
struct Board {
  std::string architecture;
  std::vector<std::string> features;  ///< without '+'
};

/// A scripted agent: answers each task with a fixed cost, or holds it without answering.
class FakeAgent {
 public:
  /// kAnswerBadCosts answers OK with the costs a broken or hostile board might send.
  enum class Mode { kAnswer, kHold, kAnswerBadCosts };

  /// `secret`: the agent secret it presents (that of an earlier session, to reconnect).
  FakeAgent(const std::string& address, std::string id, Mode mode, std::string token = kToken,
            const Board& board = {}, int capacity = 2, const std::string& secret = "")
      : id_(std::move(id)), mode_(mode) {
    auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    stub_ = pb::Tracker::NewStub(channel);
    context_ = context_with(token);
    stream_ = stub_->Connect(context_.get());
    pb::AgentMessage hello;
    hello.mutable_register_()->set_agent_id(id_);
    hello.mutable_register_()->set_device_key("cpu");
    hello.mutable_register_()->set_capacity(capacity);
    hello.mutable_register_()->set_agent_secret(secret);
    if (!board.architecture.empty()) {
      hello.mutable_register_()->mutable_target()->set_triple(board.architecture +
                                                              "-unknown-linux-gnu");
      hello.mutable_register_()->mutable_facts()->set_architecture(board.architecture);
    }
    for (const std::string& f : board.features) {
      hello.mutable_register_()->mutable_facts()->add_isa_features(f);
    }
    stream_->Write(hello);
    reader_ = std::thread([this] { loop(); });
    heartbeat_ = std::thread([this] {
      while (!stopped_) {
        pb::AgentMessage beat;
        beat.mutable_heartbeat()->set_sent_unix_ms(1);
        {
          std::lock_guard<std::mutex> lock(write_mutex_);
          if (stopped_ || !stream_->Write(beat)) return;
        }
        std::this_thread::sleep_for(100ms);
      }
    });
  }
  ~FakeAgent() { kill(); }

  /// Drops the connection, as a crashed board does.
  void kill() {
    if (stopped_.exchange(true)) return;
    context_->TryCancel();
    if (reader_.joinable()) reader_.join();
    if (heartbeat_.joinable()) heartbeat_.join();
  }

  int received() const { return received_; }
  /// The triple of every task it received.
  std::vector<std::string> triples() const {
    std::lock_guard<std::mutex> lock(tasks_mutex_);
    return triples_;
  }
  bool registered() const { return registered_; }
  /// The secret the tracker gave it (once registered).
  std::string secret() const {
    std::lock_guard<std::mutex> lock(tasks_mutex_);
    return secret_;
  }
  /// Waits (with a deadline) for the tracker to end the stream, and returns its status.
  grpc::Status finish_status() {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!finished_ && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    kill();
    return final_;
  }

 private:
  void loop() {
    pb::TrackerMessage message;
    while (stream_->Read(&message)) {
      if (message.has_registered()) {
        std::lock_guard<std::mutex> lock(tasks_mutex_);
        secret_ = message.registered().agent_secret();
        registered_ = true;
      }
      if (!message.has_task()) continue;
      {
        std::lock_guard<std::mutex> lock(tasks_mutex_);
        triples_.push_back(message.task().task().target().triple());
      }
      ++received_;
      if (mode_ == Mode::kHold) continue;
      pb::AgentMessage reply;
      pb::MeasureResult* r = reply.mutable_result();
      r->set_task_id(message.task().task().task_id());
      r->set_error_code(pb::MEASURE_ERROR_CODE_OK);
      if (mode_ == Mode::kAnswerBadCosts) {
        // NaN, a negative, infinity, or no cost at all, in turn.
        const int kind = received_ % 4;
        if (kind == 1) r->add_costs_s(std::nan(""));
        if (kind == 2) r->add_costs_s(-0.001);
        if (kind == 3) r->add_costs_s(INFINITY);
      } else {
        r->add_costs_s(0.001);
      }
      std::lock_guard<std::mutex> lock(write_mutex_);
      stream_->Write(reply);
    }
    final_ = stream_->Finish();
    finished_ = true;
  }

  std::string id_;
  Mode mode_;
  std::unique_ptr<pb::Tracker::Stub> stub_;
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReaderWriter<pb::AgentMessage, pb::TrackerMessage>> stream_;
  std::mutex write_mutex_;
  std::thread reader_, heartbeat_;
  std::atomic<bool> stopped_{false}, registered_{false}, finished_{false};
  std::atomic<int> received_{0};
  mutable std::mutex tasks_mutex_;
  std::vector<std::string> triples_;
  std::string secret_;
  grpc::Status final_;
};

/// A Submit call read on a thread of its own: its results and every waiting change, as they
/// come.
class SubmitCall {
 public:
  SubmitCall(const std::string& address, pb::SubmitRequest request) {
    stub_ = pb::Tracker::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    context_ = context_with(kToken);
    context_->set_deadline(std::chrono::system_clock::now() + 60s);
    reader_ = stub_->Submit(context_.get(), request);
    thread_ = std::thread([this] {
      pb::SubmitResponse batch;
      while (reader_->Read(&batch)) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (batch.waiting_changed()) waiting_.push_back(batch.waiting());
        results_.insert(results_.end(), batch.results().begin(), batch.results().end());
      }
      grpc::Status s = reader_->Finish();
      std::lock_guard<std::mutex> lock(mutex_);
      status_ = s;
      done_ = true;
    });
  }
  ~SubmitCall() {
    if (!done()) context_->TryCancel();
    thread_.join();
  }

  bool done() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return done_;
  }
  grpc::Status status() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return status_;
  }
  std::vector<pb::MeasureResult> results() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return results_;
  }
  /// Every waiting change received, in order (empty strings: no longer waiting).
  std::vector<std::string> waiting() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return waiting_;
  }

 private:
  std::unique_ptr<pb::Tracker::Stub> stub_;
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReader<pb::SubmitResponse>> reader_;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::vector<pb::MeasureResult> results_;
  std::vector<std::string> waiting_;
  grpc::Status status_;
  bool done_ = false;
};

/// A task for `triple` (empty: any architecture) that turns on `features` ("+dotprod").
void add_task(pb::SubmitRequest& request, const std::string& id, const std::string& triple,
              const std::vector<std::string>& features = {}) {
  pb::MeasureTask* task = request.add_tasks();
  task->set_task_id(id);
  task->mutable_workload()->set_canonical("matmul:M=8,N=8,K=8");
  std::string canonical = "llvm";
  if (!triple.empty()) canonical += " -mtriple=" + triple;
  for (size_t i = 0; i < features.size(); ++i) {
    canonical += (i == 0 ? " -mattr=" : ",") + features[i];
  }
  task->mutable_target()->set_canonical(canonical);
  task->mutable_target()->set_triple(triple);
  for (const std::string& f : features) task->mutable_target()->add_features(f);
}

pb::SubmitRequest request_for(const std::string& job) {
  pb::SubmitRequest request;
  request.set_job_id(job);
  request.set_device_key("cpu");
  return request;
}

class TrackerServerTest : public ::testing::Test {
 protected:
  void start(TrackerOptions options = {}) {
    options.listen = "127.0.0.1:0";
    if (options.token.empty()) options.token = kToken;
    options.heartbeat_interval = 100ms;
    auto server = TrackerServer::start(options);
    ASSERT_TRUE(server.is_ok()) << server.status().to_string();
    server_ = std::move(server).value();
    address_ = "127.0.0.1:" + std::to_string(server_->port());
  }
  void TearDown() override {
    agents_.clear();
    if (server_) server_->shutdown();
  }

  FakeAgent& agent(const std::string& id, FakeAgent::Mode mode = FakeAgent::Mode::kAnswer,
                   const Board& board = {}, const std::string& secret = "") {
    agents_.push_back(std::make_unique<FakeAgent>(address_, id, mode, kToken, board, 2, secret));
    // Wait (with a deadline) until the tracker has registered it.
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!agents_.back()->registered() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    EXPECT_TRUE(agents_.back()->registered()) << id << " did not register";
    return *agents_.back();
  }

  /// Submits `n` tasks and collects the results; `during` runs once the first result is in.
  grpc::Status submit(int n, std::vector<pb::MeasureResult>& results,
                      const std::function<void()>& during = {}, const std::string& token = kToken,
                      const std::string& prefix = "t",
                      const std::function<void(pb::MeasureTask&)>& edit = {}) {
    auto stub =
        pb::Tracker::NewStub(grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
    pb::SubmitRequest request;
    request.set_job_id("job-" + prefix);
    request.set_device_key("cpu");
    for (int i = 0; i < n; ++i) {
      pb::MeasureTask* task = request.add_tasks();
      task->set_task_id(prefix + std::to_string(i));
      task->mutable_workload()->set_canonical("matmul:M=8,N=8,K=8");
      if (edit) edit(*task);
    }
    auto context = context_with(token);
    context->set_deadline(std::chrono::system_clock::now() + 60s);
    auto reader = stub->Submit(context.get(), request);
    pb::SubmitResponse batch;
    bool ran = false;
    while (reader->Read(&batch)) {
      results.insert(results.end(), batch.results().begin(), batch.results().end());
      if (during && !ran) {
        ran = true;
        during();
      }
    }
    return reader->Finish();
  }

  pb::StatusResponse status() {
    auto stub =
        pb::Tracker::NewStub(grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
    auto context = context_with(kToken);
    pb::StatusResponse response;
    grpc::Status s = stub->GetStatus(context.get(), pb::StatusRequest(), &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response;
  }

  std::unique_ptr<TrackerServer> server_;
  std::string address_;
  std::vector<std::unique_ptr<FakeAgent>> agents_;
};

std::map<std::string, int> count_by_task(const std::vector<pb::MeasureResult>& results) {
  std::map<std::string, int> out;
  for (const pb::MeasureResult& r : results) ++out[r.task_id()];
  return out;
}

TEST_F(TrackerServerTest, EveryTaskIsAnsweredOnceByTheAgentsOfItsKey) {
  start();
  agent("a1");
  agent("a2");
  agent("a3");
  std::vector<pb::MeasureResult> results;
  grpc::Status s = submit(60, results);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(results.size(), 60u);
  std::map<std::string, int> counts = count_by_task(results);
  EXPECT_EQ(counts.size(), 60u);
  std::set<std::string> agents;
  for (const pb::MeasureResult& r : results) {
    EXPECT_EQ(r.error_code(), pb::MEASURE_ERROR_CODE_OK);
    agents.insert(r.agent());
  }
  EXPECT_EQ(agents, (std::set<std::string>{"a1", "a2", "a3"}));
}

TEST_F(TrackerServerTest, ALostAgentsTasksRunOnTheOthers) {
  start();
  FakeAgent& holder = agent("holder", FakeAgent::Mode::kHold);
  agent("worker");
  std::vector<pb::MeasureResult> results;
  grpc::Status s = submit(20, results, [&] { holder.kill(); });
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_GT(holder.received(), 0);
  std::map<std::string, int> counts = count_by_task(results);
  EXPECT_EQ(counts.size(), 20u);
  for (const auto& [task, n] : counts) EXPECT_EQ(n, 1) << task;
  for (const pb::MeasureResult& r : results) {
    EXPECT_EQ(r.error_code(), pb::MEASURE_ERROR_CODE_OK) << r.task_id();
    EXPECT_EQ(r.agent(), "worker");
  }
}

TEST_F(TrackerServerTest, ExpiredLeasesMoveOnAndEndAsDeviceLost) {
  TrackerOptions options;
  options.default_lease = 300ms;
  options.broker.max_attempts = 2;
  start(options);
  FakeAgent& a = agent("slow-a", FakeAgent::Mode::kHold);
  FakeAgent& b = agent("slow-b", FakeAgent::Mode::kHold);
  std::vector<pb::MeasureResult> results;
  grpc::Status s = submit(1, results);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].error_code(), pb::MEASURE_ERROR_CODE_DEVICE_LOST);
  EXPECT_EQ(a.received() + b.received(), 2);  // one lease each, then no attempts left
}

// A task whose submission its client cancelled while an agent held it is dropped when that
// agent goes, not queued again for no one (found by the tracker fuzz target).
TEST_F(TrackerServerTest, ATaskOfACancelledSubmissionIsNotQueuedAgainWhenItsAgentGoes) {
  start();
  FakeAgent& holder = agent("holder", FakeAgent::Mode::kHold);
  {
    pb::SubmitRequest request = request_for("job-cancelled");
    add_task(request, "t0", "");
    SubmitCall call(address_, request);
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (holder.received() == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    ASSERT_EQ(holder.received(), 1);
  }  // the client cancels its submission
  holder.kill();
  auto held = [&] {
    int64_t tasks = 0;
    const pb::StatusResponse response = status();
    for (const pb::KeyStatus& key : response.keys()) tasks += key.queued() + key.leased();
    return tasks;
  };
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (held() != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(held(), 0);
}

// Tokens are compared in time that depends on the lengths alone; the answers are those of ==.
TEST(BearerToken, ConstantTimeEqualAgreesWithEquality) {
  EXPECT_TRUE(kiln::constant_time_equal("Bearer s3cret", "Bearer s3cret"));
  EXPECT_TRUE(kiln::constant_time_equal("", ""));
  EXPECT_FALSE(kiln::constant_time_equal("Bearer s3cret", "Bearer s3creT"));
  EXPECT_FALSE(kiln::constant_time_equal("Bearer s3cret", "bearer s3cret"));
  EXPECT_FALSE(kiln::constant_time_equal("Bearer s3cret", "Bearer s3cre"));
  EXPECT_FALSE(kiln::constant_time_equal("Bearer s3cre", "Bearer s3cret"));
  EXPECT_FALSE(kiln::constant_time_equal("", "x"));
  EXPECT_FALSE(kiln::constant_time_equal(std::string("a\0b", 3), std::string("a\0c", 3)));
}

TEST_F(TrackerServerTest, CallsWithoutTheTokenAreRefused) {
  start();
  std::vector<pb::MeasureResult> results;
  grpc::Status none = submit(1, results, {}, "");
  EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::Status wrong = submit(1, results, {}, "not-the-token");
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(wrong.error_message().find("bearer token"), std::string::npos);
  EXPECT_TRUE(results.empty());

  FakeAgent intruder(address_, "intruder", FakeAgent::Mode::kAnswer, "not-the-token");
  grpc::Status refused = intruder.finish_status();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_FALSE(intruder.registered());
}

// A registration may not claim capacity the tracker would have to hold a slot for each unit of:
// 50,000,000 grew a tracker by 590 MiB before the limit. The tracker still serves others.
TEST_F(TrackerServerTest, RefusesAnAgentCapacityAboveTheLimit) {
  start();
  FakeAgent greedy(address_, "greedy", FakeAgent::Mode::kAnswer, kToken, {}, 50000000);
  grpc::Status refused = greedy.finish_status();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(refused.error_message().find("limit of 256"), std::string::npos)
      << refused.error_message();
  EXPECT_FALSE(greedy.registered());

  FakeAgent& a = agent("a");
  std::vector<pb::MeasureResult> results;
  ASSERT_TRUE(submit(4, results).ok());
  EXPECT_EQ(results.size(), 4u);
  EXPECT_EQ(a.received(), 4);
}

// A message over the tracker's limit fails its own call with RESOURCE_EXHAUSTED, before the
// tracker reads it; the tracker goes on serving.
TEST_F(TrackerServerTest, AnOversizedMessageIsRefusedAndTheTrackerServesOn) {
  start();
  agent("a");
  std::vector<pb::MeasureResult> results;
  grpc::Status refused = submit(1, results, {}, kToken, "big", [](pb::MeasureTask& task) {
    task.mutable_workload()->set_canonical(std::string(kMaxFleetMessageBytes, 'x'));
  });
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_TRUE(results.empty());
  ASSERT_TRUE(submit(4, results).ok());
  EXPECT_EQ(results.size(), 4u);
}

// One client opening 1,000 Submit streams: the tracker keeps kMaxSubmissionsPerClient open and
// refuses the rest with RESOURCE_EXHAUSTED; once they end, the client is served again.
TEST_F(TrackerServerTest, OneClientsStreamsBeyondTheLimitAreRefused) {
  start();
  constexpr int kStreams = 1000;
  auto channel = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  auto stub = pb::Tracker::NewStub(channel);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::thread> readers;
  std::mutex mutex;
  std::map<grpc::StatusCode, int> ended;
  for (int i = 0; i < kStreams; ++i) {
    contexts.push_back(context_with(kToken));
    contexts.back()->set_deadline(std::chrono::system_clock::now() + 120s);
    pb::SubmitRequest request = request_for("flood-" + std::to_string(i));
    add_task(request, "flood-" + std::to_string(i), "");
    readers.emplace_back([&, context = contexts.back().get(), request] {
      auto reader = stub->Submit(context, request);
      pb::SubmitResponse response;
      while (reader->Read(&response)) {
      }
      grpc::Status status = reader->Finish();
      std::lock_guard<std::mutex> lock(mutex);
      ++ended[status.error_code()];
    });
  }
  auto refused = [&] {
    std::lock_guard<std::mutex> lock(mutex);
    return ended[grpc::StatusCode::RESOURCE_EXHAUSTED];
  };
  EXPECT_TRUE(eventually([&] { return refused() == kStreams - kMaxSubmissionsPerClient; }, 60s))
      << refused() << " refused";
  {
    std::lock_guard<std::mutex> lock(mutex);
    EXPECT_EQ(ended.size(), 1u) << "only refusals have ended; the others wait for an agent";
  }
  for (auto& context : contexts) context->TryCancel();
  for (std::thread& t : readers) t.join();
  agent("a");
  std::vector<pb::MeasureResult> results;
  grpc::Status served = submit(4, results);
  EXPECT_TRUE(served.ok()) << served.error_message();
  EXPECT_EQ(results.size(), 4u);
}

// A token holder cannot take a live agent's id (and its stream) over; the agent itself,
// reconnecting before the tracker noticed its old stream break, presents its secret and does.
TEST_F(TrackerServerTest, AnotherAgentCannotTakeOverALiveAgentsId) {
  start();
  FakeAgent& a = agent("a1");
  const std::string secret = a.secret();
  EXPECT_EQ(secret.size(), 32u);
  for (const std::string& presented : {std::string(), std::string(32, '0')}) {
    FakeAgent thief(address_, "a1", FakeAgent::Mode::kAnswer, kToken, {}, 2, presented);
    grpc::Status refused = thief.finish_status();
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::ALREADY_EXISTS) << refused.error_message();
    EXPECT_FALSE(thief.registered());
  }
  std::vector<pb::MeasureResult> results;
  ASSERT_TRUE(submit(4, results).ok());
  EXPECT_EQ(a.received(), 4) << "the live agent kept its tasks";

  FakeAgent& again = agent("a1", FakeAgent::Mode::kAnswer, {}, secret);
  EXPECT_EQ(a.finish_status().error_code(), grpc::StatusCode::ABORTED);
  results.clear();
  ASSERT_TRUE(submit(4, results, {}, kToken, "u").ok());
  EXPECT_EQ(again.received(), 4);
  EXPECT_NE(again.secret(), secret) << "each session gets a secret of its own";
}

// Ids registered once and gone are not kept for ever: past max_agent_records, the lost agents
// longest gone are forgotten first, connected ones never.
TEST_F(TrackerServerTest, LostAgentsBeyondTheRecordLimitAreForgottenOldestFirst) {
  TrackerOptions options;
  options.max_agent_records = 3;
  start(options);
  agent("a");
  auto agent_ids = [&] {
    std::map<std::string, std::string> states;
    const pb::StatusResponse now = status();
    for (const pb::AgentStatus& a : now.agents()) states[a.agent_id()] = a.state();
    return states;
  };
  for (const std::string id : {"b", "c"}) {
    agent(id).kill();
    ASSERT_TRUE(eventually([&] { return agent_ids()[id] == "lost"; })) << id;
  }
  EXPECT_EQ(agent_ids().size(), 3u);
  agent("d");
  std::map<std::string, std::string> kept = agent_ids();
  EXPECT_EQ(kept,
            (std::map<std::string, std::string>{{"a", "idle"}, {"c", "lost"}, {"d", "idle"}}));
  agent("e");
  agent("f");
  kept = agent_ids();
  EXPECT_EQ(kept.size(), 4u) << "connected agents are all kept, past the limit";
  EXPECT_EQ(kept.count("c"), 0u);
}

// Costs an agent reports are not trusted: an OK result with a NaN, negative, infinite or missing
// cost reaches the client as that agent's RUNTIME_ERROR, one result per task, not as an OK
// result that would fail the job at the tuning log.
TEST_F(TrackerServerTest, AnOkResultWithInvalidCostsBecomesTheAgentsError) {
  start();
  FakeAgent bad(address_, "bad", FakeAgent::Mode::kAnswerBadCosts);
  ASSERT_TRUE(eventually([&] { return bad.registered(); }));
  std::vector<pb::MeasureResult> results;
  ASSERT_TRUE(submit(8, results).ok());
  ASSERT_EQ(results.size(), 8u);
  for (const pb::MeasureResult& r : results) {
    EXPECT_EQ(r.error_code(), pb::MEASURE_ERROR_CODE_RUNTIME_ERROR) << r.task_id();
    EXPECT_NE(r.error_message().find("invalid cost"), std::string::npos) << r.error_message();
    EXPECT_EQ(r.costs_s_size(), 0);
    EXPECT_EQ(r.agent(), "bad");
  }
}

// Options are bounded where they arrive: an infinite timeout would overflow the lease's duration,
// a thread count above the pool's limit would reach its internal check on the board.
TEST_F(TrackerServerTest, RefusesMeasureOptionsOutsideTheirBounds) {
  start();
  FakeAgent& a = agent("a");
  std::vector<pb::MeasureResult> results;
  grpc::Status inf = submit(3, results, {}, kToken, "inf", [](pb::MeasureTask& t) {
    t.mutable_options()->set_timeout_s(INFINITY);
  });
  EXPECT_EQ(inf.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(inf.error_message().find("timeout_s"), std::string::npos) << inf.error_message();
  grpc::Status threads = submit(3, results, {}, kToken, "thr",
                                [](pb::MeasureTask& t) { t.mutable_options()->set_threads(5000); });
  EXPECT_EQ(threads.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(threads.error_message().find("threads"), std::string::npos);
  EXPECT_TRUE(results.empty());
  EXPECT_EQ(a.received(), 0);
  ASSERT_TRUE(submit(2, results, {}, kToken, "ok", [](pb::MeasureTask& t) {
                t.mutable_options()->set_timeout_s(30);
              }).ok());
  EXPECT_EQ(results.size(), 2u);
}

TEST_F(TrackerServerTest, RefusesInvalidTasksBeforeQueuingAny) {
  TrackerOptions options;
  options.validate = [](const pb::MeasureTask& task) {
    if (task.task_id() == "t3") return invalid_argument("malformed workload 'matmul:M=8'");
    return Status::ok();
  };
  start(options);
  FakeAgent& a = agent("a");
  std::vector<pb::MeasureResult> results;
  grpc::Status s = submit(5, results);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("t3"), std::string::npos);
  EXPECT_TRUE(results.empty());
  EXPECT_EQ(a.received(), 0);
}

const Board kX86{"x86_64", {"avx2", "fma"}};
const Board kArm{"aarch64", {"neon"}};

// A refused Submit drops only its own tasks: not those of the client's other submission under
// the same job id, nor the task whose id it repeated.
TEST_F(TrackerServerTest, ARefusedSubmitLeavesTheOtherSubmissionsOfItsJobAlone) {
  start();
  pb::SubmitRequest first = request_for("J");
  for (const char* id : {"a0", "a1", "a2", "a3"}) add_task(first, id, "");
  SubmitCall a(address_, first);
  ASSERT_TRUE(eventually([&] {
    const pb::StatusResponse now = status();
    for (const pb::KeyStatus& key : now.keys()) {
      if (key.device_key() == "cpu" && key.queued() == 4) return true;
    }
    return false;
  })) << "the first submission was not queued";
  pb::SubmitRequest second = request_for("J");
  add_task(second, "b0", "");
  add_task(second, "a1", "");  // another submission's task id
  SubmitCall b(address_, second);
  ASSERT_TRUE(eventually([&] { return b.done(); }));
  EXPECT_EQ(b.status().error_code(), grpc::StatusCode::ALREADY_EXISTS)
      << b.status().error_message();
  agent("a");
  ASSERT_TRUE(eventually([&] { return a.done(); }, 20s));
  EXPECT_TRUE(a.status().ok()) << a.status().error_message();
  std::map<std::string, int> counts = count_by_task(a.results());
  EXPECT_EQ(counts, (std::map<std::string, int>{{"a0", 1}, {"a1", 1}, {"a2", 1}, {"a3", 1}}));
}

TEST_F(TrackerServerTest, EachAgentOnlyReceivesTasksOfItsArchitecture) {
  start();
  FakeAgent& x86 = agent("x86", FakeAgent::Mode::kAnswer, kX86);
  FakeAgent& arm = agent("arm", FakeAgent::Mode::kAnswer, kArm);
  // Both architectures at once, in one submission and in two more from other jobs; some
  // tasks name no architecture, one spells aarch64 as arm64.
  pb::SubmitRequest mixed = request_for("mixed");
  for (int i = 0; i < 40; ++i) {
    const char* triple = i % 5 == 4   ? ""
                         : i % 2 == 0 ? "x86_64-unknown-linux-gnu"
                         : i % 7 == 1 ? "arm64-apple-darwin"
                                      : "aarch64-linux-gnu";
    add_task(mixed, "m" + std::to_string(i), triple);
  }
  pb::SubmitRequest x86_job = request_for("x86-only");
  pb::SubmitRequest arm_job = request_for("arm-only");
  for (int i = 0; i < 20; ++i) {
    add_task(x86_job, "x" + std::to_string(i), "x86_64-linux-gnu", {"+avx2"});
    add_task(arm_job, "a" + std::to_string(i), "aarch64-linux-gnu", {"+neon"});
  }
  SubmitCall a(address_, mixed), b(address_, x86_job), c(address_, arm_job);
  for (SubmitCall* call : {&a, &b, &c}) {
    ASSERT_TRUE(eventually([&] { return call->done(); }, 30s));
    ASSERT_TRUE(call->status().ok()) << call->status().error_message();
    EXPECT_TRUE(call->waiting().empty()) << call->waiting().front();
  }
  std::vector<pb::MeasureResult> results = a.results();
  for (SubmitCall* call : {&b, &c}) {
    std::vector<pb::MeasureResult> more = call->results();
    results.insert(results.end(), more.begin(), more.end());
  }
  std::map<std::string, int> counts = count_by_task(results);
  EXPECT_EQ(counts.size(), 80u);
  for (const auto& [task, n] : counts) EXPECT_EQ(n, 1) << task;
  for (const pb::MeasureResult& r : results) {
    EXPECT_EQ(r.error_code(), pb::MEASURE_ERROR_CODE_OK) << r.task_id();
    if (r.task_id()[0] == 'x') {
      EXPECT_EQ(r.agent(), "x86") << r.task_id();
    } else if (r.task_id()[0] == 'a') {
      EXPECT_EQ(r.agent(), "arm") << r.task_id();
    }
  }
  for (const std::string& triple : x86.triples()) {
    EXPECT_TRUE(triple.empty() || triple.starts_with("x86_64")) << "x86 agent got " << triple;
  }
  for (const std::string& triple : arm.triples()) {
    EXPECT_TRUE(triple.empty() || triple.starts_with("aarch64") || triple.starts_with("arm64"))
        << "arm agent got " << triple;
  }
  EXPECT_GE(x86.received(), 36);  // 16 of mixed, 20 of x86-only, perhaps some of any
  EXPECT_GE(arm.received(), 36);
}

TEST_F(TrackerServerTest, TasksNoAgentCanRunWaitUntilOneRegisters) {
  start();
  FakeAgent& x86 = agent("x86", FakeAgent::Mode::kAnswer, kX86);
  pb::SubmitRequest request = request_for("arm-job");
  for (int i = 0; i < 6; ++i) add_task(request, "t" + std::to_string(i), "aarch64-linux-gnu");
  SubmitCall call(address_, request);
  ASSERT_TRUE(eventually([&] { return !call.waiting().empty(); }));
  EXPECT_EQ(call.waiting()[0], "no agent of key cpu runs aarch64 (agents: x86_64)");

  pb::StatusResponse status = this->status();
  ASSERT_EQ(status.keys_size(), 1);
  const pb::KeyStatus& key = status.keys(0);
  EXPECT_EQ(key.queued(), 6);
  ASSERT_EQ(key.waiting_size(), 1);
  EXPECT_EQ(key.waiting(0).target(), "llvm -mtriple=aarch64-linux-gnu");
  EXPECT_EQ(key.waiting(0).tasks(), 6);
  EXPECT_EQ(key.waiting(0).reason(), "no agent of key cpu runs aarch64 (agents: x86_64)");
  EXPECT_TRUE(call.results().empty());

  agent("arm", FakeAgent::Mode::kAnswer, kArm);
  ASSERT_TRUE(eventually([&] { return call.done(); }));
  ASSERT_TRUE(call.status().ok()) << call.status().error_message();
  EXPECT_EQ(call.waiting(),
            (std::vector<std::string>{"no agent of key cpu runs aarch64 (agents: x86_64)", ""}));
  std::vector<pb::MeasureResult> results = call.results();
  EXPECT_EQ(count_by_task(results).size(), 6u);
  for (const pb::MeasureResult& r : results) EXPECT_EQ(r.agent(), "arm") << r.task_id();
  EXPECT_EQ(x86.received(), 0);
  EXPECT_EQ(this->status().keys(0).waiting_size(), 0);
}

TEST_F(TrackerServerTest, WaitingFollowsMissingFeaturesAndTheLastFittingAgentLeaving) {
  start();
  FakeAgent& plain = agent("arm-plain", FakeAgent::Mode::kAnswer, kArm);
  pb::SubmitRequest request = request_for("dotprod-job");
  for (int i = 0; i < 4; ++i) {
    add_task(request, "t" + std::to_string(i), "aarch64-linux-gnu", {"+neon", "+dotprod"});
  }
  SubmitCall call(address_, request);
  const std::string no_dotprod = "no aarch64 agent of key cpu has +dotprod";
  ASSERT_TRUE(eventually([&] { return !call.waiting().empty(); }));
  EXPECT_EQ(call.waiting()[0], no_dotprod);

  // A fitting agent that holds its tasks, then leaves: they wait again, none is lost.
  FakeAgent& holder =
      agent("arm-holder", FakeAgent::Mode::kHold, Board{"aarch64", {"neon", "dotprod"}});
  ASSERT_TRUE(eventually([&] { return holder.received() == 2; }));  // its capacity
  holder.kill();
  ASSERT_TRUE(eventually([&] { return call.waiting().size() == 3; }));
  EXPECT_EQ(call.waiting(), (std::vector<std::string>{no_dotprod, "", no_dotprod}));
  ASSERT_TRUE(eventually([&] { return this->status().keys(0).queued() == 4; }));

  agent("arm-dotprod", FakeAgent::Mode::kAnswer, Board{"aarch64", {"neon", "dotprod", "i8mm"}});
  ASSERT_TRUE(eventually([&] { return call.done(); }));
  ASSERT_TRUE(call.status().ok()) << call.status().error_message();
  EXPECT_EQ(call.waiting(), (std::vector<std::string>{no_dotprod, "", no_dotprod, ""}));
  std::vector<pb::MeasureResult> results = call.results();
  std::map<std::string, int> counts = count_by_task(results);
  EXPECT_EQ(counts.size(), 4u);
  for (const auto& [task, n] : counts) EXPECT_EQ(n, 1) << task;
  for (const pb::MeasureResult& r : results) {
    EXPECT_EQ(r.error_code(), pb::MEASURE_ERROR_CODE_OK);
    EXPECT_EQ(r.agent(), "arm-dotprod");
  }
  EXPECT_EQ(plain.received(), 0);
}

}  // namespace
}  // namespace kiln::tracker
