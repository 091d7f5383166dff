#include "tuner/cli/tuning_log_flag.h"

#include <ctime>
#include <string>

#include <spdlog/fmt/fmt.h>

#include "compiler_core/support/log.h"

namespace kiln::tuner {

void add_db_flag(FlagSet& flags, const std::string& use) {
  // The default is spelled out in the help instead of resolved: it depends on the environment.
  flags.add_string("db", "PATH",
                   use +
                       ": a SQLite file, or a PostgreSQL URL (postgresql://USER@HOST:PORT/DB) "
                       "(default: $KILN_DB, else $XDG_DATA_HOME/kiln/tuning.db, else "
                       "~/.local/share/kiln/tuning.db)");
}

Result<std::filesystem::path> db_path(const FlagSet& flags) {
  if (!flags.is_set("db")) return core::default_tuning_log_path();
  const std::string& path = flags.get_string("db");
  if (path.empty()) return invalid_argument("--db needs a file path, got an empty string");
  KILN_RETURN_IF_ERROR(core::check_tuning_log_location(path));
  return std::filesystem::path(path);
}

Result<core::TuningLog> open_db_for_reading(const FlagSet& flags) {
  KILN_ASSIGN_OR_RETURN(std::filesystem::path path, db_path(flags));
  return core::TuningLog::open(path, {.read_only = true});
}

std::string format_unix_ms(int64_t unix_ms) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &utc);
  return fmt::format("{}.{:03}Z", text, unix_ms % 1000);
}

Result<core::BestConfig> best_stored_config(const FlagSet& flags, const core::Workload& workload,
                                            const core::Target& target,
                                            const core::ConfigSpace& space) {
  Result<std::filesystem::path> path = db_path(flags);
  if (!path && flags.is_set("db")) return path.status();
  std::error_code error;
  if (!path ||
      (!core::is_tuning_log_url(path->string()) && !std::filesystem::exists(*path, error))) {
    logger("tuner")->debug("no tuning log ({}); using the default config",
                           path ? "none at " + path->string() : path.status().message());
    return core::select_best_config(nullptr, workload, core::TargetKey{}, space);
  }
  KILN_ASSIGN_OR_RETURN(core::TuningLog log, core::TuningLog::open(*path, {.read_only = true}));
  // The config that was fastest at the thread count this command runs with.
  KILN_ASSIGN_OR_RETURN(core::TargetKey key,
                        core::make_target_key(target, int(flags.get_int("threads"))));
  return core::select_best_config(&log, workload, key, space);
}

}  // namespace kiln::tuner
