#include "tracker/submission_internal.h"

#include <algorithm>

#include "tracker/tracker_service_internal.h"

namespace kiln::tracker::internal {

namespace pb = kiln::v1;

void Submission::start() {
  // The reactor passes from the handler's thread to gRPC's inside libgrpc++, where a thread
  // sanitizer sees no synchronisation. Taking the lock here, and in each callback before it
  // reads a field, makes the constructor's writes visible through a pair the sanitizer sees.
  std::lock_guard<std::mutex> lock(mutex_);
  self_ = shared_from_this();
}

void Submission::deliver(pb::MeasureResult result) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (finishing_) return;
  pending_.push_back(std::move(result));
  write_or_finish(lock);
}

void Submission::set_waiting(std::string reason) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (finishing_) return;
  waiting_ = std::move(reason);
  write_or_finish(lock);
}

void Submission::end(grpc::Status status) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (finishing_) return;
  finishing_ = true;
  final_ = std::move(status);
  write_or_finish(lock);
}

void Submission::OnWriteDone(bool ok) {
  std::unique_lock<std::mutex> lock(mutex_);
  write_in_flight_ = false;
  if (!ok && !finishing_) {
    finishing_ = true;
    final_ = {grpc::StatusCode::CANCELLED, "the client went away"};
  }
  write_or_finish(lock);
}

void Submission::OnCancel() {
  { std::lock_guard<std::mutex> published(mutex_); }  // see start()
  service_->on_submission_cancelled(*this);
  end({grpc::StatusCode::CANCELLED, "the client cancelled the submission"});
}

void Submission::OnDone() {
  std::shared_ptr<Submission> self;  // the last reference may go with it, after the lock
  {
    std::unique_lock<std::mutex> lock(mutex_);
    release_client_slot();
    self = std::move(self_);
  }
}

void Submission::release_client_slot() {
  if (slot_released_) return;
  slot_released_ = true;
  service_->on_submission_done(*this);
}

void Submission::write_or_finish(std::unique_lock<std::mutex>&) {
  if (write_in_flight_ || finished_) return;
  if (!finishing_ && (!pending_.empty() || waiting_)) {
    writing_.Clear();
    if (waiting_) {
      writing_.set_waiting(std::move(*waiting_));
      writing_.set_waiting_changed(true);
      waiting_.reset();
    }
    for (pb::MeasureResult& r : pending_) *writing_.add_results() = std::move(r);
    remaining_ -= std::min(remaining_, pending_.size());
    pending_.clear();
    write_in_flight_ = true;
    StartWrite(&writing_);
    return;
  }
  if (finishing_ || remaining_ == 0) {
    finished_ = true;
    // Before the status leaves: a client that has seen its call end may submit again at once.
    release_client_slot();
    Finish(finishing_ ? final_ : grpc::Status::OK);
  }
}

}  // namespace kiln::tracker::internal
