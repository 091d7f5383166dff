#include "compiler_core/db/tuning_log_backend_internal.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <istream>
#include <map>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <sqlite3.h>
#include <nlohmann/json.hpp>

#include "compiler_core/db/record_internal.h"
#include "compiler_core/support/log.h"

namespace kiln::core::db_internal {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Migration N takes a log from schema version N to N + 1; kMigrations[0] creates a new log.
// Append only: a released migration never changes, so that every log reaches the same schema.
constexpr const char* kMigrations[] = {
    // 0 -> 1: the tables.
    R"sql(
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      INSERT INTO meta (key, value) VALUES ('application', 'kiln-tuning-log');
      CREATE TABLE workloads (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        op TEXT NOT NULL
      );
      CREATE TABLE targets (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        model TEXT NOT NULL,
        features TEXT NOT NULL,
        UNIQUE (target, model)
      );
      CREATE TABLE records (
        id INTEGER PRIMARY KEY,
        workload_id INTEGER NOT NULL REFERENCES workloads (id),
        target_id INTEGER NOT NULL REFERENCES targets (id),
        config_index INTEGER NOT NULL,
        config_knobs TEXT NOT NULL,
        costs TEXT NOT NULL,
        median_cost REAL,
        error_code INTEGER NOT NULL,
        error_message TEXT NOT NULL,
        agent TEXT NOT NULL,
        device TEXT NOT NULL,
        measure_options TEXT NOT NULL,
        measured_at_ms INTEGER NOT NULL,
        kiln_version TEXT NOT NULL
      );
    )sql",
    // 1 -> 2: best queries read the fastest valid records of one (workload, target) straight off
    // an index, in order.
    R"sql(
      CREATE INDEX records_best ON records (workload_id, target_id, error_code, median_cost);
    )sql",
    // 2 -> 3: boards under user-mode emulation (qemu-user) are marked, so that their timings
    // never stand in for a real board's.
    R"sql(
      ALTER TABLE targets ADD COLUMN emulated INTEGER NOT NULL DEFAULT 0;
    )sql",
    // 3 -> 4: records carry the thread count they ran with, read from their measure options
    // (0 where those give none: the board chose), and best queries for one count have an
    // index of their own.
    R"sql(
      ALTER TABLE records ADD COLUMN threads INTEGER NOT NULL DEFAULT 0;
      UPDATE records SET threads = CASE WHEN json_valid(measure_options) THEN
          CASE WHEN json_type(measure_options, '$.threads') = 'integer'
                    AND json_extract(measure_options, '$.threads') BETWEEN 1 AND 1024
               THEN json_extract(measure_options, '$.threads') ELSE 0 END
        ELSE 0 END;
      CREATE INDEX records_best_by_threads
        ON records (workload_id, target_id, threads, error_code, median_cost);
    )sql",
    // 4 -> 5: the jobs of kiln serve; AUTOINCREMENT, so that a forgotten job's number never
    // names another job.
    R"sql(
      CREATE TABLE jobs (
        number INTEGER PRIMARY KEY AUTOINCREMENT,
        document TEXT NOT NULL,
        cancel_requested INTEGER NOT NULL DEFAULT 0
      );
    )sql",
};
static_assert(std::size(kMigrations) == kTuningLogSchemaVersion);

// The thread count of a record row: its column from schema 4 on; before, what migration 3 -> 4
// reads from the measure options (for read-only opens of older logs).
std::string threads_column(int schema_version) {
  if (schema_version >= 4) return "r.threads";
  return "(CASE WHEN json_valid(r.measure_options) THEN CASE WHEN "
         "json_type(r.measure_options, '$.threads') = 'integer' AND "
         "json_extract(r.measure_options, '$.threads') BETWEEN 1 AND 1024 THEN "
         "json_extract(r.measure_options, '$.threads') ELSE 0 END ELSE 0 END)";
}

// The columns of a record row, in the order read_record reads them (the id is column 10, the
// thread count 11, counting from 0).
std::string record_columns(int schema_version) {
  return "r.config_index, r.config_knobs, r.costs, r.error_code, r.error_message, r.agent, "
         "r.device, r.measure_options, r.measured_at_ms, r.kiln_version, r.id, " +
         threads_column(schema_version) + " AS threads";
}

std::shared_ptr<spdlog::logger> db_log() { return logger("db"); }

/// A Status for the SQLite result `rc` of `what`. Busy and locked become Unavailable, which the
/// retry loops take as "try again".
Status sqlite_status(sqlite3* db, int rc, std::string_view what, const fs::path& path) {
  const std::string detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const std::string file = "'" + path.string() + "'";
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status(StatusCode::kUnavailable,
                    "tuning log " + file + " is locked by another process (" + detail + ")");
    case SQLITE_NOTADB:
      return invalid_argument(file + " is not a kiln tuning log: not a SQLite database (" + detail +
                              "); pass a tuning log, or a path that does not exist to "
                              "create one");
    case SQLITE_CORRUPT:
      return Status(StatusCode::kDataLoss, "tuning log " + file + " is damaged (" + detail +
                                               ") while trying to " + std::string(what) +
                                               "; restore it from a backup or an export");
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN:
    case SQLITE_AUTH:
      return Status(StatusCode::kFailedPrecondition,
                    "cannot " + std::string(what) + " tuning log " + file + ": " + detail);
    case SQLITE_FULL:
      return Status(StatusCode::kResourceExhausted,
                    "cannot " + std::string(what) + " tuning log " + file + ": " + detail);
    default:
      return internal_error("sqlite failed to " + std::string(what) + " tuning log " + file + ": " +
                            detail);
  }
}

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbHandle = std::unique_ptr<sqlite3, DbCloser>;

