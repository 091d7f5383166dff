// The tuning log shared by real processes (kiln_db_writer): two writers and a reader at once
// lose nothing and never fail on a lock (integration), and a writer killed with SIGKILL in the
// middle of a batch leaves a log that opens cleanly with every committed batch whole (fault);
// on PostgreSQL, eight writers with one killed lose nothing and store nothing twice (fault).

#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <nlohmann/json.hpp>

#include "compiler_core/db/tuning_log.h"
#include "tests/support/postgres_server.h"

extern char** environ;

namespace kiln::core {
namespace {

namespace fs = std::filesystem;

/// Starts kiln_db_writer with `args`; returns its pid, or -1.
pid_t spawn_helper(const std::vector<std::string>& args) {
  std::vector<std::string> all = {KILN_DB_WRITER};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : all) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, KILN_DB_WRITER, nullptr, nullptr, argv.data(), environ) != 0) return -1;
  return pid;
}

/// Waits for `pid`; its exit code, or 128 + signal.
int wait_for(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string integrity_check(const fs::path& path) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  std::string result;
  auto collect = [](void* out, int, char** values, char**) {
    auto* text = static_cast<std::string*>(out);
    if (!text->empty()) *text += "\n";
    *text += values[0] != nullptr ? values[0] : "";
    return 0;
  };
  EXPECT_EQ(sqlite3_exec(db, "PRAGMA integrity_check", collect, &result, nullptr), SQLITE_OK);
  sqlite3_close(db);
  return result;
}

/// Records per batch ("batch-WRITER-B", the device field) of the whole log, through an export.
std::map<std::string, int64_t> records_per_batch(TuningLog& log) {
  std::stringstream lines;
  Result<int64_t> exported = log.export_jsonl(lines);
  EXPECT_TRUE(exported.is_ok()) << exported.status().to_string();
  std::map<std::string, int64_t> counts;
  std::string line;
  while (std::getline(lines, line)) {
    ++counts[nlohmann::json::parse(line)["device"].get<std::string>()];
  }
  return counts;
}

class DbProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "kiln_db_process_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    for (pid_t pid : running_) {
      kill(pid, SIGKILL);
      wait_for(pid);
    }
    std::error_code error;
    fs::remove_all(dir_, error);
  }

  fs::path dir_;
  std::vector<pid_t> running_;  ///< helpers to stop if a test ends early
};

using DbConcurrency = DbProcessTest;
using DbCrash = DbProcessTest;

TEST_F(DbConcurrency, TwoWritersAndAReaderLoseNothing) {
  constexpr int64_t kBatches = 200, kBatchSize = 25;
  // The log does not exist yet: the writers race to create it, too.
  const std::string db = (dir_ / "shared" / "tuning.db").string();
  const std::string expected = std::to_string(2 * kBatches * kBatchSize);
  pid_t writer1 =
      spawn_helper({"write", db, "1", std::to_string(kBatches), std::to_string(kBatchSize)});
  pid_t writer2 =
      spawn_helper({"write", db, "2", std::to_string(kBatches), std::to_string(kBatchSize)});
  pid_t reader = spawn_helper({"read", db, expected, std::to_string(kBatchSize), "120000"});
  ASSERT_GT(writer1, 0);
  ASSERT_GT(writer2, 0);
  ASSERT_GT(reader, 0);
  running_ = {writer1, writer2, reader};
  EXPECT_EQ(wait_for(writer1), 0);
  EXPECT_EQ(wait_for(writer2), 0);
  EXPECT_EQ(wait_for(reader), 0);
  running_.clear();

  EXPECT_EQ(integrity_check(db), "ok");
  Result<TuningLog> log = TuningLog::open(db);
  ASSERT_TRUE(log.is_ok()) << log.status().to_string();
  Result<TuningLogStats> stats = log->stats();
  ASSERT_TRUE(stats.is_ok());
  EXPECT_EQ(stats->records, 2 * kBatches * kBatchSize);
  EXPECT_EQ(stats->workloads, 1);
  EXPECT_EQ(stats->targets, 1);
  std::map<std::string, int64_t> batches = records_per_batch(*log);
  EXPECT_EQ(batches.size(), static_cast<size_t>(2 * kBatches));
  for (const auto& [batch, count] : batches) EXPECT_EQ(count, kBatchSize) << batch;
}

