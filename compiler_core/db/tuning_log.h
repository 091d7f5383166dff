/// \file
/// The tuning log: every measurement kiln makes, in one SQLite file (WAL mode), and the queries
/// that apply-best, `kiln best` and the tuner ask of it.
///
/// Schema (version kTuningLogSchemaVersion, in PRAGMA user_version):
/// - `meta(key, value)`: `application` = "kiln-tuning-log" marks a kiln file, `schema_version`;
/// - `workloads(id, key UNIQUE, op)`: `key` is Workload::canonical();
/// - `targets(id, target, model, features, emulated, UNIQUE(target, model))`: one row per
///   TargetKey (an emulated board's model names the emulation, so the pair stays unique);
/// - `records(id, workload_id, target_id, config_index, config_knobs, costs, median_cost,
///   error_code, error_message, agent, device, measure_options, measured_at_ms, kiln_version,
///   threads)` with indexes on (workload_id, target_id, error_code, median_cost) and on
///   (workload_id, target_id, threads, error_code, median_cost) for best queries;
/// - `jobs(number, document, cancel_requested)`: the jobs of `kiln serve` (job_manager.h), so
///   that every server on one log sees them; numbers are never used twice.
///
/// Several processes may use one file at once: writes go through `BEGIN IMMEDIATE` with a busy
/// timeout and retry until `lock_timeout_ms` runs out, reads never block writers (WAL), and a
/// process killed mid-append leaves every committed batch whole and the rest absent.
///
/// Opening checks the file read-only first: a file that is not SQLite, a SQLite file that is not
/// a kiln tuning log, and a log of a newer schema are refused without writing a byte to them.
/// Errors: InvalidArgument (not a tuning log: CLI exit 2), NotFound (read-only open of a missing
/// file), FailedPrecondition (newer schema, read-only file), DataLoss (a damaged tuning log),
/// Unavailable (locked by another process past the timeout), Internal (any other SQLite
/// failure). A TuningLog is used by one thread at a time.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "compiler_core/db/record.h"
#include "compiler_core/support/status.h"
#include "compiler_core/te/workload.h"

namespace kiln::core {

/// The schema version this build reads and writes. History: 1 = tables; 2 = the best-query
/// index; 3 = targets.emulated; 4 = records.threads (from each record's measure options);
/// 5 = the jobs table.
inline constexpr int kTuningLogSchemaVersion = 5;

/// The value of meta's `application` row in every kiln tuning log.
inline constexpr const char* kTuningLogApplication = "kiln-tuning-log";

struct TuningLogOptions {
  /// Open without writing: a missing file is NotFound (never created), no migration runs, and
  /// append/import fail with FailedPrecondition. Logs of an older schema are read as they are.
  bool read_only = false;
  /// How long one statement waits for another process's lock (SQLite's busy timeout).
  int busy_timeout_ms = 5000;
  /// How long a write keeps retrying a locked database before it fails with Unavailable.
  int lock_timeout_ms = 60000;
  /// The schema version to migrate to and accept as current. Tests set a lower one to stand in
  /// for an older kiln; anything else keeps the default.
  int schema_version = kTuningLogSchemaVersion;
};

/// Counts over the whole log.
struct TuningLogStats {
  int schema_version = 0;
  int64_t records = 0;
  int64_t workloads = 0;  ///< distinct workloads with at least one record
  int64_t targets = 0;    ///< distinct target keys with at least one record
  std::array<int64_t, kNumMeasureErrors> by_error{};  ///< records per MeasureError value
  int64_t first_measured_at_ms = 0;                   ///< 0 when the log is empty
  int64_t last_measured_at_ms = 0;
};

/// One workload the log holds records of, with its counts over every target.
struct WorkloadSummary {
  std::string workload;  ///< Workload::canonical()
  std::string op;        ///< its operator, e.g. "matmul"
  int64_t records = 0;
  int64_t valid = 0;  ///< records with error OK
  int64_t targets = 0;
};

/// A job of `kiln serve` as the log keeps it: its number (the job's id is job-N), its document
/// (JSON that the service writes and reads; the log does not look inside) and whether a client
/// asked for it to be cancelled (the server that runs it may be another process).
struct StoredJob {
  int64_t number = 0;
  std::string document;
  bool cancel_requested = false;
};

/// A claim on one job of a log: while it lives, no other claim on that job exists, in this
/// process or any other (for a PostgreSQL log: on any machine). It ends when destroyed or when
/// its process dies, so a job that is `running` in the log but unclaimed has lost its server.
/// SQLite: an open-file-description lock on one byte of the log file far past its data;
/// PostgreSQL: a session advisory lock on a connection of its own.
class JobClaim {
 public:
  virtual ~JobClaim() = default;
};

class TuningLog {
 public:
  /// Opens the log at `path`, creating it (and its parent folders) unless it exists or
  /// `options.read_only` is set, and migrating an older schema unless read-only. An existing
  /// file is inspected read-only first (see the file comment for the errors). An empty file is
  /// a new log. A URL is refused (check_tuning_log_location) before anything is created.
  static Result<TuningLog> open(const std::filesystem::path& path,
                                const TuningLogOptions& options = {});

