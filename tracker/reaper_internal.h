/// \file
/// The tracker's lease reaper: a thread that, a few times a second, has the service expire
/// leases that ran out and take agents that stopped sending heartbeats for lost
/// (TrackerService::reap, defined beside it in reaper.cc). Private to tracker/.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace kiln::tracker::internal {

/// Runs `tick` every `period` on a thread of its own, from start() until stop().
class Reaper {
 public:
  Reaper(std::chrono::milliseconds period, std::function<void()> tick)
      : period_(period), tick_(std::move(tick)) {}
  ~Reaper() { stop(); }
  Reaper(const Reaper&) = delete;
  Reaper& operator=(const Reaper&) = delete;

  void start();
  /// Returns once the thread has ended (a tick in progress finishes first). Idempotent.
  void stop();

 private:
  const std::chrono::milliseconds period_;
  const std::function<void()> tick_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace kiln::tracker::internal
