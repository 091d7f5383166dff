// kiln_tracker_load_bench: one `kiln tracker` process against many simulated agents and
// concurrent jobs, all on 127.0.0.1.
//
// The simulated agents (a load generator in this process) register like real ones and answer
// every task at once with a synthetic cost; client threads submit the tasks as jobs of equal
// size on one device key. Figures:
// - tasks routed per second: tasks completed / wall time from the first submission to the last
//   result;
// - dispatch latency, p50 and p99: at an agent, from sending a result to receiving its next
//   task (capacity 1: the tracker's routing time for a freed slot, network included; with
//   every agent busy on 2 shared cores it is bounded below by the time the 1,000 simulated
//   agents' threads take to get their turn, about agents / tasks per second);
// - the tracker process's peak resident memory (VmHWM);
// - lost and duplicated results (every task must come back exactly once).
// Target (issue): at least 10,000 tasks/s with 1,000 agents and 100,000 tasks on 2 cores.

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "bench/kiln_server_process.h"
#include "kiln/v1/tracker.grpc.pb.h"
#include "proto/kiln/grpc_process.h"

namespace {

namespace pb = kiln::v1;
using Clock = std::chrono::steady_clock;

struct Options {
  int agents = 1000;
  int64_t tasks = 100000;
  int jobs = 10;
  int channels = 16;
  bool json_output = false;
};

[[noreturn]] void fail(const std::string& message) {
  std::cerr << "error: " << message << "\n";
  std::exit(1);
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

/// User plus system CPU seconds the process has used (/proc/PID/stat).
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string f;
  double utime = 0, stime = 0;
  for (int i = 3; fields >> f; ++i) {
    if (i == 14) utime = std::stod(f);
    if (i == 15) {
      stime = std::stod(f);
      break;
    }
  }
  return (utime + stime) / double(sysconf(_SC_CLK_TCK));
}

double percentile(std::vector<int64_t>& v, double p) {
  if (v.empty()) return 0;
  size_t k = size_t(p * double(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + long(k), v.end());
  return double(v[k]);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail(a + " needs a value");
      return argv[++i];
    };
    if (a == "--agents") {
      o.agents = std::stoi(value());
    } else if (a == "--tasks") {
      o.tasks = std::stoll(value());
    } else if (a == "--jobs") {
      o.jobs = std::stoi(value());
    } else if (a == "--channels") {
      o.channels = std::stoi(value());
    } else if (a == "--json") {
      o.json_output = true;
    } else if (a == "--help" || a == "-h") {
      std::cout << "usage: kiln_tracker_load_bench [--agents 1000] [--tasks 100000] [--jobs 10]\n"
                   "         [--channels 16] [--json]\n";
      std::exit(0);
    } else {
      fail("unknown flag '" + a + "'; see --help");
    }
  }
  if (o.agents < 1 || o.tasks < 1 || o.jobs < 1 || o.channels < 1) fail("counts must be >= 1");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  kiln::disable_mutex_deadlock_detection();
  signal(SIGPIPE, SIG_IGN);
  const std::string out_path = "/tmp/kiln_tracker_load_bench_" + std::to_string(getpid());
  kiln::bench::ServerProcess tracker = kiln::bench::start_server(
      KILN_BINARY, {"tracker", "--listen", "127.0.0.1:0", "--heartbeat-timeout-ms", "600000"},
      out_path);
  const std::string address = "127.0.0.1:" + std::to_string(tracker.port);

  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int c = 0; c < o.channels; ++c) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", c);  // distinct channels, distinct connections
    channels.push_back(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
  }

  // The simulated agents.
  std::vector<std::atomic<int>> answered(size_t(o.tasks));
  std::mutex latency_mutex;
  std::vector<int64_t> latencies;
  latencies.reserve(size_t(o.tasks));
  std::atomic<int> registered{0};
  std::atomic<bool> done{false};
  std::vector<std::unique_ptr<grpc::ClientContext>> agent_contexts(size_t(o.agents));
  std::vector<std::thread> agents;
  for (int a = 0; a < o.agents; ++a) {
    agent_contexts[size_t(a)] = std::make_unique<grpc::ClientContext>();
    agents.emplace_back([&, a] {
      auto stub = pb::Tracker::NewStub(channels[size_t(a % o.channels)]);
      auto stream = stub->Connect(agent_contexts[size_t(a)].get());
      pb::AgentMessage hello;
      hello.mutable_register_()->set_agent_id("sim-" + std::to_string(a));
      hello.mutable_register_()->set_device_key("sim");
      hello.mutable_register_()->set_capacity(1);
      stream->Write(hello);
      pb::TrackerMessage m;
      std::vector<int64_t> mine;
      int64_t sent_at = 0;
      while (stream->Read(&m)) {
        if (m.has_registered()) {
          ++registered;
          continue;
        }
        if (!m.has_task()) continue;
        const int64_t received = now_ns();
        if (sent_at > 0) mine.push_back(received - sent_at);
        pb::AgentMessage reply;
        pb::MeasureResult* r = reply.mutable_result();
        r->set_task_id(m.task().task().task_id());
        r->set_error_code(pb::MEASURE_ERROR_CODE_OK);
        r->add_costs_s(1e-3);
        sent_at = now_ns();
        if (!stream->Write(reply)) break;
      }
      stream->Finish();
      std::lock_guard<std::mutex> lock(latency_mutex);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
    });
  }
  auto deadline = Clock::now() + std::chrono::seconds(120);
  while (registered < o.agents && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (registered < o.agents) fail("only " + std::to_string(registered) + " agents registered");
  std::cerr << "load: " << o.agents << " agents registered with tracker pid " << tracker.pid
            << "; submitting " << o.tasks << " tasks in " << o.jobs << " jobs\n";

  // The jobs.
  const double tracker_cpu_before = cpu_seconds(tracker.pid);
  const auto start = Clock::now();
  std::atomic<int64_t> results{0}, duplicates{0}, foreign{0};
  std::vector<std::thread> clients;
  for (int j = 0; j < o.jobs; ++j) {
    clients.emplace_back([&, j] {
      auto stub = pb::Tracker::NewStub(channels[size_t(j % o.channels)]);
      pb::SubmitRequest request;
      request.set_job_id("load-" + std::to_string(j));
      request.set_device_key("sim");
      for (int64_t t = j; t < o.tasks; t += o.jobs) {
        pb::MeasureTask* task = request.add_tasks();
        task->set_task_id(std::to_string(t));
        task->mutable_workload()->set_canonical("matmul:M=8,N=8,K=8");
        task->mutable_target()->set_canonical("llvm");
        task->mutable_config()->set_index(t % 1000);
      }
      grpc::ClientContext context;
      auto reader = stub->Submit(&context, request);
      pb::SubmitResponse batch;
      while (reader->Read(&batch)) {
        for (const pb::MeasureResult& r : batch.results()) {
          int64_t t = std::stoll(r.task_id());
          if (t < 0 || t >= o.tasks || r.error_code() != pb::MEASURE_ERROR_CODE_OK) {
            ++foreign;
            continue;
          }
          if (answered[size_t(t)]++ > 0) ++duplicates;
          ++results;
        }
      }
      grpc::Status s = reader->Finish();
      if (!s.ok()) std::cerr << "job " << j << ": " << s.error_message() << "\n";
    });
  }
  for (std::thread& c : clients) c.join();
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  const int64_t peak_kb = tracker.peak_rss_kb();
  const double tracker_cpu = cpu_seconds(tracker.pid) - tracker_cpu_before;

  done = true;
  for (auto& context : agent_contexts) context->TryCancel();
  for (std::thread& a : agents) a.join();
  tracker.stop();
  std::remove(out_path.c_str());

  int64_t lost = 0;
  for (const auto& n : answered) lost += n.load() == 0 ? 1 : 0;
  const double rate = double(results) / wall;
  const double p50 = percentile(latencies, 0.50) / 1e6, p99 = percentile(latencies, 0.99) / 1e6;
  if (o.json_output) {
    std::cout << nlohmann::json{{"agents", o.agents},
                                {"tasks", o.tasks},
                                {"jobs", o.jobs},
                                {"wall_s", wall},
                                {"tasks_per_s", rate},
                                {"dispatch_p50_ms", p50},
                                {"dispatch_p99_ms", p99},
                                {"tracker_peak_rss_kb", peak_kb},
                                {"lost", lost},
                                {"duplicated", duplicates.load()},
                                {"foreign", foreign.load()}}
                     .dump()
              << "\n";
  } else {
    std::printf("tracker load: %d agents, %lld tasks in %d jobs, %.2f s\n", o.agents,
                static_cast<long long>(o.tasks), o.jobs, wall);
    std::printf("  routed %.0f tasks/s   [%s >= 10000]\n", rate, rate >= 10000 ? "ok" : "MISSED");
    std::printf("  dispatch latency p50 %.3f ms, p99 %.3f ms\n", p50, p99);
    std::printf(
        "  tracker peak memory %.1f MiB; tracker CPU %.2f s (%.0f us a task; the load\n"
        "  generator shares the machine's cores)\n",
        double(peak_kb) / 1024, tracker_cpu,
        1e6 * tracker_cpu / double(std::max<int64_t>(1, results)));
    std::printf("  lost %lld, duplicated %lld   [%s]\n", static_cast<long long>(lost),
                static_cast<long long>(duplicates.load()),
                lost == 0 && duplicates == 0 ? "ok" : "MISSED");
  }
  return lost == 0 && duplicates == 0 ? 0 : 1;
}
