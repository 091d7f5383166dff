// `kiln tune` killed with SIGKILL mid-job and run again, for a workload and for a model: the job
// ends with exactly its trials and no config measured twice (the xgb strategy, kiln tune's
// default).

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "compiler_core/db/tuning_log.h"
#include "tests/model/two_conv_model.h"
#include "tuner/loop.h"

extern char** environ;

namespace kiln {
namespace {

constexpr const char* kWorkload = "matmul:M=48,N=40,K=32";

int64_t records_in(const std::string& db) {
  if (!std::filesystem::exists(db)) return 0;
  core::TuningLogOptions options;
  options.read_only = true;
  Result<core::TuningLog> log = core::TuningLog::open(db, options);
  if (!log.is_ok()) return 0;
  Result<core::TuningLogStats> stats = log->stats();
  return stats.is_ok() ? stats->records : 0;
}

pid_t spawn(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

pid_t spawn_tune(const std::string& db, int trials) {
  return spawn({KILN_BINARY, "tune", "--workload", kWorkload, "--target", "llvm", "--trials",
                std::to_string(trials), "--batch", "4", "--threads", "1", "--db", db, "--tuner",
                "xgb"});
}

pid_t spawn_tune_model(const std::string& model, const std::string& db, int trials) {
  return spawn({KILN_BINARY, "tune", "--model", model, "--target", "llvm", "--trials",
                std::to_string(trials), "--batch", "4", "--threads", "1", "--db", db});
}

/// Kills `pid` once `db` holds at least `records` (polled against a deadline, not slept for);
/// false when it never got there.
bool kill_after(pid_t pid, const std::string& db, int64_t records) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (records_in(db) < records && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  return records_in(db) >= records;
}

/// Runs `pid` to its end; its exit code (-1 when it did not exit).
int exit_code(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// This machine's target key, the only one in `log`.
Result<core::TargetKey> only_target(core::TuningLog& log) {
  std::stringstream out;
  KILN_RETURN_IF_ERROR(log.export_jsonl(out).status());
  std::string line;
  std::getline(out, line);
  KILN_ASSIGN_OR_RETURN(core::TuningRecord r, core::record_from_json_line(line));
  return r.target;
}

TEST(TuneResume, KilledJobResumesWithoutDuplicates) {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("kiln_tune_resume_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string db = (dir / "log.db").string();
  constexpr int kTrials = 40;

  pid_t pid = spawn_tune(db, kTrials);
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(kill_after(pid, db, 8)) << "the first run committed nothing in time";
  int64_t after_kill = records_in(db);
  EXPECT_LT(after_kill, kTrials) << "the job finished before it could be killed";

  pid = spawn_tune(db, kTrials);
  ASSERT_GT(pid, 0);
  EXPECT_EQ(exit_code(pid), 0);

  Result<core::TuningLog> log = core::TuningLog::open(db);
  ASSERT_TRUE(log.is_ok()) << log.status().to_string();
  Result<core::Workload> workload = core::parse_workload(kWorkload);
  ASSERT_TRUE(workload.is_ok());
  Result<core::TargetKey> key = only_target(*log);
  ASSERT_TRUE(key.is_ok()) << key.status().to_string();
  Result<std::vector<core::TuningRecord>> history = log->history(*workload, *key);
  ASSERT_TRUE(history.is_ok());
  // Exactly kTrials trials, each config once; the end of the job re-measured its fastest few
  // (records of their own, tagged as such), once each.
  std::set<int64_t> configs, remeasured;
  for (const core::TuningRecord& r : *history) {
    if (tuner::is_remeasurement(r)) {
      EXPECT_TRUE(remeasured.insert(r.config_index).second)
          << "config " << r.config_index << " re-measured twice";
      EXPECT_TRUE(configs.count(r.config_index)) << "re-measured before its trial";
      continue;
    }
    EXPECT_TRUE(configs.insert(r.config_index).second)
        << "config " << r.config_index << " measured twice";
  }
  EXPECT_EQ(configs.size(), size_t(kTrials));
  EXPECT_GE(remeasured.size(), 1u);
  EXPECT_LE(remeasured.size(), 5u);
  std::filesystem::remove_all(dir);
}

TEST(TuneResume, KilledModelJobResumesWithNoTrialRepeatedOrLost) {
  std::filesystem::path dir = std::filesystem::temp_directory_path() /
                              ("kiln_tune_model_resume_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string db = (dir / "log.db").string();
  const std::string model = (dir / "two_conv.onnx").string();
  std::ofstream(model, std::ios::binary) << model_test::two_conv_model();
  constexpr int kTrials = 48;

  pid_t pid = spawn_tune_model(model, db, kTrials);
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(kill_after(pid, db, 12)) << "the first run committed nothing in time";
  EXPECT_LT(records_in(db), kTrials) << "the job finished before it could be killed";
  pid = spawn_tune_model(model, db, kTrials);
  ASSERT_GT(pid, 0);
  EXPECT_EQ(exit_code(pid), 0);

  Result<core::TuningLog> log = core::TuningLog::open(db);
  ASSERT_TRUE(log.is_ok()) << log.status().to_string();
  Result<core::TargetKey> key = only_target(*log);
  ASSERT_TRUE(key.is_ok()) << key.status().to_string();
  size_t trials = 0;
  for (const char* task : {model_test::kHeavyTask, model_test::kLightTask}) {
    Result<std::vector<core::TuningRecord>> history =
        log->history(*core::parse_workload(task), *key);
    ASSERT_TRUE(history.is_ok());
    std::set<int64_t> configs;
    for (const core::TuningRecord& r : *history) {
      if (tuner::is_remeasurement(r)) continue;
      EXPECT_TRUE(configs.insert(r.config_index).second)
          << task << ": config " << r.config_index << " measured twice";
    }
    EXPECT_GE(configs.size(), 4u) << task << " had no batch";
    trials += configs.size();
  }
  EXPECT_EQ(trials, size_t(kTrials));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kiln
