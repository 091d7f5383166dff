/// \file
/// The `--db PATH` flag that `kiln run`, `kiln best` and `kiln db` share, and how they open the
/// tuning log it names.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "compiler_core/db/apply_best.h"
#include "compiler_core/db/tuning_log.h"
#include "compiler_core/schedule/config_space.h"
#include "compiler_core/support/status.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"
#include "tuner/cli/flags.h"

namespace kiln::tuner {

/// Declares `--db PATH` on `flags`; `use` says what the command does with the log.
void add_db_flag(FlagSet& flags, const std::string& use);

/// The path `--db` names, else the default (core::default_tuning_log_path()). InvalidArgument
/// for an empty --db; NotFound when there is no default.
Result<std::filesystem::path> db_path(const FlagSet& flags);

/// Opens the tuning log `--db` names for reading. NotFound when the file does not exist (it is
/// never created), and the errors of core::TuningLog::open.
Result<core::TuningLog> open_db_for_reading(const FlagSet& flags);

/// The config apply-best picks for `workload` on the host `target` from the tuning log `--db`
/// names (else the default location), among the records measured with the command's
/// --threads. A log that does not exist is read as an empty one (the
/// default config), never created; errors are those of opening the log and of the target key.
Result<core::BestConfig> best_stored_config(const FlagSet& flags, const core::Workload& workload,
                                            const core::Target& target,
                                            const core::ConfigSpace& space);

/// `unix_ms` (milliseconds since the Unix epoch) in RFC 3339, UTC: 2024-06-01T12:00:00.000Z.
std::string format_unix_ms(int64_t unix_ms);

}  // namespace kiln::tuner
