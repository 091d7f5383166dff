#include "tuner/measure/local_measurer.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <utility>

#include <nlohmann/json.hpp>

#include "compiler_core/build.h"
#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/runtime/thread_pool.h"
#include "compiler_core/support/log.h"

namespace kiln::tuner {
namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Result<std::unique_ptr<LocalMeasurer>> LocalMeasurer::create(const core::Workload& workload,
                                                             const core::Target& target,
                                                             const core::ConfigSpace& space,
                                                             const MeasureSettings& settings) {
  std::unique_ptr<LocalMeasurer> m(new LocalMeasurer());
  m->workload_ = workload;
  m->target_ = target;
  m->space_ = &space;
  m->settings_ = settings;
  m->device_ = core::host_cpu_model_name();
  KILN_ASSIGN_OR_RETURN(m->target_key_, core::make_target_key(target, settings.threads));
  KILN_ASSIGN_OR_RETURN(m->harness_,
                        core::MeasureHarness::create(workload, std::max(1, settings.threads)));
  return m;
}

Result<std::vector<core::TuningRecord>> LocalMeasurer::measure(
    const std::vector<core::Config>& configs, const core::TimingOptions& timing) {
  // Build phase: candidates compile in parallel; nothing is timed meanwhile.
  std::vector<Result<std::unique_ptr<core::Kernel>>> kernels;
  kernels.reserve(configs.size());
  for (size_t i = 0; i < configs.size(); ++i) kernels.emplace_back(internal_error("not built"));
  std::atomic<size_t> next{0};
  auto builder = [&] {
    for (size_t i; (i = next.fetch_add(1)) < configs.size();) {
      kernels[i] = core::build_kernel(workload_, target_, configs[i]);
    }
  };
  std::vector<std::thread> builders;
  for (int t = 1; t < settings_.build_threads; ++t) builders.emplace_back(builder);
  builder();
  for (std::thread& t : builders) t.join();

  // Checks first, then the timing phase: one kernel at a time, in rounds. Each round takes one
  // sample of every kernel that passed its check, so that a slow spell of the machine (a
  // shared one has spells of seconds at two-thirds speed) is spread over the batch instead of
  // landing on every sample of one config. The first round settles each kernel's runs per
  // sample (min_repeat_ms); later rounds keep that number, each sample after its warm-up run.
  core::set_num_threads(settings_.threads);  // the checked run uses the timed runs' threads
  std::vector<core::MeasureOutcome> outcomes(configs.size());
  std::vector<size_t> timed;
  for (size_t i = 0; i < configs.size(); ++i) {
    if (!kernels[i].is_ok()) continue;
    outcomes[i] = harness_->check(**kernels[i]);
    if (outcomes[i].error == core::MeasureError::kOk) timed.push_back(i);
  }
  std::vector<core::Kernel*> checked;
  for (size_t i : timed) checked.push_back(kernels[i]->get());
  std::vector<core::TimingResult> times = harness_->time_interleaved(checked, timing);
  for (size_t k = 0; k < timed.size(); ++k) outcomes[timed[k]].costs = std::move(times[k].seconds);

  nlohmann::json options = {{"number", timing.number},
                            {"repeat", timing.repeat},
                            {"min_repeat_ms", timing.min_repeat_ms},
                            {"warmup", timing.warmup},
                            {"threads", settings_.threads},
                            {"interleaved", true}};
  if (timing.flush_cache) options["flush_cache"] = true;
  std::vector<core::TuningRecord> records;
  for (size_t i = 0; i < configs.size(); ++i) {
    core::TuningRecord r;
    r.workload = workload_.canonical();
    r.target = target_key_;
    r.config_index = configs[i].index;
    r.config_knobs = nlohmann::json::parse(space_->to_json(configs[i]))["knobs"].dump();
    r.agent = "local";
    r.device = device_;
    nlohmann::json kernel_options = options;
    if (!kernels[i].is_ok()) {
      const Status& s = kernels[i].status();
      r.error = s.code() == StatusCode::kInvalidConfig ? core::MeasureError::kInvalidConfig
                                                       : core::MeasureError::kCompileError;
      r.error_message = s.message();
    } else {
      r.error = outcomes[i].error;
      r.error_message = std::move(outcomes[i].message);
      r.costs = std::move(outcomes[i].costs);
      if (outcomes[i].weights_prepacked) kernel_options["weights_prepacked"] = true;
    }
    r.measure_options = kernel_options.dump();
    r.measured_at_ms = now_ms();
    logger("tuner")->debug("measured config={} error={} median_s={}", r.config_index,
                           core::measure_error_name(r.error),
                           r.costs.empty() ? 0 : r.median_cost());
    records.push_back(std::move(r));
  }
  return records;
}

}  // namespace kiln::tuner
