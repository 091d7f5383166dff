#include "compiler_core/db/tuning_log.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <istream>
#include <ostream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <nlohmann/json.hpp>

#include "compiler_core/db/record_internal.h"
#include "compiler_core/db/tuning_log_backend_internal.h"
#include "compiler_core/support/log.h"

#ifndef KILN_VERSION
#define KILN_VERSION "unknown"
#endif

namespace kiln::core {
namespace {

namespace fs = std::filesystem;

}  // namespace

namespace db_internal {

std::string op_of(const std::string& workload_key) {
  return workload_key.substr(0, workload_key.find(':'));
}

std::optional<std::vector<double>> costs_from_json(std::string_view text) {
  nlohmann::json costs = nlohmann::json::parse(text, nullptr, false);
  if (costs.is_discarded() || !costs.is_array() ||
      !std::all_of(costs.begin(), costs.end(),
                   [](const nlohmann::json& c) { return c.is_number(); })) {
    return std::nullopt;
  }
  return costs.get<std::vector<double>>();
}

Result<MeasureError> measure_error_of(int64_t code, const std::string& where) {
  if (code < 0 || code >= kNumMeasureErrors) {
    return Status(
        StatusCode::kDataLoss,
        "tuning log " + where + " holds records with unknown error code " + std::to_string(code));
  }
  return static_cast<MeasureError>(code);
}

}  // namespace db_internal

struct TuningLog::Impl {
  fs::path path;  ///< the file, or the URL without its password
  bool read_only = false;
  std::unique_ptr<db_internal::TuningLogBackend> backend;
  // Spellings already canonicalised (parsing a host target string is not free).
  std::unordered_map<std::string, std::string> canonical_workloads;
  std::unordered_map<std::string, std::string> canonical_targets;

  Result<std::string> canonical_workload(const std::string& text) {
    if (auto it = canonical_workloads.find(text); it != canonical_workloads.end()) {
      return it->second;
    }
    KILN_ASSIGN_OR_RETURN(std::string canonical, db_internal::canonical_workload(text));
    canonical_workloads.emplace(text, canonical);
    return canonical;
  }

  Result<std::string> canonical_target(const std::string& text) {
    if (auto it = canonical_targets.find(text); it != canonical_targets.end()) return it->second;
    KILN_ASSIGN_OR_RETURN(std::string canonical, db_internal::canonical_target(text));
    canonical_targets.emplace(text, canonical);
    return canonical;
  }

  /// Canonical key of a caller's TargetKey.
  Result<TargetKey> canonical_key(const TargetKey& key) {
    KILN_ASSIGN_OR_RETURN(std::string target, canonical_target(key.target));
    return TargetKey{std::move(target), key.model, key.emulated, key.threads};
  }
};

TuningLog::TuningLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TuningLog::TuningLog(TuningLog&&) noexcept = default;
TuningLog& TuningLog::operator=(TuningLog&&) noexcept = default;
TuningLog::~TuningLog() = default;

const std::filesystem::path& TuningLog::path() const { return impl_->path; }
int TuningLog::schema_version() const { return impl_->backend->schema_version(); }

Result<TuningLog> TuningLog::open(const std::filesystem::path& path,
                                  const TuningLogOptions& options) {
  if (options.schema_version < 1 || options.schema_version > kTuningLogSchemaVersion) {
    return invalid_argument("schema version " + std::to_string(options.schema_version) +
                            " is not one this kiln knows (1 to " +
                            std::to_string(kTuningLogSchemaVersion) + ")");
  }
  const std::string location = path.string();
  auto impl = std::make_unique<Impl>();
  impl->read_only = options.read_only;
  if (db_internal::is_postgres_url(location)) {
    impl->path = db_internal::redact_url(location);
    KILN_ASSIGN_OR_RETURN(impl->backend, db_internal::open_postgres_log(location, options));
  } else {
    KILN_RETURN_IF_ERROR(check_tuning_log_location(location));
    impl->path = path;
    KILN_ASSIGN_OR_RETURN(impl->backend, db_internal::open_sqlite_log(path, options));
  }
  return TuningLog(std::move(impl));
}

Status TuningLog::append(std::span<const TuningRecord> records) {
  Impl& impl = *impl_;
  if (impl.read_only) {
    return Status(StatusCode::kFailedPrecondition,
                  "tuning log '" + impl.path.string() + "' was opened read-only");
  }
  if (records.empty()) return Status::ok();

  std::vector<TuningRecord> canonical;
  canonical.reserve(records.size());
  const int64_t now = db_internal::now_unix_ms();
  for (size_t i = 0; i < records.size(); ++i) {
    auto fail = [&](const Status& status) {
      return invalid_argument("record " + std::to_string(i) + ": " + status.message());
    };
    TuningRecord record = records[i];
    Result<std::string> workload = impl.canonical_workload(record.workload);
    if (!workload) return fail(workload.status());
    Result<std::string> target = impl.canonical_target(record.target.target);
    if (!target) return fail(target.status());
    record.workload = std::move(*workload);
    record.target.target = std::move(*target);
    if (Status values = db_internal::check_record_values(record); !values.is_ok()) {
      return fail(values);
    }
    Result<int> threads = db_internal::record_threads(record);
    if (!threads) return fail(threads.status());
    record.target.threads = *threads;
    if (record.measured_at_ms == 0) record.measured_at_ms = now;
    if (record.kiln_version.empty()) record.kiln_version = KILN_VERSION;
    canonical.push_back(std::move(record));
  }

  return impl.backend->append(canonical);
}

Result<std::vector<TuningRecord>> TuningLog::best(const Workload& workload, const TargetKey& target,
                                                  int k) const {
  if (k <= 0) return std::vector<TuningRecord>();
  KILN_ASSIGN_OR_RETURN(TargetKey key, impl_->canonical_key(target));
  return impl_->backend->best(workload.canonical(), key, k);
}

Result<std::vector<TuningRecord>> TuningLog::history(const Workload& workload,
                                                     const TargetKey& target, int64_t limit) const {
  KILN_ASSIGN_OR_RETURN(TargetKey key, impl_->canonical_key(target));
  return impl_->backend->history(workload.canonical(), key, limit);
}

Result<TuningLogStats> TuningLog::stats() const { return impl_->backend->stats(); }

Result<std::vector<WorkloadSummary>> TuningLog::workloads(std::string_view op) const {
  return impl_->backend->workloads(op);
}

Result<int64_t> TuningLog::data_version() const { return impl_->backend->data_version(); }

Result<int64_t> TuningLog::export_jsonl(std::ostream& out) const {
  int64_t written = 0;
  KILN_RETURN_IF_ERROR(impl_->backend->for_each_record([&](const TuningRecord& record) -> Status {
    out << record_to_json_line(record) << '\n';
    if (!out) {
      return Status(StatusCode::kFailedPrecondition,
                    "cannot write the export of tuning log '" + impl_->path.string() + "'");
    }
    ++written;
    return Status::ok();
  }));
  out.flush();
  return written;
}

Result<int64_t> TuningLog::import_jsonl(std::istream& in) {
  std::vector<TuningRecord> records;
  std::string line;
  int64_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Result<TuningRecord> record = record_from_json_line(line);
    if (!record) {
      return invalid_argument("line " + std::to_string(line_number) + ": " +
                              record.status().message() + "; nothing was imported");
    }
    records.push_back(std::move(*record));
  }
  if (in.bad()) {
    return Status(StatusCode::kFailedPrecondition,
                  "cannot read the records to import after line " + std::to_string(line_number));
  }
  KILN_RETURN_IF_ERROR(append(records));
  logger("db")->info("imported records={} path={}", records.size(), impl_->path.string());
  return static_cast<int64_t>(records.size());
}

