// The PostgreSQL tuning log: the schema and semantics of the SQLite one (sqlite_backend.cc) in
// a database that several kiln processes on several machines share.
//
// - Schema: the same tables and the same versions, in the `meta` table's `schema_version` row;
//   kPostgresMigrations mirrors the SQLite migrations step for step. A migration runs in one
//   transaction under an advisory lock, so that servers starting together migrate once.
// - Writes: an append is one transaction (workloads and targets inserted when missing, then the
//   records, many rows a statement) that also NOTIFYs kiln_tuning_log; a serialization failure,
//   a deadlock or a lost connection is retried, with the connection reset, until
//   lock_timeout_ms.
// - data_version: every connection LISTENs on kiln_tuning_log; a notification from another
//   connection moves the number on, without a query (the QueryBest cache polls it).
// - Reads: one statement each, except stats (one repeatable-read transaction) and exports (a
//   cursor in one repeatable-read transaction: a consistent snapshot of any size).

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "compiler_core/db/tuning_log_backend_internal.h"
#include "compiler_core/support/log.h"

namespace kiln::core::db_internal {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kChannel = "kiln_tuning_log";
/// Taken by a migration (pg_advisory_xact_lock): "kiln" in ASCII.
constexpr int64_t kMigrationLock = 0x6b696c6e;
/// The first key of job claims (pg_try_advisory_lock(int, int), the second is the job's number):
/// "kjob" in ASCII.
constexpr int32_t kJobClaimLock = 0x6b6a6f62;
/// Rows of one multi-row INSERT (14 parameters each, under PostgreSQL's 65,535).
constexpr size_t kRecordsPerStatement = 1000;
/// Rows an export fetches at a time from its cursor.
constexpr int kExportBatch = 2000;

// Migration N takes a log from schema version N to N + 1, as kMigrations does for SQLite.
constexpr const char* kPostgresMigrations[] = {
    // 0 -> 1: the tables.
    R"sql(
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      INSERT INTO meta (key, value) VALUES ('application', 'kiln-tuning-log');
      CREATE TABLE workloads (
        id BIGSERIAL PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        op TEXT NOT NULL
      );
      CREATE TABLE targets (
        id BIGSERIAL PRIMARY KEY,
        target TEXT NOT NULL,
        model TEXT NOT NULL,
        features TEXT NOT NULL,
        UNIQUE (target, model)
      );
      CREATE TABLE records (
        id BIGSERIAL PRIMARY KEY,
        workload_id BIGINT NOT NULL REFERENCES workloads (id),
        target_id BIGINT NOT NULL REFERENCES targets (id),
        config_index BIGINT NOT NULL,
        config_knobs TEXT NOT NULL,
        costs TEXT NOT NULL,
        median_cost DOUBLE PRECISION,
        error_code INTEGER NOT NULL,
        error_message TEXT NOT NULL,
        agent TEXT NOT NULL,
        device TEXT NOT NULL,
        measure_options TEXT NOT NULL,
        measured_at_ms BIGINT NOT NULL,
        kiln_version TEXT NOT NULL
      );
    )sql",
    // 1 -> 2: the best-query index.
    R"sql(
      CREATE INDEX records_best ON records (workload_id, target_id, error_code, median_cost);
    )sql",
    // 2 -> 3: emulated boards.
    R"sql(
      ALTER TABLE targets ADD COLUMN emulated INTEGER NOT NULL DEFAULT 0;
    )sql",
    // 3 -> 4: thread counts, read from the measure options (kiln wrote them as JSON objects).
    R"sql(
      ALTER TABLE records ADD COLUMN threads INTEGER NOT NULL DEFAULT 0;
      UPDATE records SET threads = CASE
          WHEN (measure_options::jsonb ->> 'threads') ~ '^[0-9]{1,4}$'
               AND (measure_options::jsonb ->> 'threads')::integer BETWEEN 1 AND 1024
          THEN (measure_options::jsonb ->> 'threads')::integer ELSE 0 END;
      CREATE INDEX records_best_by_threads
        ON records (workload_id, target_id, threads, error_code, median_cost);
    )sql",
    // 4 -> 5: the jobs of kiln serve.
    R"sql(
      CREATE TABLE jobs (
        number BIGSERIAL PRIMARY KEY,
        document TEXT NOT NULL,
        cancel_requested INTEGER NOT NULL DEFAULT 0
      );
    )sql",
};
static_assert(std::size(kPostgresMigrations) == kTuningLogSchemaVersion);

