// The fleet as users run it: real `kiln tracker`, `kiln agent` and `kiln tune` processes on
// 127.0.0.1, ports chosen at run time, each test in its own folder, everything stopped at the
// end. Agents are killed, the tracker restarted, kernels crash and hang, tokens and TLS refuse.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kiln/v1/tracker.grpc.pb.h"
#include "tests/support/kiln_process_test.h"
#include "tests/support/metrics_scrape.h"

extern char** environ;

namespace {

using kiln::test::Process;
using kiln::test::read_file;
namespace fs = std::filesystem;
namespace pb = kiln::v1;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kToken = "fleet-test-token";

class FleetTest : public kiln::test::KilnProcessTest {
 protected:
  void SetUp() override {
    make_dir("kiln_fleet");
    std::ofstream(dir_ / "token") << kToken << "\n";
    std::ofstream(dir_ / "wrong-token") << "not-" << kToken << "\n";
  }

  /// Starts a tracker (port 0 unless given) and returns its port, read from its first line.
  int start_tracker(int port = 0, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"tracker",
                                     "--listen",
                                     "127.0.0.1:" + std::to_string(port),
                                     "--token-file",
                                     (dir_ / "token").string(),
                                     "--heartbeat-timeout-ms",
                                     "2000"};
    args.insert(args.end(), extra.begin(), extra.end());
    Process& tracker = run("tracker" + std::to_string(trackers_++), args);
    tracker_index_ = processes_.size() - 1;
    return wait_for_port(tracker);
  }
  Process& tracker() { return processes_[tracker_index_]; }

  Process& start_agent(int port, const std::string& id, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"agent", "--tracker",    "127.0.0.1:" + std::to_string(port),
                                     "--key", "cpu",          "--id",
                                     id,      "--token-file", (dir_ / "token").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return run(id, args);
  }

