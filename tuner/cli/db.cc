// `kiln db export|import|stats`: move a tuning log's records in and out as JSON lines, and count
// what it holds.

#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/fmt/fmt.h>
#include <nlohmann/json.hpp>

#include "compiler_core/db/record.h"
#include "compiler_core/db/tuning_log.h"
#include "compiler_core/support/file.h"
#include "tuner/cli/commands.h"
#include "tuner/cli/flags.h"
#include "tuner/cli/tuning_log_flag.h"

namespace kiln::tuner {
namespace {

constexpr std::string_view kUsage =
    "usage: kiln db <action> [flags]\n\n"
    "Works on a tuning log (SQLite) as a whole.\n\n"
    "actions:\n"
    "  export  write every record to stdout or --output FILE, one JSON object a line\n"
    "  import  append records from --input FILE or stdin (JSON lines, as export writes them)\n"
    "  stats   count the records, workloads and targets of the log\n\n"
    "Run 'kiln db <action> --help' for an action's flags.\n";

int export_action(const std::vector<std::string>& args) {
  FlagSet flags("db export",
                "Writes every record of the tuning log, oldest first, one JSON object a line: "
                "workload, target, model, features, config {index, knobs}, costs, error, "
                "error_message, agent, device, measure_options, measured_at_ms, kiln_version.",
                "Exit codes: 0 done, 1 a damaged tuning log or a failed write, 2 bad flags or a "
                "--db file that does not exist or is not a tuning log.");
  add_db_flag(flags, "the tuning log to read");
  flags.add_string("output", "FILE", "the file to write (default: stdout)");
  if (auto exit_code = parse_flags_or_exit(flags, args)) return *exit_code;

  Result<core::TuningLog> log = open_db_for_reading(flags);
  if (!log) return report_error(log.status());
  Result<int64_t> written = 0;
  if (flags.is_set("output")) {
    const std::string& output = flags.get_string("output");
    // Replaced whole or not at all: a failed export leaves an existing file as it was.
    Status saved = write_file_atomically(output, [&](std::ostream& file) {
      written = log->export_jsonl(file);
      return written.is_ok();
    });
    if (!saved.is_ok() && written.is_ok()) {
      return report_error(
          saved.code() == StatusCode::kFailedPrecondition
              ? invalid_argument("cannot write --output file '" + output + "': " + saved.message())
              : saved);
    }
  } else {
    written = log->export_jsonl(std::cout);
  }
  if (!written) return report_error(written.status());
  std::cerr << fmt::format("exported {} records from {}\n", *written, log->path().string());
  return 0;
}

int import_action(const std::vector<std::string>& args) {
  FlagSet flags("db import",
                "Appends records to the tuning log (created when missing) from JSON lines as "
                "'kiln db export' writes them, all in one transaction: a line that does not parse "
                "stops the import, names its line number, and nothing is imported.",
                "With --json: one object {imported, db}.\nExit codes: 0 done, 1 a damaged tuning "
                "log, 2 bad flags, a malformed line, or a --db file that is not a tuning log.");
  add_db_flag(flags, "the tuning log to append to");
  flags.add_string("input", "FILE", "the file to read, - for stdin (default: stdin)");
  flags.add_bool("json", "print one JSON object on stdout");
  if (auto exit_code = parse_flags_or_exit(flags, args)) return *exit_code;

  Result<std::filesystem::path> path = db_path(flags);
  if (!path) return report_error(path.status());
  const std::string input = flags.is_set("input") ? flags.get_string("input") : "-";
  std::ifstream file;
  if (input != "-") {
    file.open(input, std::ios::binary);
    if (!file) {
      return report_error(
          Status(StatusCode::kNotFound, "cannot read --input file '" + input + "'"));
    }
  }
  Result<core::TuningLog> log = core::TuningLog::open(*path);
  if (!log) return report_error(log.status());
  Result<int64_t> imported = log->import_jsonl(input == "-" ? std::cin : file);
  if (!imported) return report_error(imported.status());
  if (flags.get_bool("json")) {
    nlohmann::ordered_json object = {{"imported", *imported}, {"db", path->string()}};
    std::cout << object.dump() << "\n";
  } else {
    std::cout << fmt::format("imported {} records into {}\n", *imported, path->string());
  }
  return 0;
}

int stats_action(const std::vector<std::string>& args) {
  FlagSet flags("db stats",
                "Counts the records of the tuning log by outcome, and its workloads "
                "and targets.",
                "With --json: one object {db, schema_version, records, valid, workloads, "
                "targets, by_error {OK, INVALID_CONFIG, ...}, first_measured_at, "
                "last_measured_at}.\nExit codes: 0 done, 1 a damaged tuning log, 2 bad flags or "
                "a --db file that does not exist or is not a tuning log.");
  add_db_flag(flags, "the tuning log to read");
  flags.add_bool("json", "print one JSON object on stdout");
  if (auto exit_code = parse_flags_or_exit(flags, args)) return *exit_code;

  Result<core::TuningLog> log = open_db_for_reading(flags);
  if (!log) return report_error(log.status());
  Result<core::TuningLogStats> stats = log->stats();
  if (!stats) return report_error(stats.status());
  auto when = [](int64_t unix_ms) {
    return unix_ms == 0 ? std::string() : format_unix_ms(unix_ms);
  };
  const int64_t valid = stats->by_error[static_cast<size_t>(core::MeasureError::kOk)];
  if (flags.get_bool("json")) {
    nlohmann::ordered_json by_error = nlohmann::ordered_json::object();
    for (int i = 0; i < core::kNumMeasureErrors; ++i) {
      by_error[core::measure_error_name(static_cast<core::MeasureError>(i))] =
          stats->by_error[static_cast<size_t>(i)];
    }
    nlohmann::ordered_json object = {
        {"db", log->path().string()},
        {"schema_version", stats->schema_version},
        {"records", stats->records},
        {"valid", valid},
        {"workloads", stats->workloads},
        {"targets", stats->targets},
        {"by_error", by_error},
        {"first_measured_at", when(stats->first_measured_at_ms)},
        {"last_measured_at", when(stats->last_measured_at_ms)},
    };
    std::cout << object.dump() << "\n";
    return 0;
  }
  std::cout << fmt::format("{}: schema version {}\n", log->path().string(), stats->schema_version);
  std::cout << fmt::format("  records    {} ({} valid)\n", stats->records, valid);
  std::cout << fmt::format("  workloads  {}\n  targets    {}\n", stats->workloads, stats->targets);
  for (int i = 0; i < core::kNumMeasureErrors; ++i) {
    const int64_t count = stats->by_error[static_cast<size_t>(i)];
    if (count == 0) continue;
    std::cout << fmt::format("  {:<15}{}\n",
                             core::measure_error_name(static_cast<core::MeasureError>(i)), count);
  }
  if (stats->records > 0) {
    std::cout << fmt::format("  measured   {} to {}\n", when(stats->first_measured_at_ms),
                             when(stats->last_measured_at_ms));
  }
  return 0;
}

}  // namespace

int db_command(const std::vector<std::string>& args) {
  return run_action("db", kUsage,
                    {{"export", export_action}, {"import", import_action}, {"stats", stats_action}},
                    args);
}

}  // namespace kiln::tuner
