// Tuning jobs inside `kiln serve`, as users run them: a real server process on 127.0.0.1 (port
// chosen at run time) with real agents; `kiln tune --server` and `kiln jobs`. A job outlives
// its client, jobs share the fleet, a cancelled job stops, and a job the server was killed in
// the middle of is listed as interrupted and resumes with no trial lost or repeated. Model jobs
// (kiln tune --model --server, StartJob with a model's bytes or a path) tune every task of an
// ONNX model built here with libonnx's classes.

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <nlohmann/json.hpp>

#include "kiln/v1/tracker.grpc.pb.h"
#include "kiln/v1/tuning.grpc.pb.h"
#include "tests/model/model_builder.h"
#include "tests/support/kiln_process_test.h"
#include "tests/support/postgres_server.h"

namespace {

namespace fs = std::filesystem;
using kiln::test::Process;
using kiln::test::read_file;
using namespace std::chrono_literals;

constexpr const char* kFirst = "matmul:M=48,N=32,K=40";

/// The document the SQLite tuning log at `path` keeps of job-`number` (empty when none).
std::string job_document(const std::string& path, int64_t number) {
  sqlite3* db = nullptr;
  std::string document;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* select = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT document FROM jobs WHERE number = ?1", -1, &select,
                           nullptr) == SQLITE_OK) {
      sqlite3_bind_int64(select, 1, number);
      if (sqlite3_step(select) == SQLITE_ROW) {
        document = reinterpret_cast<const char*>(sqlite3_column_text(select, 0));
      }
    }
    sqlite3_finalize(select);
  }
  sqlite3_close(db);
  return document;
}
constexpr const char* kSecond = "matmul:M=40,N=48,K=32";

class ServeJobsTest : public kiln::test::KilnProcessTest {
 protected:
  void SetUp() override {
    make_dir("kiln_serve_jobs");
    db_ = (dir_ / "tuning.db").string();
  }

  /// Starts `kiln serve` over db_ on `port` (0: any), with `flags` after the others; returns
  /// its port.
  int start_server(int port = 0, const std::vector<std::string>& flags = {}) {
    std::vector<std::string> args = {"serve", "--listen", "127.0.0.1:" + std::to_string(port),
                                     "--db", db_};
    args.insert(args.end(), flags.begin(), flags.end());
    server_ = &run("serve" + std::to_string(servers_++), args);
    port_ = wait_for_port(*server_);
    address_ = "127.0.0.1:" + std::to_string(port_);
    return port_;
  }

  void start_agent(const std::string& id) {
    run("agent-" + id, {"agent", "--tracker", address_, "--key", "cpu", "--id", id});
  }

  /// The arguments of `kiln tune --server` for `workload` on the agents.
  std::vector<std::string> tune_args(const std::string& workload, int trials) {
    return {"tune",       "--server",  address_,
            "--workload", workload,    "--target",
            "llvm",       "--trials",  std::to_string(trials),
            "--batch",    "4",         "--device-key",
            "cpu",        "--threads", "1"};
  }

  /// Starts a job and returns its id (kiln tune --server --detach).
  std::string start_detached(const std::string& workload, int trials) {
    std::vector<std::string> args = tune_args(workload, trials);
    args.push_back("--detach");
    std::string out;
    EXPECT_EQ(run_to_end("start-" + std::to_string(starts_++), args, &out), 0) << out;
    return out.substr(0, out.find('\n'));
  }

  /// `kiln jobs list --json`'s jobs by id.
  std::map<std::string, nlohmann::json> jobs() {
    std::string out;
    if (run_to_end("list-" + std::to_string(lists_++),
                   {"jobs", "list", "--server", address_, "--json"}, &out) != 0) {
      return {};
    }
    std::map<std::string, nlohmann::json> by_id;
    const nlohmann::json listed = nlohmann::json::parse(out);
    for (const nlohmann::json& job : listed["jobs"]) {
      by_id[job["job"].get<std::string>()] = job;
    }
    return by_id;
  }

