#include "tuner/service/job_manager.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include <openssl/evp.h>
#include <spdlog/fmt/fmt.h>
#include <nlohmann/json.hpp>

#include "compiler_core/db/tuning_log.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/support/check.h"
#include "compiler_core/support/file.h"
#include "compiler_core/support/log.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"
#include "tuner/measure/fleet_measurer.h"
#include "tuner/measure/local_measurer.h"
#include "tuner/model_tuning.h"
#include "tuner/strategy/strategy.h"

namespace kiln::tuner {
namespace {

/// The SHA-256 digest of `bytes` (OpenSSL's), as 64 lower-case hex digits.
std::string sha256_hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  KILN_CHECK(EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr) == 1)
      << "OpenSSL's SHA-256 failed";
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < size; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

namespace fs = std::filesystem;

constexpr const char* kJobsFileKind = "kiln-jobs";
// How long StartJob and ResumeJob wait for a board of the job's key when its target (`llvm`)
// means the key's boards and none is connected yet.
constexpr std::chrono::seconds kWaitForBoard{10};
// Trials of a job whose spec gives none (a model job: per task).
constexpr int64_t kDefaultTrials = 200;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<JobState> job_state_from_name(std::string_view name) {
  for (JobState s : {JobState::kRunning, JobState::kSucceeded, JobState::kFailed,
                     JobState::kCancelled, JobState::kInterrupted}) {
    if (job_state_name(s) == name) return s;
  }
  return invalid_argument("unknown job state '" + std::string(name) + "'");
}

nlohmann::json spec_to_json(const JobSpec& s) {
  return {{"workload", s.workload},
          {"target", s.target},
          {"trials", s.trials},
          {"tuner", s.tuner},
          {"seed", s.seed},
          {"batch", s.batch},
          {"early_stopping", s.early_stopping},
          {"threads", s.threads},
          {"device_key", s.device_key},
          {"model_path", s.model_path},
          {"model_name", s.model_name},
          {"scheduler", s.scheduler},
          {"max_task_trials", s.max_task_trials}};
}

JobSpec spec_from_json(const nlohmann::json& j) {
  JobSpec s;
  s.workload = j.at("workload").get<std::string>();
  s.target = j.at("target").get<std::string>();
  s.trials = j.at("trials").get<int64_t>();
  s.tuner = j.at("tuner").get<std::string>();
  s.seed = j.at("seed").get<uint64_t>();
  s.batch = j.at("batch").get<int>();
  s.early_stopping = j.at("early_stopping").get<int64_t>();
  s.threads = j.at("threads").get<int>();
  s.device_key = j.at("device_key").get<std::string>();
  // Jobs files written before model jobs existed lack these.
  s.model_path = j.value("model_path", "");
  s.model_name = j.value("model_name", "");
  s.scheduler = j.value("scheduler", "");
  s.max_task_trials = j.value("max_task_trials", int64_t{0});
  return s;
}

nlohmann::json tasks_to_json(const std::vector<ModelTaskSummary>& tasks) {
  nlohmann::json out = nlohmann::json::array();
  for (const ModelTaskSummary& t : tasks) {
    out.push_back({{"workload", t.task.workload},
                   {"weight", t.task.weight},
                   {"trials", t.trials},
                   {"valid", t.valid},
                   {"best_time_s", t.best_time_s},
                   {"best_gflops", t.best_gflops},
                   {"best_config", t.best_config_json},
                   {"set_aside", t.set_aside}});
  }
  return out;
}

std::vector<ModelTaskSummary> tasks_from_json(const nlohmann::json& j) {
  std::vector<ModelTaskSummary> tasks;
  for (const nlohmann::json& t : j) {
    ModelTaskSummary task;
    task.task = {t.at("workload").get<std::string>(), t.at("weight").get<int64_t>()};
    task.trials = t.at("trials").get<int64_t>();
    task.valid = t.at("valid").get<int64_t>();
    task.best_time_s = t.at("best_time_s").get<double>();
    task.best_gflops = t.at("best_gflops").get<double>();
    task.best_config_json = t.at("best_config").get<std::string>();
    task.set_aside = t.at("set_aside").get<bool>();
    tasks.push_back(std::move(task));
  }
  return tasks;
}

/// What the file keeps of a job: everything but the per-trial and per-batch curves.
nlohmann::json status_to_json(const JobStatus& s) {
  return {{"id", s.id},
          {"spec", spec_to_json(s.spec)},
          {"state", job_state_name(s.state)},
          {"error", s.error},
          {"workload", s.workload},
          {"target", s.target},
          {"trials", s.progress.trials},
          {"valid", s.progress.valid},
          {"best_gflops", s.progress.best_gflops},
          {"best_time_s", s.progress.best_time_s},
          {"elapsed_s", s.progress.elapsed_s},
          {"best_config", s.best_config_json},
          {"trials_to_95pct", s.trials_to_95pct},
          {"stopped_early", s.stopped_early},
          {"created_ms", s.created_ms},
          {"finished_ms", s.finished_ms},
          {"tasks", tasks_to_json(s.tasks)},
          {"tasks_done", s.tasks_done},
          {"latency_s", s.latency_s}};
}

Result<JobStatus> status_from_json(const nlohmann::json& j) {
  JobStatus s;
  s.id = j.at("id").get<std::string>();
  s.spec = spec_from_json(j.at("spec"));
  KILN_ASSIGN_OR_RETURN(s.state, job_state_from_name(j.at("state").get<std::string>()));
  s.error = j.at("error").get<std::string>();
  s.workload = j.at("workload").get<std::string>();
  s.target = j.at("target").get<std::string>();
  s.progress.trials = j.at("trials").get<int64_t>();
  s.progress.valid = j.at("valid").get<int64_t>();
  s.progress.best_gflops = j.at("best_gflops").get<double>();
  s.progress.best_time_s = j.at("best_time_s").get<double>();
  s.progress.elapsed_s = j.at("elapsed_s").get<double>();
  s.best_config_json = j.at("best_config").get<std::string>();
  s.trials_to_95pct = j.at("trials_to_95pct").get<int64_t>();
  s.stopped_early = j.at("stopped_early").get<bool>();
  s.created_ms = j.at("created_ms").get<int64_t>();
  s.finished_ms = j.at("finished_ms").get<int64_t>();
  s.tasks = tasks_from_json(j.value("tasks", nlohmann::json::array()));
  s.tasks_done = j.value("tasks_done", int64_t{0});
  s.latency_s = j.value("latency_s", 0.0);
  return s;
}

/// The trials, valid trials and best of `workload` that the log holds on `key` (re-measurements
/// are no trials); the best's config in `best_config_json` when there is one.
Result<TuneProgress> trials_in_log(core::TuningLog& log, const std::string& workload_text,
                                   const core::TargetKey& key, std::string& best_config_json) {
  KILN_ASSIGN_OR_RETURN(core::Workload workload, core::parse_workload(workload_text));
  KILN_ASSIGN_OR_RETURN(std::vector<core::TuningRecord> history, log.history(workload, key));
  TuneProgress p;
  for (const core::TuningRecord& r : history) {
    if (is_remeasurement(r)) continue;
    p.trials += 1;
    if (r.error != core::MeasureError::kOk || r.costs.empty()) continue;
    p.valid += 1;
    const double gflops = workload.flops() / r.median_cost() / 1e9;
    if (gflops > p.best_gflops) {
      p.best_gflops = gflops;
      p.best_time_s = r.median_cost();
      p.best.index = r.config_index;
      best_config_json = r.config_json();
    }
  }
  return p;
}

/// Sets the trials, valid trials and bests of `status` (a model job's: of each task, and its
/// estimated latency) to what the tuning log holds of its workloads and target: where a job
/// the server stopped in the middle of really is.
Status count_trials_in_log(const fs::path& db, JobStatus& status) {
  KILN_ASSIGN_OR_RETURN(core::TuningLog log, core::TuningLog::open(db));
  KILN_ASSIGN_OR_RETURN(core::Target target, core::parse_target(status.target));
  KILN_ASSIGN_OR_RETURN(core::TargetKey key, core::make_target_key(target));
  if (!status.spec.is_model()) {
    KILN_ASSIGN_OR_RETURN(status.progress,
                          trials_in_log(log, status.workload, key, status.best_config_json));
    return Status::ok();
  }
  status.progress = TuneProgress{};
  status.latency_s = 0;
  bool every_task_valid = true;
  for (ModelTaskSummary& t : status.tasks) {
    KILN_ASSIGN_OR_RETURN(TuneProgress p,
                          trials_in_log(log, t.task.workload, key, t.best_config_json));
    t.trials = p.trials;
    t.valid = p.valid;
    t.best_time_s = p.best_time_s;
    t.best_gflops = p.best_gflops;
    status.progress.trials += p.trials;
    status.progress.valid += p.valid;
    status.latency_s += double(t.task.weight) * p.best_time_s;
    every_task_valid = every_task_valid && p.valid > 0;
  }
  if (!every_task_valid) status.latency_s = 0;
  return Status::ok();
}

/// Lets one job at a time measure on this machine: two timing at once would disturb each other.
class OneAtATime final : public Measurer {
 public:
  OneAtATime(std::unique_ptr<Measurer> inner, std::mutex& mutex)
      : inner_(std::move(inner)), mutex_(mutex) {}
  Result<std::vector<core::TuningRecord>> measure(const std::vector<core::Config>& configs,
                                                  const core::TimingOptions& timing) override {
    std::lock_guard<std::mutex> lock(mutex_);
    return inner_->measure(configs, timing);
  }

