#include "device_agent/task_adapter.h"

#include <chrono>
#include <thread>

#include <nlohmann/json.hpp>

#include "compiler_core/build.h"
#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/runtime/thread_pool.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/support/architecture.h"
#include "kiln/v1/kiln.pb.h"
#include "proto/kiln/measure_options.h"

namespace kiln::agent {
namespace {

namespace pb = kiln::v1;

struct Parsed {
  core::Workload workload;
  core::Target target;
  core::ConfigSpace space;
  core::Config config;
};

/// The config `task` names in `space`: by its knobs when it has them, else by index.
Result<core::Config> config_of(const pb::MeasureTask& task, const core::ConfigSpace& space) {
  if (task.config().knobs().empty()) return space.at(task.config().index());
  nlohmann::json knobs = nlohmann::json::object();
  for (const auto& [name, value] : task.config().knobs()) knobs[name] = value;
  return space.parse(nlohmann::json{{"knobs", knobs}}.dump());
}

Result<core::ConfigSpace> space_of(const pb::MeasureTask& task) {
  KILN_ASSIGN_OR_RETURN(core::Workload workload, core::parse_workload(task.workload().canonical()));
  KILN_ASSIGN_OR_RETURN(core::Target target, core::parse_target(task.target().canonical()));
  KILN_ASSIGN_OR_RETURN(target, core::resolve_host_target(target));
  return core::config_space(workload, target);
}

/// The target `named` as this board builds it: one of the board's architecture (its triple
/// names it, or it has none) is built for this host with the task's CPU and features over the
/// detected ones. InvalidConfig for another architecture: the tracker routes by architecture,
/// so such a task was sent here by mistake.
Result<core::Target> board_target(const core::Target& named) {
  if (named.kind != core::TargetKind::kLlvm || named.is_host) {
    return core::resolve_host_target(named);
  }
  const std::string arch = triple_architecture(named.triple);
  if (arch != host_architecture()) {
    return invalid_config("target '" + named.str() + "' is for " + arch + "; this board is " +
                          host_architecture());
  }
  core::Target host = named;
  host.is_host = true;
  host.triple.clear();
  return core::resolve_host_target(host);
}

/// The task as the tracker checks it (`on_board` false: the target as named, which may be
/// another machine's) or as the board that runs it builds it.
Result<Parsed> parse(const pb::MeasureTask& task, bool on_board) {
  Parsed p;
  KILN_ASSIGN_OR_RETURN(p.workload, core::parse_workload(task.workload().canonical()));
  KILN_ASSIGN_OR_RETURN(core::Target target, core::parse_target(task.target().canonical()));
  if (on_board) {
    KILN_ASSIGN_OR_RETURN(p.target, board_target(target));
  } else {
    KILN_ASSIGN_OR_RETURN(p.target, core::resolve_host_target(target));
  }
  KILN_ASSIGN_OR_RETURN(p.space, core::config_space(p.workload, p.target));
  KILN_ASSIGN_OR_RETURN(p.config, config_of(task, p.space));
  return p;
}

Status as_validation_error(const Status& s) {
  return Status(
      s.code() == StatusCode::kOutOfRange ? StatusCode::kOutOfRange : StatusCode::kInvalidArgument,
      s.message());
}

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Status validate_task(const pb::MeasureTask& task) {
  Result<Parsed> parsed = parse(task, /*on_board=*/false);
  return parsed.is_ok() ? Status::ok() : as_validation_error(parsed.status());
}

Status TaskValidator::check(const pb::MeasureTask& task) {
  std::pair<std::string, std::string> key{task.workload().canonical(), task.target().canonical()};
  std::shared_ptr<const Result<core::ConfigSpace>> space;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = spaces_.find(key);
    if (it != spaces_.end()) space = it->second;
  }
  if (!space) {
    space = std::make_shared<const Result<core::ConfigSpace>>(space_of(task));
    std::lock_guard<std::mutex> lock(mutex_);
    if (spaces_.size() >= max_spaces_) spaces_.clear();
    spaces_.emplace(std::move(key), space);
  }
  if (!space->is_ok()) return as_validation_error(space->status());
  Result<core::Config> config = config_of(task, **space);
  return config.is_ok() ? Status::ok() : as_validation_error(config.status());
}

pb::MeasureResult run_task(
    const pb::MeasureTask& task,
    std::map<std::string, std::unique_ptr<core::MeasureHarness>>& harnesses) {
  pb::MeasureResult result;
  result.set_task_id(task.task_id());
  auto fail = [&](pb::MeasureErrorCode code, const std::string& message) {
    result.set_error_code(code);
    result.set_error_message(message);
    result.set_measured_at_unix_ms(unix_ms());
    return result;
  };
  result.set_device_model(core::host_cpu_model_name());
  result.set_emulated(core::host_is_emulated());
  Result<Parsed> parsed = parse(task, /*on_board=*/true);
  if (!parsed) return fail(pb::MEASURE_ERROR_CODE_INVALID_CONFIG, parsed.status().message());
  result.set_built_target(parsed->target.str());
  const pb::MeasureOptions& o = task.options();
  // A tracker checks options too, but the agent does not trust its peer.
  if (Status valid = validate_measure_options(o); !valid.is_ok()) {
    return fail(pb::MEASURE_ERROR_CODE_INVALID_CONFIG, valid.message());
  }
  core::TimingOptions timing;
  timing.number = o.number() > 0 ? o.number() : 1;
  timing.repeat = o.repeat() > 0 ? o.repeat() : 3;
  timing.min_repeat_ms = o.min_repeat_ms();
  timing.warmup = o.warmup();
  timing.cooldown_ms = o.cooldown_ms();
  timing.flush_cache = o.flush_cache();
  const int threads =
      o.threads() > 0 ? o.threads() : int(std::max(1u, std::thread::hardware_concurrency()));
  core::set_num_threads(threads);
  result.set_threads(threads);

  const auto start = std::chrono::steady_clock::now();
  Result<std::unique_ptr<core::Kernel>> kernel =
      core::build_kernel(parsed->workload, parsed->target, parsed->config);
  result.set_compile_s(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  if (!kernel) {
    return fail(kernel.status().code() == StatusCode::kInvalidConfig
                    ? pb::MEASURE_ERROR_CODE_INVALID_CONFIG
                    : pb::MEASURE_ERROR_CODE_COMPILE_ERROR,
                kernel.status().message());
  }
  std::unique_ptr<core::MeasureHarness>& harness = harnesses[parsed->workload.canonical()];
  if (!harness) {
    Result<std::unique_ptr<core::MeasureHarness>> made =
        core::MeasureHarness::create(parsed->workload, threads);
    if (!made) return fail(pb::MEASURE_ERROR_CODE_RUNTIME_ERROR, made.status().message());
    harness = std::move(made).value();
  }
  core::MeasureOutcome outcome = harness->measure(**kernel, timing);
  if (outcome.error != core::MeasureError::kOk) {
    return fail(pb::MEASURE_ERROR_CODE_WRONG_ANSWER, outcome.message);
  }
  result.set_error_code(pb::MEASURE_ERROR_CODE_OK);
  for (double c : outcome.costs) result.add_costs_s(c);
  result.set_measured_at_unix_ms(unix_ms());
  return result;
}

}  // namespace kiln::agent
