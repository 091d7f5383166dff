#include "tracker/agent_session_internal.h"

#include "tracker/tracker_service_internal.h"

namespace kiln::tracker::internal {

namespace pb = kiln::v1;

void AgentSession::start() {
  self_ = shared_from_this();
  StartRead(&in_);
}

void AgentSession::send(pb::TrackerMessage message) {
  std::unique_lock<std::recursive_mutex> lock(mutex_);
  if (finishing_) return;
  if (write_in_flight_) {
    outbox_.push_back(std::move(message));
    return;
  }
  writing_ = std::move(message);
  write_in_flight_ = true;
  StartWrite(&writing_);
}

void AgentSession::end(grpc::Status status) {
  std::unique_lock<std::recursive_mutex> lock(mutex_);
  if (finishing_) return;
  finishing_ = true;
  final_ = std::move(status);
  outbox_.clear();
  if (write_in_flight_) {
    context_->TryCancel();  // OnDone cannot come before the write completes: safe
    return;
  }
  finished_ = true;
  Finish(final_);
}

void AgentSession::OnReadDone(bool ok) {
  if (!ok) {
    service_->on_disconnect(*this);
    end(grpc::Status::OK);
    return;
  }
  if (!registered) {
    grpc::Status s = service_->on_register(shared_from_this(), in_);
    if (!s.ok()) {
      end(s);
      return;
    }
  } else {
    service_->on_message(*this, in_);
  }
  StartRead(&in_);
}

void AgentSession::OnWriteDone(bool ok) {
  std::unique_lock<std::recursive_mutex> lock(mutex_);
  write_in_flight_ = false;
  if (!ok && !finishing_) {
    // The stream broke: the pending read fails too and ends the session.
    outbox_.clear();
    context_->TryCancel();
    return;
  }
  if (!finishing_ && !outbox_.empty()) {
    writing_ = std::move(outbox_.front());
    outbox_.pop_front();
    write_in_flight_ = true;
    StartWrite(&writing_);
    return;
  }
  if (finishing_ && !finished_) {
    finished_ = true;
    Finish(final_);
  }
}

void AgentSession::OnDone() {
  std::shared_ptr<AgentSession> self = std::move(self_);  // may be the last reference
}

}  // namespace kiln::tracker::internal
