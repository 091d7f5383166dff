/// \file
/// One connected agent as seen by the tracker: the reactor of its Connect stream. Private to
/// tracker/.
#pragma once

#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

#include <grpcpp/grpcpp.h>

#include "kiln/v1/tracker.grpc.pb.h"
#include "tracker/broker.h"

namespace kiln::tracker::internal {

class TrackerService;
struct AgentRecord;

/// The reactor of one agent's Connect stream. Reactions run on gRPC's callback threads and
/// never block; at most one write is in flight, the rest wait in an outbox. The first message
/// goes to TrackerService::on_register, the others to on_message; a stream that ends goes to
/// on_disconnect.
class AgentSession final
    : public grpc::ServerBidiReactor<kiln::v1::AgentMessage, kiln::v1::TrackerMessage>,
      public std::enable_shared_from_this<AgentSession> {
 public:
  AgentSession(TrackerService* service, grpc::CallbackServerContext* context)
      : service_(service), context_(context) {}

  /// Starts reading; the session keeps itself alive until gRPC is done with it.
  void start();

  /// Queues a message to the agent (dropped once the stream ends).
  void send(kiln::v1::TrackerMessage message);

  /// Ends the stream with `status`, once the write in flight (if any) is done. A write that
  /// cannot finish (an agent that stopped reading) is cancelled.
  void end(grpc::Status status);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override;

  // Set at registration, then read-only:
  std::string agent_id, device_key, target;
  std::string secret;  ///< given at registration; a reconnect of the id must present it
  kiln::v1::DeviceFacts facts;
  Capability capability;  ///< what it can run: tasks of other architectures never reach it
  int capacity = 1;
  bool registered = false;
  // Guarded by the service's mutex:
  AgentRecord* record = nullptr;          ///< its figures for `kiln status`
  std::unordered_set<std::string> tasks;  ///< leased to it now
  Clock::time_point last_seen;
  bool lost = false;

 private:
  TrackerService* service_;
  grpc::CallbackServerContext* context_;
  kiln::v1::AgentMessage in_;
  std::recursive_mutex mutex_;  // a reaction may run inline from a call made under it
  std::deque<kiln::v1::TrackerMessage> outbox_;
  kiln::v1::TrackerMessage writing_;
  bool write_in_flight_ = false, finishing_ = false, finished_ = false;
  grpc::Status final_;
  std::shared_ptr<AgentSession> self_;
};

}  // namespace kiln::tracker::internal
