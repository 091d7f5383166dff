/// \file
/// What a job of `kiln serve` measures through: the agents of its device key, through the
/// tracker the server hosts, or the server's machine, one job at a time (two timing at once
/// would disturb each other). `kiln serve` measures its local jobs in a worker process, as
/// agents do, so that a kernel that crashes or hangs costs one record, never the server.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "compiler_core/schedule/config_space.h"
#include "compiler_core/support/status.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"
#include "tuner/measure/measurer.h"
#include "tuner/service/job.h"

namespace grpc {
class Channel;
}

namespace kiln::tuner {

/// Makes the measurer of a job on the server's machine, with `threads` kernel threads.
using LocalMeasurerFactory = std::function<Result<std::unique_ptr<Measurer>>(
    const core::Workload& workload, const core::Target& target, const core::ConfigSpace& space,
    int threads)>;

struct JobMeasurerSettings {
  std::shared_ptr<grpc::Channel> tracker;  ///< fleet jobs submit through it
  std::string tracker_name;                ///< names it in messages
  std::string token;                       ///< presented to the tracker
  /// Local jobs' measurers; unset: in this process (LocalMeasurer).
  LocalMeasurerFactory local;
  /// Held while a local job measures a batch.
  std::mutex* local_measure = nullptr;
};

/// The measurer of `workload` for a job of `spec`: on the fleet of its device key, or on this
/// machine one job at a time. `stop_requested` ends a fleet batch that waits for the tracker.
Result<std::unique_ptr<Measurer>> make_job_measurer(const JobSpec& spec,
                                                    const core::Workload& workload,
                                                    const core::Target& target,
                                                    const core::ConfigSpace& space,
                                                    const JobMeasurerSettings& settings,
                                                    std::function<bool()> stop_requested);

}  // namespace kiln::tuner
