// Fuzz target: tuning-log import lines (`kiln db import`: JSON lines as `kiln db export` writes
// them) through TuningLog::import_jsonl into a real tuning log in a temporary folder, and each
// line through record_from_json_line. An import appends every line or, refused with a user
// error, nothing; a parsed record's line (record_to_json_line) parses back to the same record.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "compiler_core/db/record.h"
#include "compiler_core/db/tuning_log.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/temp_folder.h"

namespace {

using namespace kiln;

/// Records the log may hold before the target starts a new one, so that the log (and the time
/// an import takes) stays bounded over millions of runs.
constexpr int64_t kMaxRecords = 20000;

int64_t record_count(const core::TuningLog& log) {
  Result<core::TuningLogStats> stats = log.stats();
  fuzz::check(stats.is_ok(), "stats() of a log the target writes", stats.status().to_string());
  return stats->records;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = (fuzz::quiet_logs(), true);
  (void)quiet;
  static fuzz::TempFolder folder("kiln-fuzz-import");
  static std::optional<core::TuningLog> log;
  if (!log || record_count(*log) > kMaxRecords) {
    log.reset();
    const std::filesystem::path path = folder.path() / "tuning.db";
    std::error_code ignored;
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::filesystem::remove(path.string() + suffix, ignored);
    }
    Result<core::TuningLog> opened = core::TuningLog::open(path);
    fuzz::check(opened.is_ok(), "a new tuning log opens", opened.status().to_string());
    log.emplace(std::move(opened).value());
  }

  const std::string text(fuzz::as_text(data, size));
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    Result<core::TuningRecord> record = core::record_from_json_line(line);
    if (!record.is_ok()) continue;
    const std::string written = core::record_to_json_line(*record);
    Result<core::TuningRecord> again = core::record_from_json_line(written);
    fuzz::check(again.is_ok() && *again == *record,
                "record_from_json_line(record_to_json_line(r)) == r", written);
  }

  const int64_t before = record_count(*log);
  std::istringstream in(text);
  Result<int64_t> imported = log->import_jsonl(in);
  const int64_t after = record_count(*log);
  if (!imported.is_ok()) {
    fuzz::check_refusal(imported.status(), "import_jsonl refuses with a user error");
    fuzz::check(after == before, "a refused import writes nothing");
    return 0;
  }
  fuzz::check(after == before + *imported, "an import appends every record it counts");
  return 0;
}
