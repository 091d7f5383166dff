// The tuning loop on a synthetic measurer (no kernels are built): trials, re-measurement, resume,
// early stopping, and what the xgb strategy learns from.

#include "tuner/loop.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "compiler_core/schedule/templates.h"
#include "tuner/strategy/strategy.h"

namespace kiln::tuner {
namespace {

/// Seconds per run as a smooth function of the knobs, so a search has something to find; the
/// configs of `failing` fail with `error`.
class SyntheticMeasurer : public Measurer {
 public:
  SyntheticMeasurer(const core::ConfigSpace& space, core::TargetKey key)
      : space_(space), key_(std::move(key)) {}

  Result<std::vector<core::TuningRecord>> measure(const std::vector<core::Config>& configs,
                                                  const core::TimingOptions& timing) override {
    std::vector<core::TuningRecord> out;
    for (const core::Config& c : configs) {
      ++calls_[c.index];
      core::TuningRecord r;
      r.workload = "matmul:M=128,N=128,K=128";
      r.target = key_;
      r.config_index = c.index;
      r.config_knobs = nlohmann_knobs(c);
      r.agent = "synthetic";
      r.measure_options = "{\"repeat\":" + std::to_string(timing.repeat) + "}";
      double t = 1e-3;
      for (size_t k = 0; k < c.values.size(); ++k) t *= 1.0 + 0.1 * double(c.values[k] % 5);
      r.costs = std::vector<double>(size_t(timing.repeat), t);
      out.push_back(r);
    }
    return out;
  }

  const std::map<int64_t, int>& calls() const { return calls_; }

 private:
  std::string nlohmann_knobs(const core::Config& c) const {
    std::string json = space_.to_json(c);
    // {"index":N,"knobs":{...}} -> {...}
    size_t start = json.find("\"knobs\":") + 8;
    return json.substr(start, json.size() - start - 1);
  }

  const core::ConfigSpace& space_;
  core::TargetKey key_;
  std::map<int64_t, int> calls_;
};

class TuningLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kiln_loop_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    target_.vector_lanes = 16;
    space_ = *core::config_space(workload_, target_);
    key_ = *core::make_target_key(target_, 0);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  core::TuningLog open_log() { return std::move(core::TuningLog::open(dir_ / "log.db")).value(); }

  Result<TuneSummary> tune(core::TuningLog& log, const TuneOptions& options,
                           SyntheticMeasurer& measurer) {
    struct Borrowed : Measurer {
      SyntheticMeasurer* inner;
      explicit Borrowed(SyntheticMeasurer* m) : inner(m) {}
      Result<std::vector<core::TuningRecord>> measure(const std::vector<core::Config>& c,
                                                      const core::TimingOptions& t) override {
        return inner->measure(c, t);
      }
    };
    return run_tuning(
        workload_, target_, space_, log, options,
        [&]() -> Result<std::unique_ptr<Measurer>> {
          return std::unique_ptr<Measurer>(std::make_unique<Borrowed>(&measurer));
        },
        nullptr);
  }

