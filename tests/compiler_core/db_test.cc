// The tuning log, in-process: record keys and JSON lines, the schema and its migrations, best
// queries, export/import, refusing files that are not kiln's, and apply-best.

#include "compiler_core/db/tuning_log.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <nlohmann/json.hpp>

#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/db/apply_best.h"
#include "compiler_core/db/record.h"
#include "compiler_core/runtime/buffer.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/te/reference.h"
#include "tests/support/postgres_server.h"

namespace kiln::core {

// Failures print records as their JSON line.
void PrintTo(const TuningRecord& record, std::ostream* out) { *out << record_to_json_line(record); }

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

Workload workload_of(std::string_view text) {
  Result<Workload> workload = parse_workload(text);
  EXPECT_TRUE(workload.is_ok()) << text << ": " << workload.status().to_string();
  return workload.is_ok() ? *workload : Workload{};
}

TargetKey host_key() {
  Result<TargetKey> key = make_target_key(Target{}, 0);
  EXPECT_TRUE(key.is_ok()) << key.status().to_string();
  return key.is_ok() ? *key : TargetKey{};
}

/// A valid record of `workload` on `target` whose runs took `costs`.
TuningRecord record_of(std::string workload, TargetKey target, int64_t config_index,
                       std::vector<double> costs, MeasureError error = MeasureError::kOk) {
  TuningRecord record;
  record.workload = std::move(workload);
  record.target = std::move(target);
  record.config_index = config_index;
  record.config_knobs = "{\"tile\":" + std::to_string(config_index) + "}";
  record.costs = std::move(costs);
  record.error = error;
  record.agent = "test";
  record.device = "this-machine";
  record.measured_at_ms = 1717243200000 + config_index;
  return record;
}

/// Runs `sql` on the file with SQLite directly; returns the first column of the first row.
std::string raw_sql(const fs::path& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  std::string first;
  auto collect = [](void* out, int columns, char** values, char**) {
    auto* text = static_cast<std::string*>(out);
    if (text->empty() && columns > 0 && values[0] != nullptr) *text = values[0];
    return 0;
  };
  char* error = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), collect, &first, &error), SQLITE_OK)
      << sql << ": " << (error ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
  return first;
}

std::string file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

class TuningLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "kiln_db_test_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code error;
    fs::remove_all(dir_, error);
  }

  /// Where the log `name` lives: a file in dir_, or (TuningLogOnEachBackend on PostgreSQL) a
  /// database of the test's server.
  virtual std::string location(const std::string& name) { return (dir_ / name).string(); }

  TuningLog open_log(const std::string& name = "tuning.db", TuningLogOptions options = {}) {
    Result<TuningLog> log = TuningLog::open(location(name), options);
    EXPECT_TRUE(log.is_ok()) << log.status().to_string();
    if (!log.is_ok()) throw std::runtime_error("cannot open the test log");
    return std::move(log).value();
  }

  /// A new log "copy.db" holding what `log` exports, whose export must contain `expected`.
  TuningLog copy_by_export(const TuningLog& log, const std::string& expected) {
    std::ostringstream exported;
    EXPECT_TRUE(log.export_jsonl(exported).is_ok());
    EXPECT_THAT(exported.str(), HasSubstr(expected));
    TuningLog copy = open_log("copy.db");
    std::istringstream in(exported.str());
    EXPECT_TRUE(copy.import_jsonl(in).is_ok());
    return copy;
  }

  fs::path dir_;
};

enum class Backend { kSqlite, kPostgres };

/// The tests of what a tuning log means, whatever stores it: each runs on a SQLite file and on
/// a database of a real PostgreSQL server (tests/support/postgres_server.h).
class TuningLogOnEachBackend : public TuningLogTest, public ::testing::WithParamInterface<Backend> {
 protected:
  void SetUp() override {
    TuningLogTest::SetUp();
    if (GetParam() != Backend::kPostgres) return;
    server_ = kiln::test::PostgresServer::for_test();
    if (server_ == nullptr) GTEST_SKIP() << kiln::test::PostgresServer::why();
  }

  std::string location(const std::string& name) override {
    if (GetParam() != Backend::kPostgres) return TuningLogTest::location(name);
    auto it = databases_.find(name);
    if (it != databases_.end()) return it->second;
    std::string database = name;
    for (char& c : database) {
      if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    }
    const std::string url = server_->create_database(database);
    EXPECT_FALSE(url.empty()) << "cannot create database " << database;
    return databases_[name] = url;
  }

  bool on_sqlite() const { return GetParam() == Backend::kSqlite; }

  /// The reader's data version once it differs from `before`: at once on SQLite, within a
  /// notification's way on PostgreSQL (up to 2 s).
  static int64_t version_after(const TuningLog& reader, int64_t before) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    int64_t now = *reader.data_version();
    while (now == before && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      now = *reader.data_version();
    }
    return now;
  }

  kiln::test::PostgresServer* server_ = nullptr;
  std::map<std::string, std::string> databases_;
};

INSTANTIATE_TEST_SUITE_P(Backends, TuningLogOnEachBackend,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return info.param == Backend::kSqlite ? "Sqlite" : "Postgres";
                         });

TEST(MeasureError, NamesRoundTrip) {
  for (int i = 0; i < kNumMeasureErrors; ++i) {
    const auto error = static_cast<MeasureError>(i);
    Result<MeasureError> parsed = parse_measure_error(measure_error_name(error));
    ASSERT_TRUE(parsed.is_ok());
    EXPECT_EQ(*parsed, error);
  }
  EXPECT_STREQ(measure_error_name(MeasureError::kWrongAnswer), "WRONG_ANSWER");
  EXPECT_THAT(parse_measure_error("CRASHED").status().message(), HasSubstr("CRASHED"));
}

TEST(TargetKeyTest, HostKeyHoldsCpuModelAndEveryFeature) {
  TargetKey key = host_key();
  EXPECT_THAT(key.target, StartsWith("llvm -mcpu="));
  EXPECT_THAT(key.target, HasSubstr(" -mattr=+"));
  EXPECT_EQ(key.model, host_cpu_model_name());
  EXPECT_FALSE(key.features().empty());
  EXPECT_THAT(key.target, HasSubstr(key.features()));
  // Features are spelled out on and off, so a CPU lacking one differs from one having it.
  EXPECT_THAT(key.features(), HasSubstr(",-"));
}

TEST(TargetKeyTest, ResolvedHostTargetGivesTheSameKey) {
  Result<Target> resolved = resolve_host_target(Target{});
  ASSERT_TRUE(resolved.is_ok());
  Result<TargetKey> again = make_target_key(*resolved, 0);
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(*again, host_key());
}

