#include "tuner/cli/job_client.h"

#include <unistd.h>

#include <cmath>
#include <iostream>
#include <map>

#include <spdlog/fmt/fmt.h>

#include "proto/kiln/grpc_status.h"

namespace kiln::tuner {

ProgressLine::ProgressLine() : terminal_(isatty(STDERR_FILENO) != 0) {}

void ProgressLine::show(int64_t trials, int64_t total, int64_t valid, double best_gflops,
                        double elapsed_s, double eta_s) {
  std::string line =
      fmt::format("trials {}/{}  valid {}  best {:.1f} GFLOP/s  elapsed {:.0f} s  ETA {:.0f} s",
                  trials, total, valid, best_gflops, elapsed_s, eta_s);
  print(std::move(line));
}

void ProgressLine::show_model(const ModelTuneProgress& p) {
  std::string latency = std::isfinite(p.latency_s) ? fmt::format("{:.3f} ms", p.latency_s * 1e3)
                                                   : std::string("(every task's first batch)");
  print(
      fmt::format("trials {}  estimated latency {}  tasks done {}/{}  elapsed {:.0f} s  ETA "
                  "{:.0f} s",
                  p.trials, latency, p.tasks_done, p.tasks, p.elapsed_s, p.eta_s));
}

void ProgressLine::print(std::string line) {
  if (waiting_) line += "  waiting for a board that can run it";
  if (terminal_) {
    std::cerr << "\r" << line << "\x1b[K" << std::flush;
    open_ = true;
  } else {
    std::cerr << line << "\n";
  }
}

void ProgressLine::show(const v1::JobStatus& s) {
  show(s.trials(), s.spec().trials(), s.valid(), s.best_gflops(), s.elapsed_s(), s.eta_s());
}

void ProgressLine::end() {
  if (open_) std::cerr << "\n";
  open_ = false;
}

void ProgressLine::wait(const std::string& reason) {
  end();
  waiting_ = !reason.empty();
  if (waiting_) {
    std::cerr << "waiting for a board that can run it: " << reason << "\n";
  } else {
    std::cerr << "a board that can run it has joined\n";
  }
}

Result<v1::JobStatus> watch_job(const ClientConnection& server, const std::string& id,
                                ProgressLine* line) {
  auto stub = v1::Tuning::NewStub(server.channel);
  grpc::ClientContext context;
  server.authorize(context);
  v1::JobRequest request;
  request.set_id(id);
  auto reader = stub->WatchJob(&context, request);
  v1::JobStatus status;
  bool any = false;
  int64_t shown_trials = -1;
  while (reader->Read(&status)) {
    any = true;
    // A line when trials move on (each batch), as a local job prints.
    if (line && status.state() == v1::JOB_STATE_RUNNING && status.trials() != shown_trials &&
        status.trials() > 0) {
      line->show(status);
      shown_trials = status.trials();
    }
  }
  grpc::Status finished = reader->Finish();
  if (line) line->end();
  if (!finished.ok()) return from_grpc(finished, server.address);
  if (!any || status.state() == v1::JOB_STATE_RUNNING) {
    return Status(
        StatusCode::kUnavailable,
        "server " + server.address + " ended the stream of job " + id + " before it stopped");
  }
  return status;
}

std::string job_state_text(v1::JobState state) {
  switch (state) {
    case v1::JOB_STATE_RUNNING:
      return "running";
    case v1::JOB_STATE_SUCCEEDED:
      return "succeeded";
    case v1::JOB_STATE_FAILED:
      return "failed";
    case v1::JOB_STATE_CANCELLED:
      return "cancelled";
    case v1::JOB_STATE_INTERRUPTED:
      return "interrupted";
    default:
      return "unknown";
  }
}

nlohmann::ordered_json job_json(const v1::JobStatus& s) {
  nlohmann::ordered_json knobs = nlohmann::ordered_json::object();
  const std::map<std::string, int64_t> sorted(s.best_config().knobs().begin(),
                                              s.best_config().knobs().end());
  for (const auto& [name, value] : sorted) knobs[name] = value;
  nlohmann::ordered_json best = nullptr;
  if (s.best_gflops() > 0) {
    best = {{"config", {{"index", s.best_config().index()}, {"knobs", knobs}}},
            {"time_s", s.best_time_s()},
            {"gflops", s.best_gflops()}};
  }
  return {{"job", s.id()},
          {"state", job_state_text(s.state())},
          {"error", s.error()},
          {"workload", s.workload()},
          {"target", s.target()},
          {"trials", s.trials()},
          {"valid", s.valid()},
          {"best", best},
          {"trials_to_95pct", s.trials_to_95pct()},
          {"stopped_early", s.stopped_early()},
          {"wall_s", s.elapsed_s()},
          {"spec",
           {{"trials", s.spec().trials()},
            {"tuner", s.spec().tuner()},
            {"seed", s.spec().seed()},
            {"batch", s.spec().batch()},
            {"early_stopping", s.spec().early_stopping()},
            {"threads", s.spec().threads()},
            {"device_key", s.spec().device_key()}}},
          {"created_unix_ms", s.created_unix_ms()},
          {"finished_unix_ms", s.finished_unix_ms()}};
}

std::string job_summary_line(const v1::JobStatus& s, const std::string& server) {
  return fmt::format(
      "{}  best config #{}  {:.4g} s  {:.1f} GFLOP/s  ({} trials, {} valid, 95% of best after "
      "{}; job {} on {})",
      s.workload(), s.best_config().index(), s.best_time_s(), s.best_gflops(), s.trials(),
      s.valid(), s.trials_to_95pct(), s.id(), server);
}

int report_unfinished_job(const v1::JobStatus& s, const std::string& server) {
  std::cerr << "error: job " << s.id() << " on " << server << " " << job_state_text(s.state());
  if (!s.error().empty()) std::cerr << ": " << s.error();
  std::cerr << " after " << s.trials() << " trials; continue it with: kiln jobs resume " << s.id()
            << " --server " << server << "\n";
  return 1;
}

}  // namespace kiln::tuner
