// `kiln tune` and `kiln bench` as a user meets them: the real binary in a child process, on a
// small matmul, with its own tuning log.

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

namespace fs = std::filesystem;

struct Outcome {
  int exit_code = -1;
  std::string output;
};

/// Runs kiln with `arguments`; `output` is stdout alone, or stdout and stderr with `merge`.
Outcome run_kiln(const std::string& arguments, bool merge = false) {
  std::string command =
      std::string(KILN_BINARY) + " " + arguments + (merge ? " 2>&1" : " 2>/dev/null");
  Outcome o;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return o;
  std::array<char, 4096> chunk;
  size_t n;
  while ((n = fread(chunk.data(), 1, chunk.size(), pipe)) > 0) o.output.append(chunk.data(), n);
  int status = pclose(pipe);
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return o;
}

class KilnTune : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kiln_cli_tune_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    db_ = (dir_ / "log.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  std::string db_;
};

constexpr const char* kWorkload = "matmul:M=64,N=64,K=64";

TEST_F(KilnTune, XgbJobPrintsItsSummaryAndDrawsThePlot) {
  const std::string plot = (dir_ / "curve.svg").string();
  Outcome o = run_kiln(std::string("tune --workload ") + kWorkload +
                       " --target llvm --trials 40 --batch 8 --threads 1 --tuner xgb --db " + db_ +
                       " --plot " + plot + " --json");
  ASSERT_EQ(o.exit_code, 0) << o.output;
  nlohmann::json j = nlohmann::json::parse(o.output);
  EXPECT_EQ(j["workload"], kWorkload);
  EXPECT_EQ(j["trials"], 40);
  EXPECT_EQ(j["tuner"], "xgb");
  EXPECT_GT(j["valid"].get<int>(), 0);
  EXPECT_GT(j["best"]["gflops"].get<double>(), 0);
  EXPECT_TRUE(j["best"]["config"].contains("knobs"));
  EXPECT_FALSE(j["best"]["costs"].empty());
  EXPECT_GE(j["trials_to_95pct"].get<int>(), 1);
  EXPECT_LE(j["trials_to_95pct"].get<int>(), 40);

  std::ifstream in(plot);
  std::stringstream svg;
  svg << in.rdbuf();
  const std::string text = svg.str();
  EXPECT_EQ(text.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u) << text;
  EXPECT_NE(text.find("</svg>"), std::string::npos);
  EXPECT_NE(text.find(">trials</text>"), std::string::npos);
  EXPECT_NE(text.find(">best GFLOP/s so far</text>"), std::string::npos);
  EXPECT_NE(text.find("<polyline"), std::string::npos);
  EXPECT_NE(text.find(kWorkload), std::string::npos);

  // The best it declared is the one `kiln run` builds from the log.
  Outcome run = run_kiln(std::string("run --workload ") + kWorkload +
                         " --target llvm --threads 1 --json --db " + db_);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  nlohmann::json r = nlohmann::json::parse(run.output);
  EXPECT_EQ(r["source"], "record");
  EXPECT_EQ(r["config"]["index"], j["best"]["config"]["index"]);
}

