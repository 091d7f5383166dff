// `kiln status`: the tracker's agents (with their architecture, and whether they run under
// emulation) and queues, with the tasks that wait for a board that can run them and why.

#include <iostream>
#include <string>

#include <grpcpp/grpcpp.h>
#include <spdlog/fmt/fmt.h>
#include <nlohmann/json.hpp>

#include "kiln/v1/tracker.grpc.pb.h"
#include "tuner/cli/commands.h"
#include "tuner/cli/flags.h"
#include "tuner/cli/fleet_flags.h"

namespace kiln::tuner {
namespace {

FlagSet make_flags() {
  FlagSet flags("status",
                "Shows a tracker's agents (key, target, state, tasks done, errors, "
                "architecture, emulated) and the queue depth of every device key, with the "
                "tasks that no agent of the key can run and why.",
                "With --json: one object with agents and keys (each key's waiting tasks in "
                "\"waiting\": target, tasks, reason).\nExit codes: 0 done, 1 the tracker is "
                "unreachable or refused the call, 2 bad flags.");
  flags.add_required_string("tracker", "ADDR", "the tracker's host:port");
  add_token_flag(flags);
  add_tls_client_flag(flags);
  flags.add_bool("json", "print one JSON object on stdout");
  return flags;
}

/// "aarch64", "aarch64 emulated", or "?" for an agent that named none.
std::string architecture_label(const kiln::v1::DeviceFacts& facts) {
  std::string label = facts.architecture().empty() ? "?" : facts.architecture();
  if (facts.emulated()) label += " emulated";
  return label;
}

}  // namespace

int status_command(const std::vector<std::string>& args) {
  FlagSet flags = make_flags();
  if (auto exit_code = parse_flags_or_exit(flags, args)) return *exit_code;
  const std::string address = flags.get_string("tracker");
  Result<ClientConnection> connection = connect_from_flags(flags, "tracker");
  if (!connection) return report_error(connection.status());
  auto stub = kiln::v1::Tracker::NewStub(connection->channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  connection->authorize(context);
  kiln::v1::StatusResponse response;
  grpc::Status s = stub->GetStatus(&context, kiln::v1::StatusRequest(), &response);
  if (!s.ok()) {
    std::cerr << "error: tracker " << address << ": " << s.error_message() << "\n";
    return 1;
  }
  if (flags.get_bool("json")) {
    nlohmann::ordered_json agents = nlohmann::ordered_json::array(),
                           keys = nlohmann::ordered_json::array();
    for (const auto& a : response.agents()) {
      agents.push_back({{"agent", a.agent_id()},
                        {"key", a.device_key()},
                        {"target", a.target()},
                        {"state", a.state()},
                        {"tasks_done", a.tasks_done()},
                        {"errors", a.errors()},
                        {"cpu", a.facts().cpu_model()},
                        {"cores", a.facts().cores()},
                        {"architecture", a.facts().architecture()},
                        {"emulated", a.facts().emulated()}});
    }
    for (const auto& k : response.keys()) {
      nlohmann::ordered_json waiting = nlohmann::ordered_json::array();
      for (const auto& w : k.waiting()) {
        waiting.push_back({{"target", w.target()}, {"tasks", w.tasks()}, {"reason", w.reason()}});
      }
      keys.push_back({{"key", k.device_key()},
                      {"queued", k.queued()},
                      {"leased", k.leased()},
                      {"agents", k.agents()},
                      {"waiting", waiting}});
    }
    std::cout
        << nlohmann::ordered_json{{"tracker", address}, {"agents", agents}, {"keys", keys}}.dump()
        << "\n";
    return 0;
  }
  std::cout << fmt::format("{:<36} {:<16} {:<6} {:>6} {:>6}  {:<16}  {}\n", "agent", "key", "state",
                           "done", "errors", "arch", "cpu");
  for (const auto& a : response.agents()) {
    std::cout << fmt::format("{:<36} {:<16} {:<6} {:>6} {:>6}  {:<16}  {}\n", a.agent_id(),
                             a.device_key(), a.state(), a.tasks_done(), a.errors(),
                             architecture_label(a.facts()), a.facts().cpu_model());
  }
  std::cout << fmt::format("\n{:<16} {:>8} {:>8} {:>7}\n", "key", "queued", "leased", "agents");
  for (const auto& k : response.keys()) {
    std::cout << fmt::format("{:<16} {:>8} {:>8} {:>7}\n", k.device_key(), k.queued(), k.leased(),
                             k.agents());
    for (const auto& w : k.waiting()) {
      std::cout << fmt::format("  waiting: {} task{} of {}: {}\n", w.tasks(),
                               w.tasks() == 1 ? "" : "s",
                               w.target().empty() ? "(no target)" : w.target(), w.reason());
    }
  }
  return 0;
}

}  // namespace kiln::tuner