/// A prepared statement, kept for the life of the connection.
class Statement {
 public:
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement(Statement&& other) noexcept
      : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)), path_(other.path_) {}
  Statement& operator=(Statement&& other) noexcept {
    std::swap(db_, other.db_);
    std::swap(stmt_, other.stmt_);
    std::swap(path_, other.path_);
    return *this;
  }
  ~Statement() { sqlite3_finalize(stmt_); }

  static Result<Statement> prepare(sqlite3* db, const fs::path* path, std::string_view sql) {
    Statement statement;
    statement.db_ = db;
    statement.path_ = path;
    const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &statement.stmt_, nullptr);
    if (rc != SQLITE_OK) return sqlite_status(db, rc, "read", *path);
    return statement;
  }

  void bind(int index, int64_t value) { sqlite3_bind_int64(stmt_, index, value); }
  void bind(int index, double value) { sqlite3_bind_double(stmt_, index, value); }
  void bind(int index, std::string_view value) {
    sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  }
  void bind_null(int index) { sqlite3_bind_null(stmt_, index); }

  /// True when a row is ready, false when the statement is done.
  Result<bool> step(std::string_view what) {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return sqlite_status(db_, rc, what, *path_);
  }

  /// Runs a statement that returns no rows.
  Status run(std::string_view what) {
    Result<bool> stepped = step(what);
    reset();
    return stepped.is_ok() ? Status::ok() : stepped.status();
  }

  /// Ends the current run so that the statement holds no read snapshot, and clears bindings.
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  int64_t int64(int column) const { return sqlite3_column_int64(stmt_, column); }
  double real(int column) const { return sqlite3_column_double(stmt_, column); }
  bool is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  std::string text(int column) const {
    const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    return data == nullptr
               ? std::string()
               : std::string(data, static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
  }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  const fs::path* path_ = nullptr;
};

/// Resets a statement when the scope ends, so that no early return leaves a read open.
class ResetOnExit {
 public:
  explicit ResetOnExit(Statement& statement) : statement_(statement) {}
  ~ResetOnExit() { statement_.reset(); }
  ResetOnExit(const ResetOnExit&) = delete;
  ResetOnExit& operator=(const ResetOnExit&) = delete;

 private:
  Statement& statement_;
};

Result<DbHandle> open_connection(const fs::path& path, int flags, int busy_timeout_ms) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  DbHandle db(raw);
  if (rc != SQLITE_OK) return sqlite_status(db.get(), rc, "open", path);
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_busy_timeout(db.get(), busy_timeout_ms);
  return db;
}

Status exec(sqlite3* db, const fs::path& path, const char* sql, std::string_view what) {
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return sqlite_status(db, rc, what, path);
  return Status::ok();
}

Result<int64_t> query_int(sqlite3* db, const fs::path& path, std::string_view sql,
                          std::string_view what) {
  KILN_ASSIGN_OR_RETURN(Statement statement, Statement::prepare(db, &path, sql));
  KILN_ASSIGN_OR_RETURN(bool has_row, statement.step(what));
  return has_row ? statement.int64(0) : 0;
}

Status not_a_tuning_log(const fs::path& path, std::string_view why) {
  return invalid_argument("'" + path.string() + "' is not a kiln tuning log: " + std::string(why) +
                          "; pass a tuning log, or a path that does not exist to create one");
}

/// What a read of the file's schema found: 0 for a new, empty database, else its schema
/// version. Fails for anything that is not a kiln tuning log this build can use. Reads only.
Result<int> inspect_schema(sqlite3* db, const fs::path& path, int supported_version) {
  // Preparing the first statement reads page 1: a file that is not SQLite fails here.
  KILN_ASSIGN_OR_RETURN(
      Statement tables,
      Statement::prepare(db, &path, "SELECT name FROM sqlite_schema WHERE type = 'table'"));
  std::set<std::string> names;
  while (true) {
    KILN_ASSIGN_OR_RETURN(bool has_row, tables.step("read the schema of"));
    if (!has_row) break;
    names.insert(tables.text(0));
  }
  KILN_ASSIGN_OR_RETURN(int64_t version,
                        query_int(db, path, "PRAGMA user_version", "read the version of"));
  if (names.empty() && version == 0) return 0;
  if (!names.contains("meta")) return not_a_tuning_log(path, "it has no kiln meta table");
  KILN_ASSIGN_OR_RETURN(
      Statement application,
      Statement::prepare(db, &path, "SELECT value FROM meta WHERE key = 'application'"));
  KILN_ASSIGN_OR_RETURN(bool has_application, application.step("read the meta table of"));
  if (!has_application || application.text(0) != kTuningLogApplication) {
    return not_a_tuning_log(path, "its meta table does not name kiln");
  }
  if (version > supported_version) {
    return Status(StatusCode::kFailedPrecondition,
                  "tuning log '" + path.string() + "' has schema version " +
                      std::to_string(version) + ", newer than version " +
                      std::to_string(supported_version) +
                      " that this kiln reads; use the kiln that wrote it, or a newer one");
  }
  if (version < 1) {
    return Status(StatusCode::kDataLoss, "tuning log '" + path.string() +
                                             "' has kiln tables but no schema version; restore "
                                             "it from a backup or an export");
  }
  return static_cast<int>(version);
}