// One log, one workload, tuned at 1 and at 2 threads: each count keeps its own search and its
// own best, `kiln best` and `kiln run` answer for the count asked, and resuming counts only the
// trials of the job's count.
TEST_F(KilnTune, EachThreadCountKeepsItsOwnSearchAndBest) {
  auto tune = [&](int threads, int trials, int seed) {
    Outcome o = run_kiln(std::string("tune --workload ") + kWorkload +
                         " --target llvm --batch 4 --tuner random --json --trials " +
                         std::to_string(trials) + " --threads " + std::to_string(threads) +
                         " --seed " + std::to_string(seed) + " --db " + db_);
    EXPECT_EQ(o.exit_code, 0) << o.output;
    return o.exit_code == 0 ? nlohmann::json::parse(o.output) : nlohmann::json::object();
  };
  const nlohmann::json one = tune(1, 8, 1);
  const nlohmann::json two = tune(2, 8, 2);
  ASSERT_FALSE(one.empty());
  ASSERT_FALSE(two.empty());
  EXPECT_EQ(one["resumed"], 0);
  EXPECT_EQ(two["resumed"], 0);  // the 1-thread trials are not this search's
  const nlohmann::json resumed = tune(2, 12, 3);
  ASSERT_FALSE(resumed.empty());
  EXPECT_EQ(resumed["resumed"], 8);
  EXPECT_EQ(resumed["trials"], 12);

  // The fastest valid median of each count, read from the export.
  Outcome exported = run_kiln("db export --db " + db_);
  ASSERT_EQ(exported.exit_code, 0);
  std::map<int, double> fastest;
  std::map<int, int> records;
  std::istringstream lines(exported.output);
  for (std::string line; std::getline(lines, line);) {
    const nlohmann::json r = nlohmann::json::parse(line);
    const int threads = r["threads"];
    EXPECT_EQ(r["measure_options"]["threads"], threads) << line;
    ++records[threads];
    if (r["error"] != "OK") continue;
    std::vector<double> costs = r["costs"];
    std::sort(costs.begin(), costs.end());
    const size_t n = costs.size();
    const double median = n % 2 == 1 ? costs[n / 2] : (costs[n / 2 - 1] + costs[n / 2]) / 2;
    if (!fastest.count(threads) || median < fastest[threads]) fastest[threads] = median;
  }
  ASSERT_EQ(records.size(), 2u);
  EXPECT_GE(records[1], 8);
  EXPECT_GE(records[2], 12);

  for (int threads : {1, 2}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    Outcome best = run_kiln(std::string("best --workload ") + kWorkload +
                            " --target llvm --top 3 --json --threads " + std::to_string(threads) +
                            " --db " + db_);
    ASSERT_EQ(best.exit_code, 0) << best.output;
    const nlohmann::json b = nlohmann::json::parse(best.output);
    EXPECT_EQ(b["threads"], threads);
    ASSERT_FALSE(b["records"].empty());
    for (const nlohmann::json& r : b["records"]) EXPECT_EQ(r["threads"], threads);
    EXPECT_DOUBLE_EQ(b["records"][0]["time_s"].get<double>(), fastest[threads]);

    Outcome run =
        run_kiln(std::string("run --workload ") + kWorkload + " --target llvm --json --threads " +
                 std::to_string(threads) + " --db " + db_);
    ASSERT_EQ(run.exit_code, 0) << run.output;
    const nlohmann::json r = nlohmann::json::parse(run.output);
    EXPECT_EQ(r["source"], "record");
    EXPECT_EQ(r["threads"], threads);
    EXPECT_EQ(r["config"]["index"], b["records"][0]["config"]["index"]);
  }
  // --threads 0 lists the records of every count.
  Outcome every = run_kiln(std::string("best --workload ") + kWorkload +
                           " --target llvm --top 1000 --json --threads 0 --db " + db_);
  ASSERT_EQ(every.exit_code, 0) << every.output;
  const nlohmann::json listed = nlohmann::json::parse(every.output);
  std::set<int> counts;
  for (const nlohmann::json& r : listed["records"]) {
    counts.insert(r["threads"].get<int>());
  }
  EXPECT_EQ(counts, (std::set<int>{1, 2}));
}

// --flush-cache times every run after a cache flush; each record, the re-measured ones
// included, says so in its measure options, and a job without the flag records nothing of it.
TEST_F(KilnTune, FlushCacheIsRecordedInEveryRecordsMeasureOptions) {
  auto tune = [&](const std::string& db, const std::string& extra) {
    Outcome o = run_kiln(std::string("tune --workload ") + kWorkload +
                         " --target llvm --batch 2 --tuner random --trials 2 --threads 1 --db " +
                         db + extra);
    EXPECT_EQ(o.exit_code, 0) << o.output;
  };
  tune(db_, " --flush-cache");
  Outcome exported = run_kiln("db export --db " + db_);
  ASSERT_EQ(exported.exit_code, 0);
  int flushed = 0, remeasured = 0;
  std::istringstream lines(exported.output);
  for (std::string line; std::getline(lines, line);) {
    const nlohmann::json r = nlohmann::json::parse(line);
    EXPECT_EQ(r["measure_options"].value("flush_cache", false), true) << line;
    ++flushed;
    remeasured += r["measure_options"].value("remeasure", false) ? 1 : 0;
  }
  EXPECT_GE(flushed, 2);
  EXPECT_GE(remeasured, 1);

  const std::string plain_db = (dir_ / "plain.db").string();
  tune(plain_db, "");
  exported = run_kiln("db export --db " + plain_db);
  ASSERT_EQ(exported.exit_code, 0);
  std::istringstream plain(exported.output);
  for (std::string line; std::getline(plain, line);) {
    EXPECT_FALSE(nlohmann::json::parse(line)["measure_options"].contains("flush_cache")) << line;
  }
}