/// The columns of a record row (the record's table is r, its target's t), in read_record's order.
constexpr const char* kRecordColumns =
    "r.config_index, r.config_knobs, r.costs, r.error_code, r.error_message, r.agent, r.device, "
    "r.measure_options, r.measured_at_ms, r.kiln_version, r.id, r.threads, t.model, t.target, "
    "t.emulated";

/// Records of one workload on the boards a key stands for ($1 workload, $2 target, $3 emulated,
/// $4 model or '' for every board, $5 threads or 0 for every count).
constexpr const char* kKeyMatch =
    "FROM records r JOIN workloads w ON w.id = r.workload_id JOIN targets t ON t.id = "
    "r.target_id WHERE w.key = $1 AND t.target = $2 AND t.emulated = $3::integer AND ($4 = '' OR "
    "t.model = $4) AND ($5::integer = 0 OR r.threads = $5::integer)";

struct ConnectionCloser {
  void operator()(PGconn* connection) const { PQfinish(connection); }
};
struct ResultCloser {
  void operator()(PGresult* result) const { PQclear(result); }
};
using Connection = std::unique_ptr<PGconn, ConnectionCloser>;
using Rows = std::unique_ptr<PGresult, ResultCloser>;

/// A statement's parameters in text form; nullopt is SQL NULL.
using Params = std::vector<std::optional<std::string>>;

