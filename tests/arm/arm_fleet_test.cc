// ARM boards in the fleet, without a board: the arm64 `kiln agent`, cross-built from Debian's
// arm64 packages (scripts/cross_build_arm64.sh), runs under qemu-user beside this machine's
// x86 kiln. A real `kiln tracker` routes each task to an agent that can run its target; the
// agents build, check and time what they are given. Every process runs on 127.0.0.1 with ports
// chosen at run time and stops at the end of its test.
//
// The property test prints its seed; set KILN_TEST_SEED to replay a run.

#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "compiler_core/schedule/templates.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"
#include "kiln/v1/tracker.grpc.pb.h"
#include "tests/arm/arm_build.h"
#include "tests/support/kiln_process_test.h"

namespace {

using kiln::test::Process;
using kiln::test::read_file;
namespace fs = std::filesystem;
namespace pb = kiln::v1;
namespace core = kiln::core;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kArmTarget = "llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72";

uint64_t test_seed() {
  static const uint64_t seed = [] {
    const char* env = std::getenv("KILN_TEST_SEED");
    uint64_t s = env ? std::strtoull(env, nullptr, 10) : uint64_t(std::random_device{}());
    std::cout << "arm test seed: " << s << " (set KILN_TEST_SEED to replay)\n";
    return s;
  }();
  return seed;
}

class ArmFleetTest : public kiln::test::KilnProcessTest {
 protected:
  void SetUp() override {
    make_dir("kiln_arm");
    KILN_NEED_ARM64_BUILD();
  }

  int start_tracker() {
    Process& tracker = run("tracker", {"tracker", "--listen", "127.0.0.1:0"});
    return wait_for_port(tracker);
  }

  static std::string tracker_address(int port) { return "127.0.0.1:" + std::to_string(port); }

  /// The arm64 kiln's agent under qemu-user; its workers run under qemu too.
  Process& start_arm_agent(int port, const std::string& key, const std::string& id,
                           int capacity = 1) {
    // The worker's program by name, as a user writes it: the agent looks it up in PATH.
    const std::string qemu =
        fs::path(KILN_QEMU_AARCH64).filename().string() + " -L " + KILN_ARM64_SYSROOT;
    std::vector<std::string> args = {KILN_QEMU_AARCH64,
                                     "-L",
                                     KILN_ARM64_SYSROOT,
                                     KILN_ARM64_BINARY,
                                     "agent",
                                     "--tracker",
                                     tracker_address(port),
                                     "--key",
                                     key,
                                     "--id",
                                     id,
                                     "--capacity",
                                     std::to_string(capacity),
                                     "--task-timeout-s",
                                     "600",
                                     "--worker",
                                     qemu + " " + KILN_ARM64_BINARY + " agent-worker"};
    processes_.push_back(Process::spawn(args, dir_ / (id + ".out"), dir_ / (id + ".err")));
    EXPECT_GT(processes_.back().pid, 0) << id;
    return processes_.back();
  }

  Process& start_x86_agent(int port, const std::string& key, const std::string& id) {
    return run(id, {"agent", "--tracker", tracker_address(port), "--key", key, "--id", id});
  }

