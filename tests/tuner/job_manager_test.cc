// The JobManager of `kiln serve` in process: the job list does not grow for ever, and the
// jobs file keeps what the list keeps.

#include "tuner/service/job_manager.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "compiler_core/db/tuning_log.h"

namespace kiln::tuner {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class JobManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kiln_job_manager_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  /// Waits until job `id` has ended; its final state.
  static JobState wait_for_end(JobManager& jobs, const std::string& id) {
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    while (std::chrono::steady_clock::now() < deadline) {
      Result<JobStatus> s = jobs.get(id);
      if (s.is_ok() && s->state != JobState::kRunning) return s->state;
      std::this_thread::sleep_for(20ms);
    }
    return JobState::kRunning;
  }

  fs::path dir_;
};

TEST_F(JobManagerTest, ForgetsTheOldestEndedJobsPastTheLimitButNeverAWatchedOne) {
  JobManagerOptions options{.db = dir_ / "tuning.db"};
  options.max_ended_jobs = 2;
  Result<std::unique_ptr<JobManager>> opened = JobManager::open(options);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  JobManager& jobs = **opened;
  auto start = [&](int m) {
    JobSpec spec;
    spec.workload = "matmul:M=" + std::to_string(m) + ",N=16,K=16";
    spec.trials = 1;
    spec.batch = 1;
    spec.threads = 1;
    Result<JobStatus> started = jobs.start(spec);
    EXPECT_TRUE(started.is_ok()) << started.status().to_string();
    EXPECT_EQ(wait_for_end(jobs, started->id), JobState::kSucceeded);
    return started->id;
  };
  auto listed = [&] {
    std::vector<std::string> ids;
    for (const JobStatus& s : jobs.list()) ids.push_back(s.id);
    return ids;
  };
  const std::string first = start(8), second = start(12);
  // A client watching the first job keeps it.
  Result<uint64_t> watch = jobs.watch(first, [](const JobStatus&) {});
  ASSERT_TRUE(watch.is_ok());
  const std::string third = start(16);
  EXPECT_EQ(listed(), (std::vector<std::string>{first, second, third}));
  const std::string fourth = start(20);
  EXPECT_EQ(listed(), (std::vector<std::string>{first, third, fourth}));
  EXPECT_EQ(jobs.get(second).status().code(), StatusCode::kNotFound);
  jobs.unwatch(*watch);
  // Each start forgets down to the limit; the new job ends after that.
  const std::string fifth = start(24);
  EXPECT_EQ(listed(), (std::vector<std::string>{third, fourth, fifth}));
  EXPECT_EQ(jobs.get(first).status().code(), StatusCode::kNotFound);

  // The log forgot them too, and never gives a forgotten job's number again.
  Result<core::TuningLog> log = core::TuningLog::open(options.db, {.read_only = true});
  ASSERT_TRUE(log.is_ok());
  Result<std::vector<core::StoredJob>> stored = log->jobs();
  ASSERT_TRUE(stored.is_ok());
  ASSERT_EQ(stored->size(), 3u);
  EXPECT_EQ("job-" + std::to_string((*stored)[0].number), third);
  EXPECT_EQ(start(28), "job-6");
}

// A jobs file of a kiln that kept its jobs there comes into the log once: its jobs keep their
// ids, a running one is interrupted, new jobs take numbers after them, and the file is renamed.
TEST_F(JobManagerTest, BringsAnOlderJobsFileIntoTheLog) {
  const fs::path file = dir_ / "tuning.jobs.json";
  std::ofstream(file) << R"({"kind": "kiln-jobs", "next_id": 8, "jobs": [)"
                      << R"({"id": "job-7", "spec": {"workload": "matmul:M=8,N=16,K=16",)"
                      << R"( "target": "llvm", "trials": 4, "tuner": "random", "seed": 1,)"
                      << R"( "batch": 1, "early_stopping": 0, "threads": 1, "device_key": ""},)"
                      << R"( "state": "running", "error": "", "workload": "matmul:M=8,N=16,K=16",)"
                      << R"( "target": "llvm", "trials": 2, "valid": 2, "best_gflops": 1.0,)"
                      << R"( "best_time_s": 0.001, "elapsed_s": 1.0, "best_config": "",)"
                      << R"( "trials_to_95pct": 0, "stopped_early": false, "created_ms": 1,)"
                      << R"( "finished_ms": 0}]})";
  Result<std::unique_ptr<JobManager>> opened =
      JobManager::open({.db = dir_ / "tuning.db", .import_jobs_file = file});
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  EXPECT_FALSE(fs::exists(file));
  EXPECT_TRUE(fs::exists(dir_ / "tuning.jobs.json.imported"));
  Result<JobStatus> imported = (*opened)->get("job-7");
  ASSERT_TRUE(imported.is_ok()) << imported.status().to_string();
  EXPECT_EQ(imported->state, JobState::kInterrupted);
  EXPECT_EQ(imported->progress.trials, 0) << "counted from the log, which holds none of them";
  EXPECT_EQ(imported->spec.tuner, "random");
  JobSpec spec;
  spec.workload = "matmul:M=12,N=16,K=16";
  spec.trials = 1;
  spec.threads = 1;
  Result<JobStatus> started = (*opened)->start(spec);
  ASSERT_TRUE(started.is_ok()) << started.status().to_string();
  EXPECT_EQ(started->id, "job-8");
  EXPECT_EQ(wait_for_end(**opened, started->id), JobState::kSucceeded);
}

}  // namespace
}  // namespace kiln::tuner