std::string trimmed(const char* message) {
  std::string text = message == nullptr ? "" : message;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

/// A new connection to `url`; Unavailable, naming `shown`, when it cannot be made.
Result<Connection> connect_to(const std::string& url, const std::string& shown) {
  const char* keywords[] = {"dbname", "connect_timeout", "fallback_application_name", nullptr};
  const char* values[] = {url.c_str(), "10", "kiln", nullptr};
  Connection connection(PQconnectdbParams(keywords, values, 1));
  if (connection == nullptr || PQstatus(connection.get()) != CONNECTION_OK) {
    const std::string why =
        connection == nullptr ? "out of memory" : trimmed(PQerrorMessage(connection.get()));
    return Status(StatusCode::kUnavailable,
                  "cannot connect to the tuning log " + shown + ": " + why);
  }
  return connection;
}

/// A session advisory lock, held by a connection of its own: closing it (or the process's
/// death, which the server sees as a closed socket) releases the lock.
class PostgresJobClaim final : public JobClaim {
 public:
  explicit PostgresJobClaim(Connection connection) : connection_(std::move(connection)) {}

 private:
  Connection connection_;
};

class PostgresBackend final : public TuningLogBackend {
 public:
  PostgresBackend(std::string url, TuningLogOptions options)
      : url_(std::move(url)), shown_(redact_url(url_)), options_(options) {}

  /// Connects, checks what the database holds, and creates or migrates the tables.
  Status open() {
    KILN_RETURN_IF_ERROR(connect());
    int found = 0;
    KILN_RETURN_IF_ERROR(retry([&]() -> Status {
      KILN_ASSIGN_OR_RETURN(found, inspect());
      return Status::ok();
    }));
    if (options_.read_only) {
      if (found != 0 && found != options_.schema_version) {
        return Status(StatusCode::kFailedPrecondition,
                      "tuning log " + shown_ + " has schema version " + std::to_string(found) +
                          "; open it writable once to migrate it to version " +
                          std::to_string(options_.schema_version));
      }
      version_ = found;
      empty_ = found == 0;
      return Status::ok();
    }
    if (found != options_.schema_version) KILN_RETURN_IF_ERROR(migrate());
    version_ = options_.schema_version;
    logger("db")->debug("opened tuning log url={} version={}", shown_, version_);
    return Status::ok();
  }

  int schema_version() const override { return version_; }

  Status append(std::span<const TuningRecord> records) override {
    // Distinct workloads and targets first, then the records, many rows a statement.
    std::map<std::string, int64_t> workload_ids;
    std::map<std::tuple<std::string, std::string, bool>, int64_t> target_ids;
    return retry([&]() -> Status {
      return transaction("BEGIN", [&]() -> Status {
        workload_ids.clear();
        target_ids.clear();
        for (const TuningRecord& r : records) {
          if (workload_ids.count(r.workload)) continue;
          KILN_ASSIGN_OR_RETURN(
              Rows row, exec("INSERT INTO workloads (key, op) VALUES ($1, $2) ON CONFLICT (key) "
                             "DO UPDATE SET op = workloads.op RETURNING id",
                             {r.workload, op_of(r.workload)}, "write to"));
          workload_ids[r.workload] = int64_at(row.get(), 0, 0);
        }
        for (const TuningRecord& r : records) {
          auto key = std::make_tuple(r.target.target, r.target.model, r.target.emulated);
          if (target_ids.count(key)) continue;
          KILN_ASSIGN_OR_RETURN(
              Rows row,
              exec("INSERT INTO targets (target, model, features, emulated) VALUES ($1, $2, $3, "
                   "$4::integer) ON CONFLICT (target, model) DO UPDATE SET target = "
                   "targets.target RETURNING id, emulated",
                   {r.target.target, r.target.model, r.target.features(),
                    std::to_string(r.target.emulated ? 1 : 0)},
                   "write to"));
          if ((int64_at(row.get(), 0, 1) != 0) != r.target.emulated) {
            return internal_error("tuning log " + shown_ + " holds board '" + r.target.model +
                                  "' of " + r.target.target + " as " +
                                  (r.target.emulated ? "real" : "emulated") +
                                  "; a board cannot be both");
          }
          target_ids[key] = int64_at(row.get(), 0, 0);
        }
        for (size_t first = 0; first < records.size(); first += kRecordsPerStatement) {
          const size_t last = std::min(records.size(), first + kRecordsPerStatement);
          std::string sql =
              "INSERT INTO records (workload_id, target_id, config_index, config_knobs, costs, "
              "median_cost, error_code, error_message, agent, device, measure_options, "
              "measured_at_ms, kiln_version, threads) VALUES ";
          Params params;
          for (size_t i = first; i < last; ++i) {
            const TuningRecord& r = records[i];
            const size_t base = params.size();
            sql += i == first ? "(" : ", (";
            for (size_t c = 1; c <= 14; ++c) {
              sql += (c == 1 ? "$" : ", $") + std::to_string(base + c);
            }
            sql += ")";
            params.push_back(std::to_string(workload_ids.at(r.workload)));
            params.push_back(std::to_string(target_ids.at(
                std::make_tuple(r.target.target, r.target.model, r.target.emulated))));
            params.push_back(std::to_string(r.config_index));
            params.push_back(r.config_knobs);
            params.push_back(nlohmann::json(r.costs).dump());
            params.push_back(r.error == MeasureError::kOk
                                 ? std::optional<std::string>(real_text(r.median_cost()))
                                 : std::nullopt);
            params.push_back(std::to_string(static_cast<int>(r.error)));
            params.push_back(r.error_message);
            params.push_back(r.agent);
            params.push_back(r.device);
            params.push_back(r.measure_options);
            params.push_back(std::to_string(r.measured_at_ms));
            params.push_back(r.kiln_version);
            params.push_back(std::to_string(r.target.threads));
          }
          KILN_RETURN_IF_ERROR(exec(sql, params, "write to").status());
        }
        return exec(std::string("NOTIFY ") + kChannel, {}, "write to").status();
      });
    });
  }

  Result<std::vector<TuningRecord>> best(const std::string& workload, const TargetKey& key,
                                         int k) override {
    std::vector<TuningRecord> out;
    if (empty_) return out;
    KILN_RETURN_IF_ERROR(retry([&]() -> Status {
      out.clear();
      KILN_ASSIGN_OR_RETURN(
          Rows ids,
          exec("SELECT w.id, t.id FROM workloads w, targets t WHERE w.key = $1 AND "
               "t.target = $2 AND t.emulated = $3::integer AND ($4 = '' OR t.model = "
               "$4) ORDER BY t.id",
               {workload, key.target, std::to_string(key.emulated ? 1 : 0), key.model}, "read"));
      // Each board's rows come fastest first off the best-query index, as many as it takes
      // to see k configs; the boards' are merged and each config kept once, at its fastest.
      const std::string sql =
          std::string("SELECT ") + kRecordColumns +
          " FROM records r JOIN targets t ON t.id = r.target_id WHERE r.workload_id = "
          "$1::bigint AND r.target_id = $2::bigint AND r.error_code = 0" +
          (key.threads > 0 ? " AND r.threads = $4::integer" : " AND $4::integer = 0") +
          " ORDER BY r.median_cost, r.id LIMIT $3::bigint";
      for (int i = 0; i < PQntuples(ids.get()); ++i) {
        std::set<int64_t> configs;
        std::vector<TuningRecord> board;
        for (int64_t limit = 4 * int64_t{k};; limit *= 4) {
          KILN_ASSIGN_OR_RETURN(
              board, read_records(sql,
                                  {PQgetvalue(ids.get(), i, 0), PQgetvalue(ids.get(), i, 1),
                                   std::to_string(limit), std::to_string(key.threads)},
                                  workload));
          configs.clear();
          for (const TuningRecord& r : board) configs.insert(r.config_index);
          if (static_cast<int64_t>(board.size()) < limit || static_cast<int>(configs.size()) >= k) {
            break;
          }
        }
        for (TuningRecord& r : board) out.push_back(std::move(r));
      }
      std::stable_sort(out.begin(), out.end(), [](const TuningRecord& a, const TuningRecord& b) {
        return a.median_cost() < b.median_cost();
      });
      std::set<int64_t> configs;
      std::erase_if(out,
                    [&](const TuningRecord& r) { return !configs.insert(r.config_index).second; });
      if (static_cast<int>(out.size()) > k) out.resize(static_cast<size_t>(k));
      return Status::ok();
    }));
    return out;
  }

  Result<std::vector<TuningRecord>> history(const std::string& workload, const TargetKey& key,
                                            int64_t limit) override {
    std::vector<TuningRecord> out;
    if (empty_) return out;
    const std::string sql =
        std::string("SELECT ") + kRecordColumns + " " + kKeyMatch + " ORDER BY r.id DESC LIMIT $6";
    Params params = key_params(workload, key);
    params.push_back(limit > 0 ? std::optional<std::string>(std::to_string(limit)) : std::nullopt);
    KILN_RETURN_IF_ERROR(retry([&]() -> Status {
      KILN_ASSIGN_OR_RETURN(out, read_records(sql, params, workload));
      return Status::ok();
    }));
    std::reverse(out.begin(), out.end());
    return out;
  }

  Result<TuningLogStats> stats() override {
    TuningLogStats stats;
    stats.schema_version = version_;
    if (empty_) return stats;
    KILN_RETURN_IF_ERROR(retry([&]() -> Status {
      return transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", [&]() -> Status {
        KILN_ASSIGN_OR_RETURN(Rows totals,
                              exec("SELECT count(*), count(DISTINCT workload_id), count(DISTINCT "
                                   "target_id), coalesce(min(measured_at_ms), 0), "
                                   "coalesce(max(measured_at_ms), 0) FROM records",
                                   {}, "read"));
        stats.records = int64_at(totals.get(), 0, 0);
        stats.workloads = int64_at(totals.get(), 0, 1);
        stats.targets = int64_at(totals.get(), 0, 2);
        stats.first_measured_at_ms = int64_at(totals.get(), 0, 3);
        stats.last_measured_at_ms = int64_at(totals.get(), 0, 4);
        KILN_ASSIGN_OR_RETURN(
            Rows by_error,
            exec("SELECT error_code, count(*) FROM records GROUP BY error_code", {}, "read"));
        stats.by_error.fill(0);
        for (int i = 0; i < PQntuples(by_error.get()); ++i) {
          KILN_ASSIGN_OR_RETURN(MeasureError error,
                                measure_error_of(int64_at(by_error.get(), i, 0), shown_));
          stats.by_error[static_cast<size_t>(error)] = int64_at(by_error.get(), i, 1);
        }
        return Status::ok();
      });
    }));
    return stats;
  }

  Result<std::vector<WorkloadSummary>> workloads(std::string_view op) override {
    std::vector<WorkloadSummary> out;
    if (empty_) return out;
    KILN_RETURN_IF_ERROR(retry([&]() -> Status {
      KILN_ASSIGN_OR_RETURN(
          Rows rows,
          exec("SELECT w.key, w.op, count(*), count(*) FILTER (WHERE r.error_code = 0), "
               "count(DISTINCT r.target_id) FROM workloads w JOIN records r ON r.workload_id = "
               "w.id WHERE $1 = '' OR w.op = $1 GROUP BY w.id ORDER BY w.key",
               {std::string(op)}, "read"));
      out.clear();
      for (int i = 0; i < PQntuples(rows.get()); ++i) {
        out.push_back({PQgetvalue(rows.get(), i, 0), PQgetvalue(rows.get(), i, 1),
                       int64_at(rows.get(), i, 2), int64_at(rows.get(), i, 3),
                       int64_at(rows.get(), i, 4)});
      }
      return Status::ok();
    }));
    return out;
  }

  Result<int64_t> data_version() override {
    if (PQstatus(connection_.get()) != CONNECTION_OK) {
      KILN_RETURN_IF_ERROR(reconnect());
    }
    if (PQconsumeInput(connection_.get()) == 0) {
      KILN_RETURN_IF_ERROR(reconnect());
    }
    const int self = PQbackendPID(connection_.get());
    while (PGnotify* notice = PQnotifies(connection_.get())) {
      if (notice->be_pid != self) ++changes_;
      PQfreemem(notice);
    }
    return changes_;
  }

  Status for_each_record(const std::function<Status(const TuningRecord&)>& each) override {
    if (empty_) return Status::ok();
    // Only an attempt that sent nothing may be retried: once a record has gone to `each`, a
    // retry would send it twice, so a later failure ends the export.
    bool sent = false;
    Status status;
    KILN_RETURN_IF_ERROR(retry([&]() -> Status {
      status = export_once(each, sent);
      return sent ? Status::ok() : status;
    }));
    return status;
  }

  static Status no_job(int64_t number) {
    return Status(StatusCode::kNotFound, "no job-" + std::to_string(number) + " in the log");
  }

  Result<int64_t> add_job(std::string_view document) override {
    int64_t number = 0;
    KILN_RETURN_IF_ERROR(retry([&]() -> Status {
      KILN_ASSIGN_OR_RETURN(Rows rows, exec("INSERT INTO jobs (document) VALUES ($1) RETURNING "
                                            "number",
                                            {std::string(document)}, "write to"));
      number = int64_at(rows.get(), 0, 0);
      return Status::ok();
    }));
    return number;
  }

  Status put_job(int64_t number, std::string_view document) override {
    return retry([&]() -> Status {
      return transaction("BEGIN", [&]() -> Status {
        KILN_RETURN_IF_ERROR(exec("INSERT INTO jobs (number, document) VALUES ($1, $2) ON "
                                  "CONFLICT (number) DO UPDATE SET document = excluded.document",
                                  {std::to_string(number), std::string(document)}, "write to")
                                 .status());
        // The sequence moves past every number stored, so that add_job never takes one.
        return exec(
                   "SELECT setval(pg_get_serial_sequence('jobs', 'number'), GREATEST((SELECT "
                   "max(number) FROM jobs), (SELECT last_value FROM jobs_number_seq)))",
                   {}, "write to")
            .status();
      });
    });
  }

  Result<bool> update_job(int64_t number, std::string_view document, bool clear_cancel) override {
    bool cancel = false;
    KILN_RETURN_IF_ERROR(retry([&]() -> Status {
      KILN_ASSIGN_OR_RETURN(
          Rows rows, exec("UPDATE jobs SET document = $2, cancel_requested = CASE WHEN $3 = '1' "
                          "THEN 0 ELSE cancel_requested END WHERE number = $1 RETURNING "
                          "cancel_requested",
                          {std::to_string(number), std::string(document), clear_cancel ? "1" : "0"},
                          "write to"));
      if (PQntuples(rows.get()) == 0) return no_job(number);
      cancel = int64_at(rows.get(), 0, 0) != 0;
      return Status::ok();
    }));
    return cancel;
  }

  Status request_job_cancel(int64_t number) override {
    return retry([&]() -> Status {
      KILN_ASSIGN_OR_RETURN(Rows rows,
                            exec("UPDATE jobs SET cancel_requested = 1 WHERE number = $1",
                                 {std::to_string(number)}, "write to"));
      return std::strtoll(PQcmdTuples(rows.get()), nullptr, 10) == 0 ? no_job(number)
                                                                     : Status::ok();
    });
  }

  Status delete_job(int64_t number) override {
    return retry([&]() -> Status {
      return exec("DELETE FROM jobs WHERE number = $1", {std::to_string(number)}, "write to")
          .status();
    });
  }

  Result<std::vector<StoredJob>> jobs(int64_t number) override {
    std::vector<StoredJob> out;
    if (empty_ || version_ < 5) return out;
    KILN_RETURN_IF_ERROR(retry([&]() -> Status {
      out.clear();
      KILN_ASSIGN_OR_RETURN(Rows rows, exec("SELECT number, document, cancel_requested FROM jobs "
                                            "WHERE $1 = 0 OR number = $1 ORDER BY number",
                                            {std::to_string(number)}, "read"));
      for (int i = 0; i < PQntuples(rows.get()); ++i) {
        out.push_back({int64_at(rows.get(), i, 0), PQgetvalue(rows.get(), i, 1),
                       int64_at(rows.get(), i, 2) != 0});
      }
      return Status::ok();
    }));
    return out;
  }

  Result<std::unique_ptr<JobClaim>> claim_job(int64_t number) override {
    KILN_ASSIGN_OR_RETURN(Connection claim, connect_to(url_, shown_));
    const std::string second = std::to_string(number);
    const char* values[] = {second.c_str()};
    Rows rows(PQexecParams(
        claim.get(),
        ("SELECT pg_try_advisory_lock(" + std::to_string(kJobClaimLock) + ", $1::integer)").c_str(),
        1, nullptr, values, nullptr, nullptr, 0));
    if (!rows || PQresultStatus(rows.get()) != PGRES_TUPLES_OK) {
      return Status(StatusCode::kUnavailable, "cannot claim job-" + second + " in tuning log " +
                                                  shown_ + ": " +
                                                  trimmed(PQerrorMessage(claim.get())));
    }
    if (std::string_view(PQgetvalue(rows.get(), 0, 0)) != "t") return std::unique_ptr<JobClaim>();
    return std::unique_ptr<JobClaim>(std::make_unique<PostgresJobClaim>(std::move(claim)));
  }

 private:
  Status export_once(const std::function<Status(const TuningRecord&)>& each, bool& sent) {
    return transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", [&]() -> Status {
      KILN_RETURN_IF_ERROR(
          exec(std::string("DECLARE export NO SCROLL CURSOR FOR SELECT ") + kRecordColumns +
                   ", w.key FROM records r JOIN workloads w ON w.id = r.workload_id JOIN "
                   "targets t ON t.id = r.target_id ORDER BY r.id",
               {}, "read")
              .status());
      while (true) {
        KILN_ASSIGN_OR_RETURN(
            Rows rows, exec("FETCH " + std::to_string(kExportBatch) + " FROM export", {}, "read"));
        const int n = PQntuples(rows.get());
        if (n == 0) break;
        for (int i = 0; i < n; ++i) {
          TuningRecord record;
          KILN_RETURN_IF_ERROR(read_record(rows.get(), i, PQgetvalue(rows.get(), i, 15), record));
          sent = true;
          KILN_RETURN_IF_ERROR(each(record));
        }
      }
      return Status::ok();
    });
  }

  Status connect() {
    KILN_ASSIGN_OR_RETURN(connection_, connect_to(url_, shown_));
    // Notices (a NOTICE that a table exists already) are not errors: kiln's log says them.
    PQsetNoticeProcessor(
        connection_.get(),
        [](void*, const char* message) { logger("db")->debug("postgresql: {}", trimmed(message)); },
        nullptr);
    KILN_RETURN_IF_ERROR(exec(std::string("LISTEN ") + kChannel, {}, "listen to").status());
    if (options_.read_only) {
      KILN_RETURN_IF_ERROR(
          exec("SET default_transaction_read_only = on", {}, "configure").status());
    }
    return Status::ok();
  }

  /// After a lost connection: connects again. Commits missed meanwhile cannot be told, so the
  /// data version moves on.
  Status reconnect() {
    logger("db")->warn("reconnecting to the tuning log {}", shown_);
    KILN_RETURN_IF_ERROR(connect());
    ++changes_;
    return Status::ok();
  }

  /// The log's schema version: 0 for a database without tables. Fails for a database that is
  /// not a kiln tuning log this build can use.
  Result<int> inspect() {
    KILN_ASSIGN_OR_RETURN(Rows tables,
                          exec("SELECT count(*), count(*) FILTER (WHERE tablename = 'meta') FROM "
                               "pg_tables WHERE schemaname = current_schema()",
                               {}, "read the schema of"));
    if (int64_at(tables.get(), 0, 0) == 0) return 0;
    if (int64_at(tables.get(), 0, 1) == 0) {
      return invalid_argument(shown_ +
                              " is not a kiln tuning log: its tables have no kiln meta "
                              "table; pass a tuning log, or an empty database to "
                              "create one");
    }
    KILN_ASSIGN_OR_RETURN(Rows meta, exec("SELECT key, value FROM meta WHERE key IN "
                                          "('application', 'schema_version')",
                                          {}, "read the meta table of"));
    std::map<std::string, std::string> values;
    for (int i = 0; i < PQntuples(meta.get()); ++i) {
      values[PQgetvalue(meta.get(), i, 0)] = PQgetvalue(meta.get(), i, 1);
    }
    if (values["application"] != kTuningLogApplication) {
      return invalid_argument(shown_ +
                              " is not a kiln tuning log: its meta table does not name "
                              "kiln");
    }
    const int version = std::atoi(values["schema_version"].c_str());
    if (version > options_.schema_version) {
      return Status(StatusCode::kFailedPrecondition,
                    "tuning log " + shown_ + " has schema version " + std::to_string(version) +
                        ", newer than version " + std::to_string(options_.schema_version) +
                        " that this kiln reads; use the kiln that wrote it, or a newer one");
    }
    if (version < 1) {
      return Status(StatusCode::kDataLoss,
                    "tuning log " + shown_ + " has kiln tables but no schema version");
    }
    return version;
  }

  /// Brings the log to options_.schema_version in one transaction, under the migration lock,
  /// with the checks repeated inside it.
  Status migrate() {
    int from = 0;
    KILN_RETURN_IF_ERROR(retry([&]() -> Status {
      return transaction("BEGIN", [&]() -> Status {
        KILN_RETURN_IF_ERROR(exec("SELECT pg_advisory_xact_lock($1::bigint)",
                                  {std::to_string(kMigrationLock)}, "lock")
                                 .status());
        KILN_ASSIGN_OR_RETURN(from, inspect());
        for (int next = from; next < options_.schema_version; ++next) {
          KILN_RETURN_IF_ERROR(exec(kPostgresMigrations[next], {}, "migrate").status());
        }
        return exec(
                   "INSERT INTO meta (key, value) VALUES ('schema_version', $1) ON CONFLICT "
                   "(key) DO UPDATE SET value = excluded.value",
                   {std::to_string(options_.schema_version)}, "migrate")
            .status();
      });
    }));
    if (from != options_.schema_version) {
      logger("db")->info("migrated tuning log url={} from_version={} to_version={}", shown_, from,
                         options_.schema_version);
    }
    return Status::ok();
  }

  /// Runs `sql` with text parameters; the rows, or the error as kiln's code.
  Result<Rows> exec(const std::string& sql, const Params& params, std::string_view what) {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
    // Without parameters, the simple protocol: it takes several statements (a migration).
    Rows rows(params.empty()
                  ? PQexec(connection_.get(), sql.c_str())
                  : PQexecParams(connection_.get(), sql.c_str(), static_cast<int>(values.size()),
                                 nullptr, values.data(), nullptr, nullptr, 0));
    const ExecStatusType status = rows ? PQresultStatus(rows.get()) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return rows;
    return error_status(rows.get(), what);
  }

  /// kiln's code for a failed statement: lost connections, serialization failures, deadlocks
  /// and lock timeouts are Unavailable (retried).
  Status error_status(const PGresult* rows, std::string_view what) {
    const char* state = rows ? PQresultErrorField(rows, PG_DIAG_SQLSTATE) : nullptr;
    const std::string code = state == nullptr ? "" : state;
    const std::string detail =
        rows ? trimmed(PQresultErrorMessage(rows)) : trimmed(PQerrorMessage(connection_.get()));
    const std::string message =
        "cannot " + std::string(what) + " tuning log " + shown_ + ": " + detail;
    if (PQstatus(connection_.get()) != CONNECTION_OK || code.starts_with("08") || code == "40001" ||
        code == "40P01" || code == "55P03" || code == "57P01") {
      return Status(StatusCode::kUnavailable, message);
    }
    if (code == "25006" || code.starts_with("42501")) {
      return Status(StatusCode::kFailedPrecondition, message);
    }
    if (code.starts_with("53")) return Status(StatusCode::kResourceExhausted, message);
    if (code.starts_with("XX")) return Status(StatusCode::kDataLoss, message);
    return internal_error(message);
  }

  /// Runs `body` between `begin` and COMMIT, rolling back when it fails.
  Status transaction(const std::string& begin, const std::function<Status()>& body) {
    KILN_RETURN_IF_ERROR(exec(begin, {}, "begin a transaction in").status());
    Status status = body();
    if (status.is_ok()) status = exec("COMMIT", {}, "commit to").status();
    if (!status.is_ok() && PQtransactionStatus(connection_.get()) != PQTRANS_IDLE) {
      Rows rollback(PQexec(connection_.get(), "ROLLBACK"));
    }
    return status;
  }

  /// Runs `body` again while it fails with Unavailable (a conflict, a lost connection: the
  /// connection is reset), with a growing pause, until options_.lock_timeout_ms have passed.
  Status retry(const std::function<Status()>& body) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(options_.lock_timeout_ms);
    std::minstd_rand jitter(static_cast<unsigned>(Clock::now().time_since_epoch().count()));
    int pause_us = 1000;
    while (true) {
      if (PQstatus(connection_.get()) != CONNECTION_OK) {
        Status reconnected = reconnect();
        if (!reconnected.is_ok() && Clock::now() >= deadline) return reconnected;
      }
      Status status =
          PQstatus(connection_.get()) == CONNECTION_OK
              ? body()
              : Status(StatusCode::kUnavailable, "cannot reach the tuning log " + shown_);
      if (status.code() != StatusCode::kUnavailable || Clock::now() >= deadline) return status;
      logger("db")->debug("tuning log busy, retrying url={} pause_us={}: {}", shown_, pause_us,
                          status.message());
      std::this_thread::sleep_for(std::chrono::microseconds(pause_us + jitter() % pause_us));
      pause_us = std::min(pause_us * 2, 200000);
    }
  }

  static Params key_params(const std::string& workload, const TargetKey& key) {
    return {workload, key.target, std::to_string(key.emulated ? 1 : 0), key.model,
            std::to_string(key.threads)};
  }

  Result<std::vector<TuningRecord>> read_records(const std::string& sql, const Params& params,
                                                 const std::string& workload) {
    KILN_ASSIGN_OR_RETURN(Rows rows, exec(sql, params, "read"));
    std::vector<TuningRecord> out;
    for (int i = 0; i < PQntuples(rows.get()); ++i) {
      TuningRecord record;
      KILN_RETURN_IF_ERROR(read_record(rows.get(), i, workload, record));
      out.push_back(std::move(record));
    }
    return out;
  }

  /// Reads row `i` (kRecordColumns) into `record`.
  Status read_record(const PGresult* rows, int i, const std::string& workload,
                     TuningRecord& record) {
    std::optional<std::vector<double>> costs = costs_from_json(PQgetvalue(rows, i, 2));
    if (!costs) {
      return Status(StatusCode::kDataLoss, "tuning log " + shown_ + " holds record " +
                                               PQgetvalue(rows, i, 10) + " with malformed costs");
    }
    KILN_ASSIGN_OR_RETURN(record.error, measure_error_of(int64_at(rows, i, 3), shown_));
    record.workload = workload;
    record.config_index = int64_at(rows, i, 0);
    record.config_knobs = PQgetvalue(rows, i, 1);
    record.costs = std::move(*costs);
    record.error_message = PQgetvalue(rows, i, 4);
    record.agent = PQgetvalue(rows, i, 5);
    record.device = PQgetvalue(rows, i, 6);
    record.measure_options = PQgetvalue(rows, i, 7);
    record.measured_at_ms = int64_at(rows, i, 8);
    record.kiln_version = PQgetvalue(rows, i, 9);
    record.target = TargetKey{PQgetvalue(rows, i, 13), PQgetvalue(rows, i, 12),
                              int64_at(rows, i, 14) != 0, int(int64_at(rows, i, 11))};
    return Status::ok();
  }

  static int64_t int64_at(const PGresult* rows, int row, int column) {
    return std::strtoll(PQgetvalue(rows, row, column), nullptr, 10);
  }

  /// A double as text that reads back to the same value.
  static std::string real_text(double value) {
    char buffer[32];
    std::snprintf(buffer, sizeof(buffer), "%.17g", value);
    return buffer;
  }

  const std::string url_;
  const std::string shown_;  ///< url_ without its password
  const TuningLogOptions options_;
  Connection connection_;
  int version_ = 0;
  bool empty_ = false;   ///< a read-only open of a database without tables
  int64_t changes_ = 0;  ///< notifications from other connections, and reconnects
};

}  // namespace

bool is_postgres_url(std::string_view location) {
  return location.starts_with("postgresql://") || location.starts_with("postgres://");
}

std::string redact_url(std::string_view url) {
  // scheme://user:password@host...: the password is what lies between the first ':' after
  // the scheme and the '@' that ends the user information.
  const size_t start = url.find("://");
  if (start == std::string_view::npos) return std::string(url);
  const size_t at = url.find('@', start + 3);
  const size_t slash = url.find('/', start + 3);
  if (at == std::string_view::npos || (slash != std::string_view::npos && slash < at)) {
    return std::string(url);
  }
  const size_t colon = url.find(':', start + 3);
  if (colon == std::string_view::npos || colon > at) return std::string(url);
  return std::string(url.substr(0, colon + 1)) + "***" + std::string(url.substr(at));
}

Result<std::unique_ptr<TuningLogBackend>> open_postgres_log(const std::string& url,
                                                            const TuningLogOptions& options) {
  auto backend = std::make_unique<PostgresBackend>(url, options);
  KILN_RETURN_IF_ERROR(backend->open());
  return std::unique_ptr<TuningLogBackend>(std::move(backend));
}

}  // namespace kiln::core::db_internal
