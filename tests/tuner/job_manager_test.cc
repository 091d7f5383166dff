// The JobManager of `kiln serve` in process: the job list does not grow for ever, and the
// jobs file keeps what the list keeps.

#include "tuner/service/job_manager.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tuner/service/jobs_file.h"

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
  JobManagerOptions options{.db = dir_ / "tuning.db", .jobs_file = dir_ / "jobs.json"};
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

  Result<JobsFile> file = read_jobs_file(options.jobs_file);
  ASSERT_TRUE(file.is_ok());
  ASSERT_EQ(file->jobs.size(), 3u);
  EXPECT_EQ(file->jobs[0].id, third);
  EXPECT_EQ(file->next_id, 6);
}

}  // namespace
}  // namespace kiln::tuner
