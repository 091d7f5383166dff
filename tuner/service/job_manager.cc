#include "tuner/service/job_manager.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include <openssl/evp.h>
#include <spdlog/fmt/fmt.h>

#include "compiler_core/db/tuning_log.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/support/check.h"
#include "compiler_core/support/file.h"
#include "compiler_core/support/log.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"
#include "tuner/measure/fleet_measurer.h"
#include "tuner/model_tuning.h"
#include "tuner/service/job_json.h"
#include "tuner/service/job_progress.h"
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

}  // namespace

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

  /// A job this server runs, or ran since it opened the log.
  struct Job {
    JobStatus status;  // under Impl::mutex
    int64_t number = 0;
    std::unique_ptr<Plan> plan;
    // The log's claim on the job, held while it runs here. Under Impl::mutex.
    std::unique_ptr<core::JobClaim> claim;
    std::atomic<bool> stop{false};
    JobState stop_as = JobState::kCancelled;  // under Impl::mutex
    std::thread thread;
    bool thread_done = true;  // under Impl::mutex
    // Its thread touches the job no more (the listeners heard the end). Under Impl::mutex.
    bool thread_left = true;
    // Listener calls go one at a time, in the order of the changes (taken before Impl::mutex).
    std::recursive_mutex notify_mutex;
    std::map<uint64_t, Listener> listeners;  // under notify_mutex
  };

  /// A watch of a job that another server runs: a thread that reads it from the log.
  struct RemoteWatch {
    std::string id;
    std::mutex mutex;
    std::condition_variable wake;
    bool stop = false;  // under mutex
    std::thread thread;
  };

  JobManagerOptions options;
  mutable std::mutex mutex;
  std::condition_variable thread_ended;
  // The log's jobs table. A TuningLog serves one thread at a time: under store_mutex, which is
  // taken after mutex when both are.
  mutable std::mutex store_mutex;
  std::unique_ptr<core::TuningLog> store;
  std::vector<std::unique_ptr<Job>> jobs;  // run here since open, oldest first
  std::map<uint64_t, Job*> watches;        // of jobs run here; under mutex
  std::map<uint64_t, std::unique_ptr<RemoteWatch>> remote_watches;  // under mutex
  std::multiset<std::string> watched;  // the job of every open watch; under mutex
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

  /// The job with `id` when it runs here now. Under mutex.
  Job* running_here(const std::string& id) const {
    Job* job = find(id);
    return job != nullptr && !job->thread_done ? job : nullptr;
  }

  /// Writes a job that runs (or ran) here to the log. A cancel that a client asked of another
  /// server comes back here: the job stops after its batch. Under mutex.
  Status save(Job& job, bool clear_cancel = false) {
    std::lock_guard<std::mutex> lock(store_mutex);
    KILN_ASSIGN_OR_RETURN(bool cancel,
                          store->update_job(job.number, job_to_json(job.status), clear_cancel));
    if (cancel && !job.thread_done && !job.stop) {
      logger("serve")->info("job {} cancelled through the tuning log", job.status.id);
      job.stop_as = JobState::kCancelled;
      job.stop = true;
    }
    return Status::ok();
  }

  void save_or_log(Job& job) {
    Status s = save(job);
    if (!s.is_ok()) logger("serve")->error("job {}: {}", job.status.id, s.to_string());
  }

  /// The job as the log keeps it; NotFound for none. Under mutex.
  Result<JobStatus> read_stored(const std::string& id) const {
    KILN_ASSIGN_OR_RETURN(int64_t number, job_number(id));
    std::optional<core::StoredJob> stored;
    {
      std::lock_guard<std::mutex> lock(store_mutex);
      KILN_ASSIGN_OR_RETURN(stored, store->job(number));
    }
    if (!stored) return Status(StatusCode::kNotFound, "no job '" + id + "'");
    return job_from_json(stored->document, id);
  }

  /// The log's claim on job `number`; nullptr when another holds it.
  Result<std::unique_ptr<core::JobClaim>> claim(int64_t number) {
    std::lock_guard<std::mutex> lock(store_mutex);
    return store->claim_job(number);
  }

  /// A job the log says is running but that no server claims has lost its server: records it
  /// as interrupted, with its trials counted from the log. Leaves a job that a server holds
  /// (or runs here) as it is. Under mutex.
  Status settle(JobStatus& status) {
    if (status.state != JobState::kRunning || running_here(status.id)) return Status::ok();
    KILN_ASSIGN_OR_RETURN(int64_t number, job_number(status.id));
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<core::JobClaim> held, claim(number));
    if (!held) return Status::ok();
    // Its server may have ended it between the read and the claim.
    KILN_ASSIGN_OR_RETURN(status, read_stored(status.id));
    if (status.state != JobState::kRunning) return Status::ok();
    status.state = JobState::kInterrupted;
    KILN_RETURN_IF_ERROR(count_trials_in_log(options.db, status));
    std::lock_guard<std::mutex> lock(store_mutex);
    KILN_RETURN_IF_ERROR(store->update_job(number, job_to_json(status)).status());
    logger("serve")->info("job {} was running on a server that stopped: interrupted at {} trials",
                          status.id, status.progress.trials);
    return Status::ok();
  }

  /// The job now: as this server runs it, else as the log keeps it (settled when `settle_it`).
  /// Under mutex.
  Result<JobStatus> status_of(const std::string& id, bool settle_it = true) {
    if (Job* job = running_here(id)) return job->status;
    KILN_ASSIGN_OR_RETURN(JobStatus status, read_stored(id));
    if (settle_it) KILN_RETURN_IF_ERROR(settle(status));
    return status;
  }

  /// Every job in the log, by number, settled, those running here as they stand. Under mutex.
  Result<std::vector<JobStatus>> all_jobs() {
    std::vector<core::StoredJob> stored;
    {
      std::lock_guard<std::mutex> lock(store_mutex);
      KILN_ASSIGN_OR_RETURN(stored, store->jobs());
    }
    std::vector<JobStatus> out;
    for (const core::StoredJob& row : stored) {
      const std::string id = "job-" + std::to_string(row.number);
      if (Job* job = running_here(id)) {
        out.push_back(job->status);
        continue;
      }
      KILN_ASSIGN_OR_RETURN(JobStatus status, job_from_json(row.document, id));
      KILN_RETURN_IF_ERROR(settle(status));
      out.push_back(std::move(status));
    }
    return out;
  }

  /// Forgets the oldest ended jobs of `all` (all_jobs) past options.max_ended_jobs; never one
  /// a client still watches. Lets go of the jobs run here that have ended and that nothing
  /// points to. Under mutex.
  Status forget_ended_jobs(const std::vector<JobStatus>& all) {
    std::erase_if(jobs, [&](const std::unique_ptr<Job>& job) {
      const bool pointed_to = std::any_of(watches.begin(), watches.end(),
                                          [&](const auto& w) { return w.second == job.get(); });
      if (!job->thread_left || pointed_to) return false;
      if (job->thread.joinable()) job->thread.join();
      return true;
    });
    auto ended = [](const JobStatus& s) {
      return s.state == JobState::kSucceeded || s.state == JobState::kFailed ||
             s.state == JobState::kCancelled;
    };
    size_t count = size_t(std::count_if(all.begin(), all.end(), ended));
    for (const JobStatus& s : all) {
      if (count <= options.max_ended_jobs) break;
      if (!ended(s) || watched.contains(s.id) || find(s.id) != nullptr) continue;
      std::lock_guard<std::mutex> lock(store_mutex);
      KILN_RETURN_IF_ERROR(store->delete_job(*job_number(s.id)));
      --count;
    }
    return Status::ok();
  }

  /// The workloads whose trials a job appends to the log.
  static std::vector<std::string> workloads_of(const JobStatus& s) {
    if (!s.workload.empty()) return {s.workload};
    std::vector<std::string> out;
    for (const ModelTaskSummary& t : s.tasks) out.push_back(t.task.workload);
    return out;
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

  /// AlreadyExists when a job of `all` (all_jobs) other than `self` runs now (here or on
  /// another server) on `plan`'s target and appends trials of one of its workloads: two jobs
  /// would measure the same configs. Under mutex.
  static Status check_no_twin(const Plan& plan, const std::string& self,
                              const std::vector<JobStatus>& all) {
    const std::vector<std::string> mine = plan.workloads();
    for (const JobStatus& job : all) {
      if (job.id == self || job.state != JobState::kRunning) continue;
      if (job.target != plan.target.str()) continue;
      for (const std::string& workload : workloads_of(job)) {
        if (std::find(mine.begin(), mine.end(), workload) == mine.end()) continue;
        return Status(StatusCode::kAlreadyExists,
                      "job " + job.id + " is tuning " + workload +
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
    const fs::path folder = fs::absolute(options.models_dir);
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
    job.thread_left = false;
    job.status.state = JobState::kRunning;
    job.status.error.clear();
    job.status.finished_ms = 0;
    job.status.best_so_far.clear();
    job.status.latency_curve.clear();
    job.thread = std::thread([this, &job] { run(job); });
  }

  /// The measurer of `workload` for the job (job_measurer.h).
  Result<std::unique_ptr<Measurer>> make_measurer(Job& job, const core::Workload& workload,
                                                  const core::Target& target,
                                                  const core::ConfigSpace& space) {
    JobMeasurerSettings settings;
    {
      std::lock_guard<std::mutex> lock(mutex);
      settings.tracker = tracker;
      settings.tracker_name = tracker_name;
    }
    settings.token = options.tracker_token;
    settings.local = options.local_measurer;
    settings.local_measure = &local_measure;
    return make_job_measurer(job.status.spec, workload, target, space, settings,
                             [&job] { return job.stop.load(); });
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
    // An exception (a bug, memory running out) fails the job, never the server.
    try {
      if (job.plan->problem) {
        run_workload(job);
      } else {
        run_model(job);
      }
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mutex);
      job.status.state = JobState::kFailed;
      job.status.error = std::string("internal error: ") + e.what();
    }
    {
      std::lock_guard<std::mutex> lock(mutex);
      JobStatus& s = job.status;
      s.finished_ms = now_ms();
      job.thread_done = true;
      save_or_log(job);
      job.claim.reset();  // after the final state is in the log
      const std::string best = s.spec.is_model()
                                   ? fmt::format("latency={:.3f} ms", s.latency_s * 1e3)
                                   : fmt::format("best={:.1f} GFLOP/s", s.progress.best_gflops);
      logger("serve")->info("job {} {} trials={} {}{}", s.id, job_state_name(s.state),
                            s.progress.trials, best, s.error.empty() ? "" : " error=" + s.error);
    }
    thread_ended.notify_all();
    notify(job);
    std::lock_guard<std::mutex> lock(mutex);
    job.thread_left = true;
  }

  TuneOptions tune_options(Job& job) const {
    const JobSpec& spec = job.status.spec;
    TuneOptions tune;
    tune.tuner = spec.tuner;
    tune.trials = spec.trials;
    tune.batch = spec.batch;
    tune.seed = spec.seed;
    tune.threads = spec.record_threads();
    tune.timing.flush_cache = tune.remeasure_timing.flush_cache = spec.flush_cache;
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
          save_or_log(job);
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
          save_or_log(job);
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
  std::vector<uint64_t> remote;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    for (const auto& [handle, watch] : impl_->remote_watches) remote.push_back(handle);
  }
  for (uint64_t handle : remote) unwatch(handle);
  for (auto& job : impl_->jobs) {
    if (job->thread.joinable()) job->thread.join();
  }
}

Result<std::unique_ptr<JobManager>> JobManager::open(const JobManagerOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (impl->options.models_dir.empty()) {
    impl->options.models_dir = core::is_tuning_log_url(options.db.string())
                                   ? fs::path("models")
                                   : fs::absolute(options.db).parent_path() / "models";
  }
  KILN_ASSIGN_OR_RETURN(core::TuningLog log, core::TuningLog::open(options.db));
  impl->store = std::make_unique<core::TuningLog>(std::move(log));
  const fs::path& imported = options.import_jobs_file;
  std::error_code error;
  if (!imported.empty() && fs::exists(imported, error)) {
    KILN_ASSIGN_OR_RETURN(JobsFile file, read_jobs_file(imported));
    for (const JobStatus& status : file.jobs) {
      KILN_RETURN_IF_ERROR(impl->store->put_job(*job_number(status.id), job_to_json(status)));
    }
    fs::path renamed = imported;
    renamed += ".imported";
    fs::rename(imported, renamed, error);
    if (error) {
      return Status(StatusCode::kUnavailable, "cannot rename the imported jobs file '" +
                                                  imported.string() + "': " + error.message());
    }
    logger("serve")->info("imported jobs={} from={} into the tuning log", file.jobs.size(),
                          imported.string());
  }
  {
    std::lock_guard<std::mutex> lock(impl->mutex);
    KILN_RETURN_IF_ERROR(impl->all_jobs().status());  // settles the jobs whose server is gone
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
  // One read of the log's jobs for both the twin check and the forgetting below.
  KILN_ASSIGN_OR_RETURN(std::vector<JobStatus> all, m.all_jobs());
  KILN_RETURN_IF_ERROR(m.check_no_twin(*plan, "", all));
  auto job = std::make_unique<Impl::Job>();
  JobStatus& s = job->status;
  s.spec = std::move(spec);
  if (plan->problem) s.workload = plan->problem->workload.canonical();
  s.target = plan->target.str();
  for (const ModelTask& task : plan->tasks) s.tasks.push_back({.task = task});
  s.created_ms = now_ms();
  {
    std::lock_guard<std::mutex> store(m.store_mutex);
    KILN_ASSIGN_OR_RETURN(job->number, m.store->add_job(job_to_json(s)));
  }
  KILN_ASSIGN_OR_RETURN(job->claim, m.claim(job->number));
  s.id = "job-" + std::to_string(job->number);
  if (!job->claim) {
    return Status(StatusCode::kInternal, "another process claims the new job " + s.id);
  }
  job->plan = std::move(plan);
  KILN_RETURN_IF_ERROR(m.forget_ended_jobs(all));
  m.jobs.push_back(std::move(job));
  Impl::Job& added = *m.jobs.back();
  m.launch(added);
  KILN_RETURN_IF_ERROR(m.save(added));
  return added.status;
}

Result<JobStatus> JobManager::resume(const std::string& id) {
  Impl& m = *impl_;
  // The model and the boards' target first, without the lock: it may wait for a board.
  JobSpec spec;
  {
    std::lock_guard<std::mutex> lock(m.mutex);
    KILN_ASSIGN_OR_RETURN(JobStatus status, m.status_of(id));
    spec = status.spec;
  }
  KILN_ASSIGN_OR_RETURN(std::vector<ModelTask> tasks, m.read_model(spec));
  KILN_ASSIGN_OR_RETURN(std::string target, m.board_target(spec));
  std::lock_guard<std::mutex> lock(m.mutex);
  KILN_ASSIGN_OR_RETURN(JobStatus status, m.status_of(id));
  const JobState state = status.state;
  if (state == JobState::kRunning || state == JobState::kSucceeded) {
    return Status(
        StatusCode::kFailedPrecondition,
        "job " + id + " is " + std::string(job_state_name(state)) +
            (state == JobState::kRunning && !m.running_here(id) ? " on another server" : "") +
            "; only an interrupted, failed or cancelled job resumes");
  }
  Impl::Job* job = m.find(id);
  if (job && !job->thread_left) {
    return Status(StatusCode::kFailedPrecondition, "job " + id + " is still stopping; try again");
  }
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<core::JobClaim> claim, m.claim(*job_number(id)));
  if (!claim) {
    return Status(StatusCode::kFailedPrecondition,
                  "another server is resuming job " + id + " now; watch it there");
  }
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Impl::Plan> plan,
                        m.prepare(status.spec, target, std::move(tasks)));
  KILN_ASSIGN_OR_RETURN(std::vector<JobStatus> all, m.all_jobs());
  KILN_RETURN_IF_ERROR(m.check_no_twin(*plan, id, all));
  if (job == nullptr) {
    m.jobs.push_back(std::make_unique<Impl::Job>());
    job = m.jobs.back().get();
    job->number = *job_number(id);
  }
  if (job->thread.joinable()) job->thread.join();  // it has ended: thread_left
  job->status = std::move(status);
  job->claim = std::move(claim);
  job->plan = std::move(plan);
  m.launch(*job);
  KILN_RETURN_IF_ERROR(m.save(*job, /*clear_cancel=*/true));
  return job->status;
}

Result<JobStatus> JobManager::cancel(const std::string& id) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mutex);
  if (Impl::Job* job = m.running_here(id)) {
    job->stop_as = JobState::kCancelled;
    job->stop = true;
    return job->status;  // it ends after its batch
  }
  KILN_ASSIGN_OR_RETURN(JobStatus status, m.status_of(id));
  const int64_t number = *job_number(id);
  std::lock_guard<std::mutex> store(m.store_mutex);
  if (status.state == JobState::kRunning) {
    // Another server runs it: it reads the request after its batch in flight.
    KILN_RETURN_IF_ERROR(m.store->request_job_cancel(number));
    return status;
  }
  if (status.state != JobState::kInterrupted) {
    return Status(StatusCode::kFailedPrecondition,
                  "job " + id + " has " + std::string(job_state_name(status.state)) +
                      " already; only a running or interrupted job can be cancelled");
  }
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<core::JobClaim> claim, m.store->claim_job(number));
  if (!claim) {
    return Status(StatusCode::kFailedPrecondition,
                  "another server is resuming job " + id + " now; cancel it again");
  }
  status.state = JobState::kCancelled;
  status.finished_ms = now_ms();
  KILN_RETURN_IF_ERROR(m.store->update_job(number, job_to_json(status)).status());
  return status;
}

