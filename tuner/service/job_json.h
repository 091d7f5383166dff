/// \file
/// A job of `kiln serve` as JSON: the document the tuning log keeps of each job (its jobs
/// table, tuning_log.h), and the jobs files of kilns that kept their jobs in a file of their own
/// (kind "kiln-jobs"), which a server brings into its log once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "compiler_core/support/status.h"
#include "tuner/service/job.h"

namespace kiln::tuner {

/// Everything of `status` but its id (the log's job number stands for it).
std::string job_to_json(const JobStatus& status);

/// The job a document of job_to_json describes, with id `id`. DataLoss, naming the job, for a
/// document that is not one.
Result<JobStatus> job_from_json(std::string_view document, const std::string& id);

struct JobsFile {
  std::vector<JobStatus> jobs;  ///< oldest first
};

/// The jobs in the jobs file at `path`; none when there is no such file. InvalidArgument,
/// naming the file, for one that is not a jobs file.
Result<JobsFile> read_jobs_file(const std::filesystem::path& path);

/// The number N of a job id "job-N"; NotFound, naming the id, for anything else.
Result<int64_t> job_number(std::string_view id);

}  // namespace kiln::tuner
