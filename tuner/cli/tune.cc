// `kiln tune`: search a workload's config space on this machine, storing every measurement in
// the tuning log, and report the fastest kernel found.

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/fmt/fmt.h>
#include <nlohmann/json.hpp>

#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/db/tuning_log.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/support/log.h"
#include "compiler_core/te/workload.h"
#include "tuner/cli/commands.h"
#include "tuner/cli/flags.h"
#include "tuner/cli/fleet_flags.h"
#include "tuner/cli/tuning_log_flag.h"
#include "tuner/loop.h"
#include "tuner/measure/fleet_measurer.h"
#include "tuner/measure/local_measurer.h"
#include "tuner/plot.h"

namespace kiln::tuner {
namespace {

FlagSet make_flags() {
  FlagSet flags("tune",
                "Searches the config space of a workload on this machine: each candidate is "
                "built, checked against the reference and timed, and every result is appended "
                "to the tuning log. Run again with the same arguments to continue an "
                "interrupted job: trials in the log count, and no config is measured twice.",
                "Progress goes to stderr (one updating line on a terminal, a line per batch "
                "otherwise). With --json: one object with workload, target, trials, valid, "
                "best {config, time_s, gflops}, trials_to_95pct and wall_s.\nExit codes: 0 "
                "done, 1 a failure (no valid config, a damaged log), 2 bad flags, workload, "
                "target or tuner.");
  flags.add_required_string("workload", "W", "the workload, e.g. matmul:M=1024,N=1024,K=1024");
  flags.add_required_string("target", "T", "the target: llvm (this machine's CPU)");
  flags.add_int("trials", "N", "trials of the job in all, those already in the log included", 200,
                1, int64_t{1} << 40);
  flags.add_string("tuner", "NAME",
                   "the search strategy: xgb (simulated annealing over the XGBoost cost model), "
                   "ga (genetic), random or grid",
                   "xgb");
  flags.add_int("early-stopping", "N",
                "stop once N trials in a row bring no new best; 0 never stops early", 0, 0,
                int64_t{1} << 40);
  flags.add_int("batch", "N", "candidates built and measured per round", 16, 1, 4096);
  flags.add_int("seed", "S", "seed of the search", 1, 0, int64_t{1} << 62);
  int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  flags.add_int("threads", "N", "threads of the kernels being timed", cores, 1, 1024,
                "this machine's cores, " + std::to_string(cores));
  add_db_flag(flags, "the tuning log to append to (created when missing)");
  flags.add_string("tracker", "ADDR",
                   "measure through the device fleet's tracker at host:port (with --device-key) "
                   "instead of on this machine");
  flags.add_string("device-key", "KEY", "the fleet's boards to measure on (with --tracker)");
  add_token_flag(flags);
  add_tls_client_flag(flags);
  flags.add_string("plot", "FILE.svg", "write the best GFLOP/s so far against trials to FILE.svg",
                   "");
  flags.add_bool("json", "print one JSON summary object on stdout");
  return flags;
}

}  // namespace

int tune_command(const std::vector<std::string>& args) {
  FlagSet flags = make_flags();
  if (auto exit_code = parse_flags_or_exit(flags, args)) return *exit_code;
  const bool json = flags.get_bool("json");

  Result<core::Workload> workload = core::parse_workload(flags.get_string("workload"));
  if (!workload) return report_error(workload.status());
  Result<core::Target> parsed = core::parse_target(flags.get_string("target"));
  if (!parsed) return report_error(parsed.status());
  const bool fleet = flags.is_set("tracker");
  if (fleet != flags.is_set("device-key")) {
    return report_error(invalid_argument("--tracker and --device-key go together"));
  }
  if (fleet && !is_host_port(flags.get_string("tracker"))) {
    return report_error(invalid_argument("--tracker '" + flags.get_string("tracker") +
                                         "' is not host:port, e.g. 127.0.0.1:9190"));
  }
  if (!parsed->is_host && !fleet) {
    return report_error(invalid_argument("target '" + parsed->str() +
                                         "' is not this machine; measure it through the fleet "
                                         "(--tracker, --device-key)"));
  }
  Result<core::Target> target = core::resolve_host_target(*parsed);
  if (!target) return report_error(target.status());
  Result<core::ConfigSpace> space = core::config_space(*workload, *target);
  if (!space) return report_error(space.status());
  Result<std::filesystem::path> path = db_path(flags);
  if (!path) return report_error(path.status());
  Result<core::TuningLog> log = core::TuningLog::open(*path);
  if (!log) return report_error(log.status());

  TuneOptions options;
  options.tuner = flags.get_string("tuner");
  options.trials = flags.get_int("trials");
  options.batch = int(flags.get_int("batch"));
  options.seed = uint64_t(flags.get_int("seed"));
  options.early_stopping = flags.get_int("early-stopping");
  MeasureSettings measure;
  measure.threads = int(flags.get_int("threads"));
  FleetSettings fleet_settings;
  if (fleet) {
    fleet_settings.tracker = flags.get_string("tracker");
    fleet_settings.device_key = flags.get_string("device-key");
    fleet_settings.threads = measure.threads;
    Result<std::string> token = read_flag_file(flags, "token-file", true);
    if (!token) return report_error(token.status());
    Result<std::string> ca = read_flag_file(flags, "tls-ca");
    if (!ca) return report_error(ca.status());
    fleet_settings.token = *token;
    fleet_settings.tls_ca_pem = *ca;
  }
  auto make_measurer = [&]() -> Result<std::unique_ptr<Measurer>> {
    if (fleet) {
      KILN_ASSIGN_OR_RETURN(std::unique_ptr<FleetMeasurer> m,
                            FleetMeasurer::create(*workload, *target, *space, fleet_settings));
      return std::unique_ptr<Measurer>(std::move(m));
    }
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<LocalMeasurer> m,
                          LocalMeasurer::create(*workload, *target, *space, measure));
    return std::unique_ptr<Measurer>(std::move(m));
  };
  const std::string plot = flags.get_string("plot");
  if (!plot.empty()) {
    // Refuse an unwritable plot before the job, not after minutes of tuning.
    std::filesystem::path folder = std::filesystem::path(plot).parent_path();
    if (folder.empty()) folder = ".";
    if (!std::filesystem::is_directory(folder) || access(folder.c_str(), W_OK) != 0) {
      return report_error(invalid_argument("cannot write the plot to '" + plot + "': folder '" +
                                           folder.string() +
                                           "' is missing or not writable; pass a writable "
                                           "--plot path"));
    }
  }

