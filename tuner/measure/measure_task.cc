#include "tuner/measure/measure_task.h"

#include <nlohmann/json.hpp>

#include "kiln/v1/kiln.pb.h"

namespace kiln::tuner {
namespace {

namespace pb = kiln::v1;

core::MeasureError from_proto(pb::MeasureErrorCode code) {
  switch (code) {
    case pb::MEASURE_ERROR_CODE_OK:
      return core::MeasureError::kOk;
    case pb::MEASURE_ERROR_CODE_INVALID_CONFIG:
      return core::MeasureError::kInvalidConfig;
    case pb::MEASURE_ERROR_CODE_COMPILE_ERROR:
      return core::MeasureError::kCompileError;
    case pb::MEASURE_ERROR_CODE_RUNTIME_ERROR:
      return core::MeasureError::kRuntimeError;
    case pb::MEASURE_ERROR_CODE_WRONG_ANSWER:
      return core::MeasureError::kWrongAnswer;
    case pb::MEASURE_ERROR_CODE_TIMEOUT:
      return core::MeasureError::kTimeout;
    default:
      return core::MeasureError::kDeviceLost;
  }
}

}  // namespace

void fill_measure_task(const TaskSpec& spec, const core::Config& config, const std::string& task_id,
                       pb::MeasureTask& task) {
  task.set_task_id(task_id);
  task.mutable_workload()->set_canonical(spec.workload->canonical());
  task.mutable_workload()->set_op(core::op_name(spec.workload->op));
  pb::Target* target = task.mutable_target();
  target->set_canonical(spec.target->str());
  target->set_triple(spec.target->triple);
  target->set_cpu(spec.target->cpu);
  for (const std::string& attr : spec.target->attrs) {
    if (attr.starts_with("+")) target->add_features(attr);
  }
  task.mutable_config()->set_index(config.index);
  const auto& knobs = spec.space->knobs();
  for (size_t k = 0; k < knobs.size(); ++k) {
    (*task.mutable_config()->mutable_knobs())[knobs[k].name] = config.values[k];
  }
  pb::MeasureOptions* o = task.mutable_options();
  o->set_number(spec.timing.number);
  o->set_repeat(spec.timing.repeat);
  o->set_min_repeat_ms(spec.timing.min_repeat_ms);
  o->set_warmup(spec.timing.warmup);
  o->set_cooldown_ms(spec.timing.cooldown_ms);
  o->set_flush_cache(spec.timing.flush_cache);
  o->set_threads(spec.threads);
  o->set_timeout_s(spec.timeout_s);
}

core::TuningRecord record_from_result(const pb::MeasureResult& result, const TaskSpec& spec,
                                      const core::TargetKey& key, const core::Config& config) {
  core::TuningRecord rec;
  rec.workload = spec.workload->canonical();
  // The agent says how many threads it ran with; one that does not leaves the task's count.
  rec.target = core::TargetKey{key.target, result.device_model(), result.emulated(),
                               result.threads() > 0 ? result.threads() : spec.threads};
  rec.config_index = config.index;
  rec.config_knobs = nlohmann::json::parse(spec.space->to_json(config))["knobs"].dump();
  rec.error = from_proto(result.error_code());
  rec.error_message = result.error_message();
  rec.costs.assign(result.costs_s().begin(), result.costs_s().end());
  rec.agent = result.agent();
  rec.measured_at_ms = result.measured_at_unix_ms();
  return rec;
}

std::string measure_options_json(const TaskSpec& spec, const std::string& device_key) {
  nlohmann::json options = {{"number", spec.timing.number},
                            {"repeat", spec.timing.repeat},
                            {"min_repeat_ms", spec.timing.min_repeat_ms},
                            {"warmup", spec.timing.warmup},
                            {"threads", spec.threads}};
  if (spec.timing.flush_cache) options["flush_cache"] = true;
  if (!device_key.empty()) options["device_key"] = device_key;
  return options.dump();
}

}  // namespace kiln::tuner
