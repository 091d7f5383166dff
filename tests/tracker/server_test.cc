// The tracker's gRPC server on 127.0.0.1 with a port picked at run time, driven by scripted
// agents and a client speaking the kiln.v1 Tracker protocol: every task answered once, lost
// agents' tasks re-run elsewhere, expired leases re-queued, bounded attempts, tokens.

#include "tracker/server.h"

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "kiln/v1/tracker.grpc.pb.h"

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

/// A scripted agent: answers each task with a fixed cost, or holds it without answering.
class FakeAgent {
 public:
  enum class Mode { kAnswer, kHold };

  FakeAgent(const std::string& address, std::string id, Mode mode, std::string token = kToken)
      : id_(std::move(id)), mode_(mode) {
    auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    stub_ = pb::Tracker::NewStub(channel);
    context_ = context_with(token);
    stream_ = stub_->Connect(context_.get());
    pb::AgentMessage hello;
    hello.mutable_register_()->set_agent_id(id_);
    hello.mutable_register_()->set_device_key("cpu");
    hello.mutable_register_()->set_capacity(2);
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
  bool registered() const { return registered_; }
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
      if (message.has_registered()) registered_ = true;
      if (!message.has_task()) continue;
      ++received_;
      if (mode_ == Mode::kHold) continue;
      pb::AgentMessage reply;
      pb::MeasureResult* r = reply.mutable_result();
      r->set_task_id(message.task().task().task_id());
      r->set_error_code(pb::MEASURE_ERROR_CODE_OK);
      r->add_costs_s(0.001);
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
  grpc::Status final_;
};

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

  FakeAgent& agent(const std::string& id, FakeAgent::Mode mode = FakeAgent::Mode::kAnswer) {
    agents_.push_back(std::make_unique<FakeAgent>(address_, id, mode));
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
                      const std::string& prefix = "t") {
    auto stub =
        pb::Tracker::NewStub(grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
    pb::SubmitRequest request;
    request.set_job_id("job-" + prefix);
    request.set_device_key("cpu");
    for (int i = 0; i < n; ++i) {
      pb::MeasureTask* task = request.add_tasks();
      task->set_task_id(prefix + std::to_string(i));
      task->mutable_workload()->set_canonical("matmul:M=8,N=8,K=8");
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

}  // namespace
}  // namespace kiln::tracker