std::string costs_to_json(const std::vector<double>& costs) { return nlohmann::json(costs).dump(); }

/// Job claims are locks on one byte each of the log file, at this offset plus the job's number:
/// far past SQLite's own lock bytes (at 1 GiB), and locks need no data there.
constexpr off_t kJobClaimOffset = off_t{1} << 40;

/// An open-file-description lock (Linux's F_OFD_SETLK): held by this descriptor alone, so it
/// conflicts with other claims in this process too, and SQLite's closing of its own descriptors
/// never drops it.
class SqliteJobClaim final : public JobClaim {
 public:
  explicit SqliteJobClaim(int fd) : fd_(fd) {}
  ~SqliteJobClaim() override { ::close(fd_); }

 private:
  int fd_;
};

class SqliteBackend final : public TuningLogBackend {
 public:
  fs::path path;
  TuningLogOptions options;
  DbHandle db;
  int version = 0;
  /// A read-only open of a file without tables yet: every query answers with nothing.
  bool empty = false;

  Statement find_workload, find_target, find_boards, best_query, best_of_threads_query,
      history_query, history_latest_query;
  Statement insert_workload, insert_target, insert_record;

  // Ids never change once committed, so they are cached; a rolled-back transaction's ids are
  // kept apart in `pending_*` until its commit.
  std::unordered_map<std::string, int64_t> workload_ids;
  using TargetIdKey = std::tuple<std::string, std::string, bool>;
  std::map<TargetIdKey, int64_t> target_ids;
  std::unordered_map<std::string, int64_t> pending_workload_ids;
  std::map<TargetIdKey, int64_t> pending_target_ids;

