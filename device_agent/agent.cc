#include "device_agent/agent.h"

#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/support/architecture.h"
#include "compiler_core/support/log.h"
#include "compiler_core/target/target.h"
#include "kiln/v1/tracker.grpc.pb.h"
#include "proto/kiln/message_limits.h"

namespace kiln::agent {
namespace {

namespace pb = kiln::v1;
using Stream = grpc::ClientReaderWriter<pb::AgentMessage, pb::TrackerMessage>;

pb::RegisterAgent registration(const AgentOptions& options, const core::Target& target) {
  pb::RegisterAgent reg;
  reg.set_agent_id(options.agent_id);
  reg.set_device_key(options.device_key);
  reg.set_capacity(options.capacity);
  // The board's own target, spelled with its triple so that a client on another
  // architecture reads it as this board's (a `llvm` fleet job adopts it).
  core::Target board = target;
  board.is_host = false;
  reg.mutable_target()->set_canonical(board.str());
  reg.mutable_target()->set_triple(target.triple);
  reg.mutable_target()->set_cpu(target.cpu);
  for (const std::string& attr : target.attrs) reg.mutable_target()->add_features(attr);
  pb::DeviceFacts* facts = reg.mutable_facts();
  facts->set_cpu_model(core::host_cpu_model_name());
  facts->set_architecture(host_architecture());
  facts->set_emulated(core::host_is_emulated());
  facts->set_cores(int(std::max(1u, std::thread::hardware_concurrency())));
  for (const std::string& attr : target.attrs) {
    if (!attr.empty() && attr[0] == '+') facts->add_isa_features(attr.substr(1));
  }
  facts->set_memory_bytes(int64_t(sysconf(_SC_PHYS_PAGES)) * int64_t(sysconf(_SC_PAGE_SIZE)));
  return reg;
}

/// One connection's life: register, then serve until the stream breaks or `stop`. Returns
/// true when the tracker accepted the registration (the backoff starts over); `reg` then keeps
/// the secret the tracker gave, for the next registration.
bool serve_connection(const AgentOptions& options, pb::RegisterAgent& reg, pb::Tracker::Stub& stub,
                      std::vector<std::unique_ptr<Worker>>& workers,
                      const std::atomic<bool>& stop) {
  grpc::ClientContext context;
  if (!options.token.empty()) context.AddMetadata("authorization", "Bearer " + options.token);
  std::unique_ptr<Stream> stream = stub.Connect(&context);
  std::mutex write_mutex;
  auto write = [&](const pb::AgentMessage& m) {
    std::lock_guard<std::mutex> lock(write_mutex);
    return stream->Write(m);
  };
  pb::AgentMessage hello;
  *hello.mutable_register_() = reg;
  pb::TrackerMessage message;
  if (!write(hello) || !stream->Read(&message) || !message.has_registered()) {
    grpc::Status s = stream->Finish();
    logger("agent")->warn("tracker {} refused or unreachable: {}", options.tracker,
                          s.ok() ? "stream closed" : s.error_message());
    return false;
  }
  const auto interval = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::duration<double>(std::max(0.05, message.registered().heartbeat_interval_s())));
  logger("agent")->info("registered agent={} key={} tracker={}", reg.agent_id(), reg.device_key(),
                        options.tracker);
  // Presented when it connects again, so that the tracker lets this agent replace its session.
  reg.set_agent_secret(message.registered().agent_secret());
  AgentMetrics* metrics = options.metrics.get();
  if (metrics) metrics->connected(true);

  std::mutex queue_mutex;
  std::condition_variable queue_ready;
  std::deque<pb::MeasureTask> queue;
  std::atomic<bool> alive{true};

