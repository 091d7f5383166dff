// kiln_serve_load_bench: QueryBest against one `kiln serve` process from many concurrent
// clients, all on 127.0.0.1.
//
// Fills a new tuning log in a temporary folder with --records records (default 1,000,000) over
// --workloads workloads (default 1,000) on this machine's target key, one in ten a failed
// measurement; starts `kiln serve --no-tracker` on it; then --clients clients (default
// 64, over --channels connections) each keep one QueryBest (k = 1, a random workload) in
// flight for --seconds seconds. Figures: queries per second, p50 and p99 latency at the clients,
// errors, and the server's peak resident memory. Target (issue): at least 20,000 QPS and p99 below
// 5 ms on this 2-core machine, which the clients share with the server.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "bench/kiln_server_process.h"
#include "compiler_core/db/record.h"
#include "compiler_core/db/tuning_log.h"
#include "compiler_core/target/target.h"
#include "kiln/v1/tuning.grpc.pb.h"

namespace {

namespace core = kiln::core;
namespace fs = std::filesystem;
namespace pb = kiln::v1;
using Clock = std::chrono::steady_clock;

struct Options {
  int64_t records = 1000000;
  int64_t workloads = 1000;
  int clients = 64;
  int channels = 8;
  double seconds = 10;
  bool json = false;
};

[[noreturn]] void fail(const std::string& message) {
  std::cerr << "error: " << message << "\n";
  std::exit(1);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail(a + " needs a value");
      return argv[++i];
    };
    if (a == "--records") {
      o.records = std::stoll(value());
    } else if (a == "--workloads") {
      o.workloads = std::stoll(value());
    } else if (a == "--clients") {
      o.clients = std::stoi(value());
    } else if (a == "--channels") {
      o.channels = std::stoi(value());
    } else if (a == "--seconds") {
      o.seconds = std::stod(value());
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--help" || a == "-h") {
      std::cout << "usage: kiln_serve_load_bench [--records 1000000] [--workloads 1000]\n"
                   "         [--clients 64] [--channels 8] [--seconds 10] [--json]\n";
      std::exit(0);
    } else {
      fail("unknown flag '" + a + "'; see --help");
    }
  }
  if (o.records < 1 || o.workloads < 1 || o.clients < 1 || o.channels < 1 || o.seconds <= 0) {
    fail("counts and --seconds must be positive");
  }
  return o;
}

std::string workload_name(int64_t i) {
  return "matmul:M=" + std::to_string(i + 1) + ",N=512,K=512";
}

void fill(const fs::path& path, const Options& o, const core::TargetKey& key) {
  kiln::Result<core::TuningLog> log = core::TuningLog::open(path);
  if (!log) fail("open: " + log.status().to_string());
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> cost(1e-4, 1e-2);
  std::vector<core::TuningRecord> batch;
  for (int64_t written = 0; written < o.records;) {
    batch.clear();
    for (int64_t i = 0; i < 1000 && written < o.records; ++i, ++written) {
      core::TuningRecord r;
      r.workload = workload_name(written % o.workloads);
      r.target = key;
      r.config_index = static_cast<int64_t>(rng() % 100000);
      r.config_knobs = "{\"tile_m\":" + std::to_string(r.config_index % 8) + "}";
      const double c = cost(rng);
      r.costs = {c, c * 1.01, c * 0.99};
      if (rng() % 10 == 0) {
        r.error = core::MeasureError::kRuntimeError;
        r.costs.clear();
      }
      r.agent = "bench";
      r.measured_at_ms = 1717243200000 + written;
      batch.push_back(std::move(r));
    }
    kiln::Status s = log->append(batch);
    if (!s.is_ok()) fail("append: " + s.to_string());
  }
}