  /// Waits until job `id` has at least `trials` trials (false after 120 s).
  bool wait_for_trials(const std::string& id, int64_t trials) {
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto all = jobs();
      if (all.count(id) && all[id]["trials"].get<int64_t>() >= trials) return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  /// The tuning log's records as `kiln db export` writes them, oldest first.
  std::vector<nlohmann::json> records() {
    std::string out;
    EXPECT_EQ(
        run_to_end("export-" + std::to_string(exports_++), {"db", "export", "--db", db_}, &out), 0);
    std::vector<nlohmann::json> all;
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty()) all.push_back(nlohmann::json::parse(line));
    }
    return all;
  }

  /// The trial records (not re-measurements) of `workload`.
  std::vector<nlohmann::json> trials_of(const std::string& workload) {
    std::vector<nlohmann::json> out;
    for (const nlohmann::json& r : records()) {
      if (r["workload"] == workload && !r["measure_options"].value("remeasure", false)) {
        out.push_back(r);
      }
    }
    return out;
  }

  /// The non-remeasurement records of the whole log, as (workload, config index) pairs.
  std::vector<std::pair<std::string, int64_t>> all_trials() {
    std::vector<std::pair<std::string, int64_t>> out;
    for (const nlohmann::json& r : records()) {
      if (r["measure_options"].value("remeasure", false)) continue;
      out.emplace_back(r["workload"].get<std::string>(), r["config"]["index"].get<int64_t>());
    }
    return out;
  }

  /// Writes a small CNN as an ONNX file in the test's folder: [1,16,14,14] -> Conv 3x3 16->16
  /// (pad 1) -> Relu -> Conv 1x1 16->8, with a doc string of `padding` bytes (gRPC's default
  /// limit of a message is 4 MiB). Returns its path.
  std::string write_model(const std::string& name, size_t padding = 0) {
    using kiln::model_test::add_ints_attr;
    kiln::model_test::ModelBuilder m;
    const int32_t f32 = onnx::TensorProto::FLOAT;
    m.input("x", f32, {1, 16, 14, 14}).output("y", f32, {1, 8, 14, 14});
    m.initializer("w1", {16, 16, 3, 3}, std::vector<float>(16 * 16 * 9, 0.01f));
    m.initializer("b1", {16}, std::vector<float>(16, 0.1f));
    m.initializer("w2", {8, 16, 1, 1}, std::vector<float>(8 * 16, 0.02f));
    add_ints_attr(m.node("Conv", {"x", "w1", "b1"}, {"c1"}, "conv1"), "pads", {1, 1, 1, 1});
    m.node("Relu", {"c1"}, {"r1"}, "relu1");
    m.node("Conv", {"r1", "w2"}, {"y"}, "conv2");
    m.proto().set_doc_string(std::string(padding, ' '));
    const fs::path path = dir_ / name;
    std::ofstream(path, std::ios::binary) << m.bytes();
    return path.string();
  }

  std::unique_ptr<kiln::v1::Tuning::Stub> stub() {
    return kiln::v1::Tuning::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  }

  /// StartJob of `spec` on the server.
  grpc::Status start_job(const kiln::v1::JobSpec& spec, kiln::v1::JobStatus* status) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 60s);
    kiln::v1::StartJobRequest request;
    *request.mutable_spec() = spec;
    return stub()->StartJob(&context, request, status);
  }

  std::string db_, address_;
  Process* server_ = nullptr;
  int port_ = 0;
  int servers_ = 0, starts_ = 0, lists_ = 0, exports_ = 0;
};

TEST_F(ServeJobsTest, TuneOnTheServerPrintsTheLocalProgressAndStoresInTheServersLog) {
  ASSERT_GT(start_server(), 0);
  start_agent("a1");
  std::vector<std::string> args = tune_args(kFirst, 12);
  args.push_back("--json");
  std::string out;
  ASSERT_EQ(run_to_end("tune", args, &out), 0) << read_file(dir_ / "tune.err");
  nlohmann::json summary = nlohmann::json::parse(out);
  EXPECT_EQ(summary["state"], "succeeded");
  EXPECT_EQ(summary["workload"], kFirst);
  EXPECT_EQ(summary["trials"], 12);
  EXPECT_GT(summary["best"]["gflops"].get<double>(), 0);
  EXPECT_TRUE(summary["best"]["config"].contains("knobs"));
  // The progress line of a local job, a line a batch when stderr is no terminal.
  const std::string progress = read_file(dir_ / "tune.err");
  for (int trials : {4, 8, 12}) {
    EXPECT_NE(progress.find("trials " + std::to_string(trials) + "/12  valid "), std::string::npos)
        << progress;
  }
  EXPECT_NE(progress.find(" GFLOP/s  elapsed "), std::string::npos);
  // Every trial is in the server's log, measured by the agent.
  std::vector<nlohmann::json> trials = trials_of(kFirst);
  ASSERT_EQ(trials.size(), 12u);
  for (const nlohmann::json& r : trials) EXPECT_EQ(r["agent"], "a1");

  // Without a device key the job measures on the server's machine.
  std::vector<std::string> local = {"tune", "--server", address_, "--workload", kSecond, "--target",
                                    "llvm", "--trials", "4",      "--threads",  "1",     "--json"};
  ASSERT_EQ(run_to_end("tune-local", local, &out), 0) << read_file(dir_ / "tune-local.err");
  EXPECT_EQ(nlohmann::json::parse(out)["trials"], 4);
  for (const nlohmann::json& r : trials_of(kSecond)) EXPECT_EQ(r["agent"], "local");

  // A workload that does not parse: exit 2 with the reason.
  EXPECT_EQ(run_to_end("tune-bad", tune_args("matmul:M=4", 4), &out), 2);
  EXPECT_NE(read_file(dir_ / "tune-bad.err").find("error: server"), std::string::npos);
}

