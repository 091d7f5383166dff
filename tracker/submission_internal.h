/// \file
/// One Submit call as seen by the tracker: the reactor that streams the submission's results
/// back to its client. Private to tracker/.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "kiln/v1/tracker.grpc.pb.h"

namespace kiln::tracker::internal {

class TrackerService;

/// The reactor of one Submit call: streams its results back as they arrive, several a message
/// when they arrive faster than the client reads, and finishes once every task has its result.
/// A change of why its tasks wait travels in the next message (only the latest, when several
/// come before it leaves). A client that cancels goes to TrackerService::on_submission_cancelled.
class Submission final : public grpc::ServerWriteReactor<kiln::v1::SubmitResponse>,
                         public std::enable_shared_from_this<Submission> {
 public:
  /// `client`: the peer it counts against (TrackerService::open_submissions_).
  Submission(TrackerService* service, std::string job_id, size_t tasks, std::string client)
      : service_(service),
        job_id_(std::move(job_id)),
        client_(std::move(client)),
        remaining_(tasks) {}

  /// Keeps the reactor alive until gRPC is done with it. Called by the handler that made it,
  /// before the reactor goes to gRPC.
  void start();

  /// Queues a result for the client (dropped once the call ends).
  void deliver(kiln::v1::MeasureResult result);

  /// Tells the client why its tasks wait for an agent that can run them, or (empty) that
  /// they wait no longer.
  void set_waiting(std::string reason);

  /// Ends the call early (the tracker stops, a submission is refused).
  void end(grpc::Status status);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

  const std::string& job_id() const { return job_id_; }
  const std::string& client() const { return client_; }

 private:
  /// Sends what is pending, or finishes when nothing is left. Lock held.
  void write_or_finish(std::unique_lock<std::mutex>&);
  /// Gives the client's slot back to the service, once. Lock held.
  void release_client_slot();

  TrackerService* const service_;
  const std::string job_id_;
  const std::string client_;
  std::mutex mutex_;
  size_t remaining_;
  std::vector<kiln::v1::MeasureResult> pending_;
  std::optional<std::string> waiting_;  ///< a change not sent yet
  kiln::v1::SubmitResponse writing_;
  bool write_in_flight_ = false, finishing_ = false, finished_ = false, slot_released_ = false;
  grpc::Status final_;
  std::shared_ptr<Submission> self_;
};

}  // namespace kiln::tracker::internal
