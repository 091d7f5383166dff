// `kiln serve` as users run it: a real server process on 127.0.0.1 (port chosen at run time)
// over a tuning log that `kiln tune` filled; `kiln best --server`, the Tuning service's
// ListWorkloads, gRPC health checking, the token, and the tracker on the same port.

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kiln/v1/tuning.grpc.pb.h"
#include "tests/model/two_conv_model.h"
#include "tests/support/kiln_process_test.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/postgres_server.h"

namespace {

namespace fs = std::filesystem;
namespace pb = kiln::v1;
using kiln::test::Process;
using kiln::test::read_file;
using namespace std::chrono_literals;

constexpr const char* kToken = "serve-test-token";
constexpr const char* kWorkload = "matmul:M=48,N=32,K=40";

class ServeTest : public kiln::test::KilnProcessTest {
 protected:
  void SetUp() override {
    make_dir("kiln_serve");
    std::ofstream(dir_ / "token") << kToken << "\n";
    db_ = (dir_ / "tuning.db").string();
  }

  /// Tunes kWorkload into db_ for `trials` trials and returns `kiln best --top K --db --json`.
  nlohmann::json tune_and_query_locally(int trials, int top) {
    std::string out;
    EXPECT_EQ(run_to_end("tune",
                         {"tune", "--workload", kWorkload, "--target", "llvm", "--trials",
                          std::to_string(trials), "--db", db_, "--threads", "1"},
                         &out),
              0)
        << read_file(dir_ / "tune.err");
    EXPECT_EQ(run_to_end("best-local",
                         {"best", "--workload", kWorkload, "--target", "llvm", "--top",
                          std::to_string(top), "--db", db_, "--threads", "1", "--json"},
                         &out),
              0);
    return nlohmann::json::parse(out);
  }

  /// Starts `kiln serve` over db_ with the token; returns its port.
  int start_server(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {
        "serve", "--listen", "127.0.0.1:0", "--db", db_, "--token-file", (dir_ / "token").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return wait_for_port(run("serve", args));
  }

  std::shared_ptr<grpc::Channel> channel(int port) {
    return grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                               grpc::InsecureChannelCredentials());
  }

