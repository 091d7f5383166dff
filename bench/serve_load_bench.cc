// kiln_serve_load_bench: QueryBest against one `kiln serve` process from many concurrent
// clients, all on 127.0.0.1.
//
// Fills a new tuning log in a temporary folder with --records records (default 1,000,000) over
// --workloads workloads (default 1,000) on this machine's target key, one in ten a failed
// measurement (--db PATH keeps the log and reuses it in later runs); starts
// `kiln serve --no-tracker` on it; then --clients clients (default 64, over --channels
// connections) ask QueryBest (k = 1, a random workload) for --seconds seconds, twice:
// - saturated: each client sends its next query as soon as the last is answered, so the figures
//   are the most the server answers and the latency at that load (by Little's law, clients over
//   queries per second);
// - paced at --rate queries/s in all (default 20,000; 0 skips it): the latency at that load,
//   counted from when each query fell due, so answers that come late count in full.
// With --postgres URL it measures the same on that PostgreSQL log next, in the same run, and
// prints PostgreSQL's saturated QPS over SQLite's (target: at least 0.8; the answers come from
// the server's cache either way).
// Figures: queries per second, p50/p90/p99/p99.9 latency at the clients, the CPU a query of
// the server and of the clients, errors, and the server's peak resident memory. Target (issue):
// at least 20,000 QPS and p99 below 5 ms on this 2-core machine, which the clients share with
// the server.

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
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <optional>
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
#include "proto/kiln/grpc_process.h"

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
  double rate = 20000;  // queries/s of the paced phase; 0: saturated only
  bool json = false;
  std::string db;  // kept, and filled only when it does not exist yet
  /// A PostgreSQL log to measure after the SQLite one, in the same run (filled when empty).
  std::string postgres;
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
    } else if (a == "--rate") {
      o.rate = std::stod(value());
    } else if (a == "--db") {
      o.db = value();
    } else if (a == "--postgres") {
      o.postgres = value();
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--help" || a == "-h") {
      std::cout << "usage: kiln_serve_load_bench [--records 1000000] [--workloads 1000]\n"
                   "         [--clients 64] [--channels 8] [--seconds 10] [--rate 20000]\n"
                   "         [--json]\n"
                   "         [--db PATH  (a log to keep: filled once, reused by later runs)]\n"
                   "         [--postgres URL  (then the same on this PostgreSQL log, filled when\n"
                   "                           empty, side by side with SQLite)]\n";
      std::exit(0);
    } else {
      fail("unknown flag '" + a + "'; see --help");
    }
  }
  if (o.records < 1 || o.workloads < 1 || o.clients < 1 || o.channels < 1 || o.seconds <= 0 ||
      o.rate < 0) {
    fail("counts and --seconds must be positive");
  }
  return o;
}

std::string workload_name(int64_t i) {
  return "matmul:M=" + std::to_string(i + 1) + ",N=512,K=512";
}