TEST(TargetKeyTest, CudaAndCrossTargetsKeepTheirStringAndNoModel) {
  Result<TargetKey> cuda = make_target_key(*parse_target("cuda   -arch=sm_80"), 0);
  ASSERT_TRUE(cuda.is_ok());
  EXPECT_EQ(cuda->target, "cuda -arch=sm_80");
  EXPECT_EQ(cuda->model, "");
  EXPECT_EQ(cuda->features(), "");
  Result<TargetKey> arm =
      make_target_key(*parse_target("llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72 "
                                    "-mattr=+neon"),
                      0);
  ASSERT_TRUE(arm.is_ok());
  EXPECT_EQ(arm->target, "llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72 -mattr=+neon");
  EXPECT_EQ(arm->features(), "+neon");
}

TEST(TuningRecordTest, MedianCost) {
  TuningRecord record;
  EXPECT_TRUE(std::isinf(record.median_cost()));
  record.costs = {3, 1, 2};
  EXPECT_DOUBLE_EQ(record.median_cost(), 2);
  record.costs = {4, 1, 3, 2};
  EXPECT_DOUBLE_EQ(record.median_cost(), 2.5);
}

TEST(RecordJson, RoundTripsEveryField) {
  TuningRecord record =
      record_of("matmul:M=8,N=8,K=8", {"cuda -arch=sm_90", ""}, 3, {0.5, 0.25, 1e-7});
  record.error = MeasureError::kOk;
  record.measure_options = "{\"number\":2,\"repeat\":3,\"threads\":4}";
  record.target.threads = 4;
  record.kiln_version = "0.1.0";
  Result<TuningRecord> parsed = record_from_json_line(record_to_json_line(record));
  ASSERT_TRUE(parsed.is_ok()) << parsed.status().to_string();
  EXPECT_EQ(*parsed, record);
}

TEST(RecordJson, RejectsMalformedLinesNamingTheField) {
  const std::string good =
      record_to_json_line(record_of("matmul:M=8,N=8,K=8", {"cuda -arch=sm_90", ""}, 3, {0.5}));
  auto expect_error = [](const std::string& line, const std::string& substring) {
    Result<TuningRecord> parsed = record_from_json_line(line);
    ASSERT_FALSE(parsed.is_ok()) << line;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(parsed.status().message(), HasSubstr(substring)) << line;
  };
  auto with = [&](const std::string& field, nlohmann::json value) {
    nlohmann::json line = nlohmann::json::parse(good);
    if (value.is_null()) {
      line.erase(field);
    } else {
      line[field] = value;
    }
    return line.dump();
  };
  expect_error("{\"workload\": ", "JSON");
  expect_error("[1, 2]", "object");
  expect_error(with("workload", nullptr), "workload");
  expect_error(with("workload", "softmax:N=3"), "softmax");
  expect_error(with("target", "tpu"), "tpu");
  expect_error(with("error", "EXPLODED"), "EXPLODED");
  expect_error(with("costs", nlohmann::json::array()), "at least one");
  expect_error(with("costs", {0.1, -1.0}), "cost");
  expect_error(with("config", {{"index", 3}}), "config");
  expect_error(with("measured_at_ms", "yesterday"), "measured_at_ms");
  expect_error(with("threads", -1), "threads");
  expect_error(with("threads", "two"), "threads");
}

TEST_F(TuningLogTest, CreatesAWalLogWithSchemaVersionAndMeta) {
  const fs::path path = dir_ / "nested" / "folder" / "tuning.db";
  {
    Result<TuningLog> log = TuningLog::open(path);
    ASSERT_TRUE(log.is_ok()) << log.status().to_string();
    EXPECT_EQ(log->schema_version(), kTuningLogSchemaVersion);
    EXPECT_EQ(raw_sql(path, "PRAGMA journal_mode"), "wal");
  }
  EXPECT_EQ(raw_sql(path, "PRAGMA user_version"), std::to_string(kTuningLogSchemaVersion));
  EXPECT_EQ(raw_sql(path, "SELECT value FROM meta WHERE key = 'application'"),
            kTuningLogApplication);
  EXPECT_EQ(raw_sql(path, "SELECT count(*) FROM sqlite_schema WHERE name = 'records_best'"), "1");
}

TEST_P(TuningLogOnEachBackend, StoresEveryFieldOfARecord) {
  TuningLog log = open_log();
  TuningRecord record =
      record_of("conv2d:N=1,C=8,H=9,W=9,K=8,R=3,S=3,pad=1", host_key(), 42, {0.003, 0.001, 0.002});
  record.measure_options = "{\"number\":1,\"repeat\":3,\"min_repeat_ms\":100}";
  record.kiln_version = "9.9.9";
  TuningRecord failed = record_of("conv2d:N=1,C=8,H=9,W=9,K=8,R=3,S=3,pad=1", host_key(), 43, {},
                                  MeasureError::kTimeout);
  failed.error_message = "took longer than 10 s";
  failed.measured_at_ms = 0;  // stamped at append
  ASSERT_TRUE(log.append(std::vector<TuningRecord>{record, failed}).is_ok());

  Result<std::vector<TuningRecord>> history = log.history(workload_of(record.workload), host_key());
  ASSERT_TRUE(history.is_ok()) << history.status().to_string();
  ASSERT_EQ(history->size(), 2u);
  record.workload = workload_of(record.workload).canonical();
  EXPECT_EQ((*history)[0], record);
  const TuningRecord& stored = (*history)[1];
  EXPECT_EQ(stored.error, MeasureError::kTimeout);
  EXPECT_EQ(stored.error_message, "took longer than 10 s");
  EXPECT_GT(stored.measured_at_ms, 1717243200000);
  EXPECT_EQ(stored.kiln_version, KILN_TEST_VERSION);
}

TEST_P(TuningLogOnEachBackend, OneWorkloadUnderEverySpelling) {
  TuningLog log = open_log();
  TuningRecord matmul = record_of("matmul:K=64,N=32,M=16", host_key(), 1, {0.1});
  TuningRecord conv = record_of(
      "conv2d:N=1,C=8,H=9,W=9,K=8,R=3,S=3,stride=1,pad=0,dilation=1,groups=1,layout=NCHW,"
      "dtype=float32",
      host_key(), 2, {0.2});
  ASSERT_TRUE(log.append(std::vector<TuningRecord>{matmul, conv}).is_ok());

  Result<std::vector<TuningRecord>> best =
      log.best(workload_of("matmul:M=16,N=32,K=64"), host_key());
  ASSERT_TRUE(best.is_ok());
  ASSERT_EQ(best->size(), 1u);
  EXPECT_EQ((*best)[0].workload, "matmul:M=16,N=32,K=64");
  best = log.best(workload_of("conv2d:K=8,S=3,R=3,W=9,H=9,C=8,N=1"), host_key());
  ASSERT_TRUE(best.is_ok());
  ASSERT_EQ(best->size(), 1u);
  EXPECT_EQ((*best)[0].config_index, 2);
  Result<TuningLogStats> stats = log.stats();
  ASSERT_TRUE(stats.is_ok());
  EXPECT_EQ(stats->workloads, 2);
}