  std::string db_;
};

TEST_F(ServeTest, AnswersWhatTheTuningLogHolds) {
  nlohmann::json l = tune_and_query_locally(10, 3);
  ASSERT_FALSE(HasFailure());
  int port = start_server();
  ASSERT_GT(port, 0);

  // kiln best --server answers as kiln best --db does.
  const std::string address = "127.0.0.1:" + std::to_string(port);
  std::string remote;
  ASSERT_EQ(
      run_to_end("best-remote",
                 {"best", "--workload", kWorkload, "--target", "llvm", "--top", "3", "--server",
                  address, "--token-file", (dir_ / "token").string(), "--threads", "1", "--json"},
                 &remote),
      0)
      << read_file(dir_ / "best-remote.err");
  nlohmann::json r = nlohmann::json::parse(remote);
  ASSERT_EQ(l["records"].size(), 3u);
  EXPECT_EQ(r["records"], l["records"]);
  EXPECT_EQ(r["records"][0]["threads"], 1);
  // The records were measured with 1 thread: they do not answer for 2.
  ASSERT_EQ(run_to_end("best-remote-2",
                       {"best", "--workload", kWorkload, "--target", "llvm", "--server", address,
                        "--token-file", (dir_ / "token").string(), "--threads", "2", "--json"},
                       &remote),
            0)
      << read_file(dir_ / "best-remote-2.err");
  EXPECT_TRUE(nlohmann::json::parse(remote)["records"].empty()) << remote;

  // Without the token: refused.
  EXPECT_NE(run_to_end("best-no-token",
                       {"best", "--workload", kWorkload, "--target", "llvm", "--server", address},
                       &remote),
            0);
  EXPECT_NE(read_file(dir_ / "best-no-token.err").find("bearer token"), std::string::npos);

  // ListWorkloads.
  auto stub = pb::Tuning::NewStub(channel(port));
  grpc::ClientContext context;
  context.AddMetadata("authorization", std::string("Bearer ") + kToken);
  pb::ListWorkloadsRequest request;
  pb::ListWorkloadsResponse response;
  ASSERT_TRUE(stub->ListWorkloads(&context, request, &response).ok());
  ASSERT_EQ(response.workloads_size(), 1);
  EXPECT_EQ(response.workloads(0).workload(), kWorkload);
  EXPECT_EQ(response.workloads(0).op(), "matmul");
  EXPECT_GE(response.workloads(0).records(), 10);
  EXPECT_GE(response.workloads(0).valid(), 3);

  // A record another process commits after a query is in the answers at once (answers are
  // cached only until the log changes).
  auto best_agent = [&] {
    grpc::ClientContext query_context;
    query_context.AddMetadata("authorization", std::string("Bearer ") + kToken);
    pb::QueryBestRequest query;
    query.set_workload(kWorkload);
    query.set_target("llvm");
    pb::QueryBestResponse answer;
    grpc::Status s = stub->QueryBest(&query_context, query, &answer);
    return s.ok() && answer.records_size() > 0 ? answer.records(0).agent() : s.error_message();
  };
  ASSERT_NE(best_agent(), "faster");  // cached from here on
  std::string exported;
  ASSERT_EQ(run_to_end("export", {"db", "export", "--db", db_}, &exported), 0);
  nlohmann::json faster = nlohmann::json::parse(exported.substr(0, exported.find('\n')));
  faster["costs"] = {1e-9};
  faster["error"] = "OK";
  faster["agent"] = "faster";
  const fs::path line = dir_ / "faster.jsonl";
  std::ofstream(line) << faster.dump() << "\n";
  ASSERT_EQ(
      run_to_end("import", {"db", "import", "--db", db_, "--input", line.string()}, &exported), 0)
      << read_file(dir_ / "import.err");
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  std::string agent = best_agent();
  while (agent != "faster" && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
    agent = best_agent();
  }
  EXPECT_EQ(agent, "faster");

  // A workload that does not parse: INVALID_ARGUMENT.
  grpc::ClientContext bad_context;
  bad_context.AddMetadata("authorization", std::string("Bearer ") + kToken);
  pb::QueryBestRequest bad;
  bad.set_workload("matmul:M=4");
  bad.set_target("llvm");
  pb::QueryBestResponse bad_response;
  EXPECT_EQ(stub->QueryBest(&bad_context, bad, &bad_response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ServeTest, MetricsCountQueryBestAnswersAndJobsByState) {
  tune_and_query_locally(4, 1);
  ASSERT_FALSE(HasFailure());
  const int port = start_server({"--metrics-listen", "127.0.0.1:0"});
  ASSERT_GT(port, 0);
  const int metrics = kiln::test::metrics_port(read_file(dir_ / "serve.out"));
  ASSERT_GT(metrics, 0) << read_file(dir_ / "serve.out");
  auto stub = pb::Tuning::NewStub(channel(port));
  auto query = [&](const std::string& workload) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", std::string("Bearer ") + kToken);
    pb::QueryBestRequest request;
    request.set_workload(workload);
    request.set_target("llvm");
    pb::QueryBestResponse answer;
    return stub->QueryBest(&context, request, &answer).error_code();
  };
  EXPECT_EQ(query(kWorkload), grpc::StatusCode::OK);  // read from the log
  EXPECT_EQ(query(kWorkload), grpc::StatusCode::OK);  // from the cache
  EXPECT_EQ(query("matmul:M=4"), grpc::StatusCode::INVALID_ARGUMENT);
  // A local job in the server, to its end.
  std::string out;
  ASSERT_EQ(run_to_end("tune-remote",
                       {"tune", "--server", "127.0.0.1:" + std::to_string(port), "--workload",
                        "matmul:M=16,N=16,K=16", "--target", "llvm", "--trials", "4", "--threads",
                        "1", "--token-file", (dir_ / "token").string()},
                       &out),
            0)
      << read_file(dir_ / "tune-remote.err");

  std::map<std::string, double> samples = kiln::test::scrape(metrics);
  EXPECT_EQ(samples[R"(kiln_serve_query_best_total{result="read"})"], 1);
  EXPECT_EQ(samples[R"(kiln_serve_query_best_total{result="cached"})"], 1);
  EXPECT_EQ(samples[R"(kiln_serve_query_best_total{result="error"})"], 1);
  EXPECT_EQ(samples["kiln_serve_query_best_latency_seconds_count"], 3);
  EXPECT_EQ(samples[R"(kiln_serve_jobs{state="succeeded"})"], 1);
  EXPECT_EQ(samples.count(R"(kiln_serve_jobs{state="running"})"), 1u);
  EXPECT_EQ(samples[R"(kiln_serve_jobs{state="running"})"], 0);
  // The tracker it hosts reports beside it.
  EXPECT_EQ(samples.count(R"(kiln_tracker_tasks_submitted_total{device_key="cpu"})"), 0u);
  bool tracker_families = false;
  for (const auto& [name, value] : samples) {
    tracker_families = tracker_families || name.rfind("kiln_tracker_", 0) == 0;
  }
  EXPECT_FALSE(tracker_families) << "no agent, no key: the tracker's families are empty";
  EXPECT_NE(kiln::test::http_get(metrics, "/metrics").find("# TYPE kiln_tracker_agents gauge"),
            std::string::npos);
}

// Two servers on one PostgreSQL log: what a job of one stores, the other answers; and a record
// another process stores reaches both servers' answers (their caches are retired by the log's
// notifications).
TEST_F(ServeTest, TwoServersOnOnePostgresLogAnswerAlike) {
  kiln::test::PostgresServer* postgres = kiln::test::PostgresServer::for_test();
  if (postgres == nullptr) GTEST_SKIP() << kiln::test::PostgresServer::why();
  const std::string url = postgres->create_database("shared");
  ASSERT_FALSE(url.empty());
  auto start = [&](const std::string& name) {
    return wait_for_port(run(name, {"serve", "--listen", "127.0.0.1:0", "--db", url, "--token-file",
                                    (dir_ / "token").string()}));
  };
  const int a = start("serve-a"), b = start("serve-b");
  ASSERT_GT(a, 0);
  ASSERT_GT(b, 0);
  std::string out;
  ASSERT_EQ(run_to_end("tune-on-a",
                       {"tune", "--server", "127.0.0.1:" + std::to_string(a), "--workload",
                        kWorkload, "--target", "llvm", "--trials", "8", "--threads", "1",
                        "--token-file", (dir_ / "token").string()},
                       &out),
            0)
      << read_file(dir_ / "tune-on-a.err");
  auto best_of = [&](int port) {
    auto stub = pb::Tuning::NewStub(channel(port));
    grpc::ClientContext context;
    context.AddMetadata("authorization", std::string("Bearer ") + kToken);
    pb::QueryBestRequest request;
    request.set_workload(kWorkload);
    request.set_target("llvm");
    request.set_threads(1);
    pb::QueryBestResponse answer;
    EXPECT_TRUE(stub->QueryBest(&context, request, &answer).ok());
    return answer.records_size() == 1 ? answer.records(0) : pb::BestRecord();
  };
  const pb::BestRecord on_a = best_of(a), on_b = best_of(b);
  EXPECT_GT(on_a.time_s(), 0);
  EXPECT_EQ(on_a.config().index(), on_b.config().index());
  EXPECT_EQ(on_a.time_s(), on_b.time_s());

  // A faster record from another process (kiln db import into the same log).
  std::string exported;
  ASSERT_EQ(run_to_end("export", {"db", "export", "--db", url}, &exported), 0)
      << read_file(dir_ / "export.err");
  nlohmann::json faster = nlohmann::json::parse(exported.substr(0, exported.find('\n')));
  faster["costs"] = {1e-9};
  faster["error"] = "OK";
  faster["config"]["index"] = on_a.config().index() + 1;
  const fs::path line = dir_ / "faster.jsonl";
  std::ofstream(line) << faster.dump() << "\n";
  ASSERT_EQ(run_to_end("import", {"db", "import", "--db", url, "--input", line.string()}, &out), 0)
      << read_file(dir_ / "import.err");
  // From the import's exit (its commit is earlier) to each server's first answer with the record;
  // printed, not bounded beyond the 2 s of a test on a shared machine.
  const auto imported = std::chrono::steady_clock::now();
  for (int port : {a, b}) {
    const auto deadline = imported + 2s;
    pb::BestRecord now = best_of(port);
    while (now.config().index() != on_a.config().index() + 1 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
      now = best_of(port);
    }
    EXPECT_EQ(now.config().index(), on_a.config().index() + 1) << "server on port " << port;
    std::printf(
        "the imported record reached the server on port %d after %.1f ms\n", port,
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - imported)
            .count());
  }
}

// The Python client in examples/, on Debian's python3-grpcio, with stubs generated now.
TEST_F(ServeTest, ThePythonExampleAsksForTheBestSchedule) {
  nlohmann::json local = tune_and_query_locally(6, 2);
  ASSERT_FALSE(HasFailure());
  int port = start_server();
  ASSERT_GT(port, 0);
  const fs::path stubs = dir_ / "stubs";
  fs::create_directories(stubs);
  const std::string protoc = "protoc -I " KILN_PROTO_DIR " --python_out=" + stubs.string() +
                             " --grpc_python_out=" + stubs.string() +
                             " --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin " +
                             KILN_PROTO_DIR "/kiln/v1/kiln.proto " KILN_PROTO_DIR
                                            "/kiln/v1/tuning.proto";
  ASSERT_EQ(std::system(protoc.c_str()), 0) << protoc;
  const std::vector<std::string> args = {"/usr/bin/python3",
                                         KILN_EXAMPLES_DIR "/best_schedule.py",
                                         "--stubs",
                                         stubs.string(),
                                         "--server",
                                         "127.0.0.1:" + std::to_string(port),
                                         "--workload",
                                         kWorkload,
                                         "--target",
                                         "llvm",
                                         "--top",
                                         "2",
                                         "--token-file",
                                         (dir_ / "token").string()};
  Process client = Process::spawn(args, dir_ / "python.out", dir_ / "python.err");
  ASSERT_EQ(client.wait(std::chrono::seconds(60)), 0) << read_file(dir_ / "python.err");
  nlohmann::json answer = nlohmann::json::parse(read_file(dir_ / "python.out"));
  nlohmann::json expected = local["records"];
  ASSERT_EQ(answer["records"].size(), expected.size());
  ASSERT_FALSE(expected.empty());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(answer["records"][i]["config"], expected[i]["config"]);
    EXPECT_DOUBLE_EQ(answer["records"][i]["time_s"].get<double>(),
                     expected[i]["time_s"].get<double>());
  }
  EXPECT_EQ(answer["workload"], kWorkload);
}