  pb::StatusResponse status(int port) {
    auto stub = pb::Tracker::NewStub(
        grpc::CreateChannel(tracker_address(port), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 10s);
    pb::StatusResponse response;
    grpc::Status s = stub->GetStatus(&context, pb::StatusRequest(), &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response;
  }

  /// Polls the tracker until `agents` agents of `key` are connected (qemu starts slowly).
  void wait_for_agents(int port, const std::string& key, int agents) {
    const auto deadline = Clock::now() + 120s;
    while (Clock::now() < deadline) {
      int connected = 0;
      const pb::StatusResponse now = status(port);
      for (const pb::AgentStatus& a : now.agents()) {
        connected += a.device_key() == key && a.state() != "lost" ? 1 : 0;
      }
      if (connected >= agents) return;
      std::this_thread::sleep_for(100ms);
    }
    FAIL() << "fewer than " << agents << " agents of key " << key << " connected; agent logs:\n"
           << logs();
  }

  /// Every process's stderr, for failure messages.
  std::string logs() {
    std::string out;
    for (const Process& p : processes_) {
      out += "--- " + p.err.filename().string() + "\n" + read_file(p.err).substr(0, 4000);
    }
    return out;
  }

  /// Submits `tasks` on `key` and returns every result, by task id.
  std::map<std::string, pb::MeasureResult> submit(int port, const std::string& key,
                                                  const std::vector<pb::MeasureTask>& tasks) {
    auto stub = pb::Tracker::NewStub(
        grpc::CreateChannel(tracker_address(port), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 900s);
    pb::SubmitRequest request;
    request.set_job_id("arm-property");
    request.set_device_key(key);
    for (const pb::MeasureTask& t : tasks) *request.add_tasks() = t;
    auto reader = stub->Submit(&context, request);
    std::map<std::string, pb::MeasureResult> results;
    pb::SubmitResponse batch;
    while (results.size() < tasks.size() && reader->Read(&batch)) {
      for (const pb::MeasureResult& r : batch.results()) results[r.task_id()] = r;
    }
    context.TryCancel();
    (void)reader->Finish();
    return results;
  }

  /// Runs `kiln args...` to its end with stdout and stderr kept; returns the exit code.
  int kiln(const std::string& name, std::vector<std::string> args, std::string* out,
           std::string* err = nullptr) {
    Process& p = run(name, std::move(args));
    const int code = p.wait();
    *out = read_file(p.out);
    if (err != nullptr) *err = read_file(p.err);
    return code;
  }
};

int64_t pick(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

/// Random shapes of every operator: matmul, dense with its epilogue, batch_matmul, conv2d in
/// NCHW and NHWC with stride, padding, dilation and groups, and depthwise.
std::vector<std::string> random_workloads(std::mt19937_64& rng) {
  auto n = [&](int64_t lo, int64_t hi) { return std::to_string(pick(rng, lo, hi)); };
  std::vector<std::string> out;
  out.push_back("matmul:M=" + n(1, 40) + ",N=" + n(1, 70) + ",K=" + n(1, 40));
  out.push_back("dense:M=" + n(1, 8) + ",N=" + n(1, 70) + ",K=" + n(1, 50) + ",bias=" + n(0, 1) +
                (pick(rng, 0, 1) ? ",act=relu" : ",act=none"));
  out.push_back("batch_matmul:B=" + n(1, 3) + ",M=" + n(1, 20) + ",N=" + n(1, 40) +
                ",K=" + n(1, 24));
  for (const char* layout : {"NCHW", "NHWC"}) {
    const int64_t groups = pick(rng, 1, 2), r = pick(rng, 1, 3), s = pick(rng, 1, 3);
    const int64_t dilation = pick(rng, 1, 2);
    const int64_t h = std::max<int64_t>(pick(rng, 4, 12), (r - 1) * dilation + 1);
    const int64_t w = std::max<int64_t>(pick(rng, 4, 12), (s - 1) * dilation + 1);
    out.push_back("conv2d:N=1,C=" + std::to_string(groups * pick(rng, 1, 8)) +
                  ",H=" + std::to_string(h) + ",W=" + std::to_string(w) +
                  ",K=" + std::to_string(groups * pick(rng, 1, 12)) + ",R=" + std::to_string(r) +
                  ",S=" + std::to_string(s) + ",stride=" + n(1, 2) + ",pad=" + n(0, 2) +
                  ",dilation=" + std::to_string(dilation) + ",groups=" + std::to_string(groups) +
                  ",layout=" + layout);
  }
  // Whole vectors of output columns, so that the direct variant is in the space too.
  out.push_back("conv2d:N=1,C=" + n(1, 6) + ",H=" + n(3, 8) + ",W=8,K=" + n(1, 8) +
                ",R=3,S=3,stride=1,pad=1");
  out.push_back("depthwise_conv2d:N=1,C=" + n(1, 12) + ",H=" + n(3, 10) + ",W=" + n(4, 12) +
                ",R=3,S=3,stride=" + n(1, 2) + ",pad=1");
  return out;
}

/// A task of `workload` at `config`, timed once (timings under emulation mean nothing here).
pb::MeasureTask task_of(const std::string& id, const core::Workload& workload,
                        const std::string& target, const core::ConfigSpace& space,
                        const core::Config& config) {
  pb::MeasureTask task;
  task.set_task_id(id);
  task.mutable_workload()->set_canonical(workload.canonical());
  task.mutable_workload()->set_op(core::op_name(workload.op));
  task.mutable_target()->set_canonical(target);
  task.mutable_target()->set_triple(core::parse_target(target)->triple);
  task.mutable_config()->set_index(config.index);
  for (size_t k = 0; k < space.knobs().size(); ++k) {
    (*task.mutable_config()->mutable_knobs())[space.knobs()[k].name] = config.values[k];
  }
  pb::MeasureOptions* o = task.mutable_options();
  o->set_number(1);
  o->set_repeat(1);
  o->set_threads(1);
  o->set_timeout_s(600);
  return task;
}

// Random configs of every operator, built for aarch64 by the arm64 kiln under qemu, are correct
// against the reference (the agent checks each output and reports WRONG_ANSWER otherwise).
TEST_F(ArmFleetTest, RandomConfigsOfEveryOperatorBuiltForAarch64MatchTheReference) {
  const int port = start_tracker();
  ASSERT_GT(port, 0);
  start_arm_agent(port, "arm", "arm-0", /*capacity=*/2);
  ASSERT_NO_FATAL_FAILURE(wait_for_agents(port, "arm", 1));

  std::mt19937_64 rng(test_seed());
  const core::Target arm = *core::parse_target(kArmTarget);
  std::vector<pb::MeasureTask> tasks;
  std::map<std::string, std::string> described;
  constexpr int kRounds = 3;  // each round: a random shape of every operator, two configs each
  for (int round = 0; round < kRounds; ++round) {
    for (const std::string& text : random_workloads(rng)) {
      core::Workload w = *core::parse_workload(text);
      core::ConfigSpace space = *core::config_space(w, arm);
      for (int c = 0; c < 2; ++c) {
        core::Config config = *space.at(pick(rng, 0, space.size() - 1));
        const std::string id = "t" + std::to_string(tasks.size());
        tasks.push_back(task_of(id, w, kArmTarget, space, config));
        described[id] = w.canonical() + " " + space.to_json(config);
      }
    }
  }
  std::map<std::string, pb::MeasureResult> results = submit(port, "arm", tasks);
  ASSERT_EQ(results.size(), tasks.size()) << logs();
  for (const auto& [id, r] : results) {
    EXPECT_EQ(r.error_code(), pb::MEASURE_ERROR_CODE_OK)
        << described[id] << ": " << pb::MeasureErrorCode_Name(r.error_code()) << " "
        << r.error_message();
    EXPECT_TRUE(r.emulated()) << described[id];
    EXPECT_EQ(r.agent(), "arm-0");
    EXPECT_NE(r.built_target().find("-mcpu=cortex-a72"), std::string::npos) << r.built_target();
  }
}

}  // namespace

namespace {

/// The records of a tuning log, as `kiln db export` writes them.
std::vector<nlohmann::json> exported_records(const fs::path& out) {
  std::vector<nlohmann::json> records;
  std::istringstream lines(read_file(out));
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) records.push_back(nlohmann::json::parse(line));
  }
  return records;
}

std::vector<std::string> tune_args(int port, const std::string& key, const std::string& target,
                                   int trials, const fs::path& db) {
  return {"tune",
          "--workload",
          "matmul:M=32,N=32,K=32",
          "--target",
          target,
          "--trials",
          std::to_string(trials),
          "--batch",
          "8",
          "--tuner",
          "random",
          "--threads",
          "1",
          "--tracker",
          "127.0.0.1:" + std::to_string(port),
          "--device-key",
          key,
          "--db",
          db.string(),
          "--json"};
}

// One key holds an x86 board and an emulated arm64 board; an x86 job and an aarch64 job run on
// it at once. Every record names the agent that measured it, no task crosses to the other
// architecture, and `kiln best` answers each target with its own records.
TEST_F(ArmFleetTest, X86AndArmJobsShareAKeyAndEachReachesOnlyItsOwnBoards) {
  const int port = start_tracker();
  ASSERT_GT(port, 0);
  start_x86_agent(port, "mixed", "x86-0");
  start_arm_agent(port, "mixed", "arm-0");
  ASSERT_NO_FATAL_FAILURE(wait_for_agents(port, "mixed", 2));

  const fs::path db = dir_ / "fleet.db";
  Process& x86_job =
      run("tune-x86", tune_args(port, "mixed", "llvm -mtriple=x86_64-linux-gnu", 16, db));
  Process& arm_job = run("tune-arm", tune_args(port, "mixed", kArmTarget, 16, db));
  ASSERT_EQ(x86_job.wait(), 0) << read_file(x86_job.err) << logs();
  ASSERT_EQ(arm_job.wait(), 0) << read_file(arm_job.err) << logs();
  const nlohmann::json x86_summary = nlohmann::json::parse(read_file(x86_job.out));
  const nlohmann::json arm_summary = nlohmann::json::parse(read_file(arm_job.out));
  // `llvm -mtriple=x86_64-...` alone means the key's x86 boards: the job took their target.
  const std::string x86_target = x86_summary["target"];
  EXPECT_NE(x86_target.find("-mcpu="), std::string::npos) << x86_target;
  EXPECT_EQ(arm_summary["target"], kArmTarget);

  std::string out;
  ASSERT_EQ(
      kiln("export",
           {"db", "export", "--db", db.string(), "--output", (dir_ / "all.jsonl").string()}, &out),
      0);
  int x86_records = 0, arm_records = 0;
  for (const nlohmann::json& r : exported_records(dir_ / "all.jsonl")) {
    const std::string target = r["target"];
    if (target == kArmTarget) {
      ++arm_records;
      EXPECT_EQ(r["agent"], "arm-0") << r.dump();
      EXPECT_EQ(r["emulated"], true) << r.dump();
    } else {
      ++x86_records;
      EXPECT_EQ(target, x86_target) << r.dump();
      EXPECT_EQ(r["agent"], "x86-0") << r.dump();
      EXPECT_EQ(r["emulated"], false) << r.dump();
    }
    EXPECT_EQ(r["error"], "OK") << r.dump();
  }
  EXPECT_GE(x86_records, 16);
  EXPECT_GE(arm_records, 16);

  ASSERT_EQ(kiln("best-x86",
                 {"best", "--workload", "matmul:M=32,N=32,K=32", "--target", x86_target, "--top",
                  "100", "--db", db.string(), "--json"},
                 &out),
            0);
  nlohmann::json best = nlohmann::json::parse(out);
  ASSERT_FALSE(best["records"].empty());
  for (const nlohmann::json& r : best["records"]) EXPECT_EQ(r["agent"], "x86-0") << r.dump();

  ASSERT_EQ(kiln("best-arm",
                 {"best", "--workload", "matmul:M=32,N=32,K=32", "--target", kArmTarget, "--top",
                  "100", "--db", db.string(), "--emulated", "--json"},
                 &out),
            0);
  best = nlohmann::json::parse(out);
  ASSERT_FALSE(best["records"].empty());
  for (const nlohmann::json& r : best["records"]) {
    EXPECT_EQ(r["agent"], "arm-0") << r.dump();
    EXPECT_EQ(r["emulated"], true) << r.dump();
  }
}

// A job for a target no agent of its key can run waits and says so (its progress, `kiln
// status`), and completes when a fitting board joins. Through the emulated board its 40 trials
// end as 40 records, all marked emulated, none of them offered as a real board's best.
TEST_F(ArmFleetTest, AnArmJobWaitsForAnArmBoardAndItsEmulatedRecordsNeverAnswerForARealOne) {
  const int port = start_tracker();
  ASSERT_GT(port, 0);
  start_x86_agent(port, "late", "x86-0");
  ASSERT_NO_FATAL_FAILURE(wait_for_agents(port, "late", 1));

  const fs::path db = dir_ / "arm.db";
  Process& job = run("tune-arm", tune_args(port, "late", kArmTarget, 40, db));
  // The job says it waits; the tracker's status says for what.
  const auto deadline = Clock::now() + 60s;
  bool said = false, listed = false;
  while (Clock::now() < deadline && !(said && listed)) {
    said = read_file(job.err).find("waiting for a board that can run it") != std::string::npos;
    const pb::StatusResponse now = status(port);
    for (const pb::KeyStatus& key : now.keys()) {
      if (key.device_key() != "late") continue;
      for (const pb::WaitingTarget& waiting : key.waiting()) {
        listed = listed ||
                 (waiting.tasks() > 0 && waiting.target().find("aarch64") != std::string::npos);
      }
    }
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(said) << read_file(job.err);
  EXPECT_TRUE(listed);
  std::string out;
  ASSERT_EQ(kiln("status", {"status", "--tracker", tracker_address(port)}, &out), 0);
  EXPECT_NE(out.find("aarch64"), std::string::npos) << out;

  start_arm_agent(port, "late", "arm-0", /*capacity=*/2);
  ASSERT_EQ(job.wait(), 0) << read_file(job.err) << logs();
  const nlohmann::json summary = nlohmann::json::parse(read_file(job.out));
  EXPECT_EQ(summary["trials"], 40);

  ASSERT_EQ(
      kiln("export",
           {"db", "export", "--db", db.string(), "--output", (dir_ / "arm.jsonl").string()}, &out),
      0);
  const std::vector<nlohmann::json> records = exported_records(dir_ / "arm.jsonl");
  EXPECT_EQ(records.size(), 40u);
  for (const nlohmann::json& r : records) {
    EXPECT_EQ(r["emulated"], true) << r.dump();
    EXPECT_EQ(r["agent"], "arm-0") << r.dump();
  }
  // A real board's best: none. The emulated board's: there, marked.
  ASSERT_EQ(kiln("best-real",
                 {"best", "--workload", "matmul:M=32,N=32,K=32", "--target", kArmTarget, "--db",
                  db.string(), "--json"},
                 &out),
            0);
  EXPECT_TRUE(nlohmann::json::parse(out)["records"].empty()) << out;
  ASSERT_EQ(kiln("best-real-text",
                 {"best", "--workload", "matmul:M=32,N=32,K=32", "--target", kArmTarget, "--db",
                  db.string()},
                 &out),
            0);
  EXPECT_NE(out.find("--emulated"), std::string::npos) << out;
  ASSERT_EQ(kiln("best-emulated",
                 {"best", "--workload", "matmul:M=32,N=32,K=32", "--target", kArmTarget, "--db",
                  db.string(), "--emulated", "--json"},
                 &out),
            0);
  const nlohmann::json best = nlohmann::json::parse(out);
  ASSERT_EQ(best["records"].size(), 1u) << out;
  EXPECT_EQ(best["records"][0]["emulated"], true);
}

}  // namespace