  /// Runs `body` again while it fails with Unavailable (a lock held elsewhere), with a growing
  /// pause, until options.lock_timeout_ms have passed.
  Status retry_while_locked(const std::function<Status()>& body) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(options.lock_timeout_ms);
    std::minstd_rand jitter(static_cast<unsigned>(Clock::now().time_since_epoch().count()));
    int pause_us = 200;
    while (true) {
      Status status = body();
      if (status.code() != StatusCode::kUnavailable || Clock::now() >= deadline) return status;
      db_log()->debug("tuning log locked, retrying path={} pause_us={}", path.string(), pause_us);
      std::this_thread::sleep_for(std::chrono::microseconds(pause_us + jitter() % pause_us));
      pause_us = std::min(pause_us * 2, 50000);
    }
  }

  /// Runs `body` inside BEGIN IMMEDIATE ... COMMIT, rolling back on failure and retrying the
  /// whole transaction while the database is locked.
  Status write_transaction(const std::function<Status()>& body) {
    return retry_while_locked([&]() -> Status {
      pending_workload_ids.clear();
      pending_target_ids.clear();
      Status status = exec(db.get(), path, "BEGIN IMMEDIATE", "lock");
      if (!status.is_ok()) return status;
      status = body();
      if (status.is_ok()) status = exec(db.get(), path, "COMMIT", "commit to");
      if (!status.is_ok()) {
        if (sqlite3_get_autocommit(db.get()) == 0) {
          (void)exec(db.get(), path, "ROLLBACK", "roll back");
        }
        return status;
      }
      workload_ids.merge(pending_workload_ids);
      target_ids.merge(pending_target_ids);
      return Status::ok();
    });
  }

  Status prepare_statements() {
    auto prepare = [&](Statement* statement, std::string_view sql) -> Status {
      Result<Statement> prepared = Statement::prepare(db.get(), &path, sql);
      if (!prepared) return prepared.status();
      *statement = std::move(*prepared);
      return Status::ok();
    };
    KILN_RETURN_IF_ERROR(prepare(&find_workload, "SELECT id FROM workloads WHERE key = ?1"));
    // Logs older than schema 3 (read-only opens) have no emulated column: every board was real.
    const bool has_emulated = version >= 3;
    KILN_RETURN_IF_ERROR(prepare(&find_target, has_emulated
                                                   ? "SELECT id FROM targets WHERE target = ?1 AND "
                                                     "model = ?2 AND emulated = ?3"
                                                   : "SELECT id FROM targets WHERE target = ?1 AND "
                                                     "model = ?2 AND 0 = ?3"));
    KILN_RETURN_IF_ERROR(prepare(&find_boards, has_emulated
                                                   ? "SELECT id, model FROM targets WHERE target = "
                                                     "?1 AND emulated = ?2 ORDER BY id"
                                                   : "SELECT id, model FROM targets WHERE target = "
                                                     "?1 AND 0 = ?2 ORDER BY id"));
    // Each best query reads its rows in order off an index: records_best for every thread
    // count, records_best_by_threads for one.
    const std::string columns = record_columns(version);
    const std::string threads = threads_column(version);
    KILN_RETURN_IF_ERROR(prepare(&best_query, "SELECT " + columns +
                                                  " FROM records r WHERE r.workload_id = ?1 AND "
                                                  "r.target_id = ?2 AND r.error_code = 0 "
                                                  "ORDER BY r.median_cost, r.id"));
    KILN_RETURN_IF_ERROR(prepare(&best_of_threads_query,
                                 "SELECT " + columns +
                                     " FROM records r WHERE r.workload_id = ?1 AND "
                                     "r.target_id = ?2 AND " +
                                     threads +
                                     " = ?3 AND r.error_code = 0 ORDER BY r.median_cost, r.id"));
    KILN_RETURN_IF_ERROR(prepare(&history_query, "SELECT " + columns +
                                                     " FROM records r WHERE r.workload_id = ?1 AND "
                                                     "r.target_id = ?2 AND (?3 = 0 OR " +
                                                     threads + " = ?3) ORDER BY r.id"));
    KILN_RETURN_IF_ERROR(prepare(&history_latest_query,
                                 "SELECT * FROM (SELECT " + columns +
                                     " FROM records r WHERE r.workload_id = ?1 AND "
                                     "r.target_id = ?2 AND (?3 = 0 OR " +
                                     threads + " = ?3) ORDER BY r.id DESC LIMIT ?4) ORDER BY 11"));
    if (options.read_only) return Status::ok();
    KILN_RETURN_IF_ERROR(
        prepare(&insert_workload, "INSERT INTO workloads (key, op) VALUES (?1, ?2)"));
    KILN_RETURN_IF_ERROR(prepare(&insert_target, has_emulated
                                                     ? "INSERT INTO targets (target, model, "
                                                       "features, emulated) VALUES (?1, ?2, ?3, ?4)"
                                                     : "INSERT INTO targets (target, model, "
                                                       "features) VALUES (?1, ?2, ?3)"));
    // A log kept at an older schema (tests standing in for an older kiln) has no threads
    // column: ?14 is bound and ignored there.
    KILN_RETURN_IF_ERROR(prepare(
        &insert_record,
        std::string("INSERT INTO records (workload_id, target_id, config_index, config_knobs, "
                    "costs, median_cost, error_code, error_message, agent, device, "
                    "measure_options, measured_at_ms, kiln_version") +
            (version >= 4 ? ", threads) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
                            "?11, ?12, ?13, ?14)"
                          : ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
                            "?13)")));
    return Status::ok();
  }

  /// Brings a writable log to options.schema_version, in one transaction with the checks
  /// repeated inside it: another process may have created or migrated the file meanwhile.
  Status migrate() {
    KILN_ASSIGN_OR_RETURN(int64_t stored,
                          query_int(db.get(), path, "PRAGMA user_version", "read the version of"));
    if (stored == options.schema_version) {
      version = options.schema_version;
      return Status::ok();
    }
    int from = 0;
    Status status = write_transaction([&]() -> Status {
      KILN_ASSIGN_OR_RETURN(from, inspect_schema(db.get(), path, options.schema_version));
      for (int next = from; next < options.schema_version; ++next) {
        KILN_RETURN_IF_ERROR(exec(db.get(), path, kMigrations[next], "migrate"));
      }
      const std::string set_version =
          "PRAGMA user_version = " + std::to_string(options.schema_version) + ";" +
          "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', '" +
          std::to_string(options.schema_version) + "');";
      return exec(db.get(), path, set_version.c_str(), "migrate");
    });
    KILN_RETURN_IF_ERROR(status);
    if (from != options.schema_version) {
      db_log()->info("migrated tuning log path={} from_version={} to_version={}", path.string(),
                     from, options.schema_version);
    }
    version = options.schema_version;
    return Status::ok();
  }

  /// The id of a committed workload row, or 0 when there is none.
  Result<int64_t> lookup_workload(const std::string& key) {
    if (auto it = workload_ids.find(key); it != workload_ids.end()) return it->second;
    ResetOnExit reset(find_workload);
    find_workload.bind(1, key);
    KILN_ASSIGN_OR_RETURN(bool found, find_workload.step("read"));
    if (!found) return int64_t{0};
    const int64_t id = find_workload.int64(0);
    workload_ids.emplace(key, id);
    return id;
  }

  /// The id of a committed target row, or 0 when there is none.
  Result<int64_t> lookup_target(const TargetKey& key) {
    TargetIdKey cache_key{key.target, key.model, key.emulated};
    if (auto it = target_ids.find(cache_key); it != target_ids.end()) return it->second;
    ResetOnExit reset(find_target);
    find_target.bind(1, key.target);
    find_target.bind(2, key.model);
    find_target.bind(3, int64_t{key.emulated ? 1 : 0});
    KILN_ASSIGN_OR_RETURN(bool found, find_target.step("read"));
    if (!found) return int64_t{0};
    const int64_t id = find_target.int64(0);
    target_ids.emplace(std::move(cache_key), id);
    return id;
  }

  /// Inside a write transaction: the id of the workload row, inserted when missing.
  Result<int64_t> workload_id_for_write(const std::string& key) {
    if (auto it = pending_workload_ids.find(key); it != pending_workload_ids.end()) {
      return it->second;
    }
    KILN_ASSIGN_OR_RETURN(int64_t id, lookup_workload(key));
    if (id != 0) return id;
    insert_workload.bind(1, key);
    insert_workload.bind(2, op_of(key));
    KILN_RETURN_IF_ERROR(insert_workload.run("write to"));
    id = sqlite3_last_insert_rowid(db.get());
    pending_workload_ids.emplace(key, id);
    return id;
  }

  /// Inside a write transaction: the id of the target row, inserted when missing.
  Result<int64_t> target_id_for_write(const TargetKey& key) {
    TargetIdKey cache_key{key.target, key.model, key.emulated};
    if (auto it = pending_target_ids.find(cache_key); it != pending_target_ids.end()) {
      return it->second;
    }
    KILN_ASSIGN_OR_RETURN(int64_t id, lookup_target(key));
    if (id != 0) return id;
    insert_target.bind(1, key.target);
    insert_target.bind(2, key.model);
    insert_target.bind(3, key.features());
    if (version >= 3) insert_target.bind(4, int64_t{key.emulated ? 1 : 0});
    KILN_RETURN_IF_ERROR(insert_target.run("write to"));
    id = sqlite3_last_insert_rowid(db.get());
    pending_target_ids.emplace(std::move(cache_key), id);
    return id;
  }

  /// Reads the row `statement` stands on (kRecordColumns from column `first`) into `record`,
  /// whose workload and target the caller fills in.
  Status read_record(const Statement& statement, TuningRecord* record) {
    record->config_index = statement.int64(0);
    record->config_knobs = statement.text(1);
    std::optional<std::vector<double>> costs = costs_from_json(statement.text(2));
    const int64_t error = statement.int64(3);
    if (!costs || error < 0 || error >= kNumMeasureErrors) {
      return Status(StatusCode::kDataLoss, "tuning log '" + path.string() + "' holds record " +
                                               std::to_string(statement.int64(10)) +
                                               " with malformed costs or error code");
    }
    record->costs = std::move(*costs);
    record->error = static_cast<MeasureError>(error);
    record->error_message = statement.text(4);
    record->agent = statement.text(5);
    record->device = statement.text(6);
    record->measure_options = statement.text(7);
    record->measured_at_ms = statement.int64(8);
    record->kiln_version = statement.text(9);
    record->target.threads = int(statement.int64(11));
    return Status::ok();
  }

  /// The committed target rows a query key stands for: the one row of its (target, model,
  /// emulated), or with an empty model every board of the target with that emulation.
  Result<std::vector<std::pair<int64_t, TargetKey>>> boards_of(const TargetKey& key) {
    std::vector<std::pair<int64_t, TargetKey>> out;
    KILN_ASSIGN_OR_RETURN(int64_t exact, lookup_target(key));
    if (exact != 0) out.emplace_back(exact, key);
    if (!key.model.empty()) return out;
    ResetOnExit reset(find_boards);
    find_boards.bind(1, key.target);
    find_boards.bind(2, int64_t{key.emulated ? 1 : 0});
    while (true) {
      KILN_ASSIGN_OR_RETURN(bool has_row, find_boards.step("read"));
      if (!has_row) break;
      if (find_boards.int64(0) == exact) continue;
      out.emplace_back(find_boards.int64(0),
                       TargetKey{key.target, find_boards.text(1), key.emulated, key.threads});
    }
    return out;
  }

  int schema_version() const override { return version; }

  Status append(std::span<const TuningRecord> canonical) override {
    Status status = write_transaction([&]() -> Status {
      for (const TuningRecord& record : canonical) {
        KILN_ASSIGN_OR_RETURN(int64_t workload_id, workload_id_for_write(record.workload));
        KILN_ASSIGN_OR_RETURN(int64_t target_id, target_id_for_write(record.target));
        Statement& insert = insert_record;
        insert.bind(1, workload_id);
        insert.bind(2, target_id);
        insert.bind(3, record.config_index);
        insert.bind(4, record.config_knobs);
        insert.bind(5, costs_to_json(record.costs));
        if (record.error == MeasureError::kOk) {
          insert.bind(6, record.median_cost());
        } else {
          insert.bind_null(6);
        }
        insert.bind(7, static_cast<int64_t>(record.error));
        insert.bind(8, record.error_message);
        insert.bind(9, record.agent);
        insert.bind(10, record.device);
        insert.bind(11, record.measure_options);
        insert.bind(12, record.measured_at_ms);
        insert.bind(13, record.kiln_version);
        if (version >= 4) insert.bind(14, int64_t{record.target.threads});
        KILN_RETURN_IF_ERROR(insert.run("write to"));
      }
      return Status::ok();
    });
    if (status.is_ok()) {
      db_log()->debug("appended records={} path={}", canonical.size(), path.string());
    }
    return status;
  }

  Result<std::vector<TuningRecord>> best(const std::string& workload_key, const TargetKey& key,
                                         int k) override {
    std::vector<TuningRecord> out;
    if (empty || k <= 0) return out;
    Status status = retry_while_locked([&]() -> Status {
      out.clear();
      KILN_ASSIGN_OR_RETURN(int64_t workload_id, lookup_workload(workload_key));
      if (workload_id == 0) return Status::ok();
      KILN_ASSIGN_OR_RETURN(auto boards, boards_of(key));
      // Each board's rows come fastest first, the first row of a config its fastest there; the
      // boards' top k are merged and each config kept once, at its fastest.
      Statement& query = key.threads > 0 ? best_of_threads_query : best_query;
      for (const auto& [target_id, board] : boards) {
        ResetOnExit reset(query);
        query.bind(1, workload_id);
        query.bind(2, target_id);
        if (key.threads > 0) query.bind(3, int64_t{key.threads});
        std::unordered_set<int64_t> configs;
        while (static_cast<int>(configs.size()) < k) {
          KILN_ASSIGN_OR_RETURN(bool has_row, query.step("read"));
          if (!has_row) break;
          if (!configs.insert(query.int64(0)).second) continue;
          TuningRecord record;
          record.workload = workload_key;
          record.target = board;
          KILN_RETURN_IF_ERROR(read_record(query, &record));
          out.push_back(std::move(record));
        }
      }
      if (boards.size() > 1) {
        std::stable_sort(out.begin(), out.end(), [](const TuningRecord& a, const TuningRecord& b) {
          return a.median_cost() < b.median_cost();
        });
        std::unordered_set<int64_t> configs;
        std::erase_if(
            out, [&](const TuningRecord& r) { return !configs.insert(r.config_index).second; });
        if (static_cast<int>(out.size()) > k) out.resize(static_cast<size_t>(k));
      }
      return Status::ok();
    });
    KILN_RETURN_IF_ERROR(status);
    return out;
  }

  Result<std::vector<TuningRecord>> history(const std::string& workload_key, const TargetKey& key,
                                            int64_t limit) override {
    std::vector<TuningRecord> out;
    if (empty) return out;
    Status status = retry_while_locked([&]() -> Status {
      out.clear();
      KILN_ASSIGN_OR_RETURN(int64_t workload_id, lookup_workload(workload_key));
      if (workload_id == 0) return Status::ok();
      KILN_ASSIGN_OR_RETURN(auto boards, boards_of(key));
      std::vector<std::pair<int64_t, TuningRecord>> rows;  // (record id, record)
      for (const auto& [target_id, board] : boards) {
        Statement& query = limit > 0 ? history_latest_query : history_query;
        ResetOnExit reset(query);
        query.bind(1, workload_id);
        query.bind(2, target_id);
        query.bind(3, int64_t{key.threads});
        if (limit > 0) query.bind(4, limit);
        while (true) {
          KILN_ASSIGN_OR_RETURN(bool has_row, query.step("read"));
          if (!has_row) break;
          TuningRecord record;
          record.workload = workload_key;
          record.target = board;
          KILN_RETURN_IF_ERROR(read_record(query, &record));
          rows.emplace_back(query.int64(10), std::move(record));
        }
      }
      // Several boards: their rows in the order they were appended, the latest `limit`.
      if (boards.size() > 1) {
        std::stable_sort(rows.begin(), rows.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
        if (limit > 0 && static_cast<int64_t>(rows.size()) > limit) {
          rows.erase(rows.begin(), rows.end() - limit);
        }
      }
      for (auto& row : rows) out.push_back(std::move(row.second));
      return Status::ok();
    });
    KILN_RETURN_IF_ERROR(status);
    return out;
  }

  Result<std::vector<WorkloadSummary>> workloads(std::string_view op) override {
    std::vector<WorkloadSummary> out;
    if (empty) return out;
    Status status = retry_while_locked([&]() -> Status {
      out.clear();
      KILN_ASSIGN_OR_RETURN(
          Statement list,
          Statement::prepare(db.get(), &path,
                             "SELECT w.key, w.op, count(*), sum(r.error_code = 0), "
                             "count(DISTINCT r.target_id) FROM workloads w JOIN records r ON "
                             "r.workload_id = w.id WHERE ?1 = '' OR w.op = ?1 GROUP BY w.id "
                             "ORDER BY w.key"));
      list.bind(1, op);
      while (true) {
        KILN_ASSIGN_OR_RETURN(bool has_row, list.step("read"));
        if (!has_row) break;
        out.push_back({list.text(0), list.text(1), list.int64(2), list.int64(3), list.int64(4)});
      }
      return Status::ok();
    });
    KILN_RETURN_IF_ERROR(status);
    return out;
  }

  Result<int64_t> data_version() override {
    return query_int(db.get(), path, "PRAGMA data_version", "read the version of");
  }

  /// Runs one statement that writes, with `bind` setting its parameters, in a write
  /// transaction; returns the rows it changed.
  Result<int64_t> write_one(std::string_view sql, const std::function<void(Statement&)>& bind) {
    int64_t changed = 0;
    Status status = write_transaction([&]() -> Status {
      KILN_ASSIGN_OR_RETURN(Statement statement, Statement::prepare(db.get(), &path, sql));
      bind(statement);
      KILN_RETURN_IF_ERROR(statement.run("write to"));
      changed = sqlite3_changes(db.get());
      return Status::ok();
    });
    KILN_RETURN_IF_ERROR(status);
    return changed;
  }

  static Status no_job(int64_t number) {
    return Status(StatusCode::kNotFound, "no job-" + std::to_string(number) + " in the log");
  }

  Result<int64_t> add_job(std::string_view document) override {
    KILN_RETURN_IF_ERROR(write_one("INSERT INTO jobs (document) VALUES (?1)", [&](Statement& s) {
                           s.bind(1, document);
                         }).status());
    return sqlite3_last_insert_rowid(db.get());
  }

  Status put_job(int64_t number, std::string_view document) override {
    return write_one(
               "INSERT INTO jobs (number, document) VALUES (?1, ?2) ON CONFLICT (number) DO "
               "UPDATE SET document = excluded.document",
               [&](Statement& s) {
                 s.bind(1, number);
                 s.bind(2, document);
               })
        .status();
  }

  Result<bool> update_job(int64_t number, std::string_view document, bool clear_cancel) override {
    bool cancel = false;
    Status status = write_transaction([&]() -> Status {
      KILN_ASSIGN_OR_RETURN(
          Statement update,
          Statement::prepare(db.get(), &path,
                             "UPDATE jobs SET document = ?2, cancel_requested = "
                             "CASE WHEN ?3 THEN 0 ELSE cancel_requested END WHERE number = ?1 "
                             "RETURNING cancel_requested"));
      update.bind(1, number);
      update.bind(2, document);
      update.bind(3, int64_t{clear_cancel});
      ResetOnExit reset(update);
      KILN_ASSIGN_OR_RETURN(bool has_row, update.step("write to"));
      if (!has_row) return no_job(number);
      cancel = update.int64(0) != 0;
      KILN_ASSIGN_OR_RETURN(has_row, update.step("write to"));
      return Status::ok();
    });
    KILN_RETURN_IF_ERROR(status);
    return cancel;
  }

  Status request_job_cancel(int64_t number) override {
    KILN_ASSIGN_OR_RETURN(int64_t changed,
                          write_one("UPDATE jobs SET cancel_requested = 1 WHERE number = ?1",
                                    [&](Statement& s) { s.bind(1, number); }));
    return changed == 0 ? no_job(number) : Status::ok();
  }

  Status delete_job(int64_t number) override {
    return write_one("DELETE FROM jobs WHERE number = ?1", [&](Statement& s) { s.bind(1, number); })
        .status();
  }

  Result<std::vector<StoredJob>> jobs(int64_t number) override {
    std::vector<StoredJob> out;
    if (empty || version < 5) return out;
    Status status = retry_while_locked([&]() -> Status {
      out.clear();
      KILN_ASSIGN_OR_RETURN(
          Statement list,
          Statement::prepare(db.get(), &path,
                             "SELECT number, document, cancel_requested FROM jobs WHERE ?1 = 0 "
                             "OR number = ?1 ORDER BY number"));
      list.bind(1, number);
      while (true) {
        KILN_ASSIGN_OR_RETURN(bool has_row, list.step("read"));
        if (!has_row) break;
        out.push_back({list.int64(0), list.text(1), list.int64(2) != 0});
      }
      return Status::ok();
    });
    KILN_RETURN_IF_ERROR(status);
    return out;
  }

  Result<std::unique_ptr<JobClaim>> claim_job(int64_t number) override {
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      return Status(StatusCode::kUnavailable, "cannot open tuning log '" + path.string() +
                                                  "' to claim a job: " + std::strerror(errno));
    }
    struct flock lock {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    lock.l_start = kJobClaimOffset + off_t(number);
    lock.l_len = 1;
    if (::fcntl(fd, F_OFD_SETLK, &lock) == 0) {
      return std::unique_ptr<JobClaim>(std::make_unique<SqliteJobClaim>(fd));
    }
    const int error = errno;
    ::close(fd);
    if (error == EAGAIN || error == EACCES) return std::unique_ptr<JobClaim>();
    return Status(StatusCode::kUnavailable, "cannot lock tuning log '" + path.string() +
                                                "' to claim a job: " + std::strerror(error));
  }

  Result<TuningLogStats> stats() override {
    TuningLogStats stats;
    stats.schema_version = version;
    if (empty) return stats;
    Status status = retry_while_locked([&]() -> Status {
      // One read transaction, so that the counts agree with each other.
      KILN_RETURN_IF_ERROR(exec(db.get(), path, "BEGIN", "read"));
      auto read = [&]() -> Status {
        KILN_ASSIGN_OR_RETURN(Statement totals,
                              Statement::prepare(db.get(), &path,
                                                 "SELECT count(*), count(DISTINCT workload_id), "
                                                 "count(DISTINCT target_id), min(measured_at_ms), "
                                                 "max(measured_at_ms) FROM records"));
        KILN_ASSIGN_OR_RETURN(bool has_row, totals.step("read"));
        if (has_row) {
          stats.records = totals.int64(0);
          stats.workloads = totals.int64(1);
          stats.targets = totals.int64(2);
          stats.first_measured_at_ms = totals.is_null(3) ? 0 : totals.int64(3);
          stats.last_measured_at_ms = totals.is_null(4) ? 0 : totals.int64(4);
        }
        KILN_ASSIGN_OR_RETURN(Statement by_error,
                              Statement::prepare(db.get(), &path,
                                                 "SELECT error_code, count(*) FROM records "
                                                 "GROUP BY error_code"));
        stats.by_error.fill(0);
        while (true) {
          KILN_ASSIGN_OR_RETURN(bool has_error_row, by_error.step("read"));
          if (!has_error_row) break;
          const int64_t code = by_error.int64(0);
          if (code < 0 || code >= kNumMeasureErrors) {
            return Status(StatusCode::kDataLoss, "tuning log '" + path.string() +
                                                     "' holds records with unknown error code " +
                                                     std::to_string(code));
          }
          stats.by_error[static_cast<size_t>(code)] = by_error.int64(1);
        }
        return Status::ok();
      };
      Status read_status = read();
      (void)exec(db.get(), path, "COMMIT", "read");
      return read_status;
    });
    KILN_RETURN_IF_ERROR(status);
    return stats;
  }

  Status for_each_record(const std::function<Status(const TuningRecord&)>& each) override {
    if (empty) return Status::ok();
    KILN_ASSIGN_OR_RETURN(
        Statement query,
        Statement::prepare(db.get(), &path,
                           "SELECT " + record_columns(version) + ", w.key, t.target, t.model, " +
                               (version >= 3 ? "t.emulated" : "0") +
                               " FROM records r "
                               "JOIN workloads w ON w.id = r.workload_id "
                               "JOIN targets t ON t.id = r.target_id ORDER BY r.id"));
    // One statement is one read snapshot: the export is consistent even while others append.
    // A lock can only meet the first step; after that the snapshot is held.
    bool first = true;
    while (true) {
      Result<bool> has_row = query.step("read");
      if (!has_row && first && has_row.status().code() == StatusCode::kUnavailable) {
        KILN_RETURN_IF_ERROR(retry_while_locked([&]() -> Status {
          query.reset();
          has_row = query.step("read");
          return has_row.is_ok() ? Status::ok() : has_row.status();
        }));
      }
      if (!has_row) return has_row.status();
      first = false;
      if (!*has_row) break;
      TuningRecord record;
      KILN_RETURN_IF_ERROR(read_record(query, &record));
      record.workload = query.text(12);
      record.target =
          TargetKey{query.text(13), query.text(14), query.int64(15) != 0, record.target.threads};
      KILN_RETURN_IF_ERROR(each(record));
    }
    return Status::ok();
  }
};

}  // namespace

