/// \file
/// Apply-best: build a workload with the fastest config the tuning log holds for this hardware,
/// or with the schedule template's default config when it holds none, and say which was used.
#pragma once

#include <memory>
#include <optional>

#include "compiler_core/build.h"
#include "compiler_core/db/record.h"
#include "compiler_core/db/tuning_log.h"
#include "compiler_core/schedule/config_space.h"
#include "compiler_core/support/status.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"

namespace kiln::core {

/// Where the config that apply-best built came from.
enum class ConfigSource {
  kRecord,   ///< the fastest valid record of the tuning log
  kDefault,  ///< the schedule template's default: the log had no usable record
};

/// "record" or "default", as `kiln run --json` writes it.
const char* config_source_name(ConfigSource source);

/// The config apply-best chose and why.
struct BestConfig {
  Config config;
  ConfigSource source = ConfigSource::kDefault;
  /// The record whose config was chosen (source kRecord only).
  std::optional<TuningRecord> record;
};

/// Chooses the config to build `workload` with on the hardware and thread count `key` names
/// (TuningLog::best's matching): the config of the
/// fastest valid record (TuningLog::best) that is still a point of `space`, else
/// space.default_config(). `log` may be null (no tuning log): then the default. Records whose
/// config is no longer in the space (a template changed) are skipped with a warning. Errors are
/// those of reading the log.
Result<BestConfig> select_best_config(const TuningLog* log, const Workload& workload,
                                      const TargetKey& key, const ConfigSpace& space);

/// A kernel built by apply_best, with the choice behind it.
struct AppliedBest {
  BestConfig choice;
  std::unique_ptr<Kernel> kernel;
};

/// Builds `workload` for the host `target` with the config select_best_config chooses from `log`
/// (which may be null) among the records measured with `threads` threads (0: any). Errors: those of
/// resolving the target, of the log, and of build_kernel (InvalidArgument for a target that is not
/// this host).
Result<AppliedBest> apply_best(const TuningLog* log, const Workload& workload, const Target& target,
                               int threads);

}  // namespace kiln::core