Status TuningLog::check_writable() const {
  if (!impl_->read_only) return Status::ok();
  return Status(StatusCode::kFailedPrecondition,
                "tuning log '" + impl_->path.string() + "' was opened read-only");
}

Result<int64_t> TuningLog::add_job(std::string_view document) {
  KILN_RETURN_IF_ERROR(check_writable());
  return impl_->backend->add_job(document);
}

Status TuningLog::put_job(int64_t number, std::string_view document) {
  KILN_RETURN_IF_ERROR(check_writable());
  if (number < 1) return invalid_argument("job numbers start at 1");
  return impl_->backend->put_job(number, document);
}

Result<bool> TuningLog::update_job(int64_t number, std::string_view document, bool clear_cancel) {
  KILN_RETURN_IF_ERROR(check_writable());
  return impl_->backend->update_job(number, document, clear_cancel);
}

Status TuningLog::request_job_cancel(int64_t number) {
  KILN_RETURN_IF_ERROR(check_writable());
  return impl_->backend->request_job_cancel(number);
}

Status TuningLog::delete_job(int64_t number) {
  KILN_RETURN_IF_ERROR(check_writable());
  return impl_->backend->delete_job(number);
}

Result<std::vector<StoredJob>> TuningLog::jobs() const { return impl_->backend->jobs(0); }

Result<std::optional<StoredJob>> TuningLog::job(int64_t number) const {
  if (number < 1) return std::optional<StoredJob>();
  KILN_ASSIGN_OR_RETURN(std::vector<StoredJob> found, impl_->backend->jobs(number));
  if (found.empty()) return std::optional<StoredJob>();
  return std::optional<StoredJob>(std::move(found.front()));
}

Result<std::unique_ptr<JobClaim>> TuningLog::claim_job(int64_t number) {
  KILN_RETURN_IF_ERROR(check_writable());
  if (number < 1) return invalid_argument("job numbers start at 1");
  return impl_->backend->claim_job(number);
}

Status check_tuning_log_location(std::string_view location) {
  // RFC 3986: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then "://".
  const size_t colon = location.find("://");
  if (colon == std::string_view::npos || colon == 0 || !std::isalpha(uint8_t(location[0]))) {
    return Status::ok();
  }
  for (char c : location.substr(0, colon)) {
    if (!std::isalnum(uint8_t(c)) && c != '+' && c != '-' && c != '.') return Status::ok();
  }
  if (db_internal::is_postgres_url(location)) return Status::ok();
  return invalid_argument("tuning log '" + db_internal::redact_url(location) + "' is a " +
                          std::string(location.substr(0, colon)) +
                          " URL; kiln opens SQLite files and postgresql:// URLs");
}

bool is_tuning_log_url(std::string_view location) { return db_internal::is_postgres_url(location); }

Result<std::filesystem::path> default_tuning_log_path() {
  auto env = [](const char* name) -> std::string {
    const char* value = std::getenv(name);
    return value == nullptr ? std::string() : std::string(value);
  };
  if (std::string db = env("KILN_DB"); !db.empty()) return fs::path(db);
  // The XDG spec says relative paths in XDG_DATA_HOME are invalid and must be ignored.
  if (std::string data = env("XDG_DATA_HOME"); !data.empty() && data.front() == '/') {
    return fs::path(data) / "kiln" / "tuning.db";
  }
  if (std::string home = env("HOME"); !home.empty()) {
    return fs::path(home) / ".local" / "share" / "kiln" / "tuning.db";
  }
  return Status(StatusCode::kNotFound,
                "no default tuning log: KILN_DB, XDG_DATA_HOME and HOME are all unset; pass --db "
                "PATH");
}

}  // namespace kiln::core