 private:
  std::unique_ptr<Measurer> inner_;
  std::mutex& mutex_;
};

}  // namespace

std::string_view job_state_name(JobState state) {
  switch (state) {
    case JobState::kRunning:
      return "running";
    case JobState::kSucceeded:
      return "succeeded";
    case JobState::kFailed:
      return "failed";
    case JobState::kCancelled:
      return "cancelled";
    case JobState::kInterrupted:
      return "interrupted";
  }
  return "unknown";
}

struct JobManager::Impl {
  /// What a job's thread tunes: one workload's problem, or the tasks of a model on a target.
  struct Plan {
    core::Target target;                     // resolved
    std::unique_ptr<TuningProblem> problem;  // a workload job
    std::vector<ModelTask> tasks;            // a model job

    /// The workloads whose trials the job appends to the log.
    std::vector<std::string> workloads() const {
      if (problem) return {problem->workload.canonical()};
      std::vector<std::string> out;
      for (const ModelTask& t : tasks) out.push_back(t.workload);
      return out;
    }
  };

  struct Job {
    JobStatus status;  // under Impl::mutex
    std::unique_ptr<Plan> plan;
    std::atomic<bool> stop{false};
    JobState stop_as = JobState::kCancelled;  // under Impl::mutex
    std::thread thread;
    bool thread_done = true;  // under Impl::mutex
    // Listener calls go one at a time, in the order of the changes (taken before Impl::mutex).
    std::recursive_mutex notify_mutex;
    std::map<uint64_t, Listener> listeners;  // under notify_mutex
  };

