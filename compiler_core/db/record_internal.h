/// \file
/// Pieces of record.cc that the tuning log reuses: it canonicalises workload and target strings
/// through its own caches, and checks the rest of a record here.
#pragma once

#include <string>
#include <string_view>

#include "compiler_core/db/record.h"
#include "compiler_core/support/status.h"

namespace kiln::core::db_internal {

/// The canonical form of a workload string (Workload::canonical()); InvalidArgument when it
/// does not parse.
Result<std::string> canonical_workload(std::string_view workload);

/// The canonical form of a target string (Target::str()); InvalidArgument when it does not parse.
Result<std::string> canonical_target(std::string_view target);

/// Checks everything of `record` but its workload and target strings: knobs and measure options
/// are JSON objects, the config index is not negative, and costs follow TuningRecord's rules.
Status check_record_values(const TuningRecord& record);

/// The record's thread count: target.threads, or the measure options' positive "threads"
/// when that is 0. InvalidArgument when the two disagree or the count is out of range.
Result<int> record_threads(const TuningRecord& record);

/// Milliseconds since the Unix epoch, now.
int64_t now_unix_ms();

}  // namespace kiln::core::db_internal