TEST_P(TuningLogOnEachBackend, RecordsAnswerOnlyForTheHardwareTheyWereMeasuredOn) {
  TuningLog log = open_log();
  const std::string w = "matmul:M=16,N=16,K=16";
  const TargetKey sm80{"cuda -arch=sm_80", ""};
  const TargetKey sm90{"cuda -arch=sm_90", ""};
  const TargetKey epyc{"llvm -mcpu=znver4 -mattr=+avx2,+avx512f", "AMD EPYC 9B45"};
  const TargetKey xeon{"llvm -mcpu=znver4 -mattr=+avx2,+avx512f", "Intel Xeon Platinum 8480"};
  const TargetKey no_avx512{"llvm -mcpu=znver4 -mattr=+avx2,-avx512f", "AMD EPYC 9B45"};
  ASSERT_TRUE(log.append(std::vector<TuningRecord>{record_of(w, sm80, 1, {0.1}),
                                                   record_of(w, epyc, 2, {0.2})})
                  .is_ok());
  auto best_index = [&](const TargetKey& key) -> std::optional<int64_t> {
    Result<std::vector<TuningRecord>> best = log.best(workload_of(w), key);
    EXPECT_TRUE(best.is_ok()) << best.status().to_string();
    if (!best.is_ok() || best->empty()) return std::nullopt;
    return (*best)[0].config_index;
  };
  EXPECT_EQ(best_index(sm80), 1);
  EXPECT_EQ(best_index(sm90), std::nullopt);
  EXPECT_EQ(best_index(epyc), 2);
  EXPECT_EQ(best_index(xeon), std::nullopt);
  EXPECT_EQ(best_index(no_avx512), std::nullopt);
  EXPECT_EQ(best_index(host_key()), std::nullopt);
  // The key's target string is canonicalised like the record's.
  EXPECT_EQ(best_index({"cuda    -arch=sm_80", ""}), 1);
}

TEST_P(TuningLogOnEachBackend, BestIsTheFastestValidMedianOncePerConfig) {
  TuningLog log = open_log();
  const std::string w = "matmul:M=16,N=16,K=16";
  const TargetKey key = host_key();
  std::vector<TuningRecord> records = {
      record_of(w, key, 1, {0.30, 0.30, 0.30}),
      record_of(w, key, 2, {0.01, 0.50, 0.50}),  // fastest single run, slow median
      record_of(w, key, 3, {0.20}),
      record_of(w, key, 4, {0.001}, MeasureError::kWrongAnswer),
      record_of(w, key, 5, {}, MeasureError::kCompileError),
      record_of(w, key, 3, {0.10}),  // config 3 again, faster
      record_of(w, key, 6, {0.25}),
  };
  ASSERT_TRUE(log.append(records).is_ok());
  Result<std::vector<TuningRecord>> best = log.best(workload_of(w), key, 3);
  ASSERT_TRUE(best.is_ok());
  std::vector<int64_t> indices;
  std::vector<double> medians;
  for (const TuningRecord& r : *best) {
    indices.push_back(r.config_index);
    medians.push_back(r.median_cost());
  }
  EXPECT_EQ(indices, (std::vector<int64_t>{3, 6, 1}));
  EXPECT_EQ(medians, (std::vector<double>{0.10, 0.25, 0.30}));
  best = log.best(workload_of(w), key, 100);
  ASSERT_TRUE(best.is_ok());
  EXPECT_EQ(best->size(), 4u);  // configs 3, 6, 1, 2; never the failed 4 and 5
  best = log.best(workload_of("matmul:M=17,N=16,K=16"), key, 3);
  ASSERT_TRUE(best.is_ok());
  EXPECT_TRUE(best->empty());
}

TEST_P(TuningLogOnEachBackend, AppendIsAllOrNothing) {
  TuningLog log = open_log();
  const std::string w = "matmul:M=16,N=16,K=16";
  std::vector<TuningRecord> batch = {record_of(w, host_key(), 1, {0.1}),
                                     record_of(w, host_key(), 2, {0.1}),
                                     record_of("matmul:M=0,N=1,K=1", host_key(), 3, {0.1})};
  Status status = log.append(batch);
  ASSERT_FALSE(status.is_ok());
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("record 2"));
  batch[2] = record_of(w, {"cuda -arch=sm_80", ""}, 3, {0.1}, MeasureError::kOk);
  batch[2].config_knobs = "not json";
  status = log.append(batch);
  EXPECT_THAT(status.message(), HasSubstr("knobs"));
  Result<TuningLogStats> stats = log.stats();
  ASSERT_TRUE(stats.is_ok());
  EXPECT_EQ(stats->records, 0);
  EXPECT_EQ(stats->workloads, 0);
}

TEST_P(TuningLogOnEachBackend, HistoryKeepsAppendOrderAndGivesTheLatest) {
  TuningLog log = open_log();
  const std::string w = "matmul:M=16,N=16,K=16";
  for (int64_t i = 0; i < 5; ++i) {
    ASSERT_TRUE(
        log.append(std::vector<TuningRecord>{record_of(w, host_key(), 10 - i, {0.1})}).is_ok());
  }
  Result<std::vector<TuningRecord>> all = log.history(workload_of(w), host_key());
  ASSERT_TRUE(all.is_ok());
  ASSERT_EQ(all->size(), 5u);
  EXPECT_EQ((*all)[0].config_index, 10);
  EXPECT_EQ((*all)[4].config_index, 6);
  Result<std::vector<TuningRecord>> latest = log.history(workload_of(w), host_key(), 2);
  ASSERT_TRUE(latest.is_ok());
  ASSERT_EQ(latest->size(), 2u);
  EXPECT_EQ((*latest)[0].config_index, 7);
  EXPECT_EQ((*latest)[1].config_index, 6);
}