  JobManagerOptions options;
  mutable std::mutex mutex;
  std::condition_variable thread_ended;
  std::vector<std::unique_ptr<Job>> jobs;  // oldest first
  int64_t next_id = 1;
  std::map<uint64_t, Job*> watches;  // under mutex
  uint64_t next_watch = 1;
  std::shared_ptr<grpc::Channel> tracker;
  std::string tracker_name;
  std::mutex local_measure;  // one local job measures at a time
  std::mutex model_store;    // one StartJob at a time writes a model file

  Job* find(const std::string& id) const {
    for (const auto& job : jobs) {
      if (job->status.id == id) return job.get();
    }
    return nullptr;
  }

  /// Writes every job to the jobs file, replacing it whole. Under mutex.
  Status persist() const {
    nlohmann::json all = nlohmann::json::array();
    for (const auto& job : jobs) all.push_back(status_to_json(job->status));
    const nlohmann::json file = {{"kind", kJobsFileKind}, {"next_id", next_id}, {"jobs", all}};
    Status written = write_file_atomically(options.jobs_file, file.dump(1) + "\n");
    if (!written.is_ok()) {
      return Status(StatusCode::kUnavailable, "cannot replace the jobs file '" +
                                                  options.jobs_file.string() +
                                                  "': " + written.message());
    }
    return Status::ok();
  }

  void persist_or_log() const {
    Status s = persist();
    if (!s.is_ok()) logger("serve")->error("{}", s.to_string());
  }

  /// Calls the job's listeners with its status now; after a final state, forgets them.
  void notify(Job& job) {
    std::lock_guard<std::recursive_mutex> calls(job.notify_mutex);
    JobStatus snapshot;
    {
      std::lock_guard<std::mutex> lock(mutex);
      snapshot = job.status;
    }
    for (auto& [handle, listener] : job.listeners) listener(snapshot);
    if (snapshot.state != JobState::kRunning) job.listeners.clear();
  }

  /// AlreadyExists when a job other than `self` runs now on `plan`'s target and appends
  /// trials of one of its workloads: two jobs would measure the same configs. Under mutex.
  Status check_no_twin(const Plan& plan, const Job* self) const {
    const std::vector<std::string> mine = plan.workloads();
    for (const auto& job : jobs) {
      if (job.get() == self || job->status.state != JobState::kRunning || !job->plan) continue;
      if (job->status.target != plan.target.str()) continue;
      for (const std::string& workload : job->plan->workloads()) {
        if (std::find(mine.begin(), mine.end(), workload) == mine.end()) continue;
        return Status(StatusCode::kAlreadyExists,
                      "job " + job->status.id + " is tuning " + workload +
                          " on this target; watch it, or cancel it first");
      }
    }
    return Status::ok();
  }

