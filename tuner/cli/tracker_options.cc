#include "tuner/cli/tracker_options.h"

#include <signal.h>

#include <memory>
#include <thread>

#include "compiler_core/support/log.h"
#include "device_agent/task_adapter.h"
#include "tuner/cli/commands.h"
#include "tuner/cli/fleet_flags.h"

namespace kiln::tuner {

void add_tracker_server_flags(FlagSet& flags, const std::string& listen) {
  flags.add_string("listen", "ADDR", "host:port to serve on", listen);
  add_token_flag(flags);
  add_tls_server_flags(flags);
  flags.add_int("heartbeat-timeout-ms", "MS",
                "an agent silent this long is taken for lost and its tasks re-run", 5000, 100,
                3600000);
}

Result<tracker::TrackerOptions> tracker_options_from_flags(const FlagSet& flags) {
  tracker::TrackerOptions options;
  options.listen = flags.get_string("listen");
  if (!is_host_port(options.listen)) {
    return invalid_argument("--listen '" + options.listen +
                            "' is not host:port, e.g. 127.0.0.1:9190");
  }
  KILN_ASSIGN_OR_RETURN(options.token, read_flag_file(flags, "token-file", true));
  KILN_ASSIGN_OR_RETURN(options.tls_cert_pem, read_flag_file(flags, "tls-cert"));
  KILN_ASSIGN_OR_RETURN(options.tls_key_pem, read_flag_file(flags, "tls-key"));
  if (options.tls_cert_pem.empty() != options.tls_key_pem.empty()) {
    return invalid_argument("TLS needs both a certificate and its key (--tls-cert, --tls-key)");
  }
  options.heartbeat_timeout = std::chrono::milliseconds(flags.get_int("heartbeat-timeout-ms"));
  options.heartbeat_interval =
      std::min(std::chrono::milliseconds(1000), options.heartbeat_timeout / 4);
  // The tracker never compiles: the compiler's checks reach it as a callback.
  options.validate = [validator = std::make_shared<agent::TaskValidator>()](
                         const v1::MeasureTask& task) { return validator->check(task); };
  return options;
}

int serve_until_signal(const std::function<Status()>& start, const std::function<void()>& wait,
                       const std::function<void()>& shutdown) {
  // Block the stop signals here (threads started later inherit the mask); one thread waits for
  // them and shuts the server down.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  if (Status started = start(); !started.is_ok()) return report_error(started);
  std::thread waiter([&] {
    int signal = 0;
    sigwait(&stop_signals, &signal);
    logger("kiln")->info("stopping on signal {}", signal);
    shutdown();
  });
  wait();
  waiter.join();
  return 0;
}

}  // namespace kiln::tuner
