// `kiln agent`: join the fleet as a board; and `kiln agent-worker`, the worker process it runs
// kernels in (not meant to be started by hand).

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include "compiler_core/support/log.h"
#include "device_agent/agent.h"
#include "device_agent/worker.h"
#include "tuner/cli/commands.h"
#include "tuner/cli/flags.h"
#include "tuner/cli/fleet_flags.h"
#include "tuner/cli/metrics_endpoint.h"
#include "tuner/cli/worker_flags.h"

namespace kiln::tuner {
namespace {

std::atomic<bool> stop_requested{false};

void request_stop(int) { stop_requested = true; }

FlagSet make_flags() {
  FlagSet flags(
      "agent",
      "Joins the fleet as a board: dials out to the tracker, registers the device key, target "
      "and this machine's facts, and measures the tasks it is given. Each task is built from "
      "its workload and config by this agent itself, checked against the reference and timed "
      "in a worker process with time and memory limits: a kernel that crashes or hangs yields "
      "RUNTIME_ERROR or TIMEOUT and the agent serves on. When the tracker goes away the agent "
      "reconnects with exponential backoff.",
      "Runs until SIGINT or SIGTERM.\nExit codes: 0 stopped, 2 bad flags, target or unreadable "
      "token or CA files.");
  flags.add_required_string("tracker", "ADDR", "the tracker's host:port");
  flags.add_required_string("key", "KEY", "the device key tasks are queued for, e.g. epyc-zen5");
  flags.add_string("target", "T", "what this board builds for", "llvm");
  flags.add_string("id", "ID", "the agent's id (default: KEY@HOSTNAME:PID)");
  flags.add_int("capacity", "N", "tasks measured at once (one worker process each)", 1, 1, 256);
  add_worker_flags(flags,
                   "the worker's command line, words split at spaces (default: this kiln "
                   "binary's agent-worker). An agent under qemu-user runs its workers through it "
                   "too: --worker 'qemu-aarch64 -L SYSROOT KILN agent-worker'");
  add_token_flag(flags);
  add_tls_client_flag(flags);
  add_metrics_flag(flags);
  return flags;
}

}  // namespace

int agent_command(const std::vector<std::string>& args) {
  FlagSet flags = make_flags();
  if (auto exit_code = parse_flags_or_exit(flags, args)) return *exit_code;
  agent::AgentOptions options;
  options.tracker = flags.get_string("tracker");
  if (!is_host_port(options.tracker)) {
    return report_error(invalid_argument("--tracker '" + options.tracker +
                                         "' is not host:port, e.g. 127.0.0.1:9190"));
  }
  options.device_key = flags.get_string("key");
  options.target = flags.get_string("target");
  options.agent_id = flags.get_string("id");
  options.capacity = int(flags.get_int("capacity"));
  Result<WorkerSetup> worker = worker_from_flags(flags);
  if (!worker) return report_error(worker.status());
  options.worker_command = worker->command;
  options.limits = worker->limits;
  Result<std::string> token = read_flag_file(flags, "token-file", true);
  if (!token) return report_error(token.status());
  Result<std::string> ca = read_flag_file(flags, "tls-ca");
  if (!ca) return report_error(ca.status());
  options.token = *token;
  options.tls_ca_pem = *ca;
  if (Status s = check_metrics_flag(flags); !s.is_ok()) return report_error(s);
  options.metrics = std::make_shared<agent::AgentMetrics>();
  Result<std::unique_ptr<MetricsEndpoint>> metrics =
      MetricsEndpoint::start(flags, {options.metrics->registry()});
  if (!metrics) return report_error(metrics.status());

  struct sigaction action {};
  action.sa_handler = request_stop;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a dead worker's pipe is an error code, not a signal
  Status served = agent::run_agent(options, stop_requested);
  if (!served.is_ok()) return report_error(served);
  return 0;
}

int agent_worker_command(const std::vector<std::string>& args) {
  if (!args.empty()) {
    std::cerr << "kiln agent-worker: the measurement worker of kiln agent; it reads tasks on "
                 "stdin and takes no flags\n";
    return args[0] == "--help" || args[0] == "-h" ? 0 : 2;
  }
  if (check_flags_only()) {
    std::cout << "kiln agent-worker: the command line is valid\n";
    return 0;
  }
  return agent::worker_main();
}

}  // namespace kiln::tuner
