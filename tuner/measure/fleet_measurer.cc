#include "tuner/measure/fleet_measurer.h"

#include <unistd.h>

#include <map>
#include <random>
#include <set>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "compiler_core/support/architecture.h"
#include "compiler_core/support/log.h"
#include "kiln/v1/tracker.grpc.pb.h"
#include "proto/kiln/message_limits.h"
#include "tuner/measure/measure_task.h"

namespace kiln::tuner {
namespace {

namespace pb = kiln::v1;

}  // namespace

Result<std::string> fleet_target(const std::string& target_text, const FleetSettings& settings) {
  KILN_ASSIGN_OR_RETURN(core::Target named, core::parse_target(target_text));
  const bool names_board = !named.cpu.empty() || !named.attrs.empty();
  if (named.kind != core::TargetKind::kLlvm || names_board) {
    if (named.is_host && named.kind == core::TargetKind::kLlvm) {
      return invalid_argument("fleet target '" + named.str() +
                              "' names a CPU but no architecture; add -mtriple (e.g. "
                              "-mtriple=aarch64-linux-gnu), or give 'llvm' alone for the key's "
                              "boards");
    }
    return named.str();
  }
  // `llvm`, or `llvm -mtriple=T` alone: the boards of the key (of T's architecture).
  const std::string arch = named.is_host ? "" : triple_architecture(named.triple);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!settings.tls_ca_pem.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = settings.tls_ca_pem;
    credentials = grpc::SslCredentials(ssl);
  }
  auto stub = pb::Tracker::NewStub(
      settings.channel ? settings.channel : create_channel(settings.tracker, credentials));
  // The targets the key's connected boards (of that architecture) registered.
  auto boards = [&]() -> Result<std::set<std::string>> {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    if (!settings.token.empty()) context.AddMetadata("authorization", "Bearer " + settings.token);
    pb::StatusResponse status;
    if (grpc::Status s = stub->GetStatus(&context, pb::StatusRequest(), &status); !s.ok()) {
      const bool refused = s.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
                           s.error_code() == grpc::StatusCode::PERMISSION_DENIED;
      return Status(refused ? StatusCode::kFailedPrecondition : StatusCode::kUnavailable,
                    "the tracker " + settings.tracker + (refused ? " refused" : " did not answer") +
                        " a request for the boards of key " + settings.device_key + ": " +
                        s.error_message());
    }
    std::set<std::string> targets;
    for (const pb::AgentStatus& agent : status.agents()) {
      if (agent.device_key() != settings.device_key || agent.state() == "lost") continue;
      Result<core::Target> board = core::parse_target(agent.target());
      if (!board || board->is_host) continue;  // an agent of an older kiln
      if (!arch.empty() && triple_architecture(board->triple) != arch) continue;
      targets.insert(board->str());
    }
    return targets;
  };
  const auto deadline = std::chrono::steady_clock::now() + settings.wait_for_board;
  KILN_ASSIGN_OR_RETURN(std::set<std::string> targets, boards());
  bool said = false;
  while (targets.empty() && std::chrono::steady_clock::now() < deadline) {
    if (!said && settings.on_waiting) {
      settings.on_waiting("no " + (arch.empty() ? std::string() : arch + " ") + "agent of key " +
                          settings.device_key + " is connected to " + settings.tracker);
    }
    said = true;
    if (settings.stop_requested && settings.stop_requested()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    KILN_ASSIGN_OR_RETURN(targets, boards());
  }
  if (said && !targets.empty() && settings.on_waiting) settings.on_waiting("");
  if (targets.size() == 1) return *targets.begin();
  if (targets.size() > 1) {
    std::string listed;
    for (const std::string& t : targets) listed += "\n  " + t;
    return invalid_argument("target '" + named.str() + "' is ambiguous: the " +
                            (arch.empty() ? "" : arch + " ") + "boards of key " +
                            settings.device_key +
                            " build for different targets; name one:" + listed);
  }
  if (!arch.empty()) return named.str();  // it waits for a board of that architecture
  return Status(StatusCode::kFailedPrecondition,
                "target 'llvm' means the boards of key " + settings.device_key +
                    ", and none is connected to " + settings.tracker +
                    "; start one (kiln agent --key " + settings.device_key +
                    ") or name the target, e.g. 'llvm -mtriple=aarch64-linux-gnu "
                    "-mcpu=cortex-a72'");
}

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
  KILN_ASSIGN_OR_RETURN(impl->key, core::make_target_key(target, settings.threads));
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
  const TaskSpec spec{.workload = &m.workload,
                      .target = &m.target,
                      .space = m.space,
                      .timing = timing,
                      .threads = m.settings.threads,
                      .timeout_s = m.settings.task_timeout_s};
  const std::string options = measure_options_json(spec, m.settings.device_key);
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
      fill_measure_task(spec, configs[i], prefix + std::to_string(i), *task);
      position[task->task_id()] = i;
    }
    auto stub = pb::Tracker::NewStub(m.settings.channel
                                         ? m.settings.channel
                                         : create_channel(m.settings.tracker, m.credentials));
    grpc::ClientContext context;
    if (!m.settings.token.empty()) {
      context.AddMetadata("authorization", "Bearer " + m.settings.token);
    }
    auto reader = stub->Submit(&context, request);
    pb::SubmitResponse batch;
    while (reader->Read(&batch)) {
      if (batch.waiting_changed()) {
        if (batch.waiting().empty()) {
          logger("tuner")->info("a board of key {} can run {} now", m.settings.device_key,
                                m.target.str());
        } else {
          logger("tuner")->info("waiting: {}", batch.waiting());
        }
        if (m.settings.on_waiting) m.settings.on_waiting(batch.waiting());
        last_progress = std::chrono::steady_clock::now();
      }
      for (const pb::MeasureResult& r : batch.results()) {
        auto it = position.find(r.task_id());
        if (it == position.end() || answered[it->second]) continue;
        const size_t i = it->second;
        records[i] = record_from_result(r, spec, m.key, configs[i]);
        records[i].device = m.settings.device_key;
        records[i].measure_options = options;
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
