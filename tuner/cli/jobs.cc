// `kiln jobs list|watch|cancel|resume`: the tuning jobs of a `kiln serve`.

#include <chrono>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/fmt/fmt.h>
#include <nlohmann/json.hpp>

#include "kiln/v1/tuning.grpc.pb.h"
#include "proto/kiln/grpc_status.h"
#include "tuner/cli/commands.h"
#include "tuner/cli/flags.h"
#include "tuner/cli/fleet_flags.h"
#include "tuner/cli/job_client.h"

namespace kiln::tuner {
namespace {

constexpr std::string_view kUsage =
    "usage: kiln jobs <action> [ID] --server ADDR [flags]\n\n"
    "The tuning jobs that run inside a kiln serve (kiln tune --server starts them). A job keeps\n"
    "running when the command that started or watched it ends; one the server stopped in the\n"
    "middle of is interrupted and continues from the tuning log when resumed.\n\n"
    "actions:\n"
    "  list    every job: id, state, trials, best GFLOP/s, workload (a model job: its name\n"
    "          and estimated latency)\n"
    "  watch   ID: show its progress until it stops\n"
    "  cancel  ID: stop it after the batch being measured\n"
    "  resume  ID: run an interrupted, failed or cancelled job on, and watch it\n\n"
    "Run 'kiln jobs <action> --help' for an action's flags.\n";

FlagSet make_flags(const std::string& action, const std::string& summary) {
  FlagSet flags("jobs " + action, summary,
                "Exit codes: 0 done (watch and resume: the job succeeded), 1 the job ended "
                "otherwise or the server failed, 2 bad flags or an unknown job.");
  flags.add_required_string("server", "ADDR", "the kiln serve, host:port");
  add_token_flag(flags);
  add_tls_client_flag(flags);
  flags.add_bool("json", "print one JSON object on stdout");
  return flags;
}

/// Splits `ID --flags...` into the id (required when `needs_id`) and the flags.
bool split_id(const std::string& action, bool needs_id, std::vector<std::string>& args,
              std::string* id) {
  const bool has_id = !args.empty() && args.front().rfind("--", 0) != 0;
  if (has_id) {
    *id = args.front();
    args.erase(args.begin());
  }
  if (needs_id && !has_id && !(args.size() == 1 && (args[0] == "--help" || args[0] == "-h"))) {
    std::cerr << "error: 'kiln jobs " << action << "' needs a job id, e.g. kiln jobs " << action
              << " job-1 --server 127.0.0.1:9190\n";
    return false;
  }
  if (!needs_id && has_id) {
    std::cerr << "error: 'kiln jobs " << action << "' takes no job id\n";
    return false;
  }
  return true;
}

int list_action(const std::vector<std::string>& args) {
  FlagSet flags = make_flags("list", "Lists every job of the server, oldest first.");
  if (auto exit_code = parse_flags_or_exit(flags, args)) return *exit_code;
  Result<ClientConnection> server = connect_from_flags(flags, "server");
  if (!server) return report_error(server.status());
  auto stub = v1::Tuning::NewStub(server->channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  server->authorize(context);
  v1::ListJobsResponse response;
  if (grpc::Status s = stub->ListJobs(&context, v1::ListJobsRequest(), &response); !s.ok()) {
    return report_error(from_grpc(s, server->address));
  }
  if (flags.get_bool("json")) {
    nlohmann::ordered_json jobs = nlohmann::ordered_json::array();
    for (const v1::JobStatus& s : response.jobs()) jobs.push_back(job_json(s));
    std::cout << nlohmann::ordered_json{{"server", server->address}, {"jobs", jobs}}.dump() << "\n";
    return 0;
  }
  std::cout << fmt::format("{:<10} {:<12} {:>13} {:>10}  {}\n", "JOB", "STATE", "TRIALS", "GFLOP/S",
                           "WORKLOAD");
  for (const v1::JobStatus& s : response.jobs()) {
    std::string gflops = fmt::format("{:.1f}", s.best_gflops());
    std::string what = s.workload();
    if (is_model_job(s)) {
      gflops = "-";
      what = model_job_name(s) + "  estimated latency " +
             (s.estimated_latency_s() > 0 ? fmt::format("{:.3f} ms", s.estimated_latency_s() * 1e3)
                                          : std::string("unknown"));
    }
    std::cout << fmt::format("{:<10} {:<12} {:>13} {:>10}  {}\n", s.id(), job_state_text(s.state()),
                             std::to_string(s.trials()) + "/" + std::to_string(s.spec().trials()),
                             gflops, what);
  }
  return 0;
}

/// Watches `id` to its end and prints as kiln tune --server does.
int watch_to_end(const FlagSet& flags, const ClientConnection& server, const std::string& id) {
  ProgressLine line;
  Result<v1::JobStatus> status = watch_job(server, id, &line);
  if (!status) return report_error(status.status());
  if (flags.get_bool("json")) std::cout << job_json(*status).dump() << "\n";
  if (status->state() != v1::JOB_STATE_SUCCEEDED) {
    return report_unfinished_job(*status, server.address);
  }
  if (!flags.get_bool("json")) std::cout << job_summary_line(*status, server.address) << "\n";
  return 0;
}

/// watch, cancel and resume: one job by id.
int job_action(const std::string& action, std::vector<std::string> args) {
  std::string id;
  if (!split_id(action, true, args, &id)) return 2;
  const std::string summary =
      action == "watch"    ? "Shows the job's progress until it stops; the job goes on when "
                             "this command is interrupted."
      : action == "cancel" ? "Stops a running job after the batch being measured (its results "
                             "are kept), or retires an interrupted one."
                           : "Runs an interrupted, failed or cancelled job on from the tuning "
                             "log (no trial lost or repeated), and watches it.";
  FlagSet flags = make_flags(action + " ID", summary);
  if (action == "resume") flags.add_bool("detach", "resume it and return without watching");
  if (auto exit_code = parse_flags_or_exit(flags, args)) return *exit_code;
  Result<ClientConnection> server = connect_from_flags(flags, "server");
  if (!server) return report_error(server.status());
  if (action == "watch") return watch_to_end(flags, *server, id);

  auto stub = v1::Tuning::NewStub(server->channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  server->authorize(context);
  v1::JobRequest request;
  request.set_id(id);
  v1::JobStatus status;
  grpc::Status s = action == "cancel" ? stub->CancelJob(&context, request, &status)
                                      : stub->ResumeJob(&context, request, &status);
  if (!s.ok()) return report_error(from_grpc(s, server->address));
  if (action == "resume" && !flags.get_bool("detach")) {
    std::cerr << "job " << id << " resumed on " << server->address << " at " << status.trials()
              << " trials\n";
    return watch_to_end(flags, *server, id);
  }
  if (flags.get_bool("json")) {
    std::cout << job_json(status).dump() << "\n";
  } else if (action == "cancel") {
    std::cout << "job " << id
              << (status.state() == v1::JOB_STATE_RUNNING ? " stops after the batch being measured"
                                                          : " cancelled")
              << "\n";
  } else {
    std::cout << "job " << id << " resumed at " << status.trials() << " trials\n";
  }
  return 0;
}

}  // namespace

int jobs_command(const std::vector<std::string>& args) {
  auto on_job = [](const char* action) {
    return [action](const std::vector<std::string>& rest) { return job_action(action, rest); };
  };
  return run_action("jobs", kUsage,
                    {{"list", list_action},
                     {"watch", on_job("watch")},
                     {"cancel", on_job("cancel")},
                     {"resume", on_job("resume")}},
                    args);
}

}  // namespace kiln::tuner
