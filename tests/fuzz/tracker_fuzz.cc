// Fuzz target: the Tracker service (kiln tracker, and the one inside kiln serve) through a real
// gRPC server in this process, with the validator `kiln tracker` gives it. The input is a
// sequence of chunks (fuzz_util.h's split_chunks); each chunk's kind picks what its payload is,
// sent as raw protobuf bytes through grpc::GenericStub so that gRPC's deserialization and the
// service's handlers run on it:
//   kind % 6 == 0  a SubmitRequest: a Submit call that stays open (at most 8 at once)
//            == 1  a StatusRequest: a GetStatus call
//            == 2  an AgentMessage on agent stream A (a Connect call, opened on first use)
//            == 3  an AgentMessage on agent stream B
//            == 4  agent stream A (kind & 8: B) closes its side and waits for the tracker's end
//            == 5  the client cancels its oldest open Submit
// The service hears of each call on threads of its own; so that an input means the same thing
// every time it runs, the target waits after a Submit until the tracker has queued its tasks
// or refused it, and after an agent's first message until the tracker has answered it. After
// the input every call still open ends (Submits cancelled, agent streams closed by the
// agent's side), and the tracker must come back to holding nothing: no agent connected, no task
// queued or leased (polled through GetStatus for a few seconds: the tracker hears of the ends
// asynchronously).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>

#include "device_agent/task_adapter.h"
#include "kiln/v1/tracker.pb.h"
#include "proto/kiln/message_limits.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/grpc_fuzz.h"
#include "tracker/server.h"

namespace {

using namespace kiln;

/// The tracker, served once per process on an in-process channel (no port is opened).
struct Fleet {
  Fleet() {
    fuzz::quiet_logs();
    tracker::TrackerOptions options;
    // As `kiln tracker` checks tasks (tuner/cli/tracker_options.cc).
    options.validate = [validator = std::make_shared<agent::TaskValidator>()](
                           const v1::MeasureTask& task) { return validator->check(task); };
    host = tracker::TrackerHost::create(options);
    grpc::ServerBuilder builder;
    builder.SetMaxReceiveMessageSize(kMaxFleetMessageBytes);
    builder.RegisterService(host->service());
    server = builder.BuildAndStart();
    if (!server) std::abort();
    host->start();
    grpc::ChannelArguments arguments;
    arguments.SetMaxReceiveMessageSize(kMaxClientReceiveBytes);
    stub = std::make_unique<grpc::GenericStub>(server->InProcessChannel(arguments));
  }
  ~Fleet() {
    host->stop();
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server->Wait();
  }

  std::unique_ptr<tracker::TrackerHost> host;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<grpc::GenericStub> stub;
};

constexpr char kSubmit[] = "/kiln.v1.Tracker/Submit";
constexpr char kGetStatus[] = "/kiln.v1.Tracker/GetStatus";
constexpr char kConnect[] = "/kiln.v1.Tracker/Connect";

/// The tasks queued or leased on every key, from GetStatus.
int64_t tasks_held(grpc::GenericStub& stub) {
  std::string bytes;
  (void)fuzz::unary_call(stub, kGetStatus, v1::StatusRequest().SerializeAsString(), &bytes);
  v1::StatusResponse response;
  if (!response.ParseFromString(bytes)) return -1;
  int64_t tasks = 0;
  for (const v1::KeyStatus& key : response.keys()) tasks += key.queued() + key.leased();
  return tasks;
}

/// Waits (ten seconds at most: the first check of a target builds its config space) until
/// `done` is true.
template <typename Predicate>
void wait_until(Predicate done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

/// What the tracker holds that a client which has gone should not leave behind, from
/// GetStatus; empty when nothing.
std::string held(grpc::GenericStub& stub) {
  std::string bytes;
  grpc::Status status =
      fuzz::unary_call(stub, kGetStatus, v1::StatusRequest().SerializeAsString(), &bytes);
  fuzz::check(status.ok(), "GetStatus of an empty request succeeds", status.error_message());
  v1::StatusResponse response;
  fuzz::check(response.ParseFromString(bytes), "GetStatus answers a StatusResponse");
  for (const v1::AgentStatus& agent : response.agents()) {
    if (agent.state() != "lost") return "agent " + agent.agent_id() + " is " + agent.state();
  }
  for (const v1::KeyStatus& key : response.keys()) {
    if (key.queued() != 0 || key.leased() != 0 || key.agents() != 0) {
      return "key " + key.device_key() + " has " + std::to_string(key.queued()) + " queued, " +
             std::to_string(key.leased()) + " leased, " + std::to_string(key.agents()) + " agents";
    }
  }
  return {};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fleet fleet;
  grpc::GenericStub& stub = *fleet.stub;
  std::deque<std::unique_ptr<fuzz::RawCall>> submits;
  std::unique_ptr<fuzz::RawCall> agents[2];

  for (const fuzz::Chunk& chunk : fuzz::split_chunks(data, size)) {
    switch (chunk.kind % 6) {
      case 0: {
        if (submits.size() >= 8) break;
        const int64_t before = tasks_held(stub);
        auto call = std::make_unique<fuzz::RawCall>(stub, kSubmit);
        call->write(chunk.payload);
        call->writes_done();
        wait_until([&] { return call->poll_ended() || tasks_held(stub) != before; });
        submits.push_back(std::move(call));
        break;
      }
      case 1:
        (void)fuzz::unary_call(stub, kGetStatus, chunk.payload);
        break;
      case 2:
      case 3: {
        std::unique_ptr<fuzz::RawCall>& agent = agents[chunk.kind % 6 - 2];
        const bool first = !agent;
        if (first) agent = std::make_unique<fuzz::RawCall>(stub, kConnect);
        agent->write(chunk.payload);
        if (first) wait_until([&] { return agent->poll_ended() || agent->responses() > 0; });
        break;
      }
      case 4: {
        std::unique_ptr<fuzz::RawCall>& agent = agents[(chunk.kind & 8) ? 1 : 0];
        if (agent) (void)agent->finish();
        agent.reset();
        break;
      }
      case 5:
        if (submits.empty()) break;
        submits.front()->cancel();
        (void)submits.front()->finish();
        submits.pop_front();
        break;
    }
  }
  for (auto& call : submits) call->cancel();
  submits.clear();
  for (auto& agent : agents) {
    if (agent) (void)agent->finish();
    agent.reset();
  }

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::string left = held(stub);
  while (!left.empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    left = held(stub);
  }
  fuzz::check(left.empty(), "the tracker holds nothing once its clients have gone", left);
  return 0;
}