  TuningLog(TuningLog&&) noexcept;
  TuningLog& operator=(TuningLog&&) noexcept;
  ~TuningLog();

  const std::filesystem::path& path() const;
  /// The schema version of the open file (kTuningLogSchemaVersion after a writable open).
  int schema_version() const;

  /// Appends `records` in one transaction: all or none. Each is canonicalised and checked first
  /// (canonical_record, stamping this build's KILN_VERSION on records without one);
  /// InvalidArgument names the first bad record by its position, and then nothing is written.
  /// FailedPrecondition on a read-only log.
  Status append(std::span<const TuningRecord> records);

  /// Up to `k` records of `workload` on `target` with error OK, fastest median cost first, at
  /// most one per config (its fastest). Empty when there are none. A key with an empty model
  /// takes the records of every board of `target.target`; a key's `emulated` must match the
  /// records' (a real board's query never sees an emulated board's records), and a key's
  /// positive thread count takes the records of that count only (0: every count). Each record
  /// comes back with the key it was stored under, its thread count included.
  Result<std::vector<TuningRecord>> best(const Workload& workload, const TargetKey& target,
                                         int k = 1) const;

  /// Every record of `workload` on `target` (matched as best() does), in the order they were
  /// appended; the latest `limit` of them when limit > 0.
  Result<std::vector<TuningRecord>> history(const Workload& workload, const TargetKey& target,
                                            int64_t limit = 0) const;

  Result<TuningLogStats> stats() const;

  /// Every workload with at least one record, by canonical string; those of operator `op`
  /// only when it is not empty.
  Result<std::vector<WorkloadSummary>> workloads(std::string_view op = {}) const;

  /// A number that changes whenever another connection (another TuningLog, another process)
  /// has committed to the file since the last call: SQLite's PRAGMA data_version. Commits
  /// through this log itself do not change it. Cheap: for caches of read answers.
  Result<int64_t> data_version() const;

  /// Writes every record as a JSON line (record_to_json_line), in the order appended. Returns
  /// the number written.
  Result<int64_t> export_jsonl(std::ostream& out) const;

  /// Reads JSON lines (blank lines are skipped) and appends them in one transaction. A line that
  /// does not parse fails the whole import with InvalidArgument "line N: ..." and writes
  /// nothing. Returns the number of records imported.
  Result<int64_t> import_jsonl(std::istream& in);

  // The jobs of `kiln serve`. Writes fail with FailedPrecondition on a read-only log; a
  // read-only log of a schema before 5 has no jobs.

  /// Stores a new job under a number that no job of this log has had; returns the number.
  Result<int64_t> add_job(std::string_view document);
  /// Stores job `number` with that number, replacing any document it has (to bring in the jobs
  /// of a kiln that kept them in a file).
  Status put_job(int64_t number, std::string_view document);
  /// Replaces job `number`'s document, clearing its cancel request when `clear_cancel`; returns
  /// whether a cancel is requested. NotFound when the log has no such job.
  Result<bool> update_job(int64_t number, std::string_view document, bool clear_cancel = false);
  /// Asks the server running job `number` to stop it. NotFound for no such job.
  Status request_job_cancel(int64_t number);
  /// Forgets job `number` (none: nothing happens).
  Status delete_job(int64_t number);
  /// Every job, by number.
  Result<std::vector<StoredJob>> jobs() const;
  /// Job `number`; nullopt when there is none.
  Result<std::optional<StoredJob>> job(int64_t number) const;
  /// Claims job `number` (see JobClaim); nullptr when another claim holds it. Unavailable when
  /// the claim cannot be made (the PostgreSQL server cannot be reached).
  Result<std::unique_ptr<JobClaim>> claim_job(int64_t number);

 private:
  struct Impl;
  explicit TuningLog(std::unique_ptr<Impl> impl);
  /// FailedPrecondition on a read-only log.
  Status check_writable() const;
  std::unique_ptr<Impl> impl_;
};

/// InvalidArgument when `location` is a URL kiln cannot open (`mysql://...`): kiln opens SQLite
/// files and PostgreSQL URLs (`postgresql://` or `postgres://`), and a URL must never be taken
/// for a relative file path (which would create a folder named after the scheme).
Status check_tuning_log_location(std::string_view location);

/// True when `location` names a tuning log on a database server (a PostgreSQL URL), not a file.
bool is_tuning_log_url(std::string_view location);

/// The default location of the tuning log: $KILN_DB when set and not empty, else
/// $XDG_DATA_HOME/kiln/tuning.db when XDG_DATA_HOME is set to an absolute path, else
/// $HOME/.local/share/kiln/tuning.db. NotFound when none of these variables is usable.
Result<std::filesystem::path> default_tuning_log_path();

}  // namespace kiln::core