  /// Exactly one of workload, model and model_path; the model knobs only with a model.
  static Status check_source(const JobSpec& spec) {
    const int given =
        int(!spec.workload.empty()) + int(!spec.model.empty()) + int(!spec.model_path.empty());
    if (given != 1) {
      return invalid_argument(
          "a job tunes a workload, a model (its bytes) or a model_path: give exactly one of "
          "them");
    }
    if (!spec.is_model() && (!spec.scheduler.empty() || spec.max_task_trials != 0)) {
      return invalid_argument("scheduler and max_task_trials are for model jobs");
    }
    return Status::ok();
  }

  /// The checks of a spec that need neither the tracker nor the tuning log.
  static Status check_spec(const JobSpec& spec) {
    KILN_RETURN_IF_ERROR(check_source(spec));
    if (spec.trials < 1) return invalid_argument("trials must be at least 1");
    if (spec.batch < 1 || spec.batch > 4096) {
      return invalid_argument("batch must be between 1 and 4096");
    }
    if (spec.early_stopping < 0) return invalid_argument("early_stopping must not be negative");
    if (spec.threads < 0 || spec.threads > 1024) {
      return invalid_argument("threads must be between 0 and 1024");
    }
    if (spec.max_task_trials < 0) return invalid_argument("max_task_trials must not be negative");
    KILN_RETURN_IF_ERROR(check_strategy_name(spec.tuner));
    if (spec.is_model()) {
      KILN_RETURN_IF_ERROR(parse_task_schedule(spec.scheduler).status());
    } else {
      KILN_RETURN_IF_ERROR(core::parse_workload(spec.workload).status());
    }
    return core::parse_target(spec.target).status();
  }

  /// Stores model bytes as models/SHA256.onnx beside the jobs file (kept when it is there
  /// already); returns the file's path.
  Result<std::string> store_model(const std::string& bytes) {
    const fs::path folder = fs::absolute(options.jobs_file).parent_path() / "models";
    const fs::path path = folder / (sha256_hex(bytes) + ".onnx");
    std::lock_guard<std::mutex> lock(model_store);
    std::error_code error;
    if (fs::file_size(path, error) == bytes.size() && !error) return path.string();
    fs::create_directories(folder, error);
    if (error) {
      return Status(StatusCode::kUnavailable, "cannot make the folder '" + folder.string() +
                                                  "' for the job's model: " + error.message());
    }
    Status written = write_file_atomically(path, bytes);
    if (!written.is_ok()) {
      return Status(StatusCode::kUnavailable, "cannot store the job's model: " + written.message());
    }
    return path.string();
  }

  /// A model job's tasks (none for a workload job), read from the bytes, which go to a file
  /// that model_path then names, or from model_path. Completes the spec: the model's name,
  /// the scheduler, and the trials when it gives none.
  Result<std::vector<ModelTask>> read_model(JobSpec& spec) {
    KILN_RETURN_IF_ERROR(check_source(spec));
    std::vector<ModelTask> tasks;
    if (!spec.model.empty()) {
      KILN_ASSIGN_OR_RETURN(tasks, extract_model_tasks(spec.model));
      KILN_ASSIGN_OR_RETURN(spec.model_path, store_model(spec.model));
      std::string().swap(spec.model);  // frees them: the spec lives as long as the job
    } else if (!spec.model_path.empty()) {
      Result<std::vector<ModelTask>> read = extract_model_tasks_from_file(spec.model_path);
      if (!read.is_ok() && read.status().code() == StatusCode::kNotFound) {
        return invalid_argument("the server cannot read model_path: " + read.status().message() +
                                "; send the model's bytes instead");
      }
      KILN_ASSIGN_OR_RETURN(tasks, std::move(read));
    }
    if (spec.is_model()) {
      if (spec.model_name.empty()) spec.model_name = fs::path(spec.model_path).filename().string();
      if (spec.scheduler.empty()) spec.scheduler = task_schedule_name(TaskSchedule::kGradient);
    }
    if (spec.trials == 0) spec.trials = kDefaultTrials * int64_t(std::max<size_t>(tasks.size(), 1));
    return tasks;
  }

