#include "tuner/model_tuning.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/frontend/onnx/onnx_import.h"
#include "compiler_core/graph/module.h"
#include "compiler_core/graph/passes.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/support/log.h"

namespace kiln::tuner {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kInf = std::numeric_limits<double>::infinity();

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// One task of the job: its workload and space, and its search once it has started.
struct TaskState {
  ModelTask task;
  core::Workload workload;
  core::ConfigSpace space;
  std::unique_ptr<TaskSearch> search;
};

/// The best time behind a GFLOP/s figure of TuneSummary::best_so_far (0 for none).
double time_of(const core::Workload& workload, double gflops) {
  return gflops > 0 ? workload.flops() / (gflops * 1e9) : 0;
}

}  // namespace

namespace {

Result<std::vector<ModelTask>> tasks_of(graph::Graph graph) {
  KILN_RETURN_IF_ERROR(graph::optimize_graph(graph));
  std::vector<ModelTask> tasks;
  for (const graph::Task& t : graph::extract_tasks(graph)) tasks.push_back({t.workload, t.count});
  if (tasks.empty()) {
    return Status(StatusCode::kFailedPrecondition,
                  "the model has no convolution, dense or matmul layer with constant weights: "
                  "nothing to tune");
  }
  return tasks;
}

frontend::OnnxImportOptions import_options() {
  frontend::OnnxImportOptions options;
  options.max_file_bytes = kMaxModelBytes;
  return options;
}

/// InvalidArgument naming the limit when `what` (the model, or its file) has more bytes.
Status check_model_size(uintmax_t bytes, const std::string& what) {
  if (bytes <= uintmax_t(kMaxModelBytes)) return Status::ok();
  return invalid_argument(what + " is " + std::to_string(bytes) +
                          " bytes; kiln tunes models of up to " + std::to_string(kMaxModelBytes) +
                          " bytes (" + std::to_string(kMaxModelBytes >> 20) + " MiB)");
}

}  // namespace

Result<std::vector<ModelTask>> extract_model_tasks(const std::string& bytes) {
  KILN_RETURN_IF_ERROR(check_model_size(bytes.size(), "the model"));
  KILN_ASSIGN_OR_RETURN(graph::Graph graph, frontend::import_onnx(bytes, import_options()));
  return tasks_of(std::move(graph));
}

Result<std::string> read_model_file(const std::string& path) {
  std::error_code error;
  const uintmax_t size = std::filesystem::file_size(path, error);
  if (error) {
    return Status(StatusCode::kNotFound, "cannot read model '" + path + "': " + error.message());
  }
  KILN_RETURN_IF_ERROR(check_model_size(size, "model '" + path + "'"));
  std::ifstream in(path, std::ios::binary);
  std::string bytes(size_t(size), '\0');
  if (!in.read(bytes.data(), std::streamsize(size))) {
    return Status(StatusCode::kNotFound,
                  "cannot read all " + std::to_string(size) + " bytes of model '" + path + "'");
  }
  return bytes;
}

Result<std::vector<ModelTask>> extract_model_tasks_from_file(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, read_model_file(path));
  Result<std::vector<ModelTask>> tasks = extract_model_tasks(bytes);
  if (!tasks.is_ok()) {
    return Status(tasks.status().code(), "model '" + path + "': " + tasks.status().message());
  }
  return tasks;
}

Result<TaskSchedule> parse_task_schedule(std::string_view name) {
  if (name == "gradient") return TaskSchedule::kGradient;
  if (name == "round-robin") return TaskSchedule::kRoundRobin;
  return invalid_argument("unknown scheduler '" + std::string(name) +
                          "': use gradient or round-robin");
}

std::string_view task_schedule_name(TaskSchedule schedule) {
  return schedule == TaskSchedule::kGradient ? "gradient" : "round-robin";
}

TaskScheduler::TaskScheduler(std::vector<int64_t> weights, SchedulerOptions options)
    : weights_(std::move(weights)),
      options_(options),
      history_(weights_.size()),
      set_aside_(weights_.size(), false),
      rng_(options.seed) {}

void TaskScheduler::record_round(size_t task, double best_time_s) {
  history_[task].push_back(best_time_s > 0 ? best_time_s : kInf);
}