TEST_F(ServeTest, OverTlsOnlyClientsTrustingTheCaConnect) {
  const fs::path key = dir_ / "server.key", cert = dir_ / "server.pem";
  const std::string openssl =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
      "-addext subjectAltName=IP:127.0.0.1 -keyout " +
      key.string() + " -out " + cert.string() + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(openssl.c_str()), 0) << "openssl cannot make a certificate";
  int port = start_server({"--tls-cert", cert.string(), "--tls-key", key.string()});
  ASSERT_GT(port, 0);
  const std::vector<std::string> best = {"best",
                                         "--workload",
                                         kWorkload,
                                         "--target",
                                         "llvm",
                                         "--server",
                                         "127.0.0.1:" + std::to_string(port),
                                         "--token-file",
                                         (dir_ / "token").string()};
  std::vector<std::string> trusting = best;
  trusting.insert(trusting.end(), {"--tls-ca", cert.string(), "--json"});
  std::string out;
  ASSERT_EQ(run_to_end("best-tls", trusting, &out), 0) << read_file(dir_ / "best-tls.err");
  EXPECT_TRUE(nlohmann::json::parse(out)["records"].empty());
  EXPECT_EQ(run_to_end("best-plain", best, &out), 1);
  EXPECT_NE(read_file(dir_ / "best-plain.err").find("error: server"), std::string::npos);
}