  /// The target a job of `spec` measures: as named, or for a fleet job the key's boards'
  /// (fleet_target), which may wait for a board to connect. A spec that fails check_spec
  /// fails at once. Takes the mutex briefly.
  Result<std::string> board_target(const JobSpec& spec) {
    KILN_RETURN_IF_ERROR(check_spec(spec));
    if (spec.device_key.empty()) return spec.target;
    FleetSettings boards;
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (!tracker) return spec.target;  // prepare() refuses the job
      boards.channel = tracker;
      boards.tracker = tracker_name;
    }
    boards.device_key = spec.device_key;
    boards.token = options.tracker_token;
    boards.wait_for_board = kWaitForBoard;
    return fleet_target(spec.target, boards);
  }

  /// Parses and checks a spec whose target board_target gave, with its model's `tasks`; what
  /// the job tunes. InvalidArgument for a task with no config space on the target.
  Result<std::unique_ptr<Plan>> prepare(const JobSpec& spec, const std::string& target,
                                        std::vector<ModelTask> tasks) const {
    KILN_RETURN_IF_ERROR(check_spec(spec));
    const bool fleet = !spec.device_key.empty();
    if (fleet && !tracker) {
      return Status(StatusCode::kFailedPrecondition,
                    "this server hosts no tracker (kiln serve --no-tracker): start the job "
                    "without a device key to measure on the server's machine");
    }
    auto plan = std::make_unique<Plan>();
    if (!spec.is_model()) {
      KILN_ASSIGN_OR_RETURN(plan->problem, prepare_tuning(spec.workload, target, fleet));
      plan->target = plan->problem->target;
      return plan;
    }
    KILN_ASSIGN_OR_RETURN(plan->target, prepare_target(target, fleet));
    for (const ModelTask& task : tasks) {
      KILN_ASSIGN_OR_RETURN(core::Workload workload, core::parse_workload(task.workload));
      Status space = core::config_space(workload, plan->target).status();
      if (!space.is_ok()) {
        return Status(space.code(), "task " + task.workload + " of the model: " + space.message());
      }
    }
    plan->tasks = std::move(tasks);
    return plan;
  }

  /// Starts the job's thread. Under mutex.
  void launch(Job& job) {
    job.stop = false;
    job.thread_done = false;
    job.status.state = JobState::kRunning;
    job.status.error.clear();
    job.status.finished_ms = 0;
    job.status.best_so_far.clear();
    job.status.latency_curve.clear();
    job.thread = std::thread([this, &job] { run(job); });
  }

  /// The measurer of `workload` for the job: on the fleet of its device key, or on this
  /// machine one job at a time.
  Result<std::unique_ptr<Measurer>> make_measurer(Job& job, const core::Workload& workload,
                                                  const core::Target& target,
                                                  const core::ConfigSpace& space) {
    const JobSpec& spec = job.status.spec;
    if (!spec.device_key.empty()) {
      FleetSettings fleet;
      {
        std::lock_guard<std::mutex> lock(mutex);
        fleet.channel = tracker;
        fleet.tracker = tracker_name;
      }
      fleet.device_key = spec.device_key;
      fleet.token = options.tracker_token;
      fleet.threads = spec.threads;
      fleet.stop_requested = [&job] { return job.stop.load(); };
      KILN_ASSIGN_OR_RETURN(std::unique_ptr<FleetMeasurer> m,
                            FleetMeasurer::create(workload, target, space, fleet));
      return std::unique_ptr<Measurer>(std::move(m));
    }
    MeasureSettings local;
    local.threads =
        spec.threads > 0 ? spec.threads : int(std::max(1u, std::thread::hardware_concurrency()));
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<LocalMeasurer> m,
                          LocalMeasurer::create(workload, target, space, local));
    return std::unique_ptr<Measurer>(std::make_unique<OneAtATime>(std::move(m), local_measure));
  }

  /// The state of a job whose run returned `error`: stopped in the middle of a batch, or
  /// failed. Under mutex.
  static void end_with_error(Job& job, const Status& error) {
    if (job.stop) {
      job.status.state = job.stop_as;
      return;
    }
    job.status.state = JobState::kFailed;
    job.status.error = error.to_string();
  }

  void run(Job& job) {
    if (job.plan->problem) {
      run_workload(job);
    } else {
      run_model(job);
    }
    {
      std::lock_guard<std::mutex> lock(mutex);
      JobStatus& s = job.status;
      s.finished_ms = now_ms();
      job.thread_done = true;
      persist_or_log();
      const std::string best = s.spec.is_model()
                                   ? fmt::format("latency={:.3f} ms", s.latency_s * 1e3)
                                   : fmt::format("best={:.1f} GFLOP/s", s.progress.best_gflops);
      logger("serve")->info("job {} {} trials={} {}{}", s.id, job_state_name(s.state),
                            s.progress.trials, best, s.error.empty() ? "" : " error=" + s.error);
    }
    thread_ended.notify_all();
    notify(job);
  }

  TuneOptions tune_options(Job& job) const {
    const JobSpec& spec = job.status.spec;
    TuneOptions tune;
    tune.tuner = spec.tuner;
    tune.trials = spec.trials;
    tune.batch = spec.batch;
    tune.seed = spec.seed;
    tune.stop_requested = [&job] { return job.stop.load(); };
    return tune;
  }

  /// One workload through the tuning loop.
  void run_workload(Job& job) {
    const JobSpec& spec = job.status.spec;
    const TuningProblem& problem = *job.plan->problem;
    logger("serve")->info("job {} running workload={} target={} trials={} device_key={}",
                          job.status.id, problem.workload.canonical(), problem.target.str(),
                          spec.trials, spec.device_key.empty() ? "(local)" : spec.device_key);
    Result<TuneSummary> summary = [&]() -> Result<TuneSummary> {
      KILN_ASSIGN_OR_RETURN(core::TuningLog log, core::TuningLog::open(options.db));
      TuneOptions tune = tune_options(job);
      tune.early_stopping = spec.early_stopping;
      auto measurer = [&] {
        return make_measurer(job, problem.workload, problem.target, problem.space);
      };
      auto progress = [&](const TuneProgress& p) {
        {
          std::lock_guard<std::mutex> lock(mutex);
          job.status.progress = p;
          if (p.best_gflops > 0) job.status.best_config_json = problem.space.to_json(p.best);
        }
        notify(job);
      };
      return run_tuning(problem.workload, problem.target, problem.space, log, tune, measurer,
                        progress);
    }();
    std::lock_guard<std::mutex> lock(mutex);
    if (!summary.is_ok()) return end_with_error(job, summary.status());
    JobStatus& s = job.status;
    s.progress.trials = summary->trials;
    s.progress.valid = summary->valid;
    s.progress.best_gflops = summary->best_gflops;
    s.progress.best_time_s = summary->best_time_s;
    s.progress.best = summary->best;
    s.progress.elapsed_s = summary->wall_s;
    s.progress.eta_s = 0;
    if (summary->found) s.best_config_json = problem.space.to_json(summary->best);
    s.trials_to_95pct = summary->trials_to_95pct;
    s.stopped_early = summary->stopped_early;
    s.best_so_far = summary->best_so_far;
    if (summary->stopped) {
      s.state = job.stop_as;
    } else if (!summary->found) {
      s.state = JobState::kFailed;
      s.error = "no valid config among " + std::to_string(summary->trials) + " trials";
    } else {
      s.state = JobState::kSucceeded;
    }
  }

  /// Every task of a model through the model tuner.
  void run_model(Job& job) {
    const JobSpec& spec = job.status.spec;
    const Plan& plan = *job.plan;
    logger("serve")->info("job {} running model={} tasks={} target={} trials={} device_key={}",
                          job.status.id, spec.model_name, plan.tasks.size(), plan.target.str(),
                          spec.trials, spec.device_key.empty() ? "(local)" : spec.device_key);
    Result<ModelTuneSummary> summary = [&]() -> Result<ModelTuneSummary> {
      KILN_ASSIGN_OR_RETURN(core::TuningLog log, core::TuningLog::open(options.db));
      ModelTuneOptions tune;
      tune.task = tune_options(job);
      tune.trials = spec.trials;
      tune.max_task_trials = spec.max_task_trials;
      tune.task_patience = spec.early_stopping;
      KILN_ASSIGN_OR_RETURN(tune.schedule.kind, parse_task_schedule(spec.scheduler));
      tune.schedule.seed = spec.seed;
      TaskMeasurerFactory measurer = [&](const core::Workload& workload,
                                         const core::ConfigSpace& space) {
        return make_measurer(job, workload, plan.target, space);
      };
      auto progress = [&](const ModelTuneProgress& p) {
        {
          std::lock_guard<std::mutex> lock(mutex);
          JobStatus& s = job.status;
          s.progress.trials = p.trials;
          s.progress.elapsed_s = p.elapsed_s;
          s.progress.eta_s = p.eta_s;
          s.tasks_done = p.tasks_done;
          s.latency_s = std::isfinite(p.latency_s) ? p.latency_s : 0;
        }
        notify(job);
      };
      return run_model_tuning(plan.tasks, plan.target, log, tune, measurer, progress);
    }();
    std::lock_guard<std::mutex> lock(mutex);
    if (!summary.is_ok()) return end_with_error(job, summary.status());
    JobStatus& s = job.status;
    s.progress = TuneProgress{};
    s.progress.trials = summary->trials;
    s.progress.elapsed_s = summary->wall_s;
    s.tasks = summary->tasks;
    s.tasks_done = 0;
    for (const ModelTaskSummary& t : s.tasks) {
      s.progress.valid += t.valid;
      s.tasks_done += t.set_aside ? 1 : 0;
    }
    const bool known = std::isfinite(summary->latency_s);
    s.latency_s = known ? summary->latency_s : 0;
    s.latency_curve = summary->latency_curve;
    s.trials_to_95pct = summary->trials_to_95pct;
    if (summary->stopped) {
      s.state = job.stop_as;
      return;
    }
    if (known) {
      s.state = JobState::kSucceeded;
      return;
    }
    s.state = JobState::kFailed;
    for (const ModelTaskSummary& t : s.tasks) {
      if (t.best_time_s > 0) continue;
      s.error = "no valid config of task " + t.task.workload + " among its " +
                std::to_string(t.trials) + " trials";
      break;
    }
  }
};

