// Whole-model tuning without building kernels: the task scheduler's choices, and model jobs on a
// synthetic measurer (trials shared by weight, caps, resume from the log).

#include "tuner/model_tuning.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "compiler_core/codegen/llvm/host.h"

namespace kiln::tuner {
namespace {

TEST(TaskScheduler, WarmsUpEveryTaskInOrderFirst) {
  TaskScheduler scheduler({1, 5, 2}, {});
  for (size_t expected : {0, 1, 2}) {
    std::optional<size_t> next = scheduler.next();
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(*next, expected);
    scheduler.record_round(*next, 1e-3);
  }
}

TEST(TaskScheduler, EstimatesLatencyAsWeightTimesBest) {
  TaskScheduler scheduler({1, 3}, {});
  EXPECT_TRUE(std::isinf(scheduler.estimated_latency_s()));
  scheduler.record_round(0, 2e-3);
  EXPECT_TRUE(std::isinf(scheduler.estimated_latency_s())) << "task 1 has no round yet";
  scheduler.record_round(1, 0);  // no valid config
  EXPECT_TRUE(std::isinf(scheduler.estimated_latency_s()));
  scheduler.record_round(1, 1e-3);
  EXPECT_DOUBLE_EQ(scheduler.estimated_latency_s(), 2e-3 + 3 * 1e-3);
}

TEST(TaskScheduler, TaskWithoutAValidConfigGoesFirst) {
  SchedulerOptions options;
  options.epsilon = 0;
  TaskScheduler scheduler({10, 1}, options);
  scheduler.record_round(0, 5e-3);
  scheduler.record_round(1, 0);
  EXPECT_EQ(scheduler.next(), std::optional<size_t>(1));
}

// Both tasks improve alike per round (best = base x (1 + 1/rounds)); one costs 50 times more of
// the model's latency, so the gradient scheduler gives it most rounds and round-robin does not.
std::map<size_t, int> rounds_given(TaskSchedule kind, int rounds) {
  SchedulerOptions options;
  options.kind = kind;
  options.seed = 7;
  const std::vector<double> base = {50e-3, 1e-3};
  TaskScheduler scheduler({1, 1}, options);
  std::map<size_t, int> given;
  for (int i = 0; i < rounds; ++i) {
    std::optional<size_t> next = scheduler.next();
    EXPECT_TRUE(next.has_value());
    if (!next) break;
    given[*next] += 1;
    scheduler.record_round(*next, base[*next] * (1 + 1.0 / given[*next]));
  }
  return given;
}

TEST(TaskScheduler, GradientGivesTheHeavierTaskMoreRounds) {
  std::map<size_t, int> given = rounds_given(TaskSchedule::kGradient, 40);
  EXPECT_GE(given[1], 1) << "the warm-up gives every task a round";
  EXPECT_GT(given[0], 4 * given[1]) << given[0] << " rounds against " << given[1];
}

TEST(TaskScheduler, RoundRobinTakesTurns) {
  std::map<size_t, int> given = rounds_given(TaskSchedule::kRoundRobin, 40);
  EXPECT_EQ(given[0], 20);
  EXPECT_EQ(given[1], 20);
}

TEST(TaskScheduler, TasksSetAsideGetNoMoreRounds) {
  TaskScheduler scheduler({1, 1}, {});
  scheduler.record_round(0, 1e-3);
  scheduler.record_round(1, 1e-3);
  scheduler.set_aside(0);
  for (int i = 0; i < 20; ++i) {
    std::optional<size_t> next = scheduler.next();
    ASSERT_EQ(next, std::optional<size_t>(1));
    scheduler.record_round(1, 1e-3);
  }
  scheduler.set_aside(1);
  EXPECT_FALSE(scheduler.next().has_value());
}

TEST(TaskSchedule, ParsesItsNames) {
  EXPECT_EQ(*parse_task_schedule("gradient"), TaskSchedule::kGradient);
  EXPECT_EQ(*parse_task_schedule("round-robin"), TaskSchedule::kRoundRobin);
  Result<TaskSchedule> bad = parse_task_schedule("greedy");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("gradient or round-robin"), std::string::npos);
}

/// Seconds per run: the workload's flops at 10 GFLOP/s, slowed by a smooth function of the knobs.
class SyntheticMeasurer : public Measurer {
 public:
  SyntheticMeasurer(const core::Workload& workload, const core::ConfigSpace& space,
                    core::TargetKey key)
      : workload_(workload), space_(space), key_(std::move(key)) {}