  std::filesystem::path dir_;
  core::Workload workload_ = *core::parse_workload("matmul:M=128,N=128,K=128");
  core::Target target_;
  core::ConfigSpace space_;
  core::TargetKey key_;
};

TEST_F(TuningLoopTest, EveryStrategyMeasuresItsTrialsOnceEach) {
  for (const char* tuner : {"xgb", "ga", "random", "grid"}) {
    SCOPED_TRACE(tuner);
    std::filesystem::remove(dir_ / "log.db");
    core::TuningLog log = open_log();
    SyntheticMeasurer measurer(space_, key_);
    TuneOptions options;
    options.tuner = tuner;
    options.trials = 80;
    options.remeasure_top = 0;
    Result<TuneSummary> summary = tune(log, options, measurer);
    ASSERT_TRUE(summary.is_ok()) << summary.status().to_string();
    EXPECT_EQ(summary->trials, 80);
    EXPECT_EQ(measurer.calls().size(), 80u);
    for (const auto& [index, calls] : measurer.calls()) EXPECT_EQ(calls, 1) << "config " << index;
    EXPECT_EQ(summary->best_so_far.size(), 80u);
  }
}

TEST_F(TuningLoopTest, RemeasuresTheTopConfigsOnceWithoutCountingThemAsTrials) {
  core::TuningLog log = open_log();
  SyntheticMeasurer measurer(space_, key_);
  TuneOptions options;
  options.tuner = "random";
  options.trials = 40;
  options.remeasure_top = 3;
  Result<TuneSummary> summary = tune(log, options, measurer);
  ASSERT_TRUE(summary.is_ok()) << summary.status().to_string();
  EXPECT_EQ(summary->trials, 40);
  EXPECT_FALSE(summary->best_costs.empty());

  std::vector<core::TuningRecord> history = *log.history(workload_, key_);
  ASSERT_EQ(history.size(), 43u);
  int remeasured = 0;
  std::set<int64_t> trial_configs;
  for (const core::TuningRecord& r : history) {
    if (is_remeasurement(r)) {
      ++remeasured;
      EXPECT_EQ(r.costs.size(), size_t(options.remeasure_timing.repeat));
    } else {
      EXPECT_TRUE(trial_configs.insert(r.config_index).second);
    }
  }
  EXPECT_EQ(remeasured, 3);
  // The declared best is the one apply-best builds.
  std::vector<core::TuningRecord> best = *log.best(workload_, key_, 1);
  ASSERT_EQ(best.size(), 1u);
  EXPECT_EQ(best[0].config_index, summary->best.index);

  // Run again: the job is complete and its top configs are re-measured already.
  SyntheticMeasurer again(space_, key_);
  summary = tune(log, options, again);
  ASSERT_TRUE(summary.is_ok()) << summary.status().to_string();
  EXPECT_EQ(summary->trials, 40);
  EXPECT_EQ(summary->resumed, 40);
  EXPECT_TRUE(again.calls().empty());
  EXPECT_EQ(log.history(workload_, key_)->size(), 43u);
}

TEST_F(TuningLoopTest, TheFirstBatchTriesTheTemplatesDefault) {
  for (const char* tuner : {"random", "xgb"}) {
    core::TuningLog log =
        std::move(core::TuningLog::open(dir_ / (std::string(tuner) + ".db"))).value();
    SyntheticMeasurer measurer(space_, key_);
    TuneOptions options;
    options.tuner = tuner;
    options.trials = 8;
    options.batch = 8;
    options.remeasure_top = 0;
    Result<TuneSummary> summary = tune(log, options, measurer);
    ASSERT_TRUE(summary.is_ok()) << summary.status().to_string();
    EXPECT_EQ(summary->trials, 8);
    auto tried = measurer.calls().find(space_.default_config().index);
    ASSERT_NE(tried, measurer.calls().end()) << tuner;
    EXPECT_EQ(tried->second, 1) << tuner;
    EXPECT_EQ(measurer.calls().size(), 8u) << tuner << ": 8 distinct configs";
  }
}

TEST_F(TuningLoopTest, ResumesWhereTheLogEndsWithTheSameArguments) {
  core::TuningLog log = open_log();
  SyntheticMeasurer first(space_, key_);
  TuneOptions options;
  options.trials = 32;
  options.remeasure_top = 0;
  ASSERT_TRUE(tune(log, options, first).is_ok());
  options.trials = 64;
  SyntheticMeasurer second(space_, key_);
  Result<TuneSummary> summary = tune(log, options, second);
  ASSERT_TRUE(summary.is_ok()) << summary.status().to_string();
  EXPECT_EQ(summary->resumed, 32);
  EXPECT_EQ(summary->trials, 64);
  EXPECT_EQ(second.calls().size(), 32u);
  for (const auto& [index, calls] : second.calls()) {
    EXPECT_EQ(first.calls().count(index), 0u) << "config " << index << " measured again";
  }
}

TEST_F(TuningLoopTest, AStopRequestEndsTheJobBetweenBatchesWithoutRemeasuring) {
  core::TuningLog log = open_log();
  SyntheticMeasurer measurer(space_, key_);
  TuneOptions options;
  options.trials = 200;
  options.batch = 8;
  options.remeasure_top = 5;
  int asked = 0;
  options.stop_requested = [&] { return ++asked > 3; };  // three batches, then stop
  Result<TuneSummary> summary = tune(log, options, measurer);
  ASSERT_TRUE(summary.is_ok()) << summary.status().to_string();
  EXPECT_TRUE(summary->stopped);
  EXPECT_EQ(summary->trials, 24);
  EXPECT_EQ(log.history(workload_, key_)->size(), 24u) << "no re-measurement after a stop";
  EXPECT_FALSE(summary->best_remeasured);
}

TEST_F(TuningLoopTest, EarlyStoppingEndsAJobThatStopsImproving) {
  core::TuningLog log = open_log();
  SyntheticMeasurer measurer(space_, key_);
  TuneOptions options;
  options.tuner = "grid";  // grid order: the synthetic cost rises with the first knob's value
  options.trials = 2000;
  options.batch = 8;
  options.early_stopping = 64;
  options.remeasure_top = 0;
  Result<TuneSummary> summary = tune(log, options, measurer);
  ASSERT_TRUE(summary.is_ok()) << summary.status().to_string();
  EXPECT_TRUE(summary->stopped_early);
  EXPECT_LT(summary->trials, 2000);
  int64_t last_gain = 0;
  for (size_t i = 1; i < summary->best_so_far.size(); ++i) {
    if (summary->best_so_far[i] > summary->best_so_far[i - 1]) last_gain = int64_t(i) + 1;
  }
  EXPECT_GE(summary->trials - last_gain, 64);
  EXPECT_LT(summary->trials - last_gain, 64 + 8);
}

TEST(XgbStrategy, InfrastructureFailuresTeachTheModelNothing) {
  core::Workload workload = *core::parse_workload("matmul:M=128,N=128,K=128");
  core::Target target;
  target.vector_lanes = 16;
  core::ConfigSpace space = *core::config_space(workload, target);
  SearchTask task{workload, target, &space, nullptr};
  auto taught = make_strategy("xgb", task, 5);
  auto fresh = make_strategy("xgb", task, 5);
  ASSERT_TRUE(taught.is_ok() && fresh.is_ok());
  // Timeouts and lost devices say nothing of the config: after seeing only those, the strategy
  // proposes exactly what one that saw nothing proposes.
  std::vector<Observation> failures;
  std::set<int64_t> measured;
  for (int64_t i = 0; i < 64; ++i) {
    Observation o;
    o.config = *space.at(i * 97 % space.size());
    o.error = i % 2 ? core::MeasureError::kTimeout : core::MeasureError::kDeviceLost;
    failures.push_back(o);
    measured.insert(o.config.index);
  }
  (*taught)->observe(failures);
  std::vector<core::Config> a = (*taught)->propose(16, measured);
  std::vector<core::Config> b = (*fresh)->propose(16, measured);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].index, b[i].index);
}

