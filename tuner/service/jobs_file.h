/// \file
/// The jobs file of `kiln serve`: every job's spec and status as JSON of kind "kiln-jobs",
/// written whole to a temporary file that then replaces the old one, so that a crash leaves
/// the old file or the new one. Trials are not in it: they are the tuning log's records.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "compiler_core/support/status.h"
#include "tuner/service/job.h"

namespace kiln::tuner {

struct JobsFile {
  int64_t next_id = 1;          ///< the number of the next job's id, job-N
  std::vector<JobStatus> jobs;  ///< oldest first
};

/// The jobs in `path`; none when there is no such file. InvalidArgument, naming the file, for
/// one that is not a jobs file.
Result<JobsFile> read_jobs_file(const std::filesystem::path& path);

/// Replaces `path` with `jobs` (everything but the per-trial and per-batch curves).
/// Unavailable, naming the file, when it cannot be written.
Status write_jobs_file(const std::filesystem::path& path, const JobsFile& jobs);

}  // namespace kiln::tuner