/// CPU time of this process so far (user + system), seconds.
double process_cpu_s() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  std::string pattern = (fs::temp_directory_path() / "kiln_serve_load_XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) fail("cannot make a temporary folder");
  const fs::path dir = pattern, db = dir / "tuning.db", out = dir / "serve.out";
  kiln::Result<core::TargetKey> key = core::make_target_key(core::Target{});
  if (!key) fail("target key: " + key.status().to_string());
  const auto fill_start = Clock::now();
  fill(db, o, *key);
  std::cerr << "load: " << o.records << " records in "
            << std::chrono::duration<double>(Clock::now() - fill_start).count() << " s\n";

  kiln::bench::ServerProcess server = kiln::bench::start_server(
      KILN_BINARY, {"serve", "--listen", "127.0.0.1:0", "--db", db.string(), "--no-tracker"},
      out.string());
  const int port = server.port;
  const std::string address = "127.0.0.1:" + std::to_string(port);

  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int c = 0; c < o.channels; ++c) {
    grpc::ChannelArguments channel_args;
    channel_args.SetInt("grpc.channel_id", c);  // distinct channels, distinct connections
    channels.push_back(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), channel_args));
  }
  // Each client keeps one query in flight: it sends the next when the answer to the last one
  // arrives. The calls go through gRPC's callback API, so 64 clients do not need 64 threads
  // taking turns on the 2 cores the server runs on.
  struct Client {
    std::unique_ptr<pb::Tuning::Stub> stub;
    std::mt19937_64 rng;
    std::unique_ptr<grpc::ClientContext> context;
    pb::QueryBestRequest request;
    pb::QueryBestResponse response;
    Clock::time_point sent;
    std::vector<double> latencies_us;
  };
  std::atomic<bool> stop{false};
  std::atomic<int64_t> errors{0}, empty{0};
  std::mutex mutex;
  std::condition_variable finished;
  int running = o.clients;
  std::vector<Client> clients(size_t(o.clients));
  std::function<void(Client&)> send = [&](Client& c) {
    if (stop) {
      std::lock_guard<std::mutex> lock(mutex);
      if (--running == 0) finished.notify_all();
      return;
    }
    c.request.set_workload(workload_name(int64_t(c.rng() % uint64_t(o.workloads))));
    c.request.set_target(key->target);
    c.request.set_model(key->model);
    c.request.set_k(1);
    c.response.Clear();
    c.context = std::make_unique<grpc::ClientContext>();
    c.sent = Clock::now();
    c.stub->async()->QueryBest(
        c.context.get(), &c.request, &c.response, [&c, &send, &errors, &empty](grpc::Status s) {
          c.latencies_us.push_back(
              std::chrono::duration<double, std::micro>(Clock::now() - c.sent).count());
          if (!s.ok()) ++errors;
          if (s.ok() && c.response.records_size() != 1) ++empty;
          send(c);
        });
  };
  const auto start = Clock::now();
  const double server_cpu_start = server.cpu_s(), client_cpu_start = process_cpu_s();
  for (int t = 0; t < o.clients; ++t) {
    Client& c = clients[size_t(t)];
    c.stub = pb::Tuning::NewStub(channels[size_t(t % o.channels)]);
    c.rng.seed(uint64_t(t) + 1);
    send(c);
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  stop = true;
  {
    std::unique_lock<std::mutex> lock(mutex);
    finished.wait(lock, [&] { return running == 0; });
  }
  std::vector<double> latencies_us;
  for (const Client& c : clients) {
    latencies_us.insert(latencies_us.end(), c.latencies_us.begin(), c.latencies_us.end());
  }
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  const double server_cpu = server.cpu_s() - server_cpu_start;
  const double client_cpu = process_cpu_s() - client_cpu_start;
  const int64_t peak_kb = server.peak_rss_kb();
  server.stop();
  std::error_code ignored;
  fs::remove_all(dir, ignored);

  std::sort(latencies_us.begin(), latencies_us.end());
  auto at = [&](double q) {
    return latencies_us.empty() ? 0.0
                                : latencies_us[std::min(latencies_us.size() - 1,
                                                        size_t(q * double(latencies_us.size())))];
  };
  const double qps = double(latencies_us.size()) / wall;
  const double p50 = at(0.50) / 1e3, p90 = at(0.90) / 1e3, p99 = at(0.99) / 1e3,
               p999 = at(0.999) / 1e3;
  auto per_query_us = [&](double cpu_s) {
    return latencies_us.empty() ? 0.0 : cpu_s * 1e6 / double(latencies_us.size());
  };
  if (o.json) {
    std::cout << nlohmann::json{{"records", o.records},
                                {"workloads", o.workloads},
                                {"clients", o.clients},
                                {"queries", latencies_us.size()},
                                {"qps", qps},
                                {"p50_ms", p50},
                                {"p90_ms", p90},
                                {"p99_ms", p99},
                                {"p999_ms", p999},
                                {"errors", errors.load()},
                                {"empty", empty.load()},
                                {"server_cpu_us_per_query", per_query_us(server_cpu)},
                                {"client_cpu_us_per_query", per_query_us(client_cpu)},
                                {"server_peak_rss_kb", peak_kb}}
                     .dump()
              << "\n";
  } else {
    std::printf("QueryBest: %lld records, %d clients, %.1f s\n", static_cast<long long>(o.records),
                o.clients, wall);
    std::printf("  %.0f queries/s   [%s >= 20000]\n", qps, qps >= 20000 ? "ok" : "MISSED");
    std::printf(
        "  latency p50 %.3f ms, p90 %.3f ms, p99 %.3f ms   [%s p99 < 5 ms], p99.9 %.3f ms\n", p50,
        p90, p99, p99 < 5 ? "ok" : "MISSED", p999);
    std::printf("  CPU a query: server %.1f us, clients %.1f us\n", per_query_us(server_cpu),
                per_query_us(client_cpu));
    std::printf("  errors %lld, empty answers %lld; server peak memory %.1f MiB\n",
                static_cast<long long>(errors.load()), static_cast<long long>(empty.load()),
                double(peak_kb) / 1024);
  }
  return errors == 0 && empty == 0 ? 0 : 1;
}
