// `kiln serve`: the Tuning service over a tuning log and, on the same port, the fleet's tracker,
// with gRPC health checking and server reflection, until SIGINT or SIGTERM.

#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "compiler_core/support/log.h"
#include "kiln/v1/kiln.pb.h"
#include "proto/kiln/message_limits.h"
#include "tracker/server.h"
#include "tuner/cli/commands.h"
#include "tuner/cli/flags.h"
#include "tuner/cli/metrics_endpoint.h"
#include "tuner/cli/tracker_options.h"
#include "tuner/cli/tuning_log_flag.h"
#include "tuner/cli/worker_flags.h"
#include "tuner/measure/worker_measurer.h"
#include "tuner/model_tuning.h"
#include "tuner/service/tuning_service.h"

namespace kiln::tuner {
namespace {

/// The largest message the server takes: a StartJob that carries the largest model it tunes,
/// and room for the rest of the request (gRPC's default is 4 MiB).
constexpr int64_t kMaxReceiveBytes = kMaxModelBytes + (int64_t{1} << 20);

FlagSet make_flags() {
  FlagSet flags(
      "serve",
      "Serves the kiln.v1 Tuning service (QueryBest: the fastest stored schedules of "
      "a workload on a target; ListWorkloads; tuning jobs that run in the server: "
      "StartJob, WatchJob, CancelJob, ListJobs, ResumeJob) over a tuning log, and on "
      "the same port "
      "the fleet's tracker (agents register with kiln agent --tracker ADDR; kiln tune "
      "--tracker ADDR measures through them). gRPC health checking and server "
      "reflection are on.",
      "It prints 'listening on HOST:PORT' on stdout once it serves (port 0 picks a "
      "free port) and runs until SIGINT or SIGTERM; jobs running then stop at their "
      "next batch and are listed as interrupted (kiln jobs resume continues them). "
      "Jobs live in the tuning log: every server on one PostgreSQL log lists, "
      "watches, cancels and resumes them all, and a job whose server died is "
      "interrupted and resumes on any of them.\nA job tunes a workload or every kernel task of an "
      "ONNX model (kiln tune --model --server): StartJob carries the model's bytes, "
      "up to " +
          std::to_string(kMaxModelBytes >> 20) + " MiB (the server receives messages of up to " +
          std::to_string(kMaxReceiveBytes >> 20) +
          " MiB; larger models are refused), which are kept in the models folder (--models), or "
          "names a model file the server can read.\nA job without a "
          "device key measures on this machine, in a worker process with time and "
          "memory limits, as agents do: a kernel that crashes or hangs costs its "
          "trial, never the server.\nExit codes: 0 "
          "stopped, 1 cannot listen or open the tuning log, 2 bad flags or unreadable "
          "token or TLS files.");
  add_tracker_server_flags(flags, "127.0.0.1:9190");
  add_db_flag(flags, "the tuning log to serve (created when missing)");
  flags.add_string("models", "DIR",
                   "where the models sent with jobs are kept (default: `models` beside a SQLite "
                   "log, in the working folder for a PostgreSQL log)");
  flags.add_bool("no-tracker", "serve the Tuning service only, without the tracker");
  add_worker_flags(flags,
                   "the command line of the worker processes that jobs without a device key "
                   "measure in, words split at spaces (default: this kiln binary's "
                   "agent-worker)");
  add_metrics_flag(flags);
  return flags;
}

/// Measurers of local jobs, each with a worker process of its own (started at its first
/// candidate, restarted after a crash or a timeout).
LocalMeasurerFactory worker_measurers(const WorkerSetup& setup) {
  return [setup](const core::Workload& workload, const core::Target& target,
                 const core::ConfigSpace& space, int threads) -> Result<std::unique_ptr<Measurer>> {
    auto worker = std::make_shared<agent::Worker>(setup.command, setup.limits);
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<WorkerMeasurer> m,
                          WorkerMeasurer::create(workload, target, space, threads,
                                                 [worker](const v1::MeasureTask& task) {
                                                   return worker->measure(task);
                                                 }));
    return std::unique_ptr<Measurer>(std::move(m));
  };
}

}  // namespace

