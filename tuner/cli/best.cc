// `kiln best`: the fastest valid records the tuning log holds for a workload on a target.

#include <iostream>
#include <string>
#include <vector>

#include <spdlog/fmt/fmt.h>
#include <nlohmann/json.hpp>

#include "compiler_core/db/record.h"
#include "compiler_core/db/tuning_log.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"
#include "tuner/cli/commands.h"
#include "tuner/cli/flags.h"
#include "tuner/cli/tuning_log_flag.h"

namespace kiln::tuner {
namespace {

constexpr int64_t kMaxTop = 1000;

FlagSet make_flags() {
  FlagSet flags("best",
                "Lists the fastest valid records (error OK, by median time) that the tuning log "
                "holds for a workload on a target, one per config. Records answer only for the "
                "hardware they were measured on: for this machine (llvm) its CPU model and "
                "features must match.",
                "With --json: one object {workload, target, model, records: [{config, time_s, "
                "gflops, agent, device, measured_at}]}, measured_at in RFC 3339 (UTC).\nExit "
                "codes: 0 (also when there is no record), 1 a damaged tuning log, 2 bad flags, "
                "workload or target, or a --db file that does not exist or is not a tuning log.");
  flags.add_required_string("workload", "W", "the workload, e.g. matmul:M=1024,N=1024,K=1024");
  flags.add_required_string("target", "T",
                            "the target: llvm (this machine), llvm -mtriple=... -mcpu=..., or "
                            "cuda -arch=sm_NN");
  flags.add_int("top", "K", "how many records to list", 1, 1, kMaxTop);
  add_db_flag(flags, "the tuning log to read");
  flags.add_bool("json", "print one JSON object on stdout instead of a table");
  return flags;
}

}  // namespace

int best_command(const std::vector<std::string>& args) {
  FlagSet flags = make_flags();
  if (auto exit_code = parse_flags_or_exit(flags, args)) return *exit_code;

  Result<core::Workload> workload = core::parse_workload(flags.get_string("workload"));
  if (!workload) return report_error(workload.status());
  Result<core::Target> target = core::parse_target(flags.get_string("target"));
  if (!target) return report_error(target.status());
  Result<core::TargetKey> key = core::make_target_key(*target);
  if (!key) return report_error(key.status());
  Result<core::TuningLog> log = open_db_for_reading(flags);
  if (!log) return report_error(log.status());
  const int top = static_cast<int>(flags.get_int("top"));
  Result<std::vector<core::TuningRecord>> best = log->best(*workload, *key, top);
  if (!best) return report_error(best.status());

  const double flops = workload->flops();
  auto gflops = [&](double seconds) { return seconds > 0 ? flops / seconds / 1e9 : 0.0; };
  if (flags.get_bool("json")) {
    nlohmann::ordered_json records = nlohmann::ordered_json::array();
    for (const core::TuningRecord& record : *best) {
      const double time_s = record.median_cost();
      records.push_back({
          {"config", nlohmann::ordered_json::parse(record.config_json())},
          {"time_s", time_s},
          {"gflops", gflops(time_s)},
          {"agent", record.agent},
          {"device", record.device},
          {"measured_at", format_unix_ms(record.measured_at_ms)},
      });
    }
    nlohmann::ordered_json object = {
        {"workload", workload->canonical()},
        {"target", target->str()},
        {"model", key->model},
        {"records", records},
    };
    std::cout << object.dump() << "\n";
    return 0;
  }
  if (best->empty()) {
    std::cout << fmt::format("no valid records for {} on {} in {}\n", workload->canonical(),
                             key->str(), log->path().string());
    return 0;
  }
  std::cout << fmt::format("{} on {}\n", workload->canonical(), key->str());
  for (size_t i = 0; i < best->size(); ++i) {
    const core::TuningRecord& record = (*best)[i];
    const double time_s = record.median_cost();
    std::cout << fmt::format("{:>3}. config #{}  {:.3g} s  {:.4g} GFLOP/s  agent={}  {}\n", i + 1,
                             record.config_index, time_s, gflops(time_s),
                             record.agent.empty() ? "-" : record.agent,
                             format_unix_ms(record.measured_at_ms));
  }
  return 0;
}

}  // namespace kiln::tuner