TEST_F(ServeTest, HealthCheckingReportsServing) {
  int port = start_server();
  ASSERT_GT(port, 0);
  // grpc.health.v1.Health/Check with an empty HealthCheckRequest; the response's field 1 is
  // the status, SERVING = 1 (bytes 08 01).
  grpc::GenericStub stub(channel(port));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 10s);
  grpc::ByteBuffer request, response;
  grpc::Slice empty("");
  request = grpc::ByteBuffer(&empty, 1);
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  grpc::Status status;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   std::lock_guard<std::mutex> lock(mutex);
                   status = s;
                   done = true;
                   done_cv.notify_all();
                 });
  std::unique_lock<std::mutex> lock(mutex);
  done_cv.wait(lock, [&] { return done; });
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));
}

// Server reflection: grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo with
// list_services (field 7, empty) names the services, so tools such as grpcurl work unaided.
TEST_F(ServeTest, ReflectionListsTheServices) {
  int port = start_server();
  ASSERT_GT(port, 0);
  grpc::GenericStub stub(channel(port));
  grpc::CompletionQueue queue;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 10s);
  auto call = stub.PrepareCall(
      &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &queue);
  auto step = [&](int tag) {
    void* got = nullptr;
    bool ok = false;
    return queue.Next(&got, &ok) && got == reinterpret_cast<void*>(intptr_t(tag)) && ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(step(1));
  grpc::Slice list_services(std::string("\x3a\x00", 2));
  grpc::ByteBuffer request(&list_services, 1);
  call->Write(request, reinterpret_cast<void*>(2));
  ASSERT_TRUE(step(2));
  call->WritesDone(reinterpret_cast<void*>(3));
  ASSERT_TRUE(step(3));
  grpc::ByteBuffer response;
  call->Read(&response, reinterpret_cast<void*>(4));
  ASSERT_TRUE(step(4));
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  void* got = nullptr;
  bool ok = false;
  while (queue.Next(&got, &ok) && got != reinterpret_cast<void*>(5)) {
  }
  queue.Shutdown();
  while (queue.Next(&got, &ok)) {
  }
  EXPECT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  for (const char* service : {"kiln.v1.Tuning", "kiln.v1.Tracker", "grpc.health.v1.Health"}) {
    EXPECT_NE(bytes.find(service), std::string::npos) << service;
  }
}