void TaskScheduler::set_aside(size_t task) { set_aside_[task] = true; }

double TaskScheduler::gradient(size_t task) const {
  const std::vector<double>& h = history_[task];
  const double best = h.back();
  const double rounds = double(h.size());
  const size_t window = size_t(std::max(options_.backward_window, 1));
  double backward = 0;
  if (h.size() > window && std::isfinite(h[h.size() - 1 - window])) {
    backward = (best - h[h.size() - 1 - window]) / double(window);
  }
  const double forward = -best / rounds;
  return double(weights_[task]) * (options_.alpha * backward + (1 - options_.alpha) * forward);
}

std::optional<size_t> TaskScheduler::next() {
  std::vector<size_t> live;
  for (size_t i = 0; i < weights_.size(); ++i) {
    if (!set_aside_[i]) live.push_back(i);
  }
  if (live.empty()) return std::nullopt;
  auto choose = [&](size_t i) {
    last_ = i;
    return std::optional<size_t>(i);
  };
  for (size_t i : live) {
    if (history_[i].empty()) return choose(i);
  }
  // A task with no valid config keeps the estimate infinite: it goes first, fewest rounds first.
  std::optional<size_t> invalid;
  for (size_t i : live) {
    if (!std::isfinite(history_[i].back()) &&
        (!invalid || history_[i].size() < history_[*invalid].size())) {
      invalid = i;
    }
  }
  if (invalid) return choose(*invalid);
  if (options_.kind == TaskSchedule::kRoundRobin) {
    for (size_t i : live) {
      if (last_ == size_t(-1) || i > last_) return choose(i);
    }
    return choose(live.front());
  }
  if (std::uniform_real_distribution<double>(0, 1)(rng_) < options_.epsilon) {
    return choose(live[std::uniform_int_distribution<size_t>(0, live.size() - 1)(rng_)]);
  }
  size_t steepest = live.front();
  for (size_t i : live) {
    if (gradient(i) < gradient(steepest)) steepest = i;
  }
  return choose(steepest);
}

double TaskScheduler::estimated_latency_s() const {
  double latency = 0;
  for (size_t i = 0; i < weights_.size(); ++i) {
    if (history_[i].empty()) return kInf;
    latency += double(weights_[i]) * history_[i].back();
  }
  return latency;
}

