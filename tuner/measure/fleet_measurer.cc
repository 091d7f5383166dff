#include "tuner/measure/fleet_measurer.h"

#include <unistd.h>

#include <map>
#include <random>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "compiler_core/support/log.h"
#include "kiln/v1/tracker.grpc.pb.h"

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

struct FleetMeasurer::Impl {
  core::Workload workload;
  core::Target target;
  core::TargetKey key;
  const core::ConfigSpace* space = nullptr;
  FleetSettings settings;
  std::string job_id;
  int64_t submissions = 0;
  std::shared_ptr<grpc::ChannelCredentials> credentials;
};

FleetMeasurer::FleetMeasurer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FleetMeasurer::~FleetMeasurer() = default;

Result<std::unique_ptr<FleetMeasurer>> FleetMeasurer::create(const core::Workload& workload,
                                                             const core::Target& target,
                                                             const core::ConfigSpace& space,
                                                             const FleetSettings& settings) {
  if ((settings.tracker.empty() && !settings.channel) || settings.device_key.empty()) {
    return invalid_argument("fleet measurement needs --tracker HOST:PORT and --device-key KEY");
  }
  auto impl = std::make_unique<Impl>();
  impl->workload = workload;
  impl->target = target;
  KILN_ASSIGN_OR_RETURN(impl->key, core::make_target_key(target));
  impl->space = &space;
  impl->settings = settings;
  std::random_device random;
  impl->job_id = "tune-" + std::to_string(getpid()) + "-" + std::to_string(random());
  impl->credentials = grpc::InsecureChannelCredentials();
  if (!settings.tls_ca_pem.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = settings.tls_ca_pem;
    impl->credentials = grpc::SslCredentials(ssl);
  }
  return std::unique_ptr<FleetMeasurer>(new FleetMeasurer(std::move(impl)));
}

Result<std::vector<core::TuningRecord>> FleetMeasurer::measure(
    const std::vector<core::Config>& configs, const core::TimingOptions& timing) {
  Impl& m = *impl_;
  nlohmann::json options = {{"number", timing.number},
                            {"repeat", timing.repeat},
                            {"min_repeat_ms", timing.min_repeat_ms},
                            {"warmup", timing.warmup},
                            {"threads", m.settings.threads},
                            {"device_key", m.settings.device_key}};
  std::vector<core::TuningRecord> records(configs.size());
  std::vector<bool> answered(configs.size(), false);
  size_t remaining = configs.size();
  auto last_progress = std::chrono::steady_clock::now();
  auto backoff = std::chrono::milliseconds(100);

  while (remaining > 0) {
    // Fresh task ids for every submission: a restarted tracker knows none of the old ones,
    // and the one that stayed up refuses ids it has seen.
    pb::SubmitRequest request;
    request.set_job_id(m.job_id);
    request.set_device_key(m.settings.device_key);
    std::map<std::string, size_t> position;
    const std::string prefix = m.job_id + "-" + std::to_string(m.submissions++) + "-";
    for (size_t i = 0; i < configs.size(); ++i) {
      if (answered[i]) continue;
      pb::MeasureTask* task = request.add_tasks();
      task->set_task_id(prefix + std::to_string(i));
      task->mutable_workload()->set_canonical(m.workload.canonical());
      task->mutable_workload()->set_op(core::op_name(m.workload.op));
      task->mutable_target()->set_canonical(m.target.str());
      task->mutable_config()->set_index(configs[i].index);
      const auto& knobs = m.space->knobs();
      for (size_t k = 0; k < knobs.size(); ++k) {
        (*task->mutable_config()->mutable_knobs())[knobs[k].name] = configs[i].values[k];
      }
      pb::MeasureOptions* o = task->mutable_options();
      o->set_number(timing.number);
      o->set_repeat(timing.repeat);
      o->set_min_repeat_ms(timing.min_repeat_ms);
      o->set_warmup(timing.warmup);
      o->set_cooldown_ms(timing.cooldown_ms);
      o->set_flush_cache(timing.flush_cache);
      o->set_threads(m.settings.threads);
      o->set_timeout_s(m.settings.task_timeout_s);
      position[task->task_id()] = i;
    }
    auto stub = pb::Tracker::NewStub(m.settings.channel
                                         ? m.settings.channel
                                         : grpc::CreateChannel(m.settings.tracker, m.credentials));
    grpc::ClientContext context;
    if (!m.settings.token.empty()) {
      context.AddMetadata("authorization", "Bearer " + m.settings.token);
    }
    auto reader = stub->Submit(&context, request);
    pb::SubmitResponse batch;
    while (reader->Read(&batch)) {
      for (const pb::MeasureResult& r : batch.results()) {
        auto it = position.find(r.task_id());
        if (it == position.end() || answered[it->second]) continue;
        const size_t i = it->second;
        core::TuningRecord& rec = records[i];
        rec.workload = m.workload.canonical();
        rec.target = m.key;
        rec.config_index = configs[i].index;
        rec.config_knobs = nlohmann::json::parse(m.space->to_json(configs[i]))["knobs"].dump();
        rec.error = from_proto(r.error_code());
        rec.error_message = r.error_message();
        rec.costs.assign(r.costs_s().begin(), r.costs_s().end());
        rec.agent = r.agent();
        rec.device = m.settings.device_key;
        rec.measure_options = options.dump();
        rec.measured_at_ms = r.measured_at_unix_ms();
        answered[i] = true;
        --remaining;
        last_progress = std::chrono::steady_clock::now();
        backoff = std::chrono::milliseconds(100);
      }
    }
    grpc::Status status = reader->Finish();
    if (remaining == 0) break;
    const bool refused = status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
                         status.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
                         status.error_code() == grpc::StatusCode::OUT_OF_RANGE ||
                         status.error_code() == grpc::StatusCode::PERMISSION_DENIED;
    if (refused) {
      return Status(
          StatusCode::kFailedPrecondition,
          "the tracker " + m.settings.tracker + " refused the batch: " + status.error_message());
    }
    if (std::chrono::steady_clock::now() - last_progress > m.settings.give_up) {
      return Status(StatusCode::kUnavailable, "no result from the tracker " + m.settings.tracker +
                                                  " for " +
                                                  std::to_string(m.settings.give_up.count()) +
                                                  " s: " + status.error_message());
    }
    if (m.settings.stop_requested && m.settings.stop_requested()) {
      return Status(StatusCode::kAborted,
                    "stopped while the tracker " + m.settings.tracker + " was unavailable");
    }
    logger("tuner")->warn("tracker {} unavailable ({}); {} tasks to resubmit in {} ms",
                          m.settings.tracker, status.error_message(), remaining, backoff.count());
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
  }
  return records;
}

}  // namespace kiln::tuner