int serve_command(const std::vector<std::string>& args) {
  FlagSet flags = make_flags();
  if (auto exit_code = parse_flags_or_exit(flags, args)) return *exit_code;
  Result<tracker::TrackerOptions> options = tracker_options_from_flags(flags);
  if (!options) return report_error(options.status());
  Result<std::filesystem::path> db = db_path(flags);
  if (!db) return report_error(db.status());
  Result<WorkerSetup> worker = worker_from_flags(flags);
  if (!worker) return report_error(worker.status());
  if (Status s = check_metrics_flag(flags); !s.is_ok()) return report_error(s);
  signal(SIGPIPE, SIG_IGN);  // a dead worker's pipe is an error code, not a signal
  // Jobs live in the tuning log; kilns before schema 5 kept them in NAME.jobs.json beside it.
  std::filesystem::path older_jobs;
  if (!core::is_tuning_log_url(db->string())) {
    older_jobs = std::filesystem::path(*db).replace_extension(".jobs.json");
  }
  std::unique_ptr<TuningService> tuning;
  std::unique_ptr<tracker::TrackerHost> fleet;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<MetricsEndpoint> metrics;  // destroyed first: its scrapes read the services
  return serve_until_signal(
      [&]() -> Status {
        KILN_ASSIGN_OR_RETURN(tuning,
                              TuningService::create({.db = *db,
                                                     .models_dir = flags.get_string("models"),
                                                     .import_jobs_file = older_jobs,
                                                     .token = options->token,
                                                     .local_measurer = worker_measurers(*worker)}));
        if (!flags.get_bool("no-tracker")) fleet = tracker::TrackerHost::create(*options);
        grpc::EnableDefaultHealthCheckService(true);
        grpc::reflection::InitProtoReflectionServerBuilderPlugin();
        std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
        if (!options->tls_cert_pem.empty()) {
          grpc::SslServerCredentialsOptions ssl;
          ssl.pem_key_cert_pairs.push_back({options->tls_key_pem, options->tls_cert_pem});
          credentials = grpc::SslServerCredentials(ssl);
        }
        grpc::ServerBuilder builder;
        int port = 0;
        builder.AddListeningPort(options->listen, credentials, &port);
        builder.SetMaxReceiveMessageSize(int(kMaxReceiveBytes));
        builder.SetMaxSendMessageSize(kMaxClientReceiveBytes);
        builder.RegisterService(tuning->service());
        if (fleet) builder.RegisterService(fleet->service());
        server = builder.BuildAndStart();
        if (!server || port == 0) {
          return Status(StatusCode::kUnavailable, "cannot listen on '" + options->listen +
                                                      "'; pass a free host:port to --listen");
        }
        if (fleet) {
          fleet->start();
          // Jobs reach the tracker inside this process, past TLS.
          tuning->set_tracker(server->InProcessChannel(grpc::ChannelArguments()), "(this server)");
        }
        // The metrics endpoint first, so that 'listening on' means everything serves.
        std::vector<std::shared_ptr<prometheus::Collectable>> collectables = {tuning->metrics()};
        if (fleet) collectables.push_back(fleet->metrics());
        KILN_ASSIGN_OR_RETURN(metrics, MetricsEndpoint::start(flags, std::move(collectables)));
        const std::string host = options->listen.substr(0, options->listen.rfind(':'));
        std::cout << "listening on " << host << ":" << port << std::endl;
        logger("serve")->info("listening on {}:{} db={} tracker={} tls={} token={}", host, port,
                              db->string(), fleet != nullptr, !options->tls_cert_pem.empty(),
                              !options->token.empty());
        return Status::ok();
      },
      [&] { server->Wait(); },
      [&] {
        // Jobs stop at their next batch; one still measuring stays interrupted on file (its
        // batch is measured again when it resumes).
        const int running = tuning->interrupt_jobs(std::chrono::seconds(10));
        if (fleet) fleet->stop();
        server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
        if (running > 0) {
          logger("serve")->warn("{} jobs still measuring; stopping with them interrupted", running);
          spdlog::shutdown();
          std::_Exit(0);
        }
      });
}

}  // namespace kiln::tuner
