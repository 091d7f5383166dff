#include "tuner/service/job_json.h"

#include <fstream>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

namespace kiln::tuner {
namespace {

namespace fs = std::filesystem;

constexpr const char* kJobsFileKind = "kiln-jobs";

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
          {"max_task_trials", s.max_task_trials},
          {"flush_cache", s.flush_cache}};
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
  s.flush_cache = j.value("flush_cache", false);
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

nlohmann::json status_to_json(const JobStatus& s) {
  nlohmann::json curve = nlohmann::json::array();
  for (const auto& [trials, latency] : s.latency_curve) curve.push_back({trials, latency});
  return {{"spec", spec_to_json(s.spec)},
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
          {"latency_s", s.latency_s},
          {"best_so_far", s.best_so_far},
          {"latency_curve", curve}};
}

/// Throws nlohmann::json's exceptions for a document that is not a job's.
Result<JobStatus> status_from_json(const nlohmann::json& j) {
  JobStatus s;
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
  // Jobs files kept no curves.
  s.best_so_far = j.value("best_so_far", std::vector<double>());
  for (const nlohmann::json& point : j.value("latency_curve", nlohmann::json::array())) {
    s.latency_curve.emplace_back(point.at(0).get<int64_t>(), point.at(1).get<double>());
  }
  return s;
}

}  // namespace

std::string job_to_json(const JobStatus& status) { return status_to_json(status).dump(); }

Result<JobStatus> job_from_json(std::string_view document, const std::string& id) {
  auto damaged = [&](const std::string& why) {
    return Status(StatusCode::kDataLoss,
                  "the tuning log's record of " + id + " is damaged: " + why);
  };
  const nlohmann::json j = nlohmann::json::parse(document, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return damaged("it is not a JSON object");
  try {
    Result<JobStatus> status = status_from_json(j);
    if (!status.is_ok()) return damaged(status.status().message());
    status->id = id;
    return status;
  } catch (const nlohmann::json::exception& e) {
    return damaged(e.what());
  }
}

Result<JobsFile> read_jobs_file(const fs::path& path) {
  JobsFile out;
  std::error_code error;
  if (!fs::exists(path, error)) return out;
  std::ifstream in(path);
  nlohmann::json file = nlohmann::json::parse(in, nullptr, false);
  auto not_jobs = [&](const std::string& why) {
    return invalid_argument("'" + path.string() + "' is not a kiln jobs file: " + why +
                            "; move it away");
  };
  if (file.is_discarded() || !file.is_object() || file.value("kind", "") != kJobsFileKind) {
    return not_jobs("it is not JSON of kind " + std::string(kJobsFileKind));
  }
  try {
    for (const nlohmann::json& j : file.at("jobs")) {
      Result<JobStatus> status = status_from_json(j);
      if (!status.is_ok()) return not_jobs(status.status().message());
      status->id = j.at("id").get<std::string>();
      if (!job_number(status->id).is_ok()) return not_jobs("a job's id is " + status->id);
      out.jobs.push_back(std::move(*status));
    }
  } catch (const nlohmann::json::exception& e) {
    return not_jobs(e.what());
  }
  return out;
}

Result<int64_t> job_number(std::string_view id) {
  constexpr std::string_view kPrefix = "job-";
  auto none = [&] { return Status(StatusCode::kNotFound, "no job '" + std::string(id) + "'"); };
  if (!id.starts_with(kPrefix) || id.size() == kPrefix.size() || id.size() > kPrefix.size() + 18) {
    return none();
  }
  int64_t number = 0;
  for (char c : id.substr(kPrefix.size())) {
    if (c < '0' || c > '9') return none();
    number = number * 10 + (c - '0');
  }
  if (number < 1) return none();
  return number;
}

}  // namespace kiln::tuner
