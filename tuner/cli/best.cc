// `kiln best`: the fastest valid records the tuning log holds for a workload on a target.

#include <algorithm>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/fmt/fmt.h>
#include <nlohmann/json.hpp>

#include "compiler_core/db/record.h"
#include "compiler_core/db/tuning_log.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"
#include "kiln/v1/tuning.grpc.pb.h"
#include "proto/kiln/grpc_status.h"
#include "tuner/cli/commands.h"
#include "tuner/cli/flags.h"
#include "tuner/cli/fleet_flags.h"
#include "tuner/cli/tuning_log_flag.h"

namespace kiln::tuner {
namespace {

constexpr int64_t kMaxTop = 1000;

FlagSet make_flags() {
  FlagSet flags("best",
                "Lists the fastest valid records (error OK, by median time) that the tuning log "
                "holds for a workload on a target, one per config. Records answer only for the "
                "hardware they were measured on: for this machine (llvm) its CPU model and "
                "features must match; for a target naming -mtriple, any real board of it. "
                "Records from emulated boards (qemu-user) answer only with --emulated. A "
                "schedule's speed depends on its thread count: only records measured with "
                "--threads answer.",
                "With --json: one object {workload, target, model, emulated, threads, records: "
                "[{config, time_s, gflops, threads, agent, device, model, emulated, "
                "measured_at}]}, measured_at in "
                "RFC 3339 (UTC).\nExit "
                "codes: 0 (also when there is no record), 1 a damaged tuning log, 2 bad flags, "
                "workload or target, or a --db file that does not exist or is not a tuning log.");
  flags.add_required_string("workload", "W", "the workload, e.g. matmul:M=1024,N=1024,K=1024");
  flags.add_required_string("target", "T",
                            "the target: llvm (this machine), llvm -mtriple=... -mcpu=..., or "
                            "cuda -arch=sm_NN");
  flags.add_int("top", "K", "how many records to list", 1, 1, kMaxTop);
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  flags.add_int("threads", "N",
                "the thread count the kernel will run with (kiln run's --threads); 0 lists "
                "records of every count",
                0, 0, core::kMaxRecordThreads,
                "this machine's cores (" + std::to_string(cores) +
                    ") for llvm, as kiln run; 0 for a target naming -mtriple");
  add_db_flag(flags, "the tuning log to read");
  flags.add_bool("emulated",
                 "list the records of emulated boards (qemu-user) instead of real ones: their "
                 "timings say nothing about a real board");
  flags.add_string("server", "ADDR",
                   "ask the Tuning service of a kiln serve at host:port instead of reading --db");
  add_token_flag(flags);
  add_tls_client_flag(flags);
  flags.add_bool("json", "print one JSON object on stdout instead of a table");
  return flags;
}

/// One record as `kiln best` prints it, from the local log or from a server.
struct Row {
  std::string config_json;
  int64_t config_index = 0;
  double time_s = 0;
  std::string agent, device;
  int64_t measured_at_ms = 0;
  int threads = 0;
  std::string model;  ///< the board's model
  bool emulated = false;
};

Result<std::vector<Row>> rows_from_log(const FlagSet& flags, const core::Workload& workload,
                                       const core::TargetKey& key, int top, std::string* where) {
  KILN_ASSIGN_OR_RETURN(core::TuningLog log, open_db_for_reading(flags));
  *where = log.path().string();
  KILN_ASSIGN_OR_RETURN(std::vector<core::TuningRecord> best, log.best(workload, key, top));
  std::vector<Row> rows;
  for (const core::TuningRecord& r : best) {
    rows.push_back({r.config_json(), r.config_index, r.median_cost(), r.agent, r.device,
                    r.measured_at_ms, r.target.threads, r.target.model, r.target.emulated});
  }
  return rows;
}

/// QueryBest for this machine's key (the records of the hardware asking).
Result<std::vector<Row>> rows_from_server(const FlagSet& flags, const core::Workload& workload,
                                          const core::TargetKey& key, int top, std::string* where) {
  KILN_ASSIGN_OR_RETURN(ClientConnection connection, connect_from_flags(flags, "server"));
  *where = connection.address;
  auto stub = v1::Tuning::NewStub(connection.channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  connection.authorize(context);
  v1::QueryBestRequest request;
  request.set_workload(workload.canonical());
  request.set_target(key.target);
  request.set_model(key.model);
  request.set_k(top);
  request.set_threads(key.threads);
  v1::QueryBestResponse response;
  grpc::Status s = stub->QueryBest(&context, request, &response);
  if (!s.ok()) return from_grpc(s, connection.address);
  std::vector<Row> rows;
  for (const v1::BestRecord& r : response.records()) {
    nlohmann::ordered_json knobs = nlohmann::ordered_json::object();
    const std::map<std::string, int64_t> sorted(r.config().knobs().begin(),
                                                r.config().knobs().end());
    for (const auto& [name, value] : sorted) knobs[name] = value;
    nlohmann::ordered_json config = {{"index", r.config().index()}, {"knobs", knobs}};
    rows.push_back({config.dump(), r.config().index(), r.time_s(), r.agent(), r.device(),
                    r.measured_at_unix_ms(), r.threads(), response.model(), false});
  }
  return rows;
}

}  // namespace

int best_command(const std::vector<std::string>& args) {
  FlagSet flags = make_flags();
  if (auto exit_code = parse_flags_or_exit(flags, args)) return *exit_code;

  Result<core::Workload> workload = core::parse_workload(flags.get_string("workload"));
  if (!workload) return report_error(workload.status());
  Result<core::Target> target = core::parse_target(flags.get_string("target"));
  if (!target) return report_error(target.status());
  // Like kiln run, a host target's query is for this machine's cores unless told otherwise.
  const int threads = flags.is_set("threads") || !target->is_host
                          ? int(flags.get_int("threads"))
                          : int(std::max(1u, std::thread::hardware_concurrency()));
  Result<core::TargetKey> key = core::make_target_key(*target, threads);
  if (!key) return report_error(key.status());
  if (flags.is_set("server") && flags.is_set("db")) {
    return report_error(invalid_argument("--server and --db exclude each other"));
  }
  if (flags.get_bool("emulated")) {
    if (flags.is_set("server")) {
      return report_error(invalid_argument(
          "--emulated reads a tuning log (--db); a kiln serve answers for real boards only"));
    }
    // An emulated board is never this machine: its records are those of any emulated board of
    // the target.
    key->model.clear();
    key->emulated = true;
  }
  const int top = static_cast<int>(flags.get_int("top"));
  std::string where;
  Result<std::vector<Row>> best = flags.is_set("server")
                                      ? rows_from_server(flags, *workload, *key, top, &where)
                                      : rows_from_log(flags, *workload, *key, top, &where);
  if (!best) return report_error(best.status());

  const double flops = workload->flops();
  auto gflops = [&](double seconds) { return seconds > 0 ? flops / seconds / 1e9 : 0.0; };
  if (flags.get_bool("json")) {
    nlohmann::ordered_json records = nlohmann::ordered_json::array();
    for (const Row& record : *best) {
      const double time_s = record.time_s;
      records.push_back({
          {"config", nlohmann::ordered_json::parse(record.config_json)},
          {"time_s", time_s},
          {"gflops", gflops(time_s)},
          {"threads", record.threads},
          {"agent", record.agent},
          {"device", record.device},
          {"model", record.model},
          {"emulated", record.emulated},
          {"measured_at", format_unix_ms(record.measured_at_ms)},
      });
    }
    nlohmann::ordered_json object = {
        {"workload", workload->canonical()}, {"target", target->str()}, {"model", key->model},
        {"emulated", key->emulated},         {"threads", key->threads}, {"records", records},
    };
    std::cout << object.dump() << "\n";
    return 0;
  }
  if (best->empty()) {
    std::cout << fmt::format("no valid records for {} on {} in {}\n", workload->canonical(),
                             key->str(), where);
    if (!key->emulated && !flags.is_set("server")) {
      core::TargetKey emulated{key->target, "", true, key->threads};
      Result<std::vector<Row>> seen = rows_from_log(flags, *workload, emulated, 1, &where);
      if (seen && !seen->empty()) {
        std::cout << "emulated boards hold records of it: --emulated lists them\n";
      }
    }
    return 0;
  }
  std::cout << fmt::format("{} on {}\n", workload->canonical(), key->str());
  for (size_t i = 0; i < best->size(); ++i) {
    const Row& record = (*best)[i];
    const double time_s = record.time_s;
    std::cout << fmt::format(
        "{:>3}. config #{}  {:.3g} s  {:.4g} GFLOP/s  threads={}  agent={}  {}{}\n", i + 1,
        record.config_index, time_s, gflops(time_s),
        record.threads == 0 ? "?" : std::to_string(record.threads),
        record.agent.empty() ? "-" : record.agent, format_unix_ms(record.measured_at_ms),
        record.emulated ? "  (emulated)" : "");
  }
  return 0;
}

}  // namespace kiln::tuner