  /// `kiln status --json` until `agents` agents are connected (with a deadline).
  bool wait_for_agents(int port, int agents, const std::string& tls_ca = "") {
    auto deadline = Clock::now() + 30s;
    while (Clock::now() < deadline) {
      std::string cmd = std::string(KILN_BINARY) +
                        " status --json --tracker 127.0.0.1:" + std::to_string(port) +
                        " --token-file " + (dir_ / "token").string() +
                        (tls_ca.empty() ? "" : " --tls-ca " + tls_ca) + " 2>/dev/null";
      FILE* pipe = popen(cmd.c_str(), "r");
      std::string text;
      char buffer[4096];
      size_t n;
      while (pipe && (n = fread(buffer, 1, sizeof buffer, pipe)) > 0) text.append(buffer, n);
      if (pipe) pclose(pipe);
      nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
      if (j.is_object()) {
        int connected = 0;
        for (const auto& a : j["agents"]) connected += a["state"] != "lost" ? 1 : 0;
        if (connected >= agents) return true;
      }
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  std::vector<std::string> tune_args(int port, int trials, const std::string& workload) {
    return {"tune",
            "--workload",
            workload,
            "--target",
            "llvm",
            "--trials",
            std::to_string(trials),
            "--batch",
            "12",
            "--tuner",
            "random",
            "--threads",
            "1",
            "--tracker",
            "127.0.0.1:" + std::to_string(port),
            "--device-key",
            "cpu",
            "--token-file",
            (dir_ / "token").string(),
            "--db",
            (dir_ / "log.db").string()};
  }

  /// The trial records (re-measurements left out) in the job's log.
  std::vector<nlohmann::json> trial_records() {
    std::string cmd =
        std::string(KILN_BINARY) + " db export --db " + (dir_ / "log.db").string() + " 2>/dev/null";
    FILE* pipe = popen(cmd.c_str(), "r");
    std::string text;
    char buffer[4096];
    size_t n;
    while (pipe && (n = fread(buffer, 1, sizeof buffer, pipe)) > 0) text.append(buffer, n);
    if (pipe) pclose(pipe);
    std::vector<nlohmann::json> out;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
      nlohmann::json r = nlohmann::json::parse(line, nullptr, false);
      if (!r.is_object()) continue;
      if (r["measure_options"].value("remeasure", false)) continue;
      out.push_back(r);
    }
    return out;
  }

  size_t records_now() { return trial_records().size(); }

  void expect_exact_trials(int trials, const std::set<std::string>& allowed_agents) {
    std::vector<nlohmann::json> records = trial_records();
    EXPECT_EQ(records.size(), size_t(trials));
    std::set<int64_t> configs;
    for (const nlohmann::json& r : records) {
      EXPECT_TRUE(configs.insert(r["config"]["index"].get<int64_t>()).second)
          << "config " << r["config"]["index"] << " recorded twice";
      EXPECT_EQ(r["error"], "OK") << r.dump();
      EXPECT_TRUE(allowed_agents.count(r["agent"].get<std::string>())) << r.dump();
    }
  }

  size_t tracker_index_ = 0;
  int trackers_ = 0;
};

TEST_F(FleetTest, ThreeAgentsMeasureASixtyTrialJob) {
  int port = start_tracker();
  for (const char* id : {"a1", "a2", "a3"}) start_agent(port, id);
  ASSERT_TRUE(wait_for_agents(port, 3));
  Process& tune = run("tune", tune_args(port, 60, "matmul:M=64,N=64,K=64"));
  ASSERT_EQ(tune.wait(), 0) << read_file(tune.err);
  expect_exact_trials(60, {"a1", "a2", "a3"});
  std::map<std::string, int> per_agent;
  for (const nlohmann::json& r : trial_records()) ++per_agent[r["agent"]];
  EXPECT_EQ(per_agent.size(), 3u) << "the tasks ran on every agent in parallel";
}

TEST_F(FleetTest, AKilledAgentsTasksRunOnTheOthers) {
  int port = start_tracker();
  Process& victim = start_agent(port, "victim");
  start_agent(port, "b1");
  start_agent(port, "b2");
  ASSERT_TRUE(wait_for_agents(port, 3));
  Process& tune = run("tune", tune_args(port, 60, "matmul:M=256,N=256,K=256"));
  auto deadline = Clock::now() + 120s;
  while (records_now() < 12 && Clock::now() < deadline) std::this_thread::sleep_for(20ms);
  ASSERT_GE(records_now(), 12u) << read_file(tune.err);
  victim.signal(SIGKILL);
  victim.wait(10s);
  ASSERT_EQ(tune.wait(), 0) << read_file(tune.err);
  // Exactly the job's trials, none twice, none a config error or a lost device: the victim's
  // leased tasks ran again on the others (results it sent before it died count once).
  expect_exact_trials(60, {"victim", "b1", "b2"});
}

TEST_F(FleetTest, TheJobCompletesAcrossATrackerRestart) {
  int port = start_tracker();
  start_agent(port, "r1");
  start_agent(port, "r2");
  ASSERT_TRUE(wait_for_agents(port, 2));
  Process& tune = run("tune", tune_args(port, 48, "matmul:M=256,N=256,K=256"));
  auto deadline = Clock::now() + 120s;
  while (records_now() < 12 && Clock::now() < deadline) std::this_thread::sleep_for(20ms);
  ASSERT_GE(records_now(), 12u) << read_file(tune.err);
  tracker().signal(SIGKILL);
  tracker().wait(10s);
  ASSERT_EQ(start_tracker(port), port);
  ASSERT_EQ(tune.wait(), 0) << read_file(tune.err);
  expect_exact_trials(48, {"r1", "r2"});
  EXPECT_NE(read_file(tune.err).find("unavailable"), std::string::npos) << read_file(tune.err);
}

TEST_F(FleetTest, MissingOrWrongTokensAreRefused) {
  int port = start_tracker();
  // An agent with the wrong token never registers (it keeps retrying, refused each time).
  run("intruder", {"agent", "--tracker", "127.0.0.1:" + std::to_string(port), "--key", "cpu",
                   "--id", "intruder", "--token-file", (dir_ / "wrong-token").string()});
  start_agent(port, "good");
  ASSERT_TRUE(wait_for_agents(port, 1));
  auto deadline = Clock::now() + 30s;
  while (read_file(dir_ / "intruder.err").find("bearer token") == std::string::npos &&
         Clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_NE(read_file(dir_ / "intruder.err").find("bearer token"), std::string::npos);
  EXPECT_FALSE(wait_for_agents(port, 2)) << "the intruder registered";
  EXPECT_EQ(read_file(dir_ / "tracker0.err").find(kToken), std::string::npos)
      << "the token was logged";

  // Clients: no token, wrong token.
  std::vector<std::string> args = tune_args(port, 4, "matmul:M=32,N=32,K=32");
  args.resize(args.size() - 4);  // drop --token-file and --db
  args.insert(args.end(), {"--db", (dir_ / "log.db").string()});
  Process& none = run("tune-none", args);
  EXPECT_EQ(none.wait(), 1);
  EXPECT_NE(read_file(none.err).find("bearer token"), std::string::npos) << read_file(none.err);
  args.insert(args.end(), {"--token-file", (dir_ / "wrong-token").string()});
  Process& wrong = run("tune-wrong", args);
  EXPECT_EQ(wrong.wait(), 1);
  EXPECT_NE(read_file(wrong.err).find("refused"), std::string::npos) << read_file(wrong.err);
  EXPECT_TRUE(trial_records().empty());
}

TEST_F(FleetTest, AJobOverTlsWorksAndAClientWithoutTheCaCannotConnect) {
  const fs::path key = dir_ / "server.key", cert = dir_ / "server.pem";
  std::string openssl =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
      "-addext subjectAltName=IP:127.0.0.1 -keyout " +
      key.string() + " -out " + cert.string() + " >/dev/null 2>&1";
  if (std::system(openssl.c_str()) != 0) GTEST_SKIP() << "openssl cannot make a certificate";
  int port = start_tracker(0, {"--tls-cert", cert.string(), "--tls-key", key.string()});
  start_agent(port, "t1", {"--tls-ca", cert.string()});
  ASSERT_TRUE(wait_for_agents(port, 1, cert.string()));
  std::vector<std::string> args = tune_args(port, 12, "matmul:M=32,N=32,K=32");
  std::vector<std::string> with_ca = args;
  with_ca.insert(with_ca.end(), {"--tls-ca", cert.string()});
  Process& tune = run("tune", with_ca);
  ASSERT_EQ(tune.wait(), 0) << read_file(tune.err);
  expect_exact_trials(12, {"t1"});

  // Without the CA: the status call cannot connect.
  std::string cmd = std::string(KILN_BINARY) +
                    " status --tracker 127.0.0.1:" + std::to_string(port) + " --token-file " +
                    (dir_ / "token").string() + " >/dev/null 2>&1";
  EXPECT_EQ(WEXITSTATUS(std::system(cmd.c_str())), 1);
}

TEST_F(FleetTest, CrashingAndHangingKernelsCostOneResultEach) {
  int port = start_tracker();
  start_agent(port, "w1", {"--worker", KILN_TEST_WORKER});
  ASSERT_TRUE(wait_for_agents(port, 1));
  auto stub = pb::Tracker::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  // The test worker crashes on M=13 and hangs on M=17 (a test-only behaviour: kiln's own worker
  // builds these like any matmul); the third task is an ordinary one.
  pb::SubmitRequest request;
  request.set_job_id("faults");
  request.set_device_key("cpu");
  for (const char* w :
       {"matmul:M=13,N=16,K=16", "matmul:M=17,N=16,K=16", "matmul:M=16,N=16,K=16"}) {
    pb::MeasureTask* task = request.add_tasks();
    task->set_task_id(w);
    task->mutable_workload()->set_canonical(w);
    task->mutable_target()->set_canonical("llvm");
    task->mutable_config()->set_index(0);
    task->mutable_options()->set_repeat(1);
    task->mutable_options()->set_threads(1);
    task->mutable_options()->set_timeout_s(3);
  }
  grpc::ClientContext context;
  context.AddMetadata("authorization", std::string("Bearer ") + kToken);
  context.set_deadline(std::chrono::system_clock::now() + 120s);
  auto reader = stub->Submit(&context, request);
  std::map<std::string, pb::MeasureResult> results;
  pb::SubmitResponse batch;
  while (reader->Read(&batch)) {
    for (const pb::MeasureResult& r : batch.results()) results[r.task_id()] = r;
  }
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results["matmul:M=13,N=16,K=16"].error_code(), pb::MEASURE_ERROR_CODE_RUNTIME_ERROR);
  EXPECT_NE(results["matmul:M=13,N=16,K=16"].error_message().find("signal"), std::string::npos);
  EXPECT_EQ(results["matmul:M=17,N=16,K=16"].error_code(), pb::MEASURE_ERROR_CODE_TIMEOUT);
  EXPECT_EQ(results["matmul:M=16,N=16,K=16"].error_code(), pb::MEASURE_ERROR_CODE_OK)
      << results["matmul:M=16,N=16,K=16"].error_message();
  EXPECT_EQ(results["matmul:M=16,N=16,K=16"].agent(), "w1");
}

TEST_F(FleetTest, InvalidWorkloadsAndConfigsAreRefusedBeforeQueuing) {
  int port = start_tracker();
  auto stub = pb::Tracker::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  auto submit = [&](const std::string& workload, int64_t index) {
    pb::SubmitRequest request;
    request.set_job_id("bad");
    request.set_device_key("cpu");
    pb::MeasureTask* task = request.add_tasks();
    task->set_task_id(workload + "#" + std::to_string(index));
    task->mutable_workload()->set_canonical(workload);
    task->mutable_target()->set_canonical("llvm");
    task->mutable_config()->set_index(index);
    grpc::ClientContext context;
    context.AddMetadata("authorization", std::string("Bearer ") + kToken);
    context.set_deadline(std::chrono::system_clock::now() + 30s);
    auto reader = stub->Submit(&context, request);
    pb::SubmitResponse batch;
    EXPECT_FALSE(reader->Read(&batch));
    return reader->Finish();
  };
  grpc::Status malformed = submit("matmul:M=8", 0);
  EXPECT_EQ(malformed.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(malformed.error_message().find("matmul:M=8"), std::string::npos)
      << malformed.error_message();
  grpc::Status past = submit("matmul:M=8,N=8,K=8", int64_t{1} << 40);
  EXPECT_EQ(past.error_code(), grpc::StatusCode::OUT_OF_RANGE) << past.error_message();
}

}  // namespace

TEST_F(FleetTest, MetricsCountTheTasksTheQueueAndTheAgents) {
  const int port = start_tracker(0, {"--metrics-listen", "127.0.0.1:0"});
  const int metrics = kiln::test::metrics_port(read_file(tracker().out));
  ASSERT_GT(metrics, 0) << read_file(tracker().out);
  Process& doomed = start_agent(port, "m1", {"--metrics-listen", "127.0.0.1:0"});
  start_agent(port, "m2");
  ASSERT_TRUE(wait_for_agents(port, 2));
  std::map<std::string, double> before = kiln::test::scrape(metrics);
  EXPECT_EQ(before[R"(kiln_tracker_agents{device_key="cpu",state="idle"})"], 2);

  Process& tune = run("tune", tune_args(port, 24, "matmul:M=64,N=64,K=64"));
  ASSERT_EQ(tune.wait(), 0) << read_file(tune.err);
  const size_t measured = trial_records().size();
  std::map<std::string, double> after = kiln::test::scrape(metrics);
  const double submitted = after[R"(kiln_tracker_tasks_submitted_total{device_key="cpu"})"];
  // Every task the job submitted was dispatched and came back OK, and each trial is one of
  // them (the job's re-measurements of its best are tasks too).
  EXPECT_GE(submitted, double(measured));
  EXPECT_EQ(after[R"(kiln_tracker_tasks_dispatched_total{device_key="cpu"})"], submitted);
  EXPECT_EQ(after[R"(kiln_tracker_tasks_completed_total{device_key="cpu",result="ok"})"],
            submitted);
  EXPECT_EQ(after[R"(kiln_tracker_measurement_latency_seconds_count{device_key="cpu"})"],
            submitted);
  EXPECT_EQ(after[R"(kiln_tracker_queued_tasks{device_key="cpu"})"], 0);
  EXPECT_EQ(after[R"(kiln_tracker_leased_tasks{device_key="cpu"})"], 0);
  EXPECT_EQ(after.count(R"(kiln_tracker_tasks_requeued_total{device_key="cpu"})"), 0u);

  // The agent's own endpoint counts the tasks it measured.
  const int agent_metrics = kiln::test::metrics_port(read_file(doomed.out));
  ASSERT_GT(agent_metrics, 0) << read_file(doomed.err);
  std::map<std::string, double> agent = kiln::test::scrape(agent_metrics);
  EXPECT_EQ(agent["kiln_agent_connected"], 1);
  EXPECT_GT(agent[R"(kiln_agent_tasks_total{result="ok"})"], 0);
  EXPECT_EQ(agent["kiln_agent_measurement_seconds_count"],
            agent[R"(kiln_agent_tasks_total{result="ok"})"] +
                agent[R"(kiln_agent_tasks_total{result="error"})"]);
  EXPECT_EQ(agent["kiln_agent_tasks_running"], 0);

  doomed.signal(SIGKILL);
  doomed.wait(10s);
  const auto deadline = Clock::now() + 30s;
  std::map<std::string, double> lost;
  while (Clock::now() < deadline) {
    lost = kiln::test::scrape(metrics);
    if (lost[R"(kiln_tracker_agents{device_key="cpu",state="lost"})"] == 1) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(lost[R"(kiln_tracker_agents{device_key="cpu",state="lost"})"], 1);
  EXPECT_EQ(lost[R"(kiln_tracker_agents{device_key="cpu",state="idle"})"], 1);

  // Only GET /metrics is served.
  EXPECT_EQ(kiln::test::http_get(metrics, "/").rfind("HTTP/1.1 404", 0), 0u);
}