  const bool terminal = isatty(STDERR_FILENO);
  auto progress = [&](const TuneProgress& p) {
    std::string line =
        fmt::format("trials {}/{}  valid {}  best {:.1f} GFLOP/s  elapsed {:.0f} s  ETA {:.0f} s",
                    p.trials, options.trials, p.valid, p.best_gflops, p.elapsed_s, p.eta_s);
    if (terminal) {
      std::cerr << "\r" << line << "\x1b[K" << std::flush;
    } else {
      std::cerr << line << "\n";
    }
  };
  Result<TuneSummary> summary =
      run_tuning(*workload, *target, *space, *log, options, make_measurer, progress);
  if (terminal) std::cerr << "\n";
  if (!summary) return report_error(summary.status());
  if (!plot.empty()) {
    std::string title = workload->canonical() + "  (" + options.tuner + ", " +
                        std::to_string(measure.threads) + " thread" +
                        (measure.threads == 1 ? "" : "s") + ")";
    Status written =
        write_convergence_svg(plot, summary->best_so_far, title, size_t(summary->resumed));
    if (!written.is_ok()) return report_error(written);
  }
  if (!summary->found) {
    std::cerr << "error: no valid config among " << summary->trials << " trials of "
              << workload->canonical() << "\n";
    return 1;
  }
  nlohmann::json config = nlohmann::json::parse(space->to_json(summary->best));
  if (json) {
    nlohmann::ordered_json object = {{"workload", workload->canonical()},
                                     {"target", target->str()},
                                     {"trials", summary->trials},
                                     {"valid", summary->valid},
                                     {"best",
                                      {{"config", config},
                                       {"time_s", summary->best_time_s},
                                       {"gflops", summary->best_gflops},
                                       {"costs", summary->best_costs},
                                       {"remeasured", summary->best_remeasured}}},
                                     {"tuner", options.tuner},
                                     {"threads", measure.threads},
                                     {"stopped_early", summary->stopped_early},
                                     {"trials_to_95pct", summary->trials_to_95pct},
                                     {"wall_s", summary->wall_s},
                                     {"measure_s", summary->measure_s},
                                     {"db", path->string()}};
    std::cout << object.dump() << "\n";
  } else {
    std::cout << fmt::format(
        "{}  best config #{}  {:.4g} s  {:.1f} GFLOP/s  ({} trials, {} valid, "
        "95% of best after {}; log {})\n",
        workload->canonical(), summary->best.index, summary->best_time_s, summary->best_gflops,
        summary->trials, summary->valid, summary->trials_to_95pct, path->string());
  }
  return 0;
}

}  // namespace kiln::tuner
