#include "tuner/service/job.h"

#include <algorithm>
#include <thread>

namespace kiln::tuner {

int JobSpec::record_threads() const {
  if (threads > 0 || !device_key.empty()) return threads;
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

std::string_view job_state_name(JobState state) {
  switch (state) {
    case JobState::kRunning:
      return "running";
    case JobState::kSucceeded:
      return "succeeded";
    case JobState::kFailed:
      return "failed";
    case JobState::kCancelled:
      return "cancelled";
    case JobState::kInterrupted:
      return "interrupted";
  }
  return "unknown";
}

Result<JobState> job_state_from_name(std::string_view name) {
  for (JobState s : {JobState::kRunning, JobState::kSucceeded, JobState::kFailed,
                     JobState::kCancelled, JobState::kInterrupted}) {
    if (job_state_name(s) == name) return s;
  }
  return invalid_argument("unknown job state '" + std::string(name) + "'");
}

}  // namespace kiln::tuner
