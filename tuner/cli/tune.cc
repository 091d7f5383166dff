// `kiln tune`: search a workload's config space on this machine, storing every measurement in
// the tuning log, and report the fastest kernel found.

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <spdlog/fmt/fmt.h>
#include <nlohmann/json.hpp>

#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/db/tuning_log.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/support/log.h"
#include "compiler_core/te/workload.h"
#include "proto/kiln/grpc_status.h"
#include "tuner/cli/commands.h"
#include "tuner/cli/flags.h"
#include "tuner/cli/fleet_flags.h"
#include "tuner/cli/job_client.h"
#include "tuner/cli/tuning_log_flag.h"
#include "tuner/loop.h"
#include "tuner/measure/fleet_measurer.h"
#include "tuner/measure/local_measurer.h"
#include "tuner/model_tuning.h"
#include "tuner/plot.h"

namespace kiln::tuner {
namespace {

/// Trials in a row with no new best after which a model job sets a task aside, unless
/// --early-stopping says otherwise.
constexpr int64_t kDefaultTaskPatience = 128;

FlagSet make_flags() {
  FlagSet flags("tune",
                "Searches the config space of a workload (--workload), or of every kernel task "
                "of an ONNX model (--model), on this machine: each candidate is built, checked "
                "against the reference and timed, and every result is appended to the tuning "
                "log. Run again with the same arguments to continue an interrupted job: trials "
                "in the log count, and no config is measured twice.",
                "Progress goes to stderr (one updating line on a terminal, a line per batch "
                "otherwise). A job on a server (--server) keeps running when this command "
                "ends; kiln jobs watches, cancels and resumes it. With --json: one object with "
                "workload, target, trials, valid, "
                "best {config, time_s, gflops}, trials_to_95pct and wall_s.\nA model's tasks "
                "are its distinct fused kernels (as kiln compile builds them), weighted by how "
                "often they occur; its estimated latency is the sum of each task's best time "
                "times its weight (host operators not included). The gradient scheduler gives "
                "each task one batch, then each batch to the task whose progress is expected to "
                "lower that estimate most; tasks that stop improving are set aside. The model's "
                "progress line shows the estimate, trials and tasks done; --plot draws the "
                "estimate against trials; --json gives the model, target, trials, latency_s, "
                "latency_curve, trials_to_95pct and each task's workload, weight, trials and "
                "best. kiln compile then builds the model with the tuned records.\nExit codes: 0 "
                "done, 1 a failure (no valid config, a damaged log), 2 bad flags, workload, "
                "target or tuner.");
  flags.add_string("workload", "W", "the workload, e.g. matmul:M=1024,N=1024,K=1024");
  flags.add_string("model", "MODEL.onnx",
                   "tune every kernel task of an ONNX model instead of one workload (up to " +
                       std::to_string(kMaxModelBytes >> 20) + " MiB)");
  flags.add_required_string("target", "T", "the target: llvm (this machine's CPU)");
  flags.add_int("trials", "N",
                "trials of the job in all, those already in the log included (a model: across "
                "its tasks)",
                200, 1, int64_t{1} << 40, "200; a model: 200 per task");
  flags.add_string("scheduler", "NAME",
                   "with --model: how trials are shared among the tasks: gradient (to the task "
                   "whose improvement lowers the model's estimated latency most) or round-robin",
                   "gradient");
  flags.add_int("max-task-trials", "N", "with --model: no task gets more trials than N; 0: no cap",
                0, 0, int64_t{1} << 40);
  flags.add_string("tuner", "NAME",
                   "the search strategy: xgb (simulated annealing over the XGBoost cost model), "
                   "ga (genetic), random or grid",
                   "xgb");
  flags.add_int("early-stopping", "N",
                "stop once N trials in a row bring no new best; 0 never stops early (with "
                "--model: a task is set aside after N such trials; default 128)",
                0, 0, int64_t{1} << 40);
  flags.add_int("batch", "N", "candidates built and measured per round", 16, 1, 4096);
  flags.add_int("seed", "S", "seed of the search", 1, 0, int64_t{1} << 62);
  add_threads_flag(flags, "threads of the kernels being timed");
  flags.add_bool("flush-cache",
                 "time every run with the caches flushed before it (untimed), as a layer of a "
                 "network runs after other layers' data: for layers whose weights fill the "
                 "last-level cache, it keeps the search from a kernel that is fast only while "
                 "they stay there; records say so in their measure options");
  add_db_flag(flags, "the tuning log to append to (created when missing)");
  flags.add_string("tracker", "ADDR",
                   "measure through the device fleet's tracker at host:port (with --device-key) "
                   "instead of on this machine");
  flags.add_string("device-key", "KEY",
                   "the fleet's boards to measure on (with --tracker, or --server)");
  flags.add_string("server", "ADDR",
                   "run the job inside the kiln serve at host:port (its tuning log; on the "
                   "agents of --device-key, else on the server's machine) and watch it; with "
                   "--model, the model's bytes go to the server");
  flags.add_bool("detach", "with --server: start the job, print its id and return");
  add_token_flag(flags);
  add_tls_client_flag(flags);
  flags.add_string("plot", "FILE.svg", "write the best GFLOP/s so far against trials to FILE.svg",
                   "");
  flags.add_bool("json", "print one JSON summary object on stdout");
  return flags;
}

/// Refuses an unwritable plot before the job, not after minutes of tuning.
Status check_plot_path(const std::string& plot) {
  if (plot.empty()) return Status::ok();
  std::filesystem::path folder = std::filesystem::path(plot).parent_path();
  if (folder.empty()) folder = ".";
  if (!std::filesystem::is_directory(folder) || access(folder.c_str(), W_OK) != 0) {
    return invalid_argument("cannot write the plot to '" + plot + "': folder '" + folder.string() +
                            "' is missing or not writable; pass a writable "
                            "--plot path");
  }
  return Status::ok();
}

/// `kiln tune --server`: StartJob, then WatchJob with the progress line of a local job.
int tune_on_server(const FlagSet& flags) {
  for (const char* local_only : {"tracker", "db"}) {
    if (flags.is_set(local_only)) {
      return report_error(invalid_argument(std::string("--server and --") + local_only +
                                           " exclude each other: the job uses the server's "
                                           "tuning log and tracker"));
    }
  }
  Result<ClientConnection> server = connect_from_flags(flags, "server");
  if (!server) return report_error(server.status());
  const std::string plot = flags.get_string("plot");
  if (Status writable = check_plot_path(plot); !writable.is_ok()) return report_error(writable);
  v1::StartJobRequest request;
  v1::JobSpec* spec = request.mutable_spec();
  const bool model = flags.is_set("model");
  if (model) {
    // Refused here before the bytes travel: a file over the limit, a scheduler with a typo.
    if (Result<TaskSchedule> known = parse_task_schedule(flags.get_string("scheduler")); !known) {
      return report_error(known.status());
    }
    const std::string path = flags.get_string("model");
    Result<std::string> bytes = read_model_file(path);
    if (!bytes) return report_error(bytes.status());
    spec->set_model(std::move(*bytes));
    spec->set_model_name(std::filesystem::path(path).filename().string());
    spec->set_scheduler(flags.get_string("scheduler"));
    spec->set_max_task_trials(flags.get_int("max-task-trials"));
  } else {
    spec->set_workload(flags.get_string("workload"));
  }
  spec->set_target(flags.get_string("target"));
  // 0: the server gives a model job 200 trials per task.
  spec->set_trials(model && !flags.is_set("trials") ? 0 : flags.get_int("trials"));
  spec->set_tuner(flags.get_string("tuner"));
  spec->set_seed(uint64_t(flags.get_int("seed")));
  spec->set_batch(int(flags.get_int("batch")));
  spec->set_early_stopping(model && !flags.is_set("early-stopping")
                               ? kDefaultTaskPatience
                               : flags.get_int("early-stopping"));
  // Unset: the measuring machine's cores, which are not this machine's.
  spec->set_threads(flags.is_set("threads") ? int(flags.get_int("threads")) : 0);
  spec->set_device_key(flags.get_string("device-key"));
  spec->set_flush_cache(flags.get_bool("flush-cache"));
  auto stub = v1::Tuning::NewStub(server->channel);
  grpc::ClientContext context;
  // A model's bytes (up to 256 MiB) travel and are read before the answer.
  context.set_deadline(std::chrono::system_clock::now() +
                       (model ? std::chrono::seconds(300) : std::chrono::seconds(30)));
  server->authorize(context);
  v1::JobStatus started;
  if (grpc::Status s = stub->StartJob(&context, request, &started); !s.ok()) {
    return report_error(from_grpc(s, server->address));
  }
  request.Clear();
  if (flags.get_bool("detach")) {
    if (flags.get_bool("json")) {
      std::cout << job_json(started).dump() << "\n";
    } else {
      std::cout << started.id() << "\n";
    }
    return 0;
  }
  std::cerr << "job " << started.id() << " on " << server->address << " (it keeps running if "
            << "this command stops: kiln jobs watch " << started.id() << " --server "
            << server->address << ")\n";
  if (model) {
    std::cerr << fmt::format("{}: {} tasks, {} trials, {} scheduler\n", flags.get_string("model"),
                             started.tasks(), started.spec().trials(), started.spec().scheduler());
  }
  ProgressLine line;
  Result<v1::JobStatus> status = watch_job(*server, started.id(), &line);
  if (!status) return report_error(status.status());
  if (status->state() != v1::JOB_STATE_SUCCEEDED) {
    return report_unfinished_job(*status, server->address);
  }
  if (!plot.empty()) {
    const int threads = status->spec().threads();
    const std::string how =
        (model ? status->spec().scheduler() : status->spec().tuner()) + ", " +
        (threads == 0 ? std::string("all cores")
                      : std::to_string(threads) + " thread" + (threads == 1 ? "" : "s"));
    Status written =
        model ? write_latency_svg(plot, model_summary_of(*status).latency_curve,
                                  status->spec().model_name() + "  (" + how + ")")
              : write_convergence_svg(
                    plot,
                    std::vector<double>(status->best_so_far().begin(), status->best_so_far().end()),
                    status->workload() + "  (" + how + ")", 0);
    if (!written.is_ok()) return report_error(written);
  }
  if (flags.get_bool("json")) {
    nlohmann::ordered_json object = job_json(*status);
    object["server"] = server->address;
    std::cout << object.dump() << "\n";
  } else {
    std::cout << job_summary_line(*status, server->address) << "\n";
  }
  return 0;
}

/// Measurers for the workloads of a job on `target`: through the fleet of `fleet` when it is
/// given, else on this machine. `fleet`, `target` and `local` must outlive the factory.
TaskMeasurerFactory measurer_factory(const FleetSettings* fleet, const core::Target& target,
                                     const MeasureSettings& local) {
  return [fleet, &target, &local](
             const core::Workload& workload,
             const core::ConfigSpace& space) -> Result<std::unique_ptr<Measurer>> {
    if (fleet != nullptr) {
      KILN_ASSIGN_OR_RETURN(std::unique_ptr<FleetMeasurer> m,
                            FleetMeasurer::create(workload, target, space, *fleet));
      return std::unique_ptr<Measurer>(std::move(m));
    }
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<LocalMeasurer> m,
                          LocalMeasurer::create(workload, target, space, local));
    return std::unique_ptr<Measurer>(std::move(m));
  };
}

/// The model job of `kiln tune --model` on this machine or through a tracker.
int tune_model(const FlagSet& flags, const std::string& target_text, bool fleet,
               const FleetSettings& fleet_settings) {
  const std::string model = flags.get_string("model");
  Result<std::vector<ModelTask>> tasks = extract_model_tasks_from_file(model);
  if (!tasks) return report_error(tasks.status());
  Result<TaskSchedule> schedule = parse_task_schedule(flags.get_string("scheduler"));
  if (!schedule) return report_error(schedule.status());
  Result<core::Target> target = prepare_target(target_text, fleet);
  if (!target) return report_error(target.status());
  Result<std::filesystem::path> path = db_path(flags);
  if (!path) return report_error(path.status());
  Result<core::TuningLog> log = core::TuningLog::open(*path);
  if (!log) return report_error(log.status());
  const std::string plot = flags.get_string("plot");
  if (Status writable = check_plot_path(plot); !writable.is_ok()) return report_error(writable);

  ModelTuneOptions options;
  options.task.tuner = flags.get_string("tuner");
  options.task.batch = int(flags.get_int("batch"));
  options.task.seed = uint64_t(flags.get_int("seed"));
  options.task.threads = int(flags.get_int("threads"));
  options.task.timing.flush_cache = options.task.remeasure_timing.flush_cache =
      flags.get_bool("flush-cache");
  options.trials =
      flags.is_set("trials") ? flags.get_int("trials") : int64_t{200} * int64_t(tasks->size());
  options.max_task_trials = flags.get_int("max-task-trials");
  options.task_patience =
      flags.is_set("early-stopping") ? flags.get_int("early-stopping") : kDefaultTaskPatience;
  options.schedule.kind = *schedule;
  options.schedule.seed = options.task.seed;
  if (Status known = check_strategy_name(options.task.tuner); !known.is_ok()) {
    return report_error(known);
  }
  MeasureSettings measure;
  measure.threads = int(flags.get_int("threads"));
  TaskMeasurerFactory make_measurer =
      measurer_factory(fleet ? &fleet_settings : nullptr, *target, measure);
  std::cerr << fmt::format("{}: {} tasks, {} trials, {} scheduler\n", model, tasks->size(),
                           options.trials, task_schedule_name(*schedule));
  ProgressLine line;
  auto progress = [&](const ModelTuneProgress& p) { line.show_model(p); };
  Result<ModelTuneSummary> summary =
      run_model_tuning(*tasks, *target, *log, options, make_measurer, progress);
  line.end();
  if (!summary) return report_error(summary.status());
  if (!plot.empty()) {
    std::string title = std::filesystem::path(model).filename().string() + "  (" +
                        std::string(task_schedule_name(*schedule)) + ", " +
                        std::to_string(measure.threads) + " thread" +
                        (measure.threads == 1 ? "" : "s") + ")";
    Status written = write_latency_svg(plot, summary->latency_curve, title, summary->resumed);
    if (!written.is_ok()) return report_error(written);
  }
  const bool known_latency = std::isfinite(summary->latency_s);
  if (flags.get_bool("json")) {
    nlohmann::ordered_json object = {
        {"model", model},
        {"target", target->str()},
        {"scheduler", task_schedule_name(*schedule)},
        {"trials", summary->trials},
        {"resumed", summary->resumed},
        {"latency_s", known_latency ? nlohmann::ordered_json(summary->latency_s) : nullptr},
        {"trials_to_95pct", summary->trials_to_95pct},
        {"tasks", model_tasks_json(summary->tasks)},
        {"latency_curve", latency_curve_json(summary->latency_curve)},
        {"tuner", options.task.tuner},
        {"threads", measure.threads},
        {"wall_s", summary->wall_s},
        {"measure_s", summary->measure_s},
        {"db", path->string()}};
    std::cout << object.dump() << "\n";
  } else {
    std::cout << model_summary_text(*summary, model, "log " + path->string()) << "\n";
  }
  return known_latency ? 0 : 1;
}

}  // namespace