TEST_P(TuningLogOnEachBackend, DataVersionChangesWithEveryOtherConnectionsCommit) {
  TuningLog reader = open_log();
  TuningLog writer = open_log();
  const std::string w = "matmul:M=16,N=16,K=16";
  Result<int64_t> before = reader.data_version();
  ASSERT_TRUE(before.is_ok()) << before.status().to_string();
  EXPECT_EQ(*reader.data_version(), *before) << "nothing was committed";
  ASSERT_TRUE(writer.append(std::vector<TuningRecord>{record_of(w, host_key(), 1, {0.1})}).is_ok());
  const int64_t after = version_after(reader, *before);
  EXPECT_NE(after, *before);
  // The reader's own commits are not another connection's.
  ASSERT_TRUE(reader.append(std::vector<TuningRecord>{record_of(w, host_key(), 2, {0.1})}).is_ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(*reader.data_version(), after);
}

TEST_P(TuningLogOnEachBackend, StatsCountByOutcome) {
  TuningLog log = open_log();
  std::vector<TuningRecord> records = {
      record_of("matmul:M=1,N=1,K=1", host_key(), 1, {0.1}),
      record_of("matmul:M=2,N=1,K=1", host_key(), 1, {0.1}),
      record_of("matmul:M=2,N=1,K=1", {"cuda -arch=sm_80", ""}, 1, {}, MeasureError::kTimeout),
      record_of("matmul:M=2,N=1,K=1", {"cuda -arch=sm_80", ""}, 2, {}, MeasureError::kDeviceLost),
  };
  ASSERT_TRUE(log.append(records).is_ok());
  Result<TuningLogStats> stats = log.stats();
  ASSERT_TRUE(stats.is_ok());
  EXPECT_EQ(stats->schema_version, kTuningLogSchemaVersion);
  EXPECT_EQ(stats->records, 4);
  EXPECT_EQ(stats->workloads, 2);
  EXPECT_EQ(stats->targets, 2);
  EXPECT_EQ(stats->by_error[0], 2);
  EXPECT_EQ(stats->by_error[static_cast<size_t>(MeasureError::kTimeout)], 1);
  EXPECT_EQ(stats->by_error[static_cast<size_t>(MeasureError::kDeviceLost)], 1);
  EXPECT_EQ(stats->first_measured_at_ms, 1717243200001);
  EXPECT_EQ(stats->last_measured_at_ms, 1717243200002);
}

TEST_P(TuningLogOnEachBackend, ExportThenImportGivesTheSameBestAnswers) {
  TuningLog source = open_log("source.db");
  const std::vector<std::string> workloads = {"matmul:M=16,N=16,K=16", "dense:M=1,N=8,K=4,bias=1",
                                              "batch_matmul:B=2,M=4,N=4,K=4"};
  const std::vector<TargetKey> targets = {host_key(), {"cuda -arch=sm_80", ""}};
  std::vector<TuningRecord> records;
  for (size_t w = 0; w < workloads.size(); ++w) {
    for (const TargetKey& target : targets) {
      for (int64_t i = 0; i < 6; ++i) {
        const double cost = 0.001 * double((i * 7 + w) % 6 + 1) / 3.0;
        records.push_back(record_of(workloads[w], target, i, {cost, cost * 1.1},
                                    i == 4 ? MeasureError::kRuntimeError : MeasureError::kOk));
      }
    }
  }
  ASSERT_TRUE(source.append(records).is_ok());
  std::stringstream lines;
  Result<int64_t> exported = source.export_jsonl(lines);
  ASSERT_TRUE(exported.is_ok());
  EXPECT_EQ(*exported, static_cast<int64_t>(records.size()));

  TuningLog copy = open_log("copy.db");
  Result<int64_t> imported = copy.import_jsonl(lines);
  ASSERT_TRUE(imported.is_ok()) << imported.status().to_string();
  EXPECT_EQ(*imported, *exported);
  for (const std::string& w : workloads) {
    for (const TargetKey& target : targets) {
      Result<std::vector<TuningRecord>> a = source.best(workload_of(w), target, 10);
      Result<std::vector<TuningRecord>> b = copy.best(workload_of(w), target, 10);
      ASSERT_TRUE(a.is_ok() && b.is_ok());
      EXPECT_EQ(*a, *b) << w << " on " << target.str();
      EXPECT_EQ(a->size(), 5u);
    }
  }
}

TEST_P(TuningLogOnEachBackend, AMalformedImportLineNamesItsNumberAndImportsNothing) {
  TuningLog log = open_log();
  const std::string good =
      record_to_json_line(record_of("matmul:M=8,N=8,K=8", {"cuda -arch=sm_90", ""}, 3, {0.5}));
  std::stringstream lines(good + "\n\n" + good + "\n" + "{\"workload\": \"matmul:M=8\"}\n" + good +
                          "\n");
  Result<int64_t> imported = log.import_jsonl(lines);
  ASSERT_FALSE(imported.is_ok());
  EXPECT_EQ(imported.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(imported.status().message(), HasSubstr("line 4"));
  Result<TuningLogStats> stats = log.stats();
  ASSERT_TRUE(stats.is_ok());
  EXPECT_EQ(stats->records, 0);
}

TEST_F(TuningLogTest, ReadOnlyOpenOfAMissingFileCreatesNothing) {
  const fs::path path = dir_ / "missing" / "tuning.db";
  Result<TuningLog> log = TuningLog::open(path, {.read_only = true});
  ASSERT_FALSE(log.is_ok());
  EXPECT_EQ(log.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(log.status().message(), HasSubstr(path.string()));
  EXPECT_FALSE(fs::exists(dir_ / "missing"));
}

TEST_P(TuningLogOnEachBackend, JobsAreStoredUpdatedCancelledAndForgotten) {
  TuningLog log = open_log();
  TuningLog other = open_log();  // another server on the same log
  Result<int64_t> first = log.add_job(R"({"state":"running"})");
  Result<int64_t> second = other.add_job(R"({"state":"running","n":2})");
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  ASSERT_TRUE(second.is_ok());
  EXPECT_GE(*first, 1);
  EXPECT_GT(*second, *first);

  Result<std::optional<StoredJob>> seen = other.job(*first);
  ASSERT_TRUE(seen.is_ok());
  ASSERT_TRUE(seen->has_value());
  EXPECT_EQ((*seen)->document, R"({"state":"running"})");
  EXPECT_FALSE((*seen)->cancel_requested);

  // A cancel asked through one connection is what the other's next update returns, until an
  // update clears it.
  ASSERT_TRUE(other.request_job_cancel(*first).is_ok());
  Result<bool> cancel = log.update_job(*first, R"({"state":"running","trials":16})");
  ASSERT_TRUE(cancel.is_ok());
  EXPECT_TRUE(*cancel);
  EXPECT_TRUE(*log.update_job(*first, R"({"state":"cancelled"})"));
  EXPECT_FALSE(*log.update_job(*first, R"({"state":"running"})", /*clear_cancel=*/true));
  EXPECT_EQ((*other.job(*first))->document, R"({"state":"running"})");

  EXPECT_EQ(log.update_job(*second + 100, "{}").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(log.request_job_cancel(*second + 100).code(), StatusCode::kNotFound);
  EXPECT_FALSE(log.job(*second + 100)->has_value());

  // A forgotten job's number is never given again; put_job stores a number of its own choosing
  // and moves the numbering past it.
  ASSERT_TRUE(log.delete_job(*second).is_ok());
  Result<int64_t> third = log.add_job("{}");
  ASSERT_TRUE(third.is_ok());
  EXPECT_GT(*third, *second);
  ASSERT_TRUE(log.put_job(*third + 10, R"({"imported":true})").is_ok());
  EXPECT_GT(*other.add_job("{}"), *third + 10);
  ASSERT_TRUE(log.put_job(*third + 10, R"({"imported":2})").is_ok());
  std::vector<int64_t> numbers;
  Result<std::vector<StoredJob>> all = other.jobs();
  ASSERT_TRUE(all.is_ok());
  for (const StoredJob& job : *all) numbers.push_back(job.number);
  ASSERT_EQ(numbers.size(), 4u);
  EXPECT_TRUE(std::is_sorted(numbers.begin(), numbers.end()));
  EXPECT_EQ((*log.job(*third + 10))->document, R"({"imported":2})");

  TuningLog reader = open_log("tuning.db", {.read_only = true});
  EXPECT_EQ(reader.jobs()->size(), 4u);
  EXPECT_EQ(reader.add_job("{}").status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(reader.claim_job(*first).status().code(), StatusCode::kFailedPrecondition);
}

TEST_P(TuningLogOnEachBackend, AJobHasOneClaimAtATimeWhichEndsWithItsHolder) {
  TuningLog log = open_log();
  TuningLog other = open_log();
  const int64_t job = *log.add_job("{}");

  // A process that dies holding a claim releases it. The child forks before this process holds
  // any claim, touches nothing it inherits, and ends without destructors.
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto* in_child = new Result<TuningLog>(TuningLog::open(location("tuning.db")));
    auto* claim = new Result<std::unique_ptr<JobClaim>>(
        in_child->is_ok() ? (*in_child)->claim_job(job) : Status(StatusCode::kInternal, ""));
    const char got = claim->is_ok() && **claim != nullptr ? 'y' : 'n';
    (void)!write(ready[1], &got, 1);
    pause();
    _exit(0);
  }
  char got = 0;
  ASSERT_EQ(read(ready[0], &got, 1), 1);
  EXPECT_EQ(got, 'y') << "the child claims a job that nobody holds";
  EXPECT_EQ(*log.claim_job(job), nullptr) << "while the child lives";
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  close(ready[0]);
  close(ready[1]);
  // PostgreSQL sees the closed socket and ends the child's session: within moments.
  std::unique_ptr<JobClaim> held;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (held == nullptr && std::chrono::steady_clock::now() < deadline) {
    held = std::move(log.claim_job(job).value());
    if (held == nullptr) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_NE(held, nullptr) << "the dead child's claim is gone";

  EXPECT_EQ(*other.claim_job(job), nullptr) << "another connection";
  EXPECT_EQ(*log.claim_job(job), nullptr) << "the same connection";
  std::unique_ptr<JobClaim> another = std::move(other.claim_job(*log.add_job("{}")).value());
  EXPECT_NE(another, nullptr) << "claims are per job";
  held.reset();
  EXPECT_NE(*other.claim_job(job), nullptr) << "released";
}

TEST_P(TuningLogOnEachBackend, ReadOnlyLogAnswersAndRefusesWrites) {
  // An empty file, or a database without tables: a log with nothing in it, left as it is.
  if (on_sqlite()) std::ofstream(dir_ / "empty.db").flush();
  TuningLog empty = open_log("empty.db", {.read_only = true});
  EXPECT_EQ(empty.schema_version(), 0);
  Result<std::vector<TuningRecord>> best =
      empty.best(workload_of("matmul:M=1,N=1,K=1"), host_key());
  ASSERT_TRUE(best.is_ok());
  EXPECT_TRUE(best->empty());
  if (on_sqlite()) {
    EXPECT_EQ(fs::file_size(dir_ / "empty.db"), 0u);
  }
  EXPECT_EQ(open_log("empty.db", {.read_only = true}).schema_version(), 0) << "still empty";

  {
    TuningLog writer = open_log();
    ASSERT_TRUE(writer
                    .append(std::vector<TuningRecord>{
                        record_of("matmul:M=1,N=1,K=1", host_key(), 1, {0.1})})
                    .is_ok());
  }
  TuningLog reader = open_log("tuning.db", {.read_only = true});
  best = reader.best(workload_of("matmul:M=1,N=1,K=1"), host_key());
  ASSERT_TRUE(best.is_ok());
  EXPECT_EQ(best->size(), 1u);
  Status status = reader.append(
      std::vector<TuningRecord>{record_of("matmul:M=1,N=1,K=1", host_key(), 2, {0.1})});
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
}

TEST_F(TuningLogTest, MigratesALogOfAnOlderSchema) {
  const std::string w = "matmul:M=16,N=16,K=16";
  {
    TuningLog old = open_log("tuning.db", {.schema_version = 1});
    EXPECT_EQ(old.schema_version(), 1);
    ASSERT_TRUE(old.append(std::vector<TuningRecord>{record_of(w, host_key(), 1, {0.2}),
                                                     record_of(w, host_key(), 2, {0.1})})
                    .is_ok());
  }
  const fs::path path = dir_ / "tuning.db";
  EXPECT_EQ(raw_sql(path, "PRAGMA user_version"), "1");
  EXPECT_EQ(raw_sql(path, "SELECT count(*) FROM sqlite_schema WHERE name = 'records_best'"), "0");
  {
    // A reader takes the older log as it is.
    TuningLog reader = open_log("tuning.db", {.read_only = true});
    EXPECT_EQ(reader.schema_version(), 1);
    Result<std::vector<TuningRecord>> best = reader.best(workload_of(w), host_key());
    ASSERT_TRUE(best.is_ok());
    ASSERT_EQ(best->size(), 1u);
  }
  EXPECT_EQ(raw_sql(path, "PRAGMA user_version"), "1");

  TuningLog log = open_log();
  EXPECT_EQ(log.schema_version(), kTuningLogSchemaVersion);
  EXPECT_EQ(raw_sql(path, "PRAGMA user_version"), std::to_string(kTuningLogSchemaVersion));
  EXPECT_EQ(raw_sql(path, "SELECT count(*) FROM sqlite_schema WHERE name = 'records_best'"), "1");
  EXPECT_EQ(raw_sql(path, "SELECT value FROM meta WHERE key = 'schema_version'"),
            std::to_string(kTuningLogSchemaVersion));
  Result<std::vector<TuningRecord>> best = log.best(workload_of(w), host_key(), 5);
  ASSERT_TRUE(best.is_ok());
  ASSERT_EQ(best->size(), 2u);
  EXPECT_EQ((*best)[0].config_index, 2);
}

// Records of boards of a cross target: a query with no model answers from every real board,
// an emulated board's records answer only a query for emulated boards, and export keeps the
// mark.
TEST_P(TuningLogOnEachBackend, EmulatedBoardsNeverAnswerForRealOnes) {
  const std::string w = "matmul:M=64,N=64,K=64";
  const std::string arm = "llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72";
  const TargetKey pi{arm, "ARM Cortex-A72", false};
  const TargetKey other_pi{arm, "ARM Cortex-A72 rev 3", false};
  const TargetKey qemu{arm, "qemu-user aarch64 on AMD EPYC", true};
  TuningLog log = open_log();
  ASSERT_TRUE(log.append(std::vector<TuningRecord>{
                             record_of(w, pi, 1, {0.3}), record_of(w, other_pi, 2, {0.2}),
                             record_of(w, other_pi, 1, {0.25}), record_of(w, qemu, 3, {0.01})})
                  .is_ok());

  Result<std::vector<TuningRecord>> real = log.best(workload_of(w), TargetKey{arm, ""}, 5);
  ASSERT_TRUE(real.is_ok()) << real.status().to_string();
  ASSERT_EQ(real->size(), 2u);
  EXPECT_EQ((*real)[0].config_index, 2);
  EXPECT_EQ((*real)[0].target, other_pi);
  EXPECT_EQ((*real)[1].config_index, 1);  // its fastest, on the second board
  EXPECT_EQ((*real)[1].median_cost(), 0.25);

  Result<std::vector<TuningRecord>> one = log.best(workload_of(w), pi, 5);
  ASSERT_TRUE(one.is_ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].target, pi);

  Result<std::vector<TuningRecord>> emulated =
      log.best(workload_of(w), TargetKey{arm, "", true}, 5);
  ASSERT_TRUE(emulated.is_ok());
  ASSERT_EQ(emulated->size(), 1u);
  EXPECT_EQ((*emulated)[0].config_index, 3);
  EXPECT_TRUE((*emulated)[0].target.emulated);
  EXPECT_EQ(log.history(workload_of(w), TargetKey{arm, ""})->size(), 3u);
  EXPECT_EQ(log.history(workload_of(w), TargetKey{arm, "", true})->size(), 1u);

  TuningLog copy = copy_by_export(log, "\"emulated\":true");
  EXPECT_EQ(copy.best(workload_of(w), TargetKey{arm, ""}, 5)->size(), 2u);
  EXPECT_EQ(copy.best(workload_of(w), TargetKey{arm, "", true}, 5)->size(), 1u);
}

TEST_F(TuningLogTest, ALogFromBeforeEmulatedBoardsReadsItsBoardsAsReal) {
  const std::string w = "matmul:M=16,N=16,K=16";
  {
    TuningLog old = open_log("tuning.db", {.schema_version = 2});
    ASSERT_TRUE(old.append(std::vector<TuningRecord>{record_of(w, host_key(), 1, {0.2})}).is_ok());
  }
  TuningLog log = open_log();
  EXPECT_EQ(log.schema_version(), kTuningLogSchemaVersion);
  Result<std::vector<TuningRecord>> best = log.best(workload_of(w), host_key());
  ASSERT_TRUE(best.is_ok());
  ASSERT_EQ(best->size(), 1u);
  EXPECT_FALSE((*best)[0].target.emulated);
}

/// A record of `workload` on this machine whose measure options say `threads` (none when 0).
TuningRecord record_with_threads(const std::string& workload, int64_t config_index, double cost,
                                 int threads) {
  TuningRecord record = record_of(workload, host_key(), config_index, {cost});
  if (threads > 0) record.measure_options = "{\"threads\":" + std::to_string(threads) + "}";
  return record;
}

// One workload measured at 1 and at 2 threads: each count keeps its own best and history, a
// query for every count sees both, and export and import keep the count.
TEST_P(TuningLogOnEachBackend, EachThreadCountKeepsItsOwnBest) {
  const std::string w = "matmul:M=16,N=16,K=16";
  TuningLog log = open_log();
  ASSERT_TRUE(log.append(std::vector<TuningRecord>{
                             record_with_threads(w, 1, 0.30, 1), record_with_threads(w, 2, 0.20, 1),
                             record_with_threads(w, 3, 0.15, 2), record_with_threads(w, 2, 0.25, 2),
                             record_with_threads(w, 4, 0.01, 0)})
                  .is_ok());
  TargetKey one = host_key(), two = host_key();
  one.threads = 1;
  two.threads = 2;

  Result<std::vector<TuningRecord>> best_one = log.best(workload_of(w), one, 5);
  ASSERT_TRUE(best_one.is_ok()) << best_one.status().to_string();
  ASSERT_EQ(best_one->size(), 2u);
  EXPECT_EQ((*best_one)[0].config_index, 2);
  EXPECT_EQ((*best_one)[0].target.threads, 1);
  EXPECT_EQ((*best_one)[1].config_index, 1);

  Result<std::vector<TuningRecord>> best_two = log.best(workload_of(w), two, 5);
  ASSERT_TRUE(best_two.is_ok());
  ASSERT_EQ(best_two->size(), 2u);
  EXPECT_EQ((*best_two)[0].config_index, 3);
  EXPECT_EQ((*best_two)[1].config_index, 2);
  EXPECT_EQ((*best_two)[1].median_cost(), 0.25);  // config 2's time at 2 threads, not at 1
  EXPECT_EQ((*best_two)[1].target.threads, 2);

  // Every count: the record whose options named none (the board chose) answers only here.
  Result<std::vector<TuningRecord>> any = log.best(workload_of(w), host_key(), 5);
  ASSERT_TRUE(any.is_ok());
  ASSERT_EQ(any->size(), 4u);
  EXPECT_EQ((*any)[0].config_index, 4);
  EXPECT_EQ((*any)[0].target.threads, 0);
  EXPECT_EQ(log.history(workload_of(w), one)->size(), 2u);
  EXPECT_EQ(log.history(workload_of(w), two)->size(), 2u);
  EXPECT_EQ(log.history(workload_of(w), two, 1)->front().config_index, 2);
  EXPECT_EQ(log.history(workload_of(w), host_key())->size(), 5u);

  // A count that disagrees with the record's own options is refused, and nothing is written.
  TuningRecord contradicting = record_with_threads(w, 5, 0.1, 2);
  contradicting.target.threads = 1;
  Status refused = log.append(std::vector<TuningRecord>{contradicting});
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), HasSubstr("disagrees"));
  EXPECT_EQ(log.history(workload_of(w), host_key())->size(), 5u);

  TuningLog copy = copy_by_export(log, "\"threads\":2");
  EXPECT_EQ(copy.best(workload_of(w), two, 5)->front().config_index, 3);
  EXPECT_EQ(copy.best(workload_of(w), one, 5)->front().config_index, 2);
}

// Records stored before the thread count had its column get it from their measure options
// when the log is migrated, and a read-only open of the old file reads it the same way.
TEST_F(TuningLogTest, ALogFromBeforeThreadCountsReadsThemFromTheMeasureOptions) {
  const std::string w = "matmul:M=16,N=16,K=16";
  {
    TuningLog old = open_log("tuning.db", {.schema_version = 3});
    ASSERT_TRUE(old.append(std::vector<TuningRecord>{record_with_threads(w, 1, 0.30, 1),
                                                     record_with_threads(w, 2, 0.20, 2),
                                                     record_with_threads(w, 3, 0.10, 0)})
                    .is_ok());
  }
  TargetKey two = host_key();
  two.threads = 2;
  {
    TuningLog reader = open_log("tuning.db", {.read_only = true});
    EXPECT_EQ(reader.schema_version(), 3);
    Result<std::vector<TuningRecord>> best = reader.best(workload_of(w), two, 5);
    ASSERT_TRUE(best.is_ok()) << best.status().to_string();
    ASSERT_EQ(best->size(), 1u);
    EXPECT_EQ((*best)[0].config_index, 2);
  }
  TuningLog log = open_log();
  EXPECT_EQ(log.schema_version(), kTuningLogSchemaVersion);
  EXPECT_EQ(raw_sql(dir_ / "tuning.db",
                    "SELECT group_concat(threads) FROM (SELECT threads FROM records ORDER BY id)"),
            "1,2,0");
  Result<std::vector<TuningRecord>> best = log.best(workload_of(w), two, 5);
  ASSERT_TRUE(best.is_ok());
  ASSERT_EQ(best->size(), 1u);
  EXPECT_EQ((*best)[0].config_index, 2);
  EXPECT_EQ((*best)[0].target.threads, 2);
  EXPECT_EQ(log.best(workload_of(w), host_key(), 5)->size(), 3u);
}

// A URL is never taken for a relative file path: no folder named after its scheme appears.
TEST_F(TuningLogTest, RefusesAUrlAndCreatesNothing) {
  const fs::path before = fs::current_path();
  fs::current_path(dir_);
  for (const char* url : {"mysql://kiln@127.0.0.1:3306/kiln", "sqlite:///tmp/x.db"}) {
    Result<TuningLog> log = TuningLog::open(url);
    ASSERT_FALSE(log.is_ok()) << url;
    EXPECT_EQ(log.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(log.status().message(), HasSubstr("URL")) << url;
  }
  // A PostgreSQL URL is a server to connect to (none listens on port 1), never a file; its
  // password stays out of the message.
  Result<TuningLog> unreachable = TuningLog::open("postgresql://kiln:secret@127.0.0.1:1/kiln");
  ASSERT_FALSE(unreachable.is_ok());
  EXPECT_EQ(unreachable.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(unreachable.status().message(), HasSubstr("postgresql://kiln:***@127.0.0.1:1/kiln"));
  EXPECT_THAT(unreachable.status().message(), Not(HasSubstr("secret")));
  EXPECT_TRUE(fs::is_empty(dir_));
  fs::current_path(before);
  // Paths that merely hold a colon are files.
  EXPECT_TRUE(check_tuning_log_location("logs/run:1.db").is_ok());
  EXPECT_TRUE(check_tuning_log_location("./a://b").is_ok());
}

TEST_F(TuningLogTest, RefusesANewerSchemaAndLeavesTheFileAlone) {
  const fs::path path = dir_ / "tuning.db";
  {
    TuningLog log = open_log();
    ASSERT_TRUE(
        log.append(std::vector<TuningRecord>{record_of("matmul:M=1,N=1,K=1", host_key(), 1, {0.1})})
            .is_ok());
  }
  raw_sql(path, "PRAGMA user_version = 99");
  const std::string before = file_bytes(path);
  for (bool read_only : {false, true}) {
    Result<TuningLog> log = TuningLog::open(path, {.read_only = read_only});
    ASSERT_FALSE(log.is_ok());
    EXPECT_EQ(log.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_THAT(log.status().message(), HasSubstr("schema version 99"));
    EXPECT_THAT(log.status().message(), HasSubstr("newer"));
  }
  EXPECT_EQ(file_bytes(path), before);
  EXPECT_EQ(raw_sql(path, "PRAGMA user_version"), "99");

  // An older kiln (schema 1) meeting this kiln's log is the same case.
  raw_sql(path, "PRAGMA user_version = " + std::to_string(kTuningLogSchemaVersion));
  Result<TuningLog> old = TuningLog::open(path, {.schema_version = 1});
  ASSERT_FALSE(old.is_ok());
  EXPECT_EQ(old.status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(TuningLogTest, RefusesAForeignSqliteFileAndCreatesNoTablesInIt) {
  const fs::path path = dir_ / "app.db";
  raw_sql(path, "CREATE TABLE people (name TEXT); INSERT INTO people VALUES ('ada')");
  const std::string before = file_bytes(path);
  for (bool read_only : {false, true}) {
    Result<TuningLog> log = TuningLog::open(path, {.read_only = read_only});
    ASSERT_FALSE(log.is_ok());
    EXPECT_EQ(log.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(log.status().message(), HasSubstr("is not a kiln tuning log"));
    EXPECT_THAT(log.status().message(), HasSubstr(path.string()));
  }
  EXPECT_EQ(file_bytes(path), before);
  EXPECT_EQ(raw_sql(path, "SELECT group_concat(name) FROM sqlite_schema"), "people");

  // A meta table that names another application is just as foreign.
  const fs::path other = dir_ / "other.db";
  raw_sql(other,
          "CREATE TABLE meta (key TEXT, value TEXT);"
          "INSERT INTO meta VALUES ('application', 'someone-else')");
  Result<TuningLog> log = TuningLog::open(other);
  ASSERT_FALSE(log.is_ok());
  EXPECT_THAT(log.status().message(), HasSubstr("does not name kiln"));
}

TEST_F(TuningLogTest, RefusesAFileThatIsNotSqlite) {
  const fs::path path = dir_ / "notes.db";
  std::ofstream(path) << "these are my notes, not a database\n" << std::string(5000, 'x');
  const std::string before = file_bytes(path);
  Result<TuningLog> log = TuningLog::open(path);
  ASSERT_FALSE(log.is_ok());
  EXPECT_EQ(log.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(log.status().message(), HasSubstr("not a SQLite database"));
  EXPECT_EQ(file_bytes(path), before);
  EXPECT_FALSE(fs::exists(dir_ / "notes.db-wal"));
}

TEST_F(TuningLogTest, ReportsADamagedLogAsDataLossAndLeavesItAlone) {
  const fs::path path = dir_ / "tuning.db";
  {
    TuningLog log = open_log();
    ASSERT_TRUE(
        log.append(std::vector<TuningRecord>{record_of("matmul:M=1,N=1,K=1", host_key(), 1, {0.1})})
            .is_ok());
  }
  // Keep the 100-byte header (so SQLite sees its own file) and wreck the rest of page 1, which
  // holds the schema.
  std::string bytes = file_bytes(path);
  ASSERT_GT(bytes.size(), 4096u);
  for (size_t i = 100; i < 4096; ++i) bytes[i] = static_cast<char>(0xA5);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  for (bool read_only : {false, true}) {
    Result<TuningLog> log = TuningLog::open(path, {.read_only = read_only});
    ASSERT_FALSE(log.is_ok());
    EXPECT_EQ(log.status().code(), StatusCode::kDataLoss) << log.status().to_string();
    EXPECT_THAT(log.status().message(), HasSubstr("damaged"));
  }
  EXPECT_EQ(file_bytes(path), bytes);
}

TEST(DefaultTuningLogPath, PrefersKilnDbThenXdgDataHomeThenHome) {
  struct SavedEnv {
    std::string name;
    std::optional<std::string> value;
  };
  std::vector<SavedEnv> saved;
  for (const char* name : {"KILN_DB", "XDG_DATA_HOME", "HOME"}) {
    const char* value = getenv(name);
    saved.push_back({name, value ? std::optional<std::string>(value) : std::nullopt});
  }
  setenv("KILN_DB", "/data/kiln.db", 1);
  setenv("XDG_DATA_HOME", "/xdg", 1);
  setenv("HOME", "/home/ada", 1);
  EXPECT_EQ(default_tuning_log_path().value(), fs::path("/data/kiln.db"));
  unsetenv("KILN_DB");
  EXPECT_EQ(default_tuning_log_path().value(), fs::path("/xdg/kiln/tuning.db"));
  setenv("XDG_DATA_HOME", "relative/ignored", 1);
  EXPECT_EQ(default_tuning_log_path().value(), fs::path("/home/ada/.local/share/kiln/tuning.db"));
  unsetenv("XDG_DATA_HOME");
  EXPECT_EQ(default_tuning_log_path().value(), fs::path("/home/ada/.local/share/kiln/tuning.db"));
  unsetenv("HOME");
  EXPECT_EQ(default_tuning_log_path().status().code(), StatusCode::kNotFound);
  for (const SavedEnv& env : saved) {
    if (env.value) {
      setenv(env.name.c_str(), env.value->c_str(), 1);
    } else {
      unsetenv(env.name.c_str());
    }
  }
}

/// A record of `workload` on this host for point `index` of its space.
TuningRecord host_record(const Workload& workload, const ConfigSpace& space, int64_t index,
                         double cost) {
  Config config = *space.at(index);
  nlohmann::json json = nlohmann::json::parse(space.to_json(config));
  TuningRecord record = record_of(workload.canonical(), host_key(), index, {cost});
  record.config_knobs = json["knobs"].dump();
  return record;
}

/// Runs `kernel` on random inputs and checks it against the reference implementation.
void expect_correct(const Workload& workload, Kernel& kernel) {
  std::mt19937_64 rng(7);
  std::vector<Buffer> buffers;
  for (const Shape& shape : workload.input_shapes()) {
    buffers.push_back(Buffer::create(shape).value());
    buffers.back().fill_random(rng);
  }
  buffers.push_back(Buffer::create(workload.output_shape()).value());
  Buffer expected = Buffer::create(workload.output_shape()).value();
  std::vector<float*> args;
  for (Buffer& b : buffers) args.push_back(b.data());
  kernel.run(args);
  std::vector<const float*> inputs(args.begin(), args.end() - 1);
  run_reference(workload, inputs, expected.data(), 1);
  EXPECT_LE(max_relative_error(args.back(), expected.data(), expected.size()), 1e-4);
}

TEST_P(TuningLogOnEachBackend, ApplyBestFallsBackToTheDefaultConfig) {
  const Workload workload = workload_of("matmul:M=24,N=16,K=8");
  const Target host = *resolve_host_target(Target{});
  const ConfigSpace space = *config_space(workload, host);
  Result<AppliedBest> without_log = apply_best(nullptr, workload, Target{}, 0);
  ASSERT_TRUE(without_log.is_ok()) << without_log.status().to_string();
  EXPECT_EQ(without_log->choice.source, ConfigSource::kDefault);
  EXPECT_EQ(without_log->choice.config.index, space.default_config().index);
  EXPECT_FALSE(without_log->choice.record.has_value());
  expect_correct(workload, *without_log->kernel);

  // Records for other hardware or other workloads do not count.
  TuningLog log = open_log();
  TuningRecord elsewhere = host_record(workload, space, 1, 0.001);
  elsewhere.target = {"cuda -arch=sm_80", ""};
  TuningRecord other_workload = host_record(workload, space, 1, 0.001);
  other_workload.workload = "matmul:M=25,N=16,K=8";
  ASSERT_TRUE(log.append(std::vector<TuningRecord>{elsewhere, other_workload}).is_ok());
  Result<AppliedBest> applied = apply_best(&log, workload, Target{}, 0);
  ASSERT_TRUE(applied.is_ok());
  EXPECT_EQ(applied->choice.source, ConfigSource::kDefault);
  EXPECT_STREQ(config_source_name(applied->choice.source), "default");
}

TEST_P(TuningLogOnEachBackend, ApplyBestBuildsTheFastestValidRecordsConfig) {
  const Workload workload = workload_of("matmul:M=24,N=16,K=8");
  const Target host = *resolve_host_target(Target{});
  const ConfigSpace space = *config_space(workload, host);
  ASSERT_GT(space.size(), 4);
  const int64_t fast = space.size() - 1, slow = 1, stale = space.size() + 5;
  TuningLog log = open_log();
  TuningRecord gone = host_record(workload, space, 0, 0.0001);  // left the space
  gone.config_index = stale;
  TuningRecord wrong = host_record(workload, space, 2, 0.00001);
  wrong.error = MeasureError::kWrongAnswer;
  ASSERT_TRUE(
      log.append(std::vector<TuningRecord>{host_record(workload, space, slow, 0.002),
                                           host_record(workload, space, fast, 0.001), gone, wrong})
          .is_ok());
  Result<AppliedBest> applied = apply_best(&log, workload, Target{}, 0);
  ASSERT_TRUE(applied.is_ok()) << applied.status().to_string();
  EXPECT_EQ(applied->choice.source, ConfigSource::kRecord);
  EXPECT_STREQ(config_source_name(applied->choice.source), "record");
  EXPECT_EQ(applied->choice.config.index, fast);
  ASSERT_TRUE(applied->choice.record.has_value());
  EXPECT_DOUBLE_EQ(applied->choice.record->median_cost(), 0.001);
  expect_correct(workload, *applied->kernel);
}

// A record stored before a knob was appended to its template (here conv2d's tile_oh) names
// only the knobs of its day: it still parses, to the kernel it was measured as, and stays the
// best the log answers with.
TEST_P(TuningLogOnEachBackend, RecordsFromBeforeAnAppendedKnobKeepTheirConfig) {
  const Workload workload = workload_of("conv2d:N=1,C=8,H=6,W=6,K=16,R=3,S=3,stride=1,pad=1");
  const Target host = *resolve_host_target(Target{});
  const ConfigSpace space = *config_space(workload, host);
  ASSERT_EQ(space.knobs().back().name, "tile_oh");
  const int64_t index = space.size() / 3 - 2;  // tile_oh at its first choice
  TuningRecord old = host_record(workload, space, index, 0.0005);
  nlohmann::json knobs = nlohmann::json::parse(old.config_knobs);
  knobs.erase("tile_oh");
  old.config_knobs = knobs.dump();

  Result<Config> parsed = space.parse(old.config_json());
  ASSERT_TRUE(parsed.is_ok()) << parsed.status().to_string();
  EXPECT_EQ(parsed->index, index);
  EXPECT_EQ(parsed->values, space.at(index)->values);
  // Without its index, a config must still name every knob; nor may it skip one in the middle.
  EXPECT_FALSE(space.parse("{\"knobs\":" + old.config_knobs + "}").is_ok());
  knobs.erase(space.knobs().front().name);
  EXPECT_FALSE(
      space.parse("{\"index\":" + std::to_string(index) + ",\"knobs\":" + knobs.dump() + "}")
          .is_ok());

  TuningLog log = open_log();
  ASSERT_TRUE(log.append(std::vector<TuningRecord>{old}).is_ok());
  Result<AppliedBest> applied = apply_best(&log, workload, Target{}, 0);
  ASSERT_TRUE(applied.is_ok()) << applied.status().to_string();
  EXPECT_EQ(applied->choice.source, ConfigSource::kRecord);
  EXPECT_EQ(applied->choice.config.index, index);
  expect_correct(workload, *applied->kernel);
}

}  // namespace
}  // namespace kiln::core
