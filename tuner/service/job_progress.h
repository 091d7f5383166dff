/// \file
/// Where a job of `kiln serve` stands according to the tuning log: its trials, valid trials
/// and bests, counted from the records of its workloads. What the server shows of a job it
/// stopped in the middle of (a restart, a crash), whose last progress never reached the jobs
/// file.
#pragma once

#include <filesystem>

#include "compiler_core/support/status.h"
#include "tuner/service/job.h"

namespace kiln::tuner {

/// Sets the trials, valid trials and bests of `status` (a model job's: of each task, and its
/// estimated latency) to what the tuning log `db` holds of its workloads and target;
/// re-measurements are no trials.
Status count_trials_in_log(const std::filesystem::path& db, JobStatus& status);

}  // namespace kiln::tuner
