/// \file
/// The kiln.v1 Tracker service over the Broker: the registry of agents and their free slots,
/// the live submissions, and the steps that move tasks between them. The reactors
/// (agent_session_internal.h, submission_internal.h) call into it; the reaper (reaper.cc) ticks
/// it; TrackerHost and TrackerServer (server.cc) host it. Private to tracker/.
///
/// Routing: a task only reaches an agent that can run it (Broker::lease with the agent's
/// Capability). Free slots are kept per key and capability; a submission whose tasks no
/// connected agent of its key can run is told why (SubmitResponse.waiting) when it is queued and
/// whenever that changes, as agents of a capability come and go.
///
/// Locking: one mutex guards the service's state and the sessions' fields marked so. gRPC
/// calls (writes, finishes) are never made under it: a step collects them in an Outgoing and
/// sends them once the mutex is released.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "kiln/v1/tracker.grpc.pb.h"
#include "tracker/agent_session_internal.h"
#include "tracker/broker.h"
#include "tracker/metrics_internal.h"
#include "tracker/reaper_internal.h"
#include "tracker/server.h"
#include "tracker/submission_internal.h"

namespace kiln::tracker::internal {

/// Figures for `kiln status`, kept after an agent leaves.
struct AgentRecord {
  std::string device_key, target, state;
  kiln::v1::DeviceFacts facts;
  int64_t done = 0, errors = 0;
  uint64_t lost_order = 0;  ///< when it was lost, in the order of losses; 0: connected
};

/// A reactor that refuses a call at once.
template <class Base>
class Refusal final : public Base {
 public:
  explicit Refusal(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

/// What a step decided under the service's mutex, sent after it is released: gRPC calls are
/// never made under the mutex. Waiting changes go first, so that a submission hears it can run
/// again before its results come.
struct Outgoing {
  std::vector<std::pair<std::shared_ptr<Submission>, std::string>> waiting;
  std::vector<std::pair<std::shared_ptr<Submission>, kiln::v1::MeasureResult>> results;
  std::vector<std::pair<std::shared_ptr<AgentSession>, Assignment>> tasks;

  void send();
};

class TrackerService final : public kiln::v1::Tracker::CallbackService {
 public:
  explicit TrackerService(TrackerOptions options);

  /// Starts expiring leases and taking silent agents for lost.
  void start_reaper();
  /// Ends every stream and call; the server's shutdown then waits for them.
  void stop();

  grpc::ServerBidiReactor<kiln::v1::AgentMessage, kiln::v1::TrackerMessage>* Connect(
      grpc::CallbackServerContext* context) override;
  grpc::ServerWriteReactor<kiln::v1::SubmitResponse>* Submit(
      grpc::CallbackServerContext* context, const kiln::v1::SubmitRequest* request) override;
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context,
                                      const kiln::v1::StatusRequest*,
                                      kiln::v1::StatusResponse* response) override;

  /// The first message of a session. OK to go on reading.
  grpc::Status on_register(const std::shared_ptr<AgentSession>& session,
                           const kiln::v1::AgentMessage& message);
  /// A heartbeat or a result.
  void on_message(AgentSession& session, const kiln::v1::AgentMessage& message);
  /// The agent's stream ended (it closed, broke, or was ended by the tracker).
  void on_disconnect(AgentSession& session);
  /// The client of `submission` went away: its queued tasks are dropped, and results of the
  /// leased ones have nobody to go to.
  void on_submission_cancelled(Submission& submission);
  /// `submission` is finishing (its status is on the way, so its client may submit again as
  /// soon as it sees it): its client has one submission fewer open. Takes only clients_mutex_,
  /// so a submission calls it with its own lock held, under the service's mutex or not.
  void on_submission_done(const Submission& submission);

  /// Expires leases and takes silent agents for lost: the reaper's tick (reaper.cc).
  void reap();

  /// Its metrics, for a Prometheus exposer; scrapes read the service, so the exposer stops
  /// before the service goes.
  std::shared_ptr<TrackerMetrics> metrics() const { return metrics_; }

 private:
  grpc::Status authenticate(grpc::CallbackServerContext* context) const;
  /// Hands a result to the submission waiting for it. Mutex held.
  void deliver(const std::string& task_id, kiln::v1::MeasureResult result, Outgoing& out);
  /// Takes `session` for lost: its leases go back to the broker; tasks out of attempts end
  /// as DEVICE_LOST. Mutex held.
  void lose(AgentSession& session, Outgoing& out);
  /// A lease the broker took back. Mutex held.
  void account_taken_back(const Finished& f, Outgoing& out);
  /// Mutex held.
  void on_result(AgentSession& session, const kiln::v1::MeasureResult& result, Outgoing& out);
  /// Leases queued tasks of `key` to its agents' free slots: the agents of each capability take
  /// turns until none of them gets a task. Mutex held.
  void dispatch(const std::string& key, Outgoing& out);
  /// Gives a slot of a live `session` back to its key. Mutex held.
  void free_slot(const std::shared_ptr<AgentSession>& session);
  /// Counts `session` among the agents connected on its key (or no longer); when that changes
  /// which capabilities the key has, the key's submissions learn whether they wait. Mutex held.
  void count_agent(const AgentSession& session, int delta, Outgoing& out);
  /// The distinct capabilities of the agents connected on `key`. Mutex held.
  std::vector<Capability> capabilities_of(const std::string& key) const;
  struct LiveSubmission;
  /// Works out why `live`'s remaining tasks wait and, when that changed, tells its client.
  /// Mutex held.
  void update_waiting(LiveSubmission& live, const std::vector<Capability>& agents, Outgoing& out);
  /// update_waiting for every submission on `key`. Mutex held.
  void refresh_waiting(const std::string& key, Outgoing& out);
  /// Forgets the lost agents longest gone while more than options_.max_agent_records are
  /// kept. Mutex held.
  void forget_lost_agents();
  /// The key of a known agent, or empty. Mutex held.
  std::string live_key_of(const std::string& agent_id) const;
  /// "idle", "busy" (holds a task) or "lost" (no live session). Mutex held.
  std::string agent_state(const std::string& agent_id) const;
  /// The gauges of metrics_: agents by key and state, tasks by key. Takes the mutex.
  TrackerGauges gauges();

  TrackerOptions options_;
  std::mutex mutex_;
  Broker broker_;
  std::unordered_map<std::string, std::shared_ptr<AgentSession>> sessions_;
  using Slots = std::deque<std::shared_ptr<AgentSession>>;
  /// Per device key and capability, one entry per free slot of a live agent, in the order they
  /// freed; never an empty deque.
  std::unordered_map<std::string, std::map<Capability, Slots>> free_slots_;
  /// Per device key, how many connected agents have each capability (never zero).
  std::unordered_map<std::string, std::map<Capability, int>> capabilities_;
  std::map<std::string, AgentRecord> agents_;
  uint64_t losses_ = 0;  ///< agents lost so far, for AgentRecord::lost_order
  struct TaskOwner {
    std::shared_ptr<Submission> submission;
    size_t requirement = 0;  ///< the index of its requirement in the submission's
  };
  std::unordered_map<std::string, TaskOwner> submissions_by_task_;
  /// Open Submit calls per client (peer address without its port), never zero. Guarded by
  /// clients_mutex_, which is taken last: never hold it while taking another lock.
  std::mutex clients_mutex_;
  std::unordered_map<std::string, int> open_submissions_;
  struct LiveSubmission {
    std::shared_ptr<Submission> stream;
    std::string device_key;
    size_t left = 0;  ///< results still to come
    std::vector<std::string> task_ids;
    std::vector<Requirement> requirements;  ///< the distinct ones of its tasks
    std::vector<size_t> remaining;          ///< per requirement, results still to come
    std::string waiting;                    ///< why its tasks wait, as its client was told
  };
  std::unordered_map<const Submission*, LiveSubmission> submissions_;  ///< still streaming
  bool stopping_ = false;
  std::shared_ptr<TrackerMetrics> metrics_;
  Reaper reaper_;
};

}  // namespace kiln::tracker::internal