TEST_F(KilnTune, UnknownTunerIsAUsageError) {
  Outcome o = run_kiln(std::string("tune --workload ") + kWorkload +
                           " --target llvm --trials 4 --tuner annealing --db " + db_,
                       true);
  EXPECT_EQ(o.exit_code, 2) << o.output;
  EXPECT_NE(o.output.find("error: unknown tuner 'annealing'"), std::string::npos) << o.output;
  EXPECT_NE(o.output.find("xgb"), std::string::npos) << o.output;
}

TEST_F(KilnTune, UnwritablePlotIsAnInputError) {
  Outcome o = run_kiln(std::string("tune --workload ") + kWorkload +
                           " --target llvm --trials 4 --batch 4 --threads 1 --tuner random --db " +
                           db_ + " --plot " + (dir_ / "no-such-folder" / "p.svg").string(),
                       true);
  EXPECT_EQ(o.exit_code, 2) << o.output;
  EXPECT_NE(o.output.find("error: cannot write the plot"), std::string::npos) << o.output;
}

TEST_F(KilnTune, BenchComparesTheBestStoredKernelWithTheLibraries) {
  ASSERT_EQ(run_kiln(std::string("tune --workload ") + kWorkload +
                     " --target llvm --trials 8 --batch 8 --threads 1 --tuner random --db " + db_)
                .exit_code,
            0);
  Outcome o =
      run_kiln(std::string("bench --workload ") + kWorkload + " --threads 1 --json --db " + db_);
  ASSERT_EQ(o.exit_code, 0) << o.output;
  nlohmann::json j = nlohmann::json::parse(o.output);
  EXPECT_EQ(j["workload"], kWorkload);
  EXPECT_EQ(j["threads"], 1);
  EXPECT_EQ(j["source"], "record");
  EXPECT_GT(j["kiln_gflops"].get<double>(), 0);
  EXPECT_GT(j["baseline_gflops"].get<double>(), 0);
  const std::string baseline = j["baseline"];
  EXPECT_TRUE(baseline == "openblas" || baseline == "onednn") << baseline;
  EXPECT_NEAR(j["ratio"].get<double>(),
              j["kiln_gflops"].get<double>() / j["baseline_gflops"].get<double>(), 1e-9);
  EXPECT_TRUE(j["libraries"].contains("openblas"));
  EXPECT_TRUE(j["libraries"].contains("onednn"));
  // Every contender is timed in the same 7 rounds, and reports its median sample.
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  ASSERT_EQ(j["kiln_samples_s"].size(), 7u);
  EXPECT_DOUBLE_EQ(j["kiln_median_s"].get<double>(),
                   median(j["kiln_samples_s"].get<std::vector<double>>()));
  for (const auto& [name, library] : j["libraries"].items()) {
    ASSERT_EQ(library["samples_s"].size(), 7u) << name;
    EXPECT_DOUBLE_EQ(library["median_s"].get<double>(),
                     median(library["samples_s"].get<std::vector<double>>()))
        << name;
  }
  // OpenBLAS runs its own kernel choice, never a forced one.
  EXPECT_NE(j["openblas_core"], "Haswell");
  // The FMA peak bounds a matmul from above: at most two 16-lane FMAs a cycle at 6 GHz a
  // core, and no less than what the kernel reached.
  EXPECT_EQ(j["roofline"], "fma_peak");
  EXPECT_EQ(j["roofline_gflops"], j["fma_peak_gflops"]);
  const double peak = j["fma_peak_gflops"].get<double>();
#if defined(__x86_64__) || defined(__i386__)
  const bool avx512 = __builtin_cpu_supports("avx512f");
#else
  const bool avx512 = false;
#endif
  if (avx512) {
    EXPECT_GT(peak, j["kiln_gflops"].get<double>());
    EXPECT_LT(peak, 2 * 16 * 2 * 6.0);
  } else {
    EXPECT_EQ(peak, 0);
  }
}