  Result<std::vector<core::TuningRecord>> measure(const std::vector<core::Config>& configs,
                                                  const core::TimingOptions& timing) override {
    std::vector<core::TuningRecord> out;
    for (const core::Config& c : configs) {
      core::TuningRecord r;
      r.workload = workload_.canonical();
      r.target = key_;
      r.config_index = c.index;
      std::string json = space_.to_json(c);
      size_t start = json.find("\"knobs\":") + 8;
      r.config_knobs = json.substr(start, json.size() - start - 1);
      r.agent = "synthetic";
      r.measure_options = "{\"repeat\":" + std::to_string(timing.repeat) + "}";
      double t = workload_.flops() / 1e10;
      for (size_t k = 0; k < c.values.size(); ++k) t *= 1.0 + 0.1 * double(c.values[k] % 5);
      r.costs = std::vector<double>(size_t(timing.repeat), t);
      out.push_back(r);
    }
    return out;
  }

 private:
  core::Workload workload_;
  const core::ConfigSpace& space_;
  core::TargetKey key_;
};

class ModelTuningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kiln_model_tuning_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    target_ = *core::resolve_host_target(*core::parse_target("llvm"));
    key_ = *core::make_target_key(target_, 0);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Result<ModelTuneSummary> tune(core::TuningLog& log, const ModelTuneOptions& options) {
    TaskMeasurerFactory factory =
        [this](const core::Workload& workload,
               const core::ConfigSpace& space) -> Result<std::unique_ptr<Measurer>> {
      return std::unique_ptr<Measurer>(new SyntheticMeasurer(workload, space, key_));
    };
    return run_model_tuning(tasks_, target_, log, options, factory, nullptr);
  }

  /// Trials per workload in the log, and whether any config of a workload appears twice.
  std::map<std::string, int64_t> trials_in(core::TuningLog& log, bool* repeated) {
    std::map<std::string, int64_t> trials;
    *repeated = false;
    for (const ModelTask& task : tasks_) {
      core::Workload workload = *core::parse_workload(task.workload);
      std::set<int64_t> seen;
      std::vector<core::TuningRecord> history = std::move(log.history(workload, key_)).value();
      for (const core::TuningRecord& r : history) {
        if (is_remeasurement(r)) continue;
        *repeated |= !seen.insert(r.config_index).second;
        trials[task.workload] += 1;
      }
    }
    return trials;
  }

  static ModelTuneOptions options(int64_t trials) {
    ModelTuneOptions o;
    o.task.tuner = "random";
    o.task.batch = 8;
    o.task.remeasure_top = 0;
    o.trials = trials;
    return o;
  }

  std::filesystem::path dir_;
  core::Target target_;
  core::TargetKey key_;
  const std::string heavy_ = "matmul:M=256,N=256,K=256";
  const std::string light_ = "matmul:M=16,N=16,K=16";
  std::vector<ModelTask> tasks_ = {{light_, 1}, {heavy_, 2}};
};