JobManager::JobManager(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

JobManager::~JobManager() {
  interrupt_all(std::chrono::minutes(10));
  for (auto& job : impl_->jobs) {
    if (job->thread.joinable()) job->thread.join();
  }
}

Result<std::unique_ptr<JobManager>> JobManager::open(const JobManagerOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  std::error_code error;
  if (fs::exists(options.jobs_file, error)) {
    std::ifstream in(options.jobs_file);
    nlohmann::json file = nlohmann::json::parse(in, nullptr, false);
    auto not_jobs = [&](const std::string& why) {
      return invalid_argument("'" + options.jobs_file.string() + "' is not a kiln jobs file: " +
                              why + "; move it away or pass another --jobs file");
    };
    if (file.is_discarded() || !file.is_object() || file.value("kind", "") != kJobsFileKind) {
      return not_jobs("it is not JSON of kind " + std::string(kJobsFileKind));
    }
    try {
      impl->next_id = file.at("next_id").get<int64_t>();
      for (const nlohmann::json& j : file.at("jobs")) {
        KILN_ASSIGN_OR_RETURN(JobStatus status, status_from_json(j));
        auto job = std::make_unique<Impl::Job>();
        job->status = std::move(status);
        if (job->status.state == JobState::kRunning) {
          job->status.state = JobState::kInterrupted;
          KILN_RETURN_IF_ERROR(count_trials_in_log(options.db, job->status));
          logger("serve")->info(
              "job {} was running when the server stopped: interrupted at {} trials",
              job->status.id, job->status.progress.trials);
        }
        impl->jobs.push_back(std::move(job));
      }
    } catch (const nlohmann::json::exception& e) {
      return not_jobs(e.what());
    }
    KILN_RETURN_IF_ERROR(impl->persist());
  }
  return std::unique_ptr<JobManager>(new JobManager(std::move(impl)));
}

void JobManager::set_tracker(std::shared_ptr<grpc::Channel> channel, std::string name) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->tracker = std::move(channel);
  impl_->tracker_name = std::move(name);
}

