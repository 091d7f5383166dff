/// \file
/// The storage under a TuningLog: SQLite (sqlite_backend.cc, the embedded default) or
/// PostgreSQL (postgres_backend.cc, `postgresql://` URLs). TuningLog canonicalises and checks
/// every record and key before they reach a backend, and refuses writes to a read-only log;
/// a backend stores, answers and maps its database's errors to kiln's codes (tuning_log.h).
/// Private to compiler_core/db/.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "compiler_core/db/record.h"
#include "compiler_core/db/tuning_log.h"
#include "compiler_core/support/status.h"

namespace kiln::core::db_internal {

class TuningLogBackend {
 public:
  virtual ~TuningLogBackend() = default;

  /// The schema version of the open log (0: a read-only open of a log without tables yet).
  virtual int schema_version() const = 0;

  /// Stores canonical, checked records (their thread counts, times and versions filled in) in
  /// one transaction: all or none.
  virtual Status append(std::span<const TuningRecord> records) = 0;

  /// As TuningLog::best and history, for a canonical workload string and key.
  virtual Result<std::vector<TuningRecord>> best(const std::string& workload, const TargetKey& key,
                                                 int k) = 0;
  virtual Result<std::vector<TuningRecord>> history(const std::string& workload,
                                                    const TargetKey& key, int64_t limit) = 0;

  virtual Result<TuningLogStats> stats() = 0;
  virtual Result<std::vector<WorkloadSummary>> workloads(std::string_view op) = 0;
  virtual Result<int64_t> data_version() = 0;

  /// Calls `each` with every record in the order appended, from one consistent snapshot.
  virtual Status for_each_record(const std::function<Status(const TuningRecord&)>& each) = 0;

  /// As TuningLog's job calls (the log is writable where they write).
  virtual Result<int64_t> add_job(std::string_view document) = 0;
  virtual Status put_job(int64_t number, std::string_view document) = 0;
  virtual Result<bool> update_job(int64_t number, std::string_view document, bool clear_cancel) = 0;
  virtual Status request_job_cancel(int64_t number) = 0;
  virtual Status delete_job(int64_t number) = 0;
  /// Every job when `number` is 0, else that job only.
  virtual Result<std::vector<StoredJob>> jobs(int64_t number) = 0;
  virtual Result<std::unique_ptr<JobClaim>> claim_job(int64_t number) = 0;
};

/// Opens (creating, migrating) the SQLite log at `path`; the errors of TuningLog::open.
Result<std::unique_ptr<TuningLogBackend>> open_sqlite_log(const std::filesystem::path& path,
                                                          const TuningLogOptions& options);

/// Connects to the PostgreSQL log at `url` (a libpq connection URI) and creates or migrates its
/// tables unless read-only. Unavailable when the server cannot be reached.
Result<std::unique_ptr<TuningLogBackend>> open_postgres_log(const std::string& url,
                                                            const TuningLogOptions& options);

/// True for the URLs open_postgres_log takes: `postgresql://` and `postgres://`.
bool is_postgres_url(std::string_view location);

/// `url` with any password replaced by "***", for messages and logs.
std::string redact_url(std::string_view url);

/// The op of a canonical workload string ("matmul" of "matmul:M=...").
std::string op_of(const std::string& workload_key);

/// A stored record's costs column (a JSON array of numbers); nullopt when it is not one.
std::optional<std::vector<double>> costs_from_json(std::string_view text);

/// A kiln tuning log's measure error code as a MeasureError; DataLoss naming `where` for one
/// this build does not know.
Result<MeasureError> measure_error_of(int64_t code, const std::string& where);

}  // namespace kiln::core::db_internal