void fill(const std::string& path, const Options& o, const core::TargetKey& key) {
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

/// One phase of load: the answers' latencies and what the phase cost.
struct Phase {
  double wall_s = 0, server_cpu_s = 0, client_cpu_s = 0;
  std::vector<double> latencies_us;  // sorted
  int64_t errors = 0, empty = 0;

  double qps() const { return wall_s > 0 ? double(latencies_us.size()) / wall_s : 0; }
  double p_ms(double q) const {
    if (latencies_us.empty()) return 0;
    return latencies_us[std::min(latencies_us.size() - 1,
                                 size_t(q * double(latencies_us.size())))] /
           1e3;
  }
  double cpu_us_per_query(double cpu_s) const {
    return latencies_us.empty() ? 0 : cpu_s * 1e6 / double(latencies_us.size());
  }
  nlohmann::json json() const {
    return {{"queries", latencies_us.size()},
            {"qps", qps()},
            {"p50_ms", p_ms(0.50)},
            {"p90_ms", p_ms(0.90)},
            {"p99_ms", p_ms(0.99)},
            {"p999_ms", p_ms(0.999)},
            {"errors", errors},
            {"empty", empty},
            {"server_cpu_us_per_query", cpu_us_per_query(server_cpu_s)},
            {"client_cpu_us_per_query", cpu_us_per_query(client_cpu_s)}};
  }
  void print() const {
    std::printf("    %lld queries in %.1f s: %.0f queries/s\n",
                static_cast<long long>(latencies_us.size()), wall_s, qps());
    std::printf("    latency p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, p99.9 %.3f ms\n", p_ms(0.5),
                p_ms(0.9), p_ms(0.99), p_ms(0.999));
    std::printf(
        "    CPU a query: server %.1f us, clients %.1f us; errors %lld, empty answers %lld\n",
        cpu_us_per_query(server_cpu_s), cpu_us_per_query(client_cpu_s),
        static_cast<long long>(errors), static_cast<long long>(empty));
  }
};

/// Runs --clients clients over `channels` for --seconds. With `rate` 0 (saturated) each client
/// sends its next query as soon as the last is answered. With a rate, queries fall due at that
/// total rate, in turn over the clients; a client still waiting for an answer sends the ones
/// due meanwhile as soon as it can, and every latency counts from when its query fell due (so a
/// slow answer is not hidden by the queries it held back). The calls go through gRPC's callback
/// API, so 64 clients do not need 64 threads taking turns on the cores the server runs on.
Phase run_phase(const Options& o, const core::TargetKey& key,
                const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                const kiln::bench::ServerProcess& server, double rate) {
  struct Client {
    std::unique_ptr<pb::Tuning::Stub> stub;
    std::mt19937_64 rng;
    std::unique_ptr<grpc::ClientContext> context;
    pb::QueryBestRequest request;
    pb::QueryBestResponse response;
    Clock::time_point due;                  // when the query in flight fell due (or was sent)
    bool busy = false;                      // a query in flight
    std::deque<Clock::time_point> waiting;  // paced queries due while one is in flight
    std::vector<double> latencies_us;
  };
  std::atomic<bool> stop{false};
  std::atomic<int64_t> errors{0}, empty{0};
  std::mutex mutex;
  std::condition_variable idle;
  std::vector<Client> clients(size_t(o.clients));
  std::function<void(Client&, Clock::time_point)> send;
  auto answered = [&](Client& c, const grpc::Status& s) {
    const Clock::time_point now = Clock::now();
    c.latencies_us.push_back(std::chrono::duration<double, std::micro>(now - c.due).count());
    if (!s.ok()) ++errors;
    if (s.ok() && c.response.records_size() != 1) ++empty;
    std::optional<Clock::time_point> next;
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (rate <= 0 && !stop) {
        next = now;
      } else if (rate > 0 && !c.waiting.empty()) {
        next = c.waiting.front();
        c.waiting.pop_front();
      } else {
        c.busy = false;
        idle.notify_all();
      }
    }
    if (next) send(c, *next);
  };
  send = [&](Client& c, Clock::time_point due) {
    c.request.set_workload(workload_name(int64_t(c.rng() % uint64_t(o.workloads))));
    c.request.set_target(key.target);
    c.request.set_model(key.model);
    c.request.set_k(1);
    c.response.Clear();
    c.context = std::make_unique<grpc::ClientContext>();
    c.due = due;
    c.stub->async()->QueryBest(c.context.get(), &c.request, &c.response,
                               [&c, &answered](grpc::Status s) { answered(c, s); });
  };
  for (int t = 0; t < o.clients; ++t) {
    Client& c = clients[size_t(t)];
    c.stub = pb::Tuning::NewStub(channels[size_t(t % o.channels)]);
    c.rng.seed(uint64_t(t) + 1 + (rate > 0 ? 1000 : 0));
  }
  const Clock::time_point start = Clock::now();
  const auto length =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  const double server_cpu_start = server.cpu_s(), client_cpu_start = process_cpu_s();
  if (rate <= 0) {
    for (Client& c : clients) {
      c.busy = true;
      send(c, Clock::now());
    }
    std::this_thread::sleep_until(start + length);
    stop = true;
  } else {
    for (int64_t k = 0;; ++k) {
      const Clock::time_point due = start + std::chrono::duration_cast<Clock::duration>(
                                                std::chrono::duration<double>(double(k) / rate));
      if (due >= start + length) break;
      // Waking for every query would cost the clients' core more than sending it: the
      // pacer sleeps in steps of at least 200 us and sends what fell due meanwhile together
      // (their latency counts from when they fell due all the same).
      if (due > Clock::now()) std::this_thread::sleep_until(due + std::chrono::microseconds(200));
      Client& c = clients[size_t(k % o.clients)];
      bool now = false;
      {
        std::lock_guard<std::mutex> lock(mutex);
        if (c.busy) {
          c.waiting.push_back(due);
        } else {
          c.busy = now = true;
        }
      }
      if (now) send(c, due);
    }
  }
  {
    std::unique_lock<std::mutex> lock(mutex);
    idle.wait(lock, [&] {
      return std::none_of(clients.begin(), clients.end(), [](const Client& c) { return c.busy; });
    });
  }
  Phase phase;
  phase.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
  phase.server_cpu_s = server.cpu_s() - server_cpu_start;
  phase.client_cpu_s = process_cpu_s() - client_cpu_start;
  for (const Client& c : clients) {
    phase.latencies_us.insert(phase.latencies_us.end(), c.latencies_us.begin(),
                              c.latencies_us.end());
  }
  std::sort(phase.latencies_us.begin(), phase.latencies_us.end());
  phase.errors = errors;
  phase.empty = empty;
  return phase;
}

/// What one log's run measured.
struct LogRun {
  std::string name;
  Phase saturated, paced;
  int64_t peak_kb = 0;
};