  std::thread heartbeat([&] {
    auto next = std::chrono::steady_clock::now();
    while (alive) {
      if (stop) {
        context.TryCancel();
        return;
      }
      if (std::chrono::steady_clock::now() >= next) {
        pb::AgentMessage beat;
        beat.mutable_heartbeat()->set_sent_unix_ms(
            std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count());
        if (!write(beat)) return;
        next += interval;
      }
      std::this_thread::sleep_for(std::min(interval, std::chrono::milliseconds(50)));
    }
  });
  std::vector<std::thread> runners;
  for (std::unique_ptr<Worker>& worker : workers) {
    runners.emplace_back([&, w = worker.get()] {
      while (true) {
        pb::MeasureTask task;
        {
          std::unique_lock<std::mutex> lock(queue_mutex);
          queue_ready.wait(lock, [&] { return !queue.empty() || !alive; });
          if (!alive) return;
          task = std::move(queue.front());
          queue.pop_front();
        }
        logger("agent")->debug("task={} workload={} config={}", task.task_id(),
                               task.workload().canonical(), task.config().index());
        pb::AgentMessage reply;
        const auto started = std::chrono::steady_clock::now();
        if (metrics) metrics->task_started();
        *reply.mutable_result() = w->measure(task);
        if (metrics) {
          metrics->task_done(std::chrono::steady_clock::now() - started,
                             reply.result().error_code() == pb::MEASURE_ERROR_CODE_OK);
        }
        reply.mutable_result()->set_agent(reg.agent_id());
        write(reply);  // a broken stream drops it: the tracker leases the task again
      }
    });
  }
  while (stream->Read(&message)) {
    if (!message.has_task()) continue;
    std::lock_guard<std::mutex> lock(queue_mutex);
    queue.push_back(message.task().task());
    queue_ready.notify_one();
  }
  {
    std::lock_guard<std::mutex> lock(queue_mutex);
    alive = false;
  }
  queue_ready.notify_all();
  context.TryCancel();
  heartbeat.join();
  for (std::thread& t : runners) t.join();
  grpc::Status s = stream->Finish();
  if (metrics) metrics->connected(false);
  if (!stop) {
    logger("agent")->warn("lost the tracker {}: {}", options.tracker,
                          s.ok() ? "stream ended" : s.error_message());
  }
  return true;
}

}  // namespace

Status run_agent(const AgentOptions& given, const std::atomic<bool>& stop) {
  AgentOptions options = given;
  if (options.tracker.empty() || options.device_key.empty()) {
    return invalid_argument("an agent needs --tracker HOST:PORT and --key KEY");
  }
  if (options.worker_command.empty()) return invalid_argument("an agent needs a worker command");
  KILN_ASSIGN_OR_RETURN(core::Target parsed, core::parse_target(options.target));
  if (parsed.kind != core::TargetKind::kLlvm || !parsed.is_host) {
    return invalid_argument("an agent builds for its own CPU: --target '" + parsed.str() +
                            "' names another machine; give 'llvm', optionally with -mcpu and "
                            "-mattr");
  }
  KILN_ASSIGN_OR_RETURN(core::Target target, core::resolve_host_target(parsed));
  options.target = parsed.str();
  if (options.agent_id.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    options.agent_id = options.device_key + "@" + host + ":" + std::to_string(getpid());
  }
  options.capacity = std::max(1, options.capacity);
  pb::RegisterAgent reg = registration(options, target);

  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!options.tls_ca_pem.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_ca_pem;
    credentials = grpc::SslCredentials(ssl);
  }
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < options.capacity; ++i) {
    workers.push_back(std::make_unique<Worker>(options.worker_command, options.limits));
  }
  std::mt19937_64 jitter(std::random_device{}());
  auto backoff = options.min_backoff;
  while (!stop) {
    auto channel = create_channel(options.tracker, credentials, kMaxFleetMessageBytes);
    auto stub = pb::Tracker::NewStub(channel);
    if (serve_connection(options, reg, *stub, workers, stop)) backoff = options.min_backoff;
    if (stop) break;
    // Exponential backoff with full jitter, so that a fleet does not reconnect in lockstep.
    auto wait = std::chrono::milliseconds(
        std::uniform_int_distribution<int64_t>(backoff.count() / 2, backoff.count())(jitter));
    logger("agent")->info("reconnecting to {} in {} ms", options.tracker, wait.count());
    for (auto waited = std::chrono::milliseconds(0); waited < wait && !stop;
         waited += std::chrono::milliseconds(50)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    backoff = std::min(options.max_backoff, backoff * 2);
  }
  return Status::ok();
}

}  // namespace kiln::agent