TEST_F(ServeJobsTest, LocalJobsMeasureInAWorkerSoCrashingOrHangingKernelsCostTrialsNotTheServer) {
  // The test worker crashes on matmul M=13 and hangs on M=17, a test-only behaviour: kiln's
  // own worker never builds such a kernel. A hang ends at --task-timeout-s.
  ASSERT_GT(start_server(0, {"--worker", KILN_TEST_WORKER, "--task-timeout-s", "2"}), 0);
  const std::string crashing = "matmul:M=13,N=16,K=16";
  const std::string hanging = "matmul:M=17,N=16,K=16";
  std::string out;
  for (const std::string& workload : {crashing, hanging}) {
    std::vector<std::string> args = {"tune",     "--server",  address_,   "--workload", workload,
                                     "--target", "llvm",      "--trials", "2",          "--batch",
                                     "2",        "--threads", "1",        "--json"};
    const std::string tag = "tune-" + workload.substr(7, 4);
    EXPECT_EQ(run_to_end(tag, args, &out), 1);
    EXPECT_NE(read_file(dir_ / (tag + ".err")).find("failed: no valid config among 2 trials"),
              std::string::npos)
        << read_file(dir_ / (tag + ".err"));
    std::vector<nlohmann::json> trials = trials_of(workload);
    ASSERT_EQ(trials.size(), 2u);
    for (const nlohmann::json& r : trials) {
      EXPECT_EQ(r["error"], workload == crashing ? "RUNTIME_ERROR" : "TIMEOUT") << r.dump();
      EXPECT_EQ(r["agent"], "local");
    }
  }
  // The server lives on, and a job of a kernel that runs succeeds in a fresh worker.
  std::vector<std::string> args = {"tune", "--server", address_, "--workload", kFirst, "--target",
                                   "llvm", "--trials", "2",      "--threads",  "1",    "--json"};
  ASSERT_EQ(run_to_end("tune-ok", args, &out), 0) << read_file(dir_ / "tune-ok.err");
  EXPECT_EQ(nlohmann::json::parse(out)["state"], "succeeded");
  EXPECT_EQ(server_->wait(std::chrono::seconds(0)), -1);  // still serving
}

