#include "tracker/reaper_internal.h"

#include <set>

#include "compiler_core/support/log.h"
#include "tracker/tracker_service_internal.h"

namespace kiln::tracker::internal {

void Reaper::start() {
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      wake_.wait_for(lock, period_, [this] { return stopping_; });
      if (stopping_) break;
      lock.unlock();
      tick_();
      lock.lock();
    }
  });
}

void Reaper::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void TrackerService::reap() {
  std::vector<std::shared_ptr<AgentSession>> silent;
  Outgoing out;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    const Clock::time_point now = Clock::now();
    std::set<std::string> keys;
    for (const Finished& f : broker_.expire(now)) {
      account_taken_back(f, out);
      keys.insert(live_key_of(f.agent_id));
    }
    for (auto& [id, session] : sessions_) {
      if (session->lost || now - session->last_seen < options_.heartbeat_timeout) continue;
      logger("tracker")->warn(
          "agent lost agent={} key={}: no heartbeat for {} ms", id, session->device_key,
          std::chrono::duration_cast<std::chrono::milliseconds>(now - session->last_seen).count());
      lose(*session, out);
      silent.push_back(session);
    }
    for (const std::string& key : keys) {
      if (!key.empty()) dispatch(key, out);
    }
  }
  out.send();
  for (auto& session : silent) {
    session->end({grpc::StatusCode::UNAVAILABLE, "no heartbeat within the timeout"});
  }
}

}  // namespace kiln::tracker::internal