int tune_command(const std::vector<std::string>& args) {
  FlagSet flags = make_flags();
  if (auto exit_code = parse_flags_or_exit(flags, args)) return *exit_code;
  const bool json = flags.get_bool("json");
  if (flags.is_set("workload") == flags.is_set("model")) {
    return report_error(invalid_argument(
        "give either --workload (one workload) or --model (every task of an ONNX model)"));
  }
  if (!flags.is_set("model")) {
    for (const char* model_only : {"scheduler", "max-task-trials"}) {
      if (flags.is_set(model_only)) {
        return report_error(invalid_argument(std::string("--") + model_only + " needs --model"));
      }
    }
  }
  if (flags.is_set("server")) return tune_on_server(flags);
  if (flags.get_bool("detach")) {
    return report_error(invalid_argument("--detach needs --server: a local job runs here"));
  }

  const bool fleet = flags.is_set("tracker");
  if (fleet != flags.is_set("device-key")) {
    return report_error(invalid_argument("--tracker and --device-key go together"));
  }
  if (fleet && !is_host_port(flags.get_string("tracker"))) {
    return report_error(invalid_argument("--tracker '" + flags.get_string("tracker") +
                                         "' is not host:port, e.g. 127.0.0.1:9190"));
  }
  // A workload that does not parse (or exceeds the memory limit) fails before anything waits
  // for a board.
  if (flags.is_set("workload")) {
    Status parsed = core::parse_workload(flags.get_string("workload")).status();
    if (!parsed.is_ok()) return report_error(parsed);
  }
  FleetSettings fleet_settings;
  std::string target_text = flags.get_string("target");
  if (fleet) {
    fleet_settings.tracker = flags.get_string("tracker");
    fleet_settings.device_key = flags.get_string("device-key");
    fleet_settings.threads = int(flags.get_int("threads"));
    Result<std::string> token = read_flag_file(flags, "token-file", true);
    if (!token) return report_error(token.status());
    Result<std::string> ca = read_flag_file(flags, "tls-ca");
    if (!ca) return report_error(ca.status());
    fleet_settings.token = *token;
    fleet_settings.tls_ca_pem = *ca;
    // `llvm` on a fleet means the key's boards, never this machine.
    fleet_settings.on_waiting = [](const std::string& waiting) {
      if (!waiting.empty()) std::cerr << "waiting for a board that can run it: " << waiting << "\n";
    };
    Result<std::string> board = fleet_target(target_text, fleet_settings);
    if (!board) return report_error(board.status());
    target_text = *board;
  }
  if (flags.is_set("model")) return tune_model(flags, target_text, fleet, fleet_settings);
  Result<std::unique_ptr<TuningProblem>> problem =
      prepare_tuning(flags.get_string("workload"), target_text, fleet);
  if (!problem) return report_error(problem.status());
  const core::Workload* workload = &(*problem)->workload;
  const core::Target* target = &(*problem)->target;
  const core::ConfigSpace* space = &(*problem)->space;
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
  options.threads = int(flags.get_int("threads"));
  options.timing.flush_cache = options.remeasure_timing.flush_cache = flags.get_bool("flush-cache");
  MeasureSettings measure;
  measure.threads = int(flags.get_int("threads"));
  TaskMeasurerFactory measurer_of =
      measurer_factory(fleet ? &fleet_settings : nullptr, *target, measure);
  auto make_measurer = [&] { return measurer_of(*workload, *space); };
  const std::string plot = flags.get_string("plot");
  if (Status writable = check_plot_path(plot); !writable.is_ok()) return report_error(writable);

  ProgressLine line;
  auto progress = [&](const TuneProgress& p) {
    line.show(p.trials, options.trials, p.valid, p.best_gflops, p.elapsed_s, p.eta_s);
  };
  fleet_settings.on_waiting = [&](const std::string& waiting) { line.wait(waiting); };
  Result<TuneSummary> summary =
      run_tuning(*workload, *target, *space, *log, options, make_measurer, progress);
  line.end();
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
                                     {"resumed", summary->resumed},
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