Result<JobStatus> JobManager::start(const JobSpec& request) {
  Impl& m = *impl_;
  // Without the lock: reading a model and waiting for a board take time.
  JobSpec spec = request;
  KILN_ASSIGN_OR_RETURN(std::vector<ModelTask> tasks, m.read_model(spec));
  KILN_ASSIGN_OR_RETURN(std::string target, m.board_target(spec));
  std::lock_guard<std::mutex> lock(m.mutex);
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Impl::Plan> plan,
                        m.prepare(spec, target, std::move(tasks)));
  KILN_RETURN_IF_ERROR(m.check_no_twin(*plan, nullptr));
  auto job = std::make_unique<Impl::Job>();
  JobStatus& s = job->status;
  s.id = "job-" + std::to_string(m.next_id++);
  s.spec = std::move(spec);
  if (plan->problem) s.workload = plan->problem->workload.canonical();
  s.target = plan->target.str();
  for (const ModelTask& task : plan->tasks) s.tasks.push_back({.task = task});
  s.created_ms = now_ms();
  job->plan = std::move(plan);
  m.jobs.push_back(std::move(job));
  Impl::Job& added = *m.jobs.back();
  m.launch(added);
  KILN_RETURN_IF_ERROR(m.persist());
  return added.status;
}

Result<JobStatus> JobManager::resume(const std::string& id) {
  Impl& m = *impl_;
  // The model and the boards' target first, without the lock: it may wait for a board.
  JobSpec spec;
  {
    std::lock_guard<std::mutex> lock(m.mutex);
    Impl::Job* job = m.find(id);
    if (!job) return Status(StatusCode::kNotFound, "no job '" + id + "'");
    spec = job->status.spec;
  }
  KILN_ASSIGN_OR_RETURN(std::vector<ModelTask> tasks, m.read_model(spec));
  KILN_ASSIGN_OR_RETURN(std::string target, m.board_target(spec));
  std::lock_guard<std::mutex> lock(m.mutex);
  Impl::Job* job = m.find(id);
  if (!job) return Status(StatusCode::kNotFound, "no job '" + id + "'");
  const JobState state = job->status.state;
  if (state == JobState::kRunning || state == JobState::kSucceeded) {
    return Status(StatusCode::kFailedPrecondition,
                  "job " + id + " is " + std::string(job_state_name(state)) +
                      "; only an interrupted, failed or cancelled job resumes");
  }
  if (!job->thread_done) {
    return Status(StatusCode::kFailedPrecondition, "job " + id + " is still stopping; try again");
  }
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Impl::Plan> plan,
                        m.prepare(job->status.spec, target, std::move(tasks)));
  KILN_RETURN_IF_ERROR(m.check_no_twin(*plan, job));
  if (job->thread.joinable()) job->thread.join();  // it has ended: thread_done
  job->plan = std::move(plan);
  m.launch(*job);
  KILN_RETURN_IF_ERROR(m.persist());
  return job->status;
}