// A workload whose buffers exceed the memory limit (8 GiB) is refused before anything is
// allocated, wherever it comes in: StartJob and a raw Submit to the tracker with
// INVALID_ARGUMENT, `kiln tune` with exit 2. The server then serves a normal job.
TEST_F(ServeJobsTest, AWorkloadOverTheMemoryLimitIsRefusedEverywhereAndTheServerServesOn) {
  ASSERT_GT(start_server(), 0);
  const std::string huge = "matmul:M=100000,N=100000,K=100000";
  kiln::v1::JobSpec spec;
  spec.set_workload(huge);
  spec.set_trials(4);
  kiln::v1::JobStatus job;
  grpc::Status started = start_job(spec, &job);
  EXPECT_EQ(started.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(started.error_message().find("more than the limit of 8 GiB"), std::string::npos)
      << started.error_message();

  auto tracker =
      kiln::v1::Tracker::NewStub(grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  kiln::v1::SubmitRequest request;
  request.set_job_id("huge");
  request.set_device_key("cpu");
  kiln::v1::MeasureTask* task = request.add_tasks();
  task->set_task_id("huge-0");
  task->mutable_workload()->set_canonical(huge);
  task->mutable_workload()->set_op("matmul");
  task->mutable_target()->set_canonical("llvm -mtriple=x86_64-linux-gnu");
  task->mutable_target()->set_triple("x86_64-linux-gnu");
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 30s);
  auto reader = tracker->Submit(&context, request);
  kiln::v1::SubmitResponse response;
  while (reader->Read(&response)) {
  }
  grpc::Status submitted = reader->Finish();
  EXPECT_EQ(submitted.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(submitted.error_message().find("more than the limit"), std::string::npos)
      << submitted.error_message();

  std::string out;
  for (const char* where : {"--server", "--tracker"}) {
    std::vector<std::string> args = {"tune",     where, address_,   "--workload", huge,
                                     "--trials", "4",   "--target", "llvm"};
    if (std::string(where) == "--tracker") args.insert(args.end(), {"--device-key", "cpu"});
    const std::string tag = std::string("tune-huge") + where;
    EXPECT_EQ(run_to_end(tag, args, &out), 2);
    EXPECT_NE(read_file(dir_ / (tag + ".err")).find("more than the limit"), std::string::npos)
        << read_file(dir_ / (tag + ".err"));
  }

  std::vector<std::string> normal = {"tune", "--server", address_, "--workload", kFirst, "--target",
                                     "llvm", "--trials", "2",      "--threads",  "1",    "--json"};
  ASSERT_EQ(run_to_end("tune-normal", normal, &out), 0) << read_file(dir_ / "tune-normal.err");
  EXPECT_EQ(nlohmann::json::parse(out)["state"], "succeeded");
}

// One client opening 300 WatchJob streams: the server keeps 256 open and refuses the rest with
// RESOURCE_EXHAUSTED; other calls are served meanwhile, and a QueryBest naming a device model
// longer than any CPU's is refused rather than cached.
TEST_F(ServeJobsTest, OneClientsWatchesBeyondTheLimitAreRefused) {
  ASSERT_GT(start_server(), 0);
  // A fleet job with no board: it runs, its tasks waiting at the tracker.
  kiln::v1::JobSpec spec;
  spec.set_workload(kFirst);
  spec.set_target("llvm -mtriple=x86_64-linux-gnu");
  spec.set_device_key("no-such-board");
  spec.set_trials(4);
  kiln::v1::JobStatus job;
  ASSERT_TRUE(start_job(spec, &job).ok());
  ASSERT_EQ(job.state(), kiln::v1::JOB_STATE_RUNNING);

  constexpr int kWatches = 300;
  auto channel = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  auto watcher = kiln::v1::Tuning::NewStub(channel);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::thread> readers;
  std::mutex mutex;
  std::map<grpc::StatusCode, int> ended;
  for (int i = 0; i < kWatches; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    readers.emplace_back([&, context = contexts.back().get()] {
      kiln::v1::JobRequest request;
      request.set_id(job.id());
      auto reader = watcher->WatchJob(context, request);
      kiln::v1::JobStatus status;
      while (reader->Read(&status)) {
      }
      grpc::Status end = reader->Finish();
      std::lock_guard<std::mutex> lock(mutex);
      ++ended[end.error_code()];
    });
  }
  auto refused = [&] {
    std::lock_guard<std::mutex> lock(mutex);
    return ended[grpc::StatusCode::RESOURCE_EXHAUSTED];
  };
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (refused() < kWatches - 256 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(refused(), kWatches - 256);
  EXPECT_EQ(jobs().count(job.id()), 1u) << "the server serves other calls";

  grpc::ClientContext context;
  kiln::v1::QueryBestRequest query;
  query.set_workload(kFirst);
  query.set_target("llvm");
  query.set_model(std::string(100000, 'm'));
  kiln::v1::QueryBestResponse best;
  grpc::Status long_model = stub()->QueryBest(&context, query, &best);
  EXPECT_EQ(long_model.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(long_model.error_message().find("at most 256 bytes"), std::string::npos);

  for (auto& c : contexts) c->TryCancel();
  for (std::thread& t : readers) t.join();
  {
    std::lock_guard<std::mutex> lock(mutex);
    EXPECT_EQ(ended[grpc::StatusCode::CANCELLED], 256);
  }
  // Their slots are free again: a new watch is served. The server frees a slot when its
  // handler sees the cancellation, which under load can come after the client's, so a refused
  // watch is tried again for a while.
  kiln::v1::JobRequest request;
  request.set_id(job.id());
  kiln::v1::JobStatus first;
  grpc::Status last;
  const auto watch_deadline = std::chrono::steady_clock::now() + 30s;
  for (bool served = false; !served && std::chrono::steady_clock::now() < watch_deadline;) {
    grpc::ClientContext again;
    again.set_deadline(std::chrono::system_clock::now() + 2s);
    auto reader = watcher->WatchJob(&again, request);
    served = reader->Read(&first);
    again.TryCancel();
    last = reader->Finish();
    if (!served) std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(first.id(), job.id()) << "last watch: " << last.error_code() << " "
                                  << last.error_message();
}

TEST_F(ServeJobsTest, AJobOutlivesItsClientAndTwoJobsShareTheFleet) {
  ASSERT_GT(start_server(), 0);
  start_agent("a1");
  // The client that started the first job dies after its first batch.
  Process& client = run("tune-killed", tune_args(kFirst, 24));
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (read_file(client.err).find("trials 4/24") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  client.signal(SIGKILL);
  EXPECT_EQ(client.wait(), 128 + SIGKILL);
  const std::string second = start_detached(kSecond, 24);
  EXPECT_EQ(second, "job-2");
  // A second job of a workload that is being tuned is refused.
  std::string out;
  EXPECT_EQ(run_to_end("tune-twin", tune_args(kFirst, 24), &out), 1);
  EXPECT_NE(read_file(dir_ / "tune-twin.err").find("job job-1 is tuning"), std::string::npos);

  for (const std::string id : {"job-1", "job-2"}) {
    ASSERT_EQ(
        run_to_end("watch-" + id, {"jobs", "watch", id, "--server", address_, "--json"}, &out), 0)
        << read_file(dir_ / ("watch-" + id + ".err"));
    nlohmann::json status = nlohmann::json::parse(out);
    EXPECT_EQ(status["state"], "succeeded");
    EXPECT_EQ(status["trials"], 24);
  }
  std::vector<nlohmann::json> first = trials_of(kFirst), later = trials_of(kSecond);
  ASSERT_EQ(first.size(), 24u);
  ASSERT_EQ(later.size(), 24u);
  // Fair share: once the second job queued, the two took turns on the one agent, so the first
  // job still had batches measured after the second's first result.
  const int64_t second_began = later.front()["measured_at_ms"];
  int after = 0;
  for (const nlohmann::json& r : first) after += r["measured_at_ms"].get<int64_t>() > second_began;
  EXPECT_GE(after, 4) << "the first job's batches all ran before the second job's";
}

TEST_F(ServeJobsTest, AJobTheServerDiedInResumesWithNoTrialLostOrRepeated) {
  const int port = start_server();
  ASSERT_GT(port, 0);
  start_agent("a1");
  const std::string id = start_detached(kFirst, 40);
  ASSERT_EQ(id, "job-1");
  ASSERT_TRUE(wait_for_trials(id, 8));
  server_->signal(SIGKILL);
  EXPECT_EQ(server_->wait(), 128 + SIGKILL);

  // Restarted on the same port (the agent finds it again): the job is interrupted.
  ASSERT_EQ(start_server(port), port);
  auto listed = jobs();
  ASSERT_EQ(listed.count(id), 1u);
  EXPECT_EQ(listed[id]["state"], "interrupted");
  const int64_t done = listed[id]["trials"];
  EXPECT_GE(done, 8);
  EXPECT_LT(done, 40);
  EXPECT_EQ(int64_t(trials_of(kFirst).size()), done) << "it reports what the log holds";

  std::string out;
  ASSERT_EQ(run_to_end("resume", {"jobs", "resume", id, "--server", address_, "--json"}, &out), 0)
      << read_file(dir_ / "resume.err");
  nlohmann::json status = nlohmann::json::parse(out);
  EXPECT_EQ(status["state"], "succeeded");
  EXPECT_EQ(status["trials"], 40);
  std::vector<nlohmann::json> trials = trials_of(kFirst);
  EXPECT_EQ(trials.size(), 40u) << "a trial lost or repeated";
  std::set<int64_t> configs;
  for (const nlohmann::json& r : trials) configs.insert(r["config"]["index"].get<int64_t>());
  EXPECT_EQ(configs.size(), trials.size()) << "a config measured twice";
  // A finished job does not resume.
  EXPECT_NE(run_to_end("resume-again", {"jobs", "resume", id, "--server", address_}, &out), 0);
}

TEST_F(ServeJobsTest, CancelStopsAJobAndSigtermLeavesOneInterrupted) {
  ASSERT_GT(start_server(), 0);
  start_agent("a1");
  const std::string cancelled = start_detached(kFirst, 400);
  ASSERT_TRUE(wait_for_trials(cancelled, 4));
  std::string out;
  ASSERT_EQ(run_to_end("cancel", {"jobs", "cancel", cancelled, "--server", address_}, &out), 0)
      << read_file(dir_ / "cancel.err");
  EXPECT_EQ(run_to_end("watch-cancelled",
                       {"jobs", "watch", cancelled, "--server", address_, "--json"}, &out),
            1);
  nlohmann::json status = nlohmann::json::parse(out);
  EXPECT_EQ(status["state"], "cancelled");
  EXPECT_LT(status["trials"].get<int64_t>(), 400);
  EXPECT_NE(read_file(dir_ / "watch-cancelled.err").find("kiln jobs resume " + cancelled),
            std::string::npos);

  const std::string running = start_detached(kSecond, 400);
  ASSERT_TRUE(wait_for_trials(running, 4));
  server_->signal(SIGTERM);
  EXPECT_EQ(server_->wait(30s), 0) << "kiln serve stops on SIGTERM with a job running";
  ASSERT_GT(start_server(), 0);
  auto listed = jobs();
  EXPECT_EQ(listed[cancelled]["state"], "cancelled");
  EXPECT_EQ(listed[running]["state"], "interrupted");
  EXPECT_EQ(listed[running]["trials"].get<int64_t>(), int64_t(trials_of(kSecond).size()));
  // An interrupted job can be retired too.
  ASSERT_EQ(
      run_to_end("cancel-interrupted", {"jobs", "cancel", running, "--server", address_}, &out), 0);
  EXPECT_EQ(jobs()[running]["state"], "cancelled");
}

/// The (workload, config index) pairs that occur more than once.
std::set<std::pair<std::string, int64_t>> repeated(
    const std::vector<std::pair<std::string, int64_t>>& trials) {
  std::set<std::pair<std::string, int64_t>> seen, twice;
  for (const auto& trial : trials) {
    if (!seen.insert(trial).second) twice.insert(trial);
  }
  return twice;
}

TEST_F(ServeJobsTest, AModelJobWithTwoAgentsEndsWithEveryTrialRecordedOnce) {
  ASSERT_GT(start_server(), 0);
  start_agent("a1");
  start_agent("a2");
  // More than gRPC's default limit of a message: kiln serve takes larger ones.
  const std::string model = write_model("cnn.onnx", size_t{5} << 20);
  const std::string plot = (dir_ / "latency.svg").string();
  std::string out;
  ASSERT_EQ(run_to_end("tune-model",
                       {"tune", "--server", address_, "--model", model, "--target", "llvm",
                        "--trials", "32", "--batch", "8", "--device-key", "cpu", "--threads", "1",
                        "--plot", plot, "--json"},
                       &out),
            0)
      << read_file(dir_ / "tune-model.err");
  const nlohmann::json summary = nlohmann::json::parse(out);
  EXPECT_EQ(summary["state"], "succeeded");
  EXPECT_EQ(summary["model"], "cnn.onnx");
  EXPECT_EQ(summary["trials"], 32);
  EXPECT_GT(summary["latency_s"].get<double>(), 0);
  EXPECT_FALSE(summary["latency_curve"].empty());
  const int64_t tasks = summary["tasks"];
  ASSERT_GE(tasks, 2) << "two convolutions of different shapes";
  ASSERT_EQ(int64_t(summary["task_status"].size()), tasks);
  std::set<std::string> workloads;
  int64_t task_trials = 0;
  for (const nlohmann::json& t : summary["task_status"]) {
    workloads.insert(t["workload"].get<std::string>());
    task_trials += t["trials"].get<int64_t>();
    EXPECT_TRUE(t.contains("best")) << t.dump();
  }
  EXPECT_EQ(task_trials, 32);
  // The model's progress line, a line a batch, and its latency plot.
  const std::string progress = read_file(dir_ / "tune-model.err");
  EXPECT_NE(progress.find("cnn.onnx: " + std::to_string(tasks) + " tasks, 32 trials"),
            std::string::npos)
      << progress;
  EXPECT_NE(progress.find("estimated latency "), std::string::npos) << progress;
  EXPECT_NE(progress.find("tasks done "), std::string::npos) << progress;
  EXPECT_NE(read_file(plot).find("<svg"), std::string::npos);

  // The server's log holds exactly the job's trials, across the model's tasks, each once,
  // measured by the two agents.
  const std::vector<std::pair<std::string, int64_t>> trials = all_trials();
  EXPECT_EQ(trials.size(), 32u);
  EXPECT_TRUE(repeated(trials).empty()) << "a config measured twice";
  for (const auto& [workload, index] : trials) EXPECT_EQ(workloads.count(workload), 1u) << workload;
  for (const nlohmann::json& r : records()) {
    EXPECT_TRUE(r["agent"] == "a1" || r["agent"] == "a2") << r.dump();
  }
  // The log's record of the job names the server's copy of the model and holds none of its
  // bytes.
  const std::string document = job_document(db_, 1);
  const std::string copy = summary["model_path"];
  EXPECT_NE(document.find(copy), std::string::npos);
  EXPECT_EQ(fs::path(copy).parent_path().filename(), "models");
  EXPECT_EQ(read_file(copy), read_file(model));
  EXPECT_LT(document.size(), fs::file_size(model));
  // kiln jobs list names the model and its estimate.
  ASSERT_EQ(run_to_end("list-text", {"jobs", "list", "--server", address_}, &out), 0);
  EXPECT_NE(out.find("model cnn.onnx  estimated latency "), std::string::npos) << out;
}

TEST_F(ServeJobsTest, AModelJobReadsAServerPathResumesAndRefusesLargeOrUnreadableModels) {
  const int port = start_server();
  ASSERT_GT(port, 0);
  const std::string model = write_model("cnn.onnx");
  std::string out;
  // A file that is no ONNX model: the importer's reason, exit 2.
  const std::string garbage = (dir_ / "garbage.onnx").string();
  std::ofstream(garbage) << "not a model";
  EXPECT_EQ(
      run_to_end("tune-garbage",
                 {"tune", "--server", address_, "--model", garbage, "--target", "llvm"}, &out),
      2);
  EXPECT_NE(read_file(dir_ / "tune-garbage.err").find("are not an ONNX model"), std::string::npos)
      << read_file(dir_ / "tune-garbage.err");
  // A model over 256 MiB (a sparse file): kiln tune refuses to send it, the server to read it.
  const fs::path big = dir_ / "big.onnx";
  std::ofstream(big).close();
  fs::resize_file(big, (uintmax_t{256} << 20) + 1);
  EXPECT_EQ(
      run_to_end("tune-big",
                 {"tune", "--server", address_, "--model", big.string(), "--target", "llvm"}, &out),
      2);
  EXPECT_NE(read_file(dir_ / "tune-big.err").find("up to 268435456 bytes (256 MiB)"),
            std::string::npos)
      << read_file(dir_ / "tune-big.err");
  kiln::v1::JobSpec spec;
  spec.set_model_path(big.string());
  spec.set_target("llvm");
  kiln::v1::JobStatus status;
  grpc::Status refused = start_job(spec, &status);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(refused.error_message().find("256 MiB"), std::string::npos) << refused.error_message();
  spec.set_workload("matmul:M=8,N=8,K=8");
  refused = start_job(spec, &status);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(refused.error_message().find("exactly one"), std::string::npos);

  // A model file the server reads, measured on the server's machine.
  spec.clear_workload();
  spec.set_model_path(model);
  spec.set_trials(40);
  spec.set_batch(4);
  spec.set_threads(1);
  ASSERT_TRUE(start_job(spec, &status).ok());
  const std::string id = status.id();
  EXPECT_EQ(status.spec().model_path(), model);
  EXPECT_EQ(status.spec().model_name(), "cnn.onnx");
  EXPECT_EQ(status.spec().scheduler(), "gradient");
  ASSERT_GE(status.tasks(), 2);
  ASSERT_TRUE(wait_for_trials(id, 4));
  // While it runs, no other job may tune its tasks: a workload job of one of them, or the model
  // again.
  const std::string task = all_trials().front().first;
  kiln::v1::JobSpec twin;
  twin.set_workload(task);
  twin.set_target("llvm");
  grpc::Status conflict = start_job(twin, &status);
  EXPECT_EQ(conflict.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_NE(conflict.error_message().find("job " + id + " is tuning " + task), std::string::npos)
      << conflict.error_message();
  EXPECT_EQ(start_job(spec, &status).error_code(), grpc::StatusCode::ALREADY_EXISTS);

  // The server dies in the middle; restarted, the job is interrupted where the log says, and
  // resumed it ends with every trial recorded once.
  ASSERT_TRUE(wait_for_trials(id, 8));
  server_->signal(SIGKILL);
  EXPECT_EQ(server_->wait(), 128 + SIGKILL);
  ASSERT_EQ(start_server(port), port);
  auto listed = jobs();
  EXPECT_EQ(listed[id]["state"], "interrupted");
  const int64_t done = listed[id]["trials"];
  EXPECT_GE(done, 8);
  EXPECT_LT(done, 40);
  EXPECT_EQ(int64_t(all_trials().size()), done) << "it reports what the log holds";
  ASSERT_EQ(run_to_end("resume", {"jobs", "resume", id, "--server", address_, "--json"}, &out), 0)
      << read_file(dir_ / "resume.err");
  const nlohmann::json resumed = nlohmann::json::parse(out);
  EXPECT_EQ(resumed["state"], "succeeded");
  EXPECT_EQ(resumed["trials"], 40);
  const std::vector<std::pair<std::string, int64_t>> trials = all_trials();
  EXPECT_EQ(trials.size(), 40u) << "a trial lost or repeated";
  EXPECT_TRUE(repeated(trials).empty()) << "a config measured twice";
}

// Two servers on one PostgreSQL log: a job started on one is watched from the other; the first
// dies with SIGKILL mid-job, the second resumes it, and the job ends with exactly its trials;
// both servers (the first restarted) answer QueryBest alike.
TEST_F(ServeJobsTest, AJobWhoseServerDiedResumesOnAnotherServerOfTheSameLog) {
  kiln::test::PostgresServer* postgres = kiln::test::PostgresServer::for_test();
  if (postgres == nullptr) GTEST_SKIP() << kiln::test::PostgresServer::why();
  db_ = postgres->create_database("shared_jobs");
  ASSERT_FALSE(db_.empty());
  ASSERT_GT(start_server(), 0);
  Process* first = server_;
  const std::string on_first = address_;
  ASSERT_GT(start_server(), 0);
  const std::string on_second = address_;

  // A job on the server's own machine (no device key), started on the first server.
  auto local_job = [&](const std::string& server, int trials) {
    return std::vector<std::string>{
        "tune",     "--server",  server,     "--workload",           kFirst,
        "--target", "llvm",      "--trials", std::to_string(trials), "--batch",
        "4",        "--threads", "1"};
  };
  std::vector<std::string> args = local_job(on_first, 40);
  args.push_back("--detach");
  std::string out;
  ASSERT_EQ(run_to_end("start", args, &out), 0) << read_file(dir_ / "start.err");
  const std::string id = out.substr(0, out.find('\n'));

  // Listed and watched from the second server.
  Process& watch = run("watch", {"jobs", "watch", id, "--server", on_second, "--json"});
  ASSERT_TRUE(wait_for_trials(id, 8)) << "the second server lists the first one's progress";
  first->signal(SIGKILL);
  EXPECT_EQ(first->wait(), 128 + SIGKILL);

  // The second server's watch ends: the job lost its server.
  EXPECT_EQ(watch.wait(30s), 1) << read_file(dir_ / "watch.err");
  const nlohmann::json watched = nlohmann::json::parse(read_file(dir_ / "watch.out"));
  EXPECT_EQ(watched["state"], "interrupted");
  const int64_t done = watched["trials"];
  EXPECT_GE(done, 8);
  EXPECT_LT(done, 40);
  EXPECT_EQ(int64_t(trials_of(kFirst).size()), done) << "it reports what the log holds";
  EXPECT_NE(read_file(dir_ / "watch.err").find("kiln jobs resume " + id), std::string::npos);

  ASSERT_EQ(run_to_end("resume", {"jobs", "resume", id, "--server", on_second, "--json"}, &out), 0)
      << read_file(dir_ / "resume.err");
  const nlohmann::json resumed = nlohmann::json::parse(out);
  EXPECT_EQ(resumed["state"], "succeeded");
  EXPECT_EQ(resumed["trials"], 40);
  const std::vector<nlohmann::json> trials = trials_of(kFirst);
  EXPECT_EQ(trials.size(), 40u) << "a trial lost or repeated";
  std::set<int64_t> configs;
  for (const nlohmann::json& r : trials) configs.insert(r["config"]["index"].get<int64_t>());
  EXPECT_EQ(configs.size(), trials.size()) << "a config measured twice";

  // The first server again: it lists the job as the second ended it, and both answer QueryBest
  // with the same record.
  ASSERT_GT(start_server(), 0);
  const std::string restarted = address_;
  EXPECT_EQ(jobs()[id]["state"], "succeeded");
  auto best_on = [&](const std::string& server) {
    auto tuning =
        kiln::v1::Tuning::NewStub(grpc::CreateChannel(server, grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    kiln::v1::QueryBestRequest request;
    request.set_workload(kFirst);
    request.set_target("llvm");
    request.set_threads(1);
    kiln::v1::QueryBestResponse answer;
    EXPECT_TRUE(tuning->QueryBest(&context, request, &answer).ok());
    return answer.records_size() == 1 ? answer.records(0) : kiln::v1::BestRecord();
  };
  const kiln::v1::BestRecord a = best_on(restarted), b = best_on(on_second);
  EXPECT_GT(a.time_s(), 0);
  EXPECT_EQ(a.config().index(), b.config().index());
  EXPECT_EQ(a.time_s(), b.time_s());
  EXPECT_EQ(a.time_s(), resumed["best"]["time_s"].get<double>());
}

// A job another server runs is cancelled through the log: that server stops it after its batch.
TEST_F(ServeJobsTest, ACancelOnOneServerStopsTheJobAnotherServerRuns) {
  kiln::test::PostgresServer* postgres = kiln::test::PostgresServer::for_test();
  if (postgres == nullptr) GTEST_SKIP() << kiln::test::PostgresServer::why();
  db_ = postgres->create_database("cancel_jobs");
  ASSERT_FALSE(db_.empty());
  ASSERT_GT(start_server(), 0);
  const std::string on_first = address_;
  ASSERT_GT(start_server(), 0);
  const std::string on_second = address_;
  std::string out;
  ASSERT_EQ(run_to_end("start",
                       {"tune", "--server", on_first, "--workload", kSecond, "--target", "llvm",
                        "--trials", "400", "--batch", "4", "--threads", "1", "--detach"},
                       &out),
            0)
      << read_file(dir_ / "start.err");
  const std::string id = out.substr(0, out.find('\n'));
  ASSERT_TRUE(wait_for_trials(id, 4));
  // Another job of the same workload is refused on either server.
  EXPECT_NE(run_to_end("twin",
                       {"tune", "--server", on_second, "--workload", kSecond, "--target", "llvm",
                        "--trials", "8", "--threads", "1", "--detach"},
                       &out),
            0);
  EXPECT_NE(read_file(dir_ / "twin.err").find("job " + id + " is tuning"), std::string::npos)
      << read_file(dir_ / "twin.err");
  ASSERT_EQ(run_to_end("cancel", {"jobs", "cancel", id, "--server", on_second}, &out), 0)
      << read_file(dir_ / "cancel.err");
  EXPECT_EQ(run_to_end("watch", {"jobs", "watch", id, "--server", on_first, "--json"}, &out), 1);
  const nlohmann::json status = nlohmann::json::parse(out);
  EXPECT_EQ(status["state"], "cancelled");
  EXPECT_LT(status["trials"].get<int64_t>(), 400);
  EXPECT_EQ(int64_t(trials_of(kSecond).size()), status["trials"].get<int64_t>());
}

}  // namespace