/// True when the log at `location` holds no records (or does not exist).
bool empty_log(const std::string& location) {
  if (!core::is_tuning_log_url(location) && !fs::exists(location)) return true;
  kiln::Result<core::TuningLog> log = core::TuningLog::open(location, {.read_only = true});
  if (!log) fail("open " + location + ": " + log.status().to_string());
  kiln::Result<core::TuningLogStats> stats = log->stats();
  if (!stats) fail("stats: " + stats.status().to_string());
  return stats->records == 0;
}

/// Fills `location` unless it holds records, serves it, and runs both phases against it.
LogRun run_log(const std::string& name, const std::string& location, const Options& o,
               const core::TargetKey& key, const fs::path& out) {
  if (empty_log(location)) {
    const auto fill_start = Clock::now();
    fill(location, o, key);
    std::cerr << "load: " << name << ": " << o.records << " records in "
              << std::chrono::duration<double>(Clock::now() - fill_start).count() << " s\n";
  } else {
    std::cerr << "load: " << name << ": reusing its records (its own --records and --workloads)\n";
  }
  kiln::bench::ServerProcess server = kiln::bench::start_server(
      KILN_BINARY,
      {"serve", "--listen", "127.0.0.1:0", "--db", location, "--no-tracker", "--jobs",
       (out.parent_path() / (name + ".jobs.json")).string()},
      out.string());
  const std::string address = "127.0.0.1:" + std::to_string(server.port);
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int c = 0; c < o.channels; ++c) {
    grpc::ChannelArguments channel_args;
    channel_args.SetInt("grpc.channel_id", c);  // distinct arguments: distinct connections
    channels.push_back(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), channel_args));
  }
  LogRun run;
  run.name = name;
  run.saturated = run_phase(o, key, channels, server, 0);
  if (o.rate > 0) run.paced = run_phase(o, key, channels, server, o.rate);
  run.peak_kb = server.peak_rss_kb();
  server.stop();
  return run;
}

void print(const LogRun& run, const Options& o) {
  std::printf("QueryBest on %s: %lld records, %d clients over %d connections\n", run.name.c_str(),
              static_cast<long long>(o.records), o.clients, o.channels);
  std::printf("  saturated (each client sends its next query when the last is answered):\n");
  run.saturated.print();
  std::printf("    %.0f queries/s   [%s >= 20000]\n", run.saturated.qps(),
              run.saturated.qps() >= 20000 ? "ok" : "MISSED");
  if (o.rate > 0) {
    std::printf("  paced at %.0f queries/s (latency from each query's scheduled send time):\n",
                o.rate);
    run.paced.print();
    std::printf("    p99 %.3f ms   [%s p99 < 5 ms]\n", run.paced.p_ms(0.99),
                run.paced.p_ms(0.99) < 5 ? "ok" : "MISSED");
  }
  std::printf("  server peak memory %.1f MiB\n", double(run.peak_kb) / 1024);
}

bool clean(const LogRun& run, const Options& o) {
  return run.saturated.errors == 0 && run.saturated.empty == 0 &&
         (o.rate == 0 || (run.paced.errors == 0 && run.paced.empty == 0));
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  kiln::disable_mutex_deadlock_detection();
  signal(SIGPIPE, SIG_IGN);
  std::string pattern = (fs::temp_directory_path() / "kiln_serve_load_XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) fail("cannot make a temporary folder");
  const fs::path dir = pattern;
  const std::string db = o.db.empty() ? (dir / "tuning.db").string() : o.db;
  kiln::Result<core::TargetKey> key = core::make_target_key(core::Target{}, 0);
  if (!key) fail("target key: " + key.status().to_string());
  std::vector<LogRun> runs = {run_log("sqlite", db, o, *key, dir / "sqlite.out")};
  if (!o.postgres.empty()) {
    runs.push_back(run_log("postgresql", o.postgres, o, *key, dir / "postgresql.out"));
  }
  std::error_code ignored;
  fs::remove_all(dir, ignored);

  if (o.json) {
    nlohmann::json j{{"records", o.records}, {"workloads", o.workloads}, {"clients", o.clients}};
    for (const LogRun& run : runs) {
      j[run.name] = {{"saturated", run.saturated.json()}, {"server_peak_rss_kb", run.peak_kb}};
      if (o.rate > 0) j[run.name]["paced"] = run.paced.json();
    }
    std::cout << j.dump() << "\n";
  } else {
    for (const LogRun& run : runs) print(run, o);
    if (runs.size() == 2) {
      const double ratio = runs[1].saturated.qps() / runs[0].saturated.qps();
      std::printf("PostgreSQL / SQLite saturated QPS: %.2f   [%s >= 0.8]\n", ratio,
                  ratio >= 0.8 ? "ok" : "MISSED");
    }
  }
  bool ok = true;
  for (const LogRun& run : runs) ok = ok && clean(run, o);
  return ok ? 0 : 1;
}