TEST_F(DbCrash, WriterKilledMidBatchLeavesEveryCommittedBatchWhole) {
  constexpr int64_t kBatchSize = 500, kMinBatches = 3;
  const fs::path db = dir_ / "tuning.db";
  pid_t writer = spawn_helper({"write", db.string(), "7", "0", std::to_string(kBatchSize)});
  ASSERT_GT(writer, 0);
  running_ = {writer};

  // Poll the log until the writer has committed a few batches; it is then almost always inside
  // the next one, since a batch's transaction is nearly all of its loop.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int64_t committed = 0;
  while (committed < kMinBatches * kBatchSize && std::chrono::steady_clock::now() < deadline) {
    std::error_code error;
    if (fs::exists(db, error)) {
      Result<TuningLog> reader = TuningLog::open(db, {.read_only = true});
      ASSERT_TRUE(reader.is_ok()) << reader.status().to_string();
      Result<TuningLogStats> stats = reader->stats();
      ASSERT_TRUE(stats.is_ok()) << stats.status().to_string();
      committed = stats->records;
    }
    if (committed < kMinBatches * kBatchSize) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  ASSERT_GE(committed, kMinBatches * kBatchSize) << "the writer committed too little in 60 s";
  ASSERT_EQ(kill(writer, SIGKILL), 0);
  EXPECT_EQ(wait_for(writer), 128 + SIGKILL);
  running_.clear();

  EXPECT_EQ(integrity_check(db), "ok");
  for (bool read_only : {true, false}) {
    Result<TuningLog> log = TuningLog::open(db, {.read_only = read_only});
    ASSERT_TRUE(log.is_ok()) << log.status().to_string();
    Result<TuningLogStats> stats = log->stats();
    ASSERT_TRUE(stats.is_ok());
    EXPECT_GE(stats->records, committed);
    EXPECT_EQ(stats->records % kBatchSize, 0) << stats->records;
    std::map<std::string, int64_t> batches = records_per_batch(*log);
    EXPECT_GE(static_cast<int64_t>(batches.size()), kMinBatches);
    for (const auto& [batch, count] : batches) EXPECT_EQ(count, kBatchSize) << batch;
  }
  // The log takes new batches after the crash.
  pid_t again = spawn_helper({"write", db.string(), "8", "2", std::to_string(kBatchSize)});
  ASSERT_GT(again, 0);
  EXPECT_EQ(wait_for(again), 0);
  EXPECT_EQ(integrity_check(db), "ok");
}

// PostgreSQL: eight writers on one log at once (the database does not exist as a kiln log yet,
// so they race to create its tables too), one of them killed with SIGKILL in the middle of a
// batch. Every batch that committed is whole, none is missing or stored twice.
TEST_F(DbCrash, EightPostgresWritersOneKilledLoseNothing) {
  kiln::test::PostgresServer* server = kiln::test::PostgresServer::for_test();
  if (server == nullptr) GTEST_SKIP() << kiln::test::PostgresServer::why();
  const std::string url = server->create_database("shared");
  ASSERT_FALSE(url.empty());
  constexpr int64_t kWriters = 7, kBatches = 30, kBatchSize = 50, kVictimBatch = 500;
  std::vector<pid_t> writers;
  for (int64_t w = 1; w <= kWriters; ++w) {
    writers.push_back(spawn_helper(
        {"write", url, std::to_string(w), std::to_string(kBatches), std::to_string(kBatchSize)}));
    ASSERT_GT(writers.back(), 0);
  }
  const pid_t victim = spawn_helper({"write", url, "9", "0", std::to_string(kVictimBatch)});
  ASSERT_GT(victim, 0);
  running_ = writers;
  running_.push_back(victim);

  // Kill the victim once it has committed a few batches, while the others still write.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  int64_t victim_committed = 0;
  while (victim_committed < 3 && std::chrono::steady_clock::now() < deadline) {
    Result<TuningLog> reader = TuningLog::open(url, {.read_only = true});
    ASSERT_TRUE(reader.is_ok()) << reader.status().to_string();
    victim_committed = 0;
    if (reader->schema_version() != 0) {
      for (const auto& [batch, count] : records_per_batch(*reader)) {
        if (batch.starts_with("batch-9-")) ++victim_committed;
      }
    }
    if (victim_committed < 3) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GE(victim_committed, 3) << "the victim committed too little in 120 s";
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  EXPECT_EQ(wait_for(victim), 128 + SIGKILL);
  for (pid_t writer : writers) EXPECT_EQ(wait_for(writer), 0);
  running_.clear();

  Result<TuningLog> log = TuningLog::open(url);
  ASSERT_TRUE(log.is_ok()) << log.status().to_string();
  std::map<std::string, int64_t> batches = records_per_batch(*log);
  int64_t records = 0, victim_batches = 0;
  for (const auto& [batch, count] : batches) {
    const bool by_victim = batch.starts_with("batch-9-");
    EXPECT_EQ(count, by_victim ? kVictimBatch : kBatchSize) << batch << " is torn";
    victim_batches += by_victim ? 1 : 0;
    records += count;
  }
  EXPECT_GE(victim_batches, victim_committed);
  EXPECT_EQ(static_cast<int64_t>(batches.size()) - victim_batches, kWriters * kBatches);
  // No record twice: every config index is a record's own (writer, batch, position).
  Result<TuningLogStats> stats = log->stats();
  ASSERT_TRUE(stats.is_ok());
  EXPECT_EQ(stats->records, records);
  std::stringstream lines;
  ASSERT_TRUE(log->export_jsonl(lines).is_ok());
  std::set<int64_t> configs;
  std::string line;
  while (std::getline(lines, line)) {
    EXPECT_TRUE(
        configs.insert(nlohmann::json::parse(line)["config"]["index"].get<int64_t>()).second)
        << line;
  }
  EXPECT_EQ(static_cast<int64_t>(configs.size()), records);
}

}  // namespace
}  // namespace kiln::core