Result<std::unique_ptr<TuningLogBackend>> open_sqlite_log(const fs::path& path,
                                                          const TuningLogOptions& options) {
  auto impl = std::make_unique<SqliteBackend>();
  impl->path = path;
  impl->options = options;
  std::error_code error;
  const bool exists = fs::exists(path, error);
  if (options.read_only && !exists) {
    return Status(StatusCode::kNotFound,
                  "no tuning log at '" + path.string() +
                      "'; pass --db with an existing log, or tune first to create one");
  }

  if (exists) {
    // Look before writing anything: a foreign, damaged or newer file must stay as it is.
    KILN_ASSIGN_OR_RETURN(DbHandle reader,
                          open_connection(path, SQLITE_OPEN_READONLY, options.busy_timeout_ms));
    int found = 0;
    Status inspected = impl->retry_while_locked([&]() -> Status {
      Result<int> version = inspect_schema(reader.get(), path, options.schema_version);
      if (!version) return version.status();
      found = *version;
      return Status::ok();
    });
    KILN_RETURN_IF_ERROR(inspected);
    if (options.read_only) {
      impl->db = std::move(reader);
      impl->version = found;
      impl->empty = found == 0;
      if (!impl->empty) KILN_RETURN_IF_ERROR(impl->prepare_statements());
      db_log()->debug("opened tuning log path={} version={} read_only=1", path.string(), found);
      return std::unique_ptr<TuningLogBackend>(std::move(impl));
    }
  } else if (path.has_parent_path()) {
    fs::create_directories(path.parent_path(), error);
    if (error) {
      return Status(StatusCode::kFailedPrecondition, "cannot create the folder of tuning log '" +
                                                         path.string() + "': " + error.message());
    }
  }

  KILN_ASSIGN_OR_RETURN(impl->db, open_connection(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                                  options.busy_timeout_ms));
  // WAL lets readers run beside one writer; NORMAL sync keeps every commit through a process
  // crash (only power loss can cost the last commits).
  KILN_RETURN_IF_ERROR(impl->retry_while_locked([&]() -> Status {
    KILN_ASSIGN_OR_RETURN(Statement wal, Statement::prepare(impl->db.get(), &impl->path,
                                                            "PRAGMA journal_mode = WAL"));
    KILN_ASSIGN_OR_RETURN(bool has_row, wal.step("switch to WAL mode"));
    if (has_row && wal.text(0) != "wal") {
      db_log()->warn("tuning log is not in WAL mode path={} mode={}", path.string(), wal.text(0));
    }
    return Status::ok();
  }));
  KILN_RETURN_IF_ERROR(exec(impl->db.get(), path, "PRAGMA synchronous = NORMAL", "configure"));
  KILN_RETURN_IF_ERROR(impl->migrate());
  KILN_RETURN_IF_ERROR(impl->prepare_statements());
  db_log()->debug("opened tuning log path={} version={}", path.string(), impl->version);
  return std::unique_ptr<TuningLogBackend>(std::move(impl));
}

}  // namespace kiln::core::db_internal
