// kiln_serve_load_bench: QueryBest against one `kiln serve` process from many concurrent
// clients, all on 127.0.0.1.
//
// Fills a new tuning log in a temporary folder with --records records (default 1,000,000) over
// --workloads workloads (default 1,000) on this machine's target key, one in ten a failed
// measurement; starts `kiln serve --no-tracker` on it; then --clients client threads (default
// 64, over --channels connections) send QueryBest (k = 1, a random workload) back to back for
// --seconds seconds. Figures: queries per second, p50 and p99 latency at the clients, errors,
// and the server's peak resident memory. Target (issue): at least 20,000 QPS and p99 below
// 5 ms on this 2-core machine, which the clients share with the server.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
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
  std::atomic<bool> stop{false};
  std::atomic<int64_t> errors{0}, empty{0};
  std::mutex mutex;
  std::vector<double> latencies_us;
  std::vector<std::thread> clients;
  const auto start = Clock::now();
  for (int t = 0; t < o.clients; ++t) {
    clients.emplace_back([&, t] {
      auto stub = pb::Tuning::NewStub(channels[size_t(t % o.channels)]);
      std::mt19937_64 rng(uint64_t(t) + 1);
      std::vector<double> mine;
      while (!stop) {
        pb::QueryBestRequest request;
        request.set_workload(workload_name(int64_t(rng() % uint64_t(o.workloads))));
        request.set_target(key->target);
        request.set_model(key->model);
        request.set_k(1);
        pb::QueryBestResponse response;
        grpc::ClientContext context;
        const auto sent = Clock::now();
        grpc::Status s = stub->QueryBest(&context, request, &response);
        mine.push_back(std::chrono::duration<double, std::micro>(Clock::now() - sent).count());
        if (!s.ok()) ++errors;
        if (s.ok() && response.records_size() != 1) ++empty;
      }
      std::lock_guard<std::mutex> lock(mutex);
      latencies_us.insert(latencies_us.end(), mine.begin(), mine.end());
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  stop = true;
  for (std::thread& c : clients) c.join();
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
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
  const double p50 = at(0.50) / 1e3, p99 = at(0.99) / 1e3;
  if (o.json) {
    std::cout << nlohmann::json{{"records", o.records},
                                {"workloads", o.workloads},
                                {"clients", o.clients},
                                {"queries", latencies_us.size()},
                                {"qps", qps},
                                {"p50_ms", p50},
                                {"p99_ms", p99},
                                {"errors", errors.load()},
                                {"empty", empty.load()},
                                {"server_peak_rss_kb", peak_kb}}
                     .dump()
              << "\n";
  } else {
    std::printf("QueryBest: %lld records, %d clients, %.1f s\n", static_cast<long long>(o.records),
                o.clients, wall);
    std::printf("  %.0f queries/s   [%s >= 20000]\n", qps, qps >= 20000 ? "ok" : "MISSED");
    std::printf("  latency p50 %.3f ms, p99 %.3f ms   [%s p99 < 5 ms]\n", p50, p99,
                p99 < 5 ? "ok" : "MISSED");
    std::printf("  errors %lld, empty answers %lld; server peak memory %.1f MiB\n",
                static_cast<long long>(errors.load()), static_cast<long long>(empty.load()),
                double(peak_kb) / 1024);
  }
  return errors == 0 && empty == 0 ? 0 : 1;
}
