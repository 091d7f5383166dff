// `kiln tracker`: the fleet's broker, serving until SIGINT or SIGTERM.

#include <signal.h>

#include <iostream>
#include <memory>
#include <thread>

#include "compiler_core/support/log.h"
#include "device_agent/task_adapter.h"
#include "tracker/server.h"
#include "tuner/cli/commands.h"
#include "tuner/cli/flags.h"
#include "tuner/cli/fleet_flags.h"

namespace kiln::tuner {
namespace {

FlagSet make_flags() {
  FlagSet flags("tracker",
                "Runs the fleet's tracker: agents dial in and register their device key; "
                "clients (kiln tune --tracker) submit measure tasks for a key and receive the "
                "results as agents finish them. Tasks of a lost agent, or whose lease runs out, "
                "run again elsewhere; after 3 attempts a task ends as DEVICE_LOST.",
                "It prints 'listening on HOST:PORT' on stdout once it serves (port 0 picks a "
                "free port) and runs until SIGINT or SIGTERM.\nExit codes: 0 stopped, 1 cannot "
                "listen, 2 bad flags or unreadable token or TLS files.");
  flags.add_string("listen", "ADDR", "host:port to serve on", "127.0.0.1:9190");
  add_token_flag(flags);
  add_tls_server_flags(flags);
  flags.add_int("heartbeat-timeout-ms", "MS",
                "an agent silent this long is taken for lost and its tasks re-run", 5000, 100,
                3600000);
  return flags;
}

}  // namespace

int tracker_command(const std::vector<std::string>& args) {
  FlagSet flags = make_flags();
  if (auto exit_code = parse_flags_or_exit(flags, args)) return *exit_code;
  tracker::TrackerOptions options;
  options.listen = flags.get_string("listen");
  if (!is_host_port(options.listen)) {
    return report_error(invalid_argument("--listen '" + options.listen +
                                         "' is not host:port, e.g. 127.0.0.1:9190"));
  }
  Result<std::string> token = read_flag_file(flags, "token-file", true);
  if (!token) return report_error(token.status());
  Result<std::string> cert = read_flag_file(flags, "tls-cert");
  if (!cert) return report_error(cert.status());
  Result<std::string> key = read_flag_file(flags, "tls-key");
  if (!key) return report_error(key.status());
  options.token = *token;
  options.tls_cert_pem = *cert;
  options.tls_key_pem = *key;
  options.heartbeat_timeout = std::chrono::milliseconds(flags.get_int("heartbeat-timeout-ms"));
  options.heartbeat_interval =
      std::min(std::chrono::milliseconds(1000), options.heartbeat_timeout / 4);
  // The tracker never compiles: the compiler's checks reach it as a callback.
  options.validate = [validator = std::make_shared<agent::TaskValidator>()](
                         const v1::MeasureTask& task) { return validator->check(task); };

  // Block the stop signals here; a thread waits for them and shuts the server down.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  Result<std::unique_ptr<tracker::TrackerServer>> server = tracker::TrackerServer::start(options);
  if (!server) return report_error(server.status());
  const std::string host = options.listen.substr(0, options.listen.rfind(':'));
  std::cout << "listening on " << host << ":" << (*server)->port() << std::endl;
  logger("tracker")->info("listening on {}:{} tls={} token={}", host, (*server)->port(),
                          !options.tls_cert_pem.empty(), !options.token.empty());
  std::thread waiter([&] {
    int signal = 0;
    sigwait(&stop_signals, &signal);
    logger("tracker")->info("stopping on signal {}", signal);
    (*server)->shutdown();
  });
  (*server)->wait();
  waiter.join();
  return 0;
}

}  // namespace kiln::tuner