Result<JobStatus> JobManager::cancel(const std::string& id) {
  Impl& m = *impl_;
  Impl::Job* job = nullptr;
  {
    std::lock_guard<std::mutex> lock(m.mutex);
    job = m.find(id);
    if (!job) return Status(StatusCode::kNotFound, "no job '" + id + "'");
    const JobState state = job->status.state;
    if (state == JobState::kRunning) {
      job->stop_as = JobState::kCancelled;
      job->stop = true;
      return job->status;  // it ends after its batch
    }
    if (state != JobState::kInterrupted) {
      return Status(StatusCode::kFailedPrecondition,
                    "job " + id + " has " + std::string(job_state_name(state)) +
                        " already; only a running or interrupted job can be cancelled");
    }
    job->status.state = JobState::kCancelled;
    job->status.finished_ms = now_ms();
    KILN_RETURN_IF_ERROR(m.persist());
  }
  m.notify(*job);
  return get(id);
}

Result<JobStatus> JobManager::get(const std::string& id) const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  const Impl::Job* job = impl_->find(id);
  if (!job) return Status(StatusCode::kNotFound, "no job '" + id + "'");
  return job->status;
}

std::vector<JobStatus> JobManager::list() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  std::vector<JobStatus> out;
  for (const auto& job : impl_->jobs) out.push_back(job->status);
  return out;
}

Result<uint64_t> JobManager::watch(const std::string& id, Listener listener) {
  Impl& m = *impl_;
  Impl::Job* job = nullptr;
  uint64_t handle = 0;
  {
    std::lock_guard<std::mutex> lock(m.mutex);
    job = m.find(id);
    if (!job) return Status(StatusCode::kNotFound, "no job '" + id + "'");
    handle = m.next_watch++;
    m.watches[handle] = job;
  }
  std::lock_guard<std::recursive_mutex> calls(job->notify_mutex);
  JobStatus now;
  {
    std::lock_guard<std::mutex> lock(m.mutex);
    now = job->status;
  }
  listener(now);
  if (now.state == JobState::kRunning) job->listeners[handle] = std::move(listener);
  return handle;
}

void JobManager::unwatch(uint64_t handle) {
  Impl& m = *impl_;
  Impl::Job* job = nullptr;
  {
    std::lock_guard<std::mutex> lock(m.mutex);
    auto it = m.watches.find(handle);
    if (it == m.watches.end()) return;
    job = it->second;
    m.watches.erase(it);
  }
  std::lock_guard<std::recursive_mutex> calls(job->notify_mutex);
  job->listeners.erase(handle);
}

int JobManager::interrupt_all(std::chrono::milliseconds timeout) {
  Impl& m = *impl_;
  std::unique_lock<std::mutex> lock(m.mutex);
  bool any = false;
  for (auto& job : m.jobs) {
    if (job->thread_done) continue;
    job->stop_as = JobState::kInterrupted;
    job->stop = true;
    job->status.state = JobState::kInterrupted;  // on file now, in case the process ends first
    any = true;
  }
  if (any) m.persist_or_log();
  auto running = [&] {
    return int(std::count_if(m.jobs.begin(), m.jobs.end(),
                             [](const auto& job) { return !job->thread_done; }));
  };
  m.thread_ended.wait_for(lock, timeout, [&] { return running() == 0; });
  return running();
}

}  // namespace kiln::tuner
