// `kiln agent`: join the fleet as a board; and `kiln agent-worker`, the worker process it runs
// kernels in (not meant to be started by hand).

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

#include "compiler_core/support/log.h"
#include "device_agent/agent.h"
#include "device_agent/worker.h"
#include "tuner/cli/commands.h"
#include "tuner/cli/flags.h"
#include "tuner/cli/fleet_flags.h"

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
  flags.add_int("task-timeout-s", "S", "wall time of a task whose options give none", 120, 1,
                86400);
  // A kernel that allocates without bound meets its worker's limit, not the host's OOM killer.
  const int64_t half_of_memory_mb =
      int64_t(sysconf(_SC_PHYS_PAGES)) * int64_t(sysconf(_SC_PAGE_SIZE)) / 2 >> 20;
  flags.add_int("worker-memory-mb", "MB", "address-space limit of each worker; 0: none",
                half_of_memory_mb, 0, int64_t{1} << 30,
                "half of this machine's memory, " + std::to_string(half_of_memory_mb));
  flags.add_string("worker", "COMMAND",
                   "the worker's command line, words split at spaces (default: this kiln "
                   "binary's agent-worker). An agent under qemu-user runs its workers through it "
                   "too: --worker 'qemu-aarch64 -L SYSROOT KILN agent-worker'");
  add_token_flag(flags);
  add_tls_client_flag(flags);
  return flags;
}

/// `name` as execv runs it: as it is when it holds a '/', else the first executable of that
/// name in PATH. InvalidArgument when there is none.
Result<std::string> find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::istringstream folders(path != nullptr ? path : "/usr/bin:/bin");
  for (std::string folder; std::getline(folders, folder, ':');) {
    const std::string candidate = (folder.empty() ? "." : folder) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return invalid_argument("--worker program '" + name +
                          "' is not in PATH; give its path or install it");
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
  options.limits.default_timeout = std::chrono::seconds(flags.get_int("task-timeout-s"));
  options.limits.memory_bytes = flags.get_int("worker-memory-mb") << 20;
  if (flags.is_set("worker")) {
    std::istringstream words(flags.get_string("worker"));
    for (std::string word; words >> word;) options.worker_command.push_back(word);
    if (options.worker_command.empty()) {
      return report_error(invalid_argument("--worker is empty; give the worker's command line"));
    }
    // Workers are started with execv, which does not search PATH: look the program up here.
    Result<std::string> program = find_program(options.worker_command[0]);
    if (!program) return report_error(program.status());
    options.worker_command[0] = *program;
  } else {
    options.worker_command = {"/proc/self/exe", "agent-worker"};
  }
  Result<std::string> token = read_flag_file(flags, "token-file", true);
  if (!token) return report_error(token.status());
  Result<std::string> ca = read_flag_file(flags, "tls-ca");
  if (!ca) return report_error(ca.status());
  options.token = *token;
  options.tls_ca_pem = *ca;

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
  return agent::worker_main();
}

}  // namespace kiln::tuner