TEST_F(ModelTuningTest, GradientSchedulerGivesTheHeavierTaskMoreTrials) {
  core::TuningLog log = std::move(core::TuningLog::open(dir_ / "log.db")).value();
  Result<ModelTuneSummary> summary = tune(log, options(160));
  ASSERT_TRUE(summary.is_ok()) << summary.status().message();
  EXPECT_EQ(summary->trials, 160);
  bool repeated = false;
  std::map<std::string, int64_t> trials = trials_in(log, &repeated);
  EXPECT_FALSE(repeated);
  EXPECT_EQ(trials[heavy_] + trials[light_], 160);
  EXPECT_GE(trials[light_], 8) << "the warm-up gives every task a batch";
  EXPECT_GT(trials[heavy_], 3 * trials[light_]);
  ASSERT_EQ(summary->tasks.size(), 2u);
  EXPECT_EQ(summary->tasks[1].trials, trials[heavy_]);
  EXPECT_DOUBLE_EQ(summary->latency_s,
                   summary->tasks[0].best_time_s + 2 * summary->tasks[1].best_time_s);
  ASSERT_FALSE(summary->latency_curve.empty());
  EXPECT_EQ(summary->latency_curve.back().first, 160);
  EXPECT_GT(summary->trials_to_95pct, 0);
}

TEST_F(ModelTuningTest, RoundRobinSharesTrialsEqually) {
  core::TuningLog log = std::move(core::TuningLog::open(dir_ / "log.db")).value();
  ModelTuneOptions o = options(160);
  o.schedule.kind = TaskSchedule::kRoundRobin;
  ASSERT_TRUE(tune(log, o).is_ok());
  bool repeated = false;
  std::map<std::string, int64_t> trials = trials_in(log, &repeated);
  EXPECT_EQ(trials[heavy_], 80);
  EXPECT_EQ(trials[light_], 80);
}

TEST_F(ModelTuningTest, CapPerTaskHoldsAndEndsTheJobWhenEveryTaskIsCapped) {
  core::TuningLog log = std::move(core::TuningLog::open(dir_ / "log.db")).value();
  ModelTuneOptions o = options(1000);
  o.max_task_trials = 20;
  Result<ModelTuneSummary> summary = tune(log, o);
  ASSERT_TRUE(summary.is_ok());
  bool repeated = false;
  std::map<std::string, int64_t> trials = trials_in(log, &repeated);
  EXPECT_EQ(trials[heavy_], 20);
  EXPECT_EQ(trials[light_], 20);
  EXPECT_EQ(summary->trials, 40);
  EXPECT_TRUE(summary->tasks[0].set_aside && summary->tasks[1].set_aside);
}

TEST_F(ModelTuningTest, RunAgainContinuesFromTheLogWithoutRepeatingATrial) {
  core::TuningLog log = std::move(core::TuningLog::open(dir_ / "log.db")).value();
  ASSERT_TRUE(tune(log, options(60)).is_ok());
  Result<ModelTuneSummary> again = tune(log, options(100));
  ASSERT_TRUE(again.is_ok()) << again.status().message();
  EXPECT_EQ(again->resumed, 60);
  EXPECT_EQ(again->trials, 100);
  bool repeated = false;
  std::map<std::string, int64_t> trials = trials_in(log, &repeated);
  EXPECT_FALSE(repeated);
  EXPECT_EQ(trials[heavy_] + trials[light_], 100);
  // A job already complete measures nothing.
  Result<ModelTuneSummary> done = tune(log, options(100));
  ASSERT_TRUE(done.is_ok());
  EXPECT_EQ(done->resumed, 100);
  trials = trials_in(log, &repeated);
  EXPECT_EQ(trials[heavy_] + trials[light_], 100);
}

TEST_F(ModelTuningTest, StopRequestEndsTheJobAtABatch) {
  core::TuningLog log = std::move(core::TuningLog::open(dir_ / "log.db")).value();
  ModelTuneOptions o = options(160);
  int batches = 0;
  o.task.stop_requested = [&batches]() { return ++batches > 3; };
  Result<ModelTuneSummary> summary = tune(log, o);
  ASSERT_TRUE(summary.is_ok());
  EXPECT_TRUE(summary->stopped);
  EXPECT_EQ(summary->trials, 24);
}

}  // namespace
}  // namespace kiln::tuner