TEST(XgbStrategy, LearnsToProposeFasterConfigsThanItHasSeen) {
  core::Workload workload = *core::parse_workload("matmul:M=128,N=128,K=128");
  core::Target target;
  target.vector_lanes = 16;
  core::ConfigSpace space = *core::config_space(workload, target);
  SearchTask task{workload, target, &space, nullptr};
  auto strategy = make_strategy("xgb", task, 11);
  ASSERT_TRUE(strategy.is_ok());
  // Throughput grows with the register tile (tile_m × tile_n_vectors): a fact of the lowered
  // loop nest (its accumulator vectors) that the features expose.
  auto gflops = [&](const core::Config& c) {
    return double(space.value(c, "tile_m") * space.value(c, "tile_n_vectors"));
  };
  std::set<int64_t> measured;
  double first_mean = 0, last_mean = 0;
  for (int round = 0; round < 6; ++round) {
    std::vector<core::Config> batch = (*strategy)->propose(16, measured);
    ASSERT_EQ(batch.size(), 16u);
    std::vector<Observation> observed;
    double mean = 0;
    for (const core::Config& c : batch) {
      measured.insert(c.index);
      observed.push_back({c, gflops(c), true});
      mean += gflops(c) / 16;
    }
    if (round == 0) first_mean = mean;
    last_mean = mean;
    (*strategy)->observe(observed);
  }
  // Random picks average (mean tile_m 7.6) × (mean vectors 2.5) = 19; the model's picks do
  // far better once it has learnt.
  EXPECT_GT(last_mean, 1.5 * first_mean) << "first batch " << first_mean << ", last " << last_mean;
}

}  // namespace
}  // namespace kiln::tuner
