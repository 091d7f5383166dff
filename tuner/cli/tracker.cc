// `kiln tracker`: the fleet's broker, serving until SIGINT or SIGTERM.

#include <iostream>
#include <memory>

#include "compiler_core/support/log.h"
#include "tracker/server.h"
#include "tuner/cli/commands.h"
#include "tuner/cli/flags.h"
#include "tuner/cli/metrics_endpoint.h"
#include "tuner/cli/tracker_options.h"

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
  add_tracker_server_flags(flags, "127.0.0.1:9190");
  add_metrics_flag(flags);
  return flags;
}

}  // namespace

int tracker_command(const std::vector<std::string>& args) {
  FlagSet flags = make_flags();
  if (auto exit_code = parse_flags_or_exit(flags, args)) return *exit_code;
  Result<tracker::TrackerOptions> options = tracker_options_from_flags(flags);
  if (!options) return report_error(options.status());
  if (Status s = check_metrics_flag(flags); !s.is_ok()) return report_error(s);
  std::unique_ptr<tracker::TrackerServer> server;
  std::unique_ptr<MetricsEndpoint> metrics;  // destroyed first: its scrapes read the tracker
  return serve_until_signal(
      [&]() -> Status {
        KILN_ASSIGN_OR_RETURN(server, tracker::TrackerServer::start(*options));
        // The metrics endpoint first, so that 'listening on' means everything serves.
        KILN_ASSIGN_OR_RETURN(metrics, MetricsEndpoint::start(flags, {server->metrics()}));
        const std::string host = options->listen.substr(0, options->listen.rfind(':'));
        std::cout << "listening on " << host << ":" << server->port() << std::endl;
        logger("tracker")->info("listening on {}:{} tls={} token={}", host, server->port(),
                                !options->tls_cert_pem.empty(), !options->token.empty());
        return Status::ok();
      },
      [&] { server->wait(); }, [&] { server->shutdown(); });
}

}  // namespace kiln::tuner
