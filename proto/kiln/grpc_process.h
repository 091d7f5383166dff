/// \file
/// Process-wide settings for the processes that run gRPC servers or clients.
#pragma once

#include <absl/synchronization/mutex.h>

namespace kiln {

/// Debian's Abseil is built without NDEBUG, so every absl::Mutex lock (gRPC takes several a
/// call) also records the lock order for deadlock detection, under one global lock that all
/// of gRPC's threads then contend on. Turns that recording off; call once, first thing in
/// main, before any thread starts.
inline void disable_mutex_deadlock_detection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace kiln