Result<ModelTuneSummary> run_model_tuning(
    const std::vector<ModelTask>& tasks, const core::Target& target, core::TuningLog& log,
    const ModelTuneOptions& options, const TaskMeasurerFactory& make_measurer,
    const std::function<void(const ModelTuneProgress&)>& progress) {
  const auto start = Clock::now();
  KILN_ASSIGN_OR_RETURN(core::TargetKey key, core::make_target_key(target, options.task.threads));
  std::vector<std::unique_ptr<TaskState>> states;
  std::vector<int64_t> weights;
  for (const ModelTask& task : tasks) {
    auto state = std::make_unique<TaskState>();
    state->task = task;
    KILN_ASSIGN_OR_RETURN(state->workload, core::parse_workload(task.workload));
    KILN_ASSIGN_OR_RETURN(state->space, core::config_space(state->workload, target));
    weights.push_back(task.weight);
    states.push_back(std::move(state));
  }
  TaskScheduler scheduler(weights, options.schedule);
  const int batch = std::max(options.task.batch, 1);

  auto start_search = [&](TaskState& state) -> Status {
    const core::Workload& workload = state.workload;
    const core::ConfigSpace& space = state.space;
    MeasurerFactory factory = [&make_measurer, &workload, &space]() {
      return make_measurer(workload, space);
    };
    KILN_ASSIGN_OR_RETURN(state.search, TaskSearch::start(workload, target, space, log,
                                                          options.task, std::move(factory)));
    return Status::ok();
  };
  // Whether task i may have no more trials: its cap, its patience.
  auto finished = [&](const TaskState& state) {
    const TuneSummary& s = state.search->summary();
    if (options.max_task_trials > 0 && s.trials >= options.max_task_trials) return true;
    return options.task_patience > 0 &&
           state.search->trials_since_improvement() >= options.task_patience;
  };

  // Resume: tasks with records in the log start now, their rounds rebuilt from their trials.
  int64_t total = 0;
  for (size_t i = 0; i < states.size(); ++i) {
    TaskState& state = *states[i];
    // Whether it has any record: the latest one says (the search reads them all).
    KILN_ASSIGN_OR_RETURN(std::vector<core::TuningRecord> latest,
                          log.history(state.workload, key, /*limit=*/1));
    if (latest.empty()) continue;
    KILN_RETURN_IF_ERROR(start_search(state));
    const TuneSummary& s = state.search->summary();
    total += s.trials;
    for (int64_t end = std::min<int64_t>(batch, s.trials); end > 0;
         end = end == s.trials ? 0 : std::min<int64_t>(end + batch, s.trials)) {
      scheduler.record_round(i, time_of(state.workload, s.best_so_far[size_t(end - 1)]));
    }
    if (finished(state)) scheduler.set_aside(i);
  }

  ModelTuneSummary summary;
  summary.resumed = total;
  if (total > 0) {
    logger("tuner")->info("resuming model job: {} trials of {} tasks in {}", total, states.size(),
                          log.path().string());
  }
  while (total < options.trials) {
    if (options.task.stop_requested && options.task.stop_requested()) {
      summary.stopped = true;
      logger("tuner")->info("stopped model job after {} trials", total);
      break;
    }
    std::optional<size_t> next = scheduler.next();
    if (!next) break;
    TaskState& state = *states[*next];
    if (!state.search) KILN_RETURN_IF_ERROR(start_search(state));
    int64_t n = std::min<int64_t>(batch, options.trials - total);
    if (options.max_task_trials > 0) {
      n = std::min(n, options.max_task_trials - state.search->summary().trials);
    }
    KILN_ASSIGN_OR_RETURN(int64_t ran, state.search->step(int(n)));
    if (ran == 0) {  // every config of its space is measured
      scheduler.set_aside(*next);
      continue;
    }
    total += ran;
    scheduler.record_round(*next, state.search->summary().best_time_s);
    if (finished(state)) scheduler.set_aside(*next);
    const double latency = scheduler.estimated_latency_s();
    if (std::isfinite(latency)) summary.latency_curve.emplace_back(total, latency);
    if (progress) {
      ModelTuneProgress p;
      p.trials = total;
      p.tasks = int64_t(states.size());
      for (size_t i = 0; i < states.size(); ++i) p.tasks_done += scheduler.is_set_aside(i) ? 1 : 0;
      p.latency_s = latency;
      p.last_workload = state.task.workload;
      p.elapsed_s = seconds_since(start);
      const int64_t done = total - summary.resumed;
      p.eta_s = p.elapsed_s / double(done) * double(std::max<int64_t>(options.trials - total, 0));
      progress(p);
    }
  }
  if (!summary.latency_curve.empty()) {
    const double final_latency = summary.latency_curve.back().second;
    for (const auto& [trials, latency] : summary.latency_curve) {
      if (latency * 0.95 <= final_latency) {
        summary.trials_to_95pct = trials;
        break;
      }
    }
  }

  summary.trials = total;
  summary.latency_s = 0;
  for (size_t i = 0; i < states.size(); ++i) {
    TaskState& state = *states[i];
    ModelTaskSummary t;
    t.task = state.task;
    t.set_aside = scheduler.is_set_aside(i);
    if (state.search) {
      KILN_RETURN_IF_ERROR(state.search->finish(/*remeasure=*/!summary.stopped));
      const TuneSummary& s = state.search->summary();
      t.trials = s.trials;
      t.valid = s.valid;
      if (s.found) {
        t.best_time_s = s.best_time_s;
        t.best_gflops = s.best_gflops;
        t.best_config_json = state.space.to_json(s.best);
      }
      summary.measure_s += s.measure_s;
    }
    summary.latency_s = t.best_time_s > 0 && std::isfinite(summary.latency_s)
                            ? summary.latency_s + double(t.task.weight) * t.best_time_s
                            : kInf;
    summary.tasks.push_back(std::move(t));
  }
  summary.wall_s = seconds_since(start);
  return summary;
}

}  // namespace kiln::tuner
