#include "tuner/cli/tracker_options.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

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

namespace {

/// The write end of the pipe that stop signals are reported through.
int stop_pipe_write = -1;

void on_stop_signal(int signal) {
  const unsigned char byte = static_cast<unsigned char>(signal);
  [[maybe_unused]] ssize_t written = write(stop_pipe_write, &byte, 1);
}

}  // namespace

int serve_until_signal(const std::function<Status()>& start, const std::function<void()>& wait,
                       const std::function<void()>& shutdown) {
  // A handler, not sigwait alone: libraries start threads of their own before main (OpenBLAS's
  // pool), and a signal that lands on one of those must not kill the process. The handler only
  // writes to a pipe; a thread reads it and shuts the server down. The signals are blocked in
  // every thread this one starts from here on (gRPC's), and unblocked only in the reader, so the
  // kernel hands them to a thread that waits for them. (A sanitizer's runtime delivers a signal
  // at the receiving thread's next intercepted call: one parked inside gRPC's own futex waits
  // would hold it for as long as it sleeps.)
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return report_error(Status(StatusCode::kInternal, "cannot create a pipe for stop signals"));
  }
  stop_pipe_write = fds[1];
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &stop_signals, &previous);
  if (Status started = start(); !started.is_ok()) {
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    return report_error(started);
  }
  std::thread waiter([&] {
    pthread_sigmask(SIG_UNBLOCK, &stop_signals, nullptr);
    unsigned char signal = 0;
    while (read(fds[0], &signal, 1) < 0 && errno == EINTR) {
    }
    logger("kiln")->info("stopping on signal {}", int(signal));
    shutdown();
  });
  wait();
  waiter.join();
  return 0;
}

}  // namespace kiln::tuner
