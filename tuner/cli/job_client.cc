#include "tuner/cli/job_client.h"

#include <unistd.h>

#include <cmath>
#include <iostream>
#include <limits>
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
  if (!is_model_job(s)) {
    show(s.trials(), s.spec().trials(), s.valid(), s.best_gflops(), s.elapsed_s(), s.eta_s());
    return;
  }
  ModelTuneProgress p;
  p.trials = s.trials();
  p.tasks = s.tasks();
  p.tasks_done = s.tasks_done();
  p.latency_s = s.estimated_latency_s() > 0 ? s.estimated_latency_s()
                                            : std::numeric_limits<double>::infinity();
  p.elapsed_s = s.elapsed_s();
  p.eta_s = s.eta_s();
  show_model(p);
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

bool is_model_job(const v1::JobStatus& s) { return !s.spec().model_path().empty(); }

std::string model_job_name(const v1::JobStatus& s) { return "model " + s.spec().model_name(); }

namespace {

/// A config as ConfigSpace::to_json writes it: index, then the knobs by name.
nlohmann::ordered_json config_json(const v1::Config& config) {
  nlohmann::ordered_json knobs = nlohmann::ordered_json::object();
  const std::map<std::string, int64_t> sorted(config.knobs().begin(), config.knobs().end());
  for (const auto& [name, value] : sorted) knobs[name] = value;
  return {{"index", config.index()}, {"knobs", knobs}};
}

/// The fields job_json adds for a model job.
void add_model_fields(const v1::JobStatus& s, nlohmann::ordered_json& object) {
  object["model"] = s.spec().model_name();
  object["model_path"] = s.spec().model_path();
  object["latency_s"] =
      s.estimated_latency_s() > 0 ? nlohmann::ordered_json(s.estimated_latency_s()) : nullptr;
  object["tasks"] = s.tasks();
  object["tasks_done"] = s.tasks_done();
  object["spec"]["scheduler"] = s.spec().scheduler();
  object["spec"]["max_task_trials"] = s.spec().max_task_trials();
  if (s.state() == v1::JOB_STATE_RUNNING) return;
  const ModelTuneSummary summary = model_summary_of(s);
  object["task_status"] = model_tasks_json(summary.tasks);
  object["latency_curve"] = latency_curve_json(summary.latency_curve);
}

}  // namespace

nlohmann::ordered_json job_json(const v1::JobStatus& s) {
  nlohmann::ordered_json best = nullptr;
  if (s.best_gflops() > 0) {
    best = {{"config", config_json(s.best_config())},
            {"time_s", s.best_time_s()},
            {"gflops", s.best_gflops()}};
  }
  nlohmann::ordered_json object = {{"job", s.id()},
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
                                     {"device_key", s.spec().device_key()},
                                     {"flush_cache", s.spec().flush_cache()}}},
                                   {"created_unix_ms", s.created_unix_ms()},
                                   {"finished_unix_ms", s.finished_unix_ms()}};
  if (is_model_job(s)) add_model_fields(s, object);
  return object;
}

std::string job_summary_line(const v1::JobStatus& s, const std::string& server) {
  if (is_model_job(s)) {
    return model_summary_text(model_summary_of(s), s.spec().model_name(),
                              "job " + s.id() + " on " + server);
  }
  return fmt::format(
      "{}  best config #{}  {:.4g} s  {:.1f} GFLOP/s  ({} trials, {} valid, 95% of best after "
      "{}; job {} on {})",
      s.workload(), s.best_config().index(), s.best_time_s(), s.best_gflops(), s.trials(),
      s.valid(), s.trials_to_95pct(), s.id(), server);
}

ModelTuneSummary model_summary_of(const v1::JobStatus& s) {
  ModelTuneSummary summary;
  for (const v1::ModelTaskStatus& t : s.task_status()) {
    ModelTaskSummary task;
    task.task = {t.workload(), t.weight()};
    task.trials = t.trials();
    task.valid = t.valid();
    task.best_time_s = t.best_time_s();
    task.best_gflops = t.best_gflops();
    if (t.best_time_s() > 0) task.best_config_json = config_json(t.best_config()).dump();
    task.set_aside = t.set_aside();
    summary.tasks.push_back(std::move(task));
  }
  summary.trials = s.trials();
  summary.latency_s = s.estimated_latency_s() > 0 ? s.estimated_latency_s()
                                                  : std::numeric_limits<double>::infinity();
  for (const v1::LatencyPoint& point : s.latency_curve()) {
    summary.latency_curve.emplace_back(point.trials(), point.latency_s());
  }
  summary.trials_to_95pct = s.trials_to_95pct();
  summary.wall_s = s.elapsed_s();
  return summary;
}

nlohmann::ordered_json model_tasks_json(const std::vector<ModelTaskSummary>& tasks) {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const ModelTaskSummary& t : tasks) {
    nlohmann::ordered_json task = {{"workload", t.task.workload},
                                   {"weight", t.task.weight},
                                   {"trials", t.trials},
                                   {"valid", t.valid},
                                   {"set_aside", t.set_aside}};
    if (t.best_time_s > 0) {
      task["best"] = {{"config", nlohmann::ordered_json::parse(t.best_config_json)},
                      {"time_s", t.best_time_s},
                      {"gflops", t.best_gflops}};
    }
    list.push_back(task);
  }
  return list;
}

nlohmann::ordered_json latency_curve_json(const std::vector<std::pair<int64_t, double>>& curve) {
  nlohmann::ordered_json points = nlohmann::ordered_json::array();
  for (const auto& [trials, latency] : curve) points.push_back({trials, latency});
  return points;
}

std::string model_summary_text(const ModelTuneSummary& summary, const std::string& model,
                               const std::string& where) {
  std::string text;
  for (const ModelTaskSummary& t : summary.tasks) {
    text += fmt::format("  {:>3} x {}  {} trials  {}\n", t.task.weight, t.task.workload, t.trials,
                        t.best_time_s > 0 ? fmt::format("{:.4g} ms  {:.1f} GFLOP/s",
                                                        t.best_time_s * 1e3, t.best_gflops)
                                          : std::string("no valid config"));
  }
  text += fmt::format("{}  {} tasks  estimated latency {}  ({} trials, 95% of it after {}; {})",
                      model, summary.tasks.size(),
                      std::isfinite(summary.latency_s)
                          ? fmt::format("{:.3f} ms", summary.latency_s * 1e3)
                          : std::string("unknown (a task has no valid config)"),
                      summary.trials, summary.trials_to_95pct, where);
  return text;
}

int report_unfinished_job(const v1::JobStatus& s, const std::string& server) {
  std::cerr << "error: job " << s.id() << " on " << server << " " << job_state_text(s.state());
  if (!s.error().empty()) std::cerr << ": " << s.error();
  std::cerr << " after " << s.trials() << " trials; continue it with: kiln jobs resume " << s.id()
            << " --server " << server << "\n";
  return 1;
}

}  // namespace kiln::tuner