TEST_F(ServeTest, TheTrackerServesOnTheSamePort) {
  int port = start_server();
  ASSERT_GT(port, 0);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  run("agent", {"agent", "--tracker", address, "--key", "cpu", "--id", "a1", "--token-file",
                (dir_ / "token").string()});
  std::string out;
  ASSERT_EQ(
      run_to_end("tune",
                 {"tune", "--workload", kWorkload, "--target", "llvm", "--trials", "6", "--tracker",
                  address, "--device-key", "cpu", "--token-file", (dir_ / "token").string(), "--db",
                  (dir_ / "fleet.db").string(), "--threads", "1", "--json"},
                 &out),
      0)
      << read_file(dir_ / "tune.err");
  nlohmann::json summary = nlohmann::json::parse(out);
  EXPECT_EQ(summary["trials"], 6);
  EXPECT_GE(summary["valid"].get<int>(), 1);
}

TEST_F(ServeTest, AModelJobMeasuresEveryTaskOnTheFleet) {
  int port = start_server();
  ASSERT_GT(port, 0);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  run("agent", {"agent", "--tracker", address, "--key", "cpu", "--id", "a1", "--token-file",
                (dir_ / "token").string()});
  const std::string model = (dir_ / "two_conv.onnx").string();
  std::ofstream(model, std::ios::binary) << kiln::model_test::two_conv_model();
  std::string out;
  ASSERT_EQ(run_to_end("tune",
                       {"tune",
                        "--model",
                        model,
                        "--target",
                        "llvm",
                        "--trials",
                        "16",
                        "--batch",
                        "8",
                        "--tracker",
                        address,
                        "--device-key",
                        "cpu",
                        "--token-file",
                        (dir_ / "token").string(),
                        "--db",
                        (dir_ / "fleet.db").string(),
                        "--threads",
                        "1",
                        "--json"},
                       &out),
            0)
      << read_file(dir_ / "tune.err");
  nlohmann::json summary = nlohmann::json::parse(out);
  EXPECT_EQ(summary["trials"], 16);
  ASSERT_EQ(summary["tasks"].size(), 2u);
  for (const nlohmann::json& task : summary["tasks"]) {
    EXPECT_EQ(task["trials"], 8) << task.dump();
    EXPECT_TRUE(task.contains("best")) << task.dump();
  }
}

}  // namespace
