#include "compiler_core/db/apply_best.h"

#include <string>
#include <vector>

#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/support/log.h"

namespace kiln::core {
namespace {

// How many of the fastest records to try before falling back: more than one, so that a record
// made stale by a template change does not hide the next fastest one.
constexpr int kCandidates = 8;

}  // namespace

const char* config_source_name(ConfigSource source) {
  return source == ConfigSource::kRecord ? "record" : "default";
}

Result<BestConfig> select_best_config(const TuningLog* log, const Workload& workload,
                                      const TargetKey& key, const ConfigSpace& space) {
  BestConfig choice{.config = space.default_config(), .source = ConfigSource::kDefault};
  if (log == nullptr) return choice;
  KILN_ASSIGN_OR_RETURN(std::vector<TuningRecord> best, log->best(workload, key, kCandidates));
  for (TuningRecord& record : best) {
    Result<Config> config = space.parse(record.config_json());
    if (!config) {
      logger("db")->warn(
          "skipping a stored config that is not in the space workload={} "
          "config={} reason={}",
          record.workload, record.config_json(), config.status().message());
      continue;
    }
    choice.config = std::move(*config);
    choice.source = ConfigSource::kRecord;
    choice.record = std::move(record);
    return choice;
  }
  return choice;
}

Result<AppliedBest> apply_best(const TuningLog* log, const Workload& workload, const Target& target,
                               int threads) {
  KILN_ASSIGN_OR_RETURN(Target resolved, resolve_host_target(target));
  KILN_ASSIGN_OR_RETURN(TargetKey key, make_target_key(resolved, threads));
  KILN_ASSIGN_OR_RETURN(ConfigSpace space, config_space(workload, resolved));
  AppliedBest applied;
  KILN_ASSIGN_OR_RETURN(applied.choice, select_best_config(log, workload, key, space));
  KILN_ASSIGN_OR_RETURN(applied.kernel, build_kernel(workload, resolved, applied.choice.config));
  logger("db")->debug("apply-best workload={} target={} source={} config={}", workload.canonical(),
                      key.str(), config_source_name(applied.choice.source),
                      applied.choice.config.index);
  return applied;
}

}  // namespace kiln::core