TEST_F(KilnTune, BenchOfAConvolutionUsesOneDnn) {
  Outcome o = run_kiln(
      "bench --workload conv2d:N=1,C=16,H=14,W=14,K=16,R=3,S=3,stride=1,pad=1 --threads 1 "
      "--json --db " +
      db_);
  ASSERT_EQ(o.exit_code, 0) << o.output;
  nlohmann::json j = nlohmann::json::parse(o.output);
  EXPECT_EQ(j["source"], "default");
  // A 3x3 of stride 1: oneDNN's direct convolution, or its Winograd where it has one (AVX-512),
  // whichever is faster.
  EXPECT_TRUE(j["baseline"] == "onednn_blocked" || j["baseline"] == "onednn_winograd")
      << j["baseline"];
  EXPECT_GT(j["ratio"].get<double>(), 0);
  o = run_kiln(
      "bench --workload conv2d:N=1,C=16,H=14,W=14,K=16,R=3,S=3,stride=2,pad=1 --threads 1 "
      "--json --db " +
      db_);
  ASSERT_EQ(o.exit_code, 0) << o.output;
  j = nlohmann::json::parse(o.output);
  EXPECT_EQ(j["baseline"], "onednn_blocked") << "no Winograd for a stride of 2";
}

// A batch-1 dense layer reads each weight once for one FMA: its roofline is the rate its
// weights' bytes are read at, 2 bytes a FLOP, not the FMA peak.
TEST_F(KilnTune, BenchOfABatchOneDenseLayerIsBoundByReadingItsWeights) {
  Outcome o = run_kiln("bench --workload dense:M=1,N=256,K=512 --threads 1 --json --db " + db_);
  ASSERT_EQ(o.exit_code, 0) << o.output;
  nlohmann::json j = nlohmann::json::parse(o.output);
  EXPECT_EQ(j["roofline"], "weight_read");
#if defined(__x86_64__) || defined(__i386__)
  const bool avx512 = __builtin_cpu_supports("avx512f");
#else
  const bool avx512 = false;
#endif
  const double roofline = j["roofline_gflops"].get<double>();
  if (avx512) {
    // Somewhere between one 64-byte line a microsecond and two a cycle at 6 GHz.
    EXPECT_GT(2 * roofline, 0.064) << roofline;
    EXPECT_LT(2 * roofline, 2 * 64 * 6.0) << roofline;
  } else {
    EXPECT_EQ(roofline, 0);
  }
}

// A fused convolution (a model's task) against oneDNN with the same epilogue as post-ops; bench
// checks the library's output against kiln's reference, so a wrong fusion fails it.
TEST_F(KilnTune, BenchOfAFusedConvolutionGivesOneDnnTheSameEpilogue) {
  for (const char* epilogue : {"bias=1,residual=1,act=relu", "bias=1,act=relu6",
                               "residual=1,act=hardswish", "bias=1,act=sigmoid"}) {
    Outcome o = run_kiln(
        std::string("bench --workload conv2d:N=1,C=16,H=14,W=14,K=16,R=3,S=3,stride=1,pad=1,") +
        epilogue + " --threads 1 --json --db " + db_);
    ASSERT_EQ(o.exit_code, 0) << epilogue << ": " << o.output;
    nlohmann::json j = nlohmann::json::parse(o.output);
    EXPECT_TRUE(j["baseline"] == "onednn_blocked" || j["baseline"] == "onednn_winograd")
        << epilogue << ": " << j["baseline"];
    EXPECT_GT(j["ratio"].get<double>(), 0) << epilogue;
  }
}

TEST_F(KilnTune, BenchTimesTheConfigItIsGiven) {
  Outcome o = run_kiln(std::string("bench --workload ") + kWorkload +
                       " --threads 1 --json --config '{\"index\": 3}' --db " + db_);
  ASSERT_EQ(o.exit_code, 0) << o.output;
  nlohmann::json j = nlohmann::json::parse(o.output);
  EXPECT_EQ(j["source"], "flag");
  EXPECT_EQ(j["config"]["index"], 3);
  EXPECT_GT(j["ratio"].get<double>(), 0);
  Outcome bad = run_kiln(std::string("bench --workload ") + kWorkload +
                             " --threads 1 --config '{\"index\": 999999999}' --db " + db_,
                         true);
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
}

TEST_F(KilnTune, BenchRejectsAMalformedWorkload) {
  Outcome o = run_kiln("bench --workload matmul:M=64 --db " + db_, true);
  EXPECT_EQ(o.exit_code, 2) << o.output;
  EXPECT_NE(o.output.find("error: "), std::string::npos) << o.output;
}

}  // namespace