Result<JobStatus> JobManager::get(const std::string& id) const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->status_of(id);
}

std::vector<JobStatus> JobManager::list() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  Result<std::vector<JobStatus>> all = impl_->all_jobs();
  if (all.is_ok()) return std::move(*all);
  logger("serve")->error("cannot list the jobs: {}", all.status().to_string());
  std::vector<JobStatus> here;
  for (const auto& job : impl_->jobs) here.push_back(job->status);
  return here;
}

Result<uint64_t> JobManager::watch(const std::string& id, Listener listener) {
  Impl& m = *impl_;
  Impl::Job* job = nullptr;
  uint64_t handle = 0;
  JobStatus now;
  {
    std::lock_guard<std::mutex> lock(m.mutex);
    job = m.running_here(id);
    if (job == nullptr) {
      KILN_ASSIGN_OR_RETURN(now, m.status_of(id));
    }
    handle = m.next_watch++;
    m.watched.insert(id);
    if (job != nullptr) m.watches[handle] = job;
  }
  if (job == nullptr) {
    listener(now);
    if (now.state != JobState::kRunning) {
      // Nothing follows: the handle only keeps the job from being forgotten until unwatch.
      std::lock_guard<std::mutex> lock(m.mutex);
      m.remote_watches[handle] = std::make_unique<Impl::RemoteWatch>();
      m.remote_watches[handle]->id = id;
      return handle;
    }
    // Another server runs it: read the log until it ends there.
    auto remote = std::make_unique<Impl::RemoteWatch>();
    remote->id = id;
    Impl::RemoteWatch* poll = remote.get();
    remote->thread =
        std::thread([&m, poll, listener = std::move(listener), last = job_to_json(now)]() mutable {
          for (int round = 1;; ++round) {
            {
              std::unique_lock<std::mutex> lock(poll->mutex);
              if (poll->wake.wait_for(lock, std::chrono::milliseconds(100),
                                      [&] { return poll->stop; })) {
                return;
              }
            }
            Result<JobStatus> status = [&] {
              std::lock_guard<std::mutex> lock(m.mutex);
              // A claim is a connection on PostgreSQL: the server's liveness is checked each
              // second.
              return m.status_of(poll->id, round % 10 == 0);
            }();
            if (!status.is_ok()) {
              logger("serve")->warn("watch of job {}: {}", poll->id, status.status().to_string());
              if (status.status().code() == StatusCode::kNotFound) return;
              continue;
            }
            std::string document = job_to_json(*status);
            if (document == last) continue;
            last = std::move(document);
            listener(*status);
            if (status->state != JobState::kRunning) return;
          }
        });
    std::lock_guard<std::mutex> lock(m.mutex);
    m.remote_watches[handle] = std::move(remote);
    return handle;
  }
  std::lock_guard<std::recursive_mutex> calls(job->notify_mutex);
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
  std::unique_ptr<Impl::RemoteWatch> remote;
  {
    std::lock_guard<std::mutex> lock(m.mutex);
    if (auto it = m.remote_watches.find(handle); it != m.remote_watches.end()) {
      remote = std::move(it->second);
      m.remote_watches.erase(it);
      m.watched.erase(m.watched.find(remote->id));
    } else if (auto local = m.watches.find(handle); local != m.watches.end()) {
      job = local->second;
      m.watched.erase(m.watched.find(job->status.id));
      m.watches.erase(local);
    } else {
      return;
    }
  }
  if (remote) {
    {
      std::lock_guard<std::mutex> lock(remote->mutex);
      remote->stop = true;
    }
    remote->wake.notify_all();
    if (remote->thread.joinable()) remote->thread.join();
    return;
  }
  std::lock_guard<std::recursive_mutex> calls(job->notify_mutex);
  job->listeners.erase(handle);
}

int JobManager::interrupt_all(std::chrono::milliseconds timeout) {
  Impl& m = *impl_;
  std::unique_lock<std::mutex> lock(m.mutex);
  for (auto& job : m.jobs) {
    if (job->thread_done) continue;
    job->stop_as = JobState::kInterrupted;
    job->stop = true;
    job->status.state = JobState::kInterrupted;  // in the log now, in case the process ends first
    m.save_or_log(*job);
  }
  auto running = [&] {
    return int(std::count_if(m.jobs.begin(), m.jobs.end(),
                             [](const auto& job) { return !job->thread_done; }));
  };
  m.thread_ended.wait_for(lock, timeout, [&] { return running() == 0; });
  return running();
}

}  // namespace kiln::tuner
