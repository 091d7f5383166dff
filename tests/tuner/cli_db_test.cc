// The tuning log from the command line: `kiln run --db` (apply-best), `kiln best`, and
// `kiln db export|import|stats`, run as real processes against logs seeded through the library.

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <nlohmann/json.hpp>

#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/db/record.h"
#include "compiler_core/db/tuning_log.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/te/workload.h"

namespace {

namespace fs = std::filesystem;
using kiln::core::TuningLog;
using kiln::core::TuningRecord;

constexpr const char* kWorkload = "matmul:M=48,N=32,K=16";

struct Outcome {
  int exit_code = -1;
  std::string out;  ///< stdout
  std::string err;  ///< stderr
};

/// Runs `kiln ARGUMENTS` through the shell with `environment` ("NAME=value ...") in front.
Outcome run_kiln(const std::string& arguments, const std::string& environment = "") {
  char err_path[] = "/tmp/kiln_cli_db_stderr_XXXXXX";
  const int fd = mkstemp(err_path);
  if (fd < 0) return {};
  close(fd);
  const std::string command =
      environment + " " + std::string(KILN_BINARY) + " " + arguments + " 2>" + err_path;
  Outcome o;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return o;
  std::array<char, 4096> chunk;
  size_t n;
  while ((n = fread(chunk.data(), 1, chunk.size(), pipe)) > 0) o.out.append(chunk.data(), n);
  const int status = pclose(pipe);
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream err(err_path);
  std::ostringstream text;
  text << err.rdbuf();
  o.err = text.str();
  fs::remove(err_path);
  return o;
}

std::string file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void raw_sql(const fs::path& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sql;
  sqlite3_close(db);
}

class KilnDbCli : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "kiln_cli_db_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    workload_ = *kiln::core::parse_workload(kWorkload);
    kiln::Result<kiln::core::Target> host = kiln::core::resolve_host_target({});
    ASSERT_TRUE(host.is_ok());
    host_key_ = *kiln::core::make_target_key(*host, 1);  // as `kiln run --threads 1`
    kiln::Result<kiln::core::ConfigSpace> space = kiln::core::config_space(workload_, *host);
    ASSERT_TRUE(space.is_ok());
    space_ = *space;
    ASSERT_GT(space_.size(), 10);
  }
  void TearDown() override {
    std::error_code error;
    fs::remove_all(dir_, error);
  }

  /// A record of kWorkload on this host for point `index` of its space.
  TuningRecord host_record(int64_t index, double cost) {
    kiln::core::Config config = *space_.at(index);
    TuningRecord record;
    record.workload = kWorkload;
    record.target = host_key_;
    record.config_index = index;
    record.config_knobs = nlohmann::json::parse(space_.to_json(config))["knobs"].dump();
    record.costs = {cost, cost * 1.2, cost * 0.9};
    record.agent = "agent-" + std::to_string(index);
    record.device = "this-machine";
    record.measured_at_ms = 1717243200000;
    return record;
  }

  /// A log at `name` with records of configs 3 (fastest), 5, 7 and a failed 9 on this host,
  /// and one of config 1 on cuda sm_80.
  fs::path seed(const std::string& name = "tuning.db") {
    const fs::path path = dir_ / name;
    kiln::Result<TuningLog> log = TuningLog::open(path);
    EXPECT_TRUE(log.is_ok()) << log.status().to_string();
    TuningRecord failed = host_record(9, 0.00001);
    failed.error = kiln::core::MeasureError::kWrongAnswer;
    TuningRecord gpu = host_record(1, 0.0001);
    gpu.target = {"cuda -arch=sm_80", ""};
    std::vector<TuningRecord> records = {host_record(5, 0.002), host_record(3, 0.001),
                                         host_record(7, 0.003), failed, gpu};
    EXPECT_TRUE(log->append(records).is_ok());
    return path;
  }

  std::string run_args(const std::string& extra) {
    return std::string("run --workload ") + kWorkload + " --target llvm --threads 1 --json " +
           extra;
  }

  fs::path dir_;
  kiln::core::Workload workload_;
  kiln::core::TargetKey host_key_;
  kiln::core::ConfigSpace space_;
};

TEST_F(KilnDbCli, RunBuildsTheFastestValidRecordsConfig) {
  const fs::path db = seed();
  Outcome o = run_kiln(run_args("--db " + db.string()));
  ASSERT_EQ(o.exit_code, 0) << o.err;
  nlohmann::json j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["source"], "record");
  EXPECT_EQ(j["config"]["index"], 3);
  EXPECT_EQ(j["correct"], true);
}

TEST_F(KilnDbCli, RunConfigFlagOverridesTheLog) {
  const fs::path db = seed();
  Outcome o = run_kiln(run_args("--db " + db.string() + " --config '{\"index\": 5}'"));
  ASSERT_EQ(o.exit_code, 0) << o.err;
  nlohmann::json j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["source"], "flag");
  EXPECT_EQ(j["config"]["index"], 5);
}

TEST_F(KilnDbCli, RunWithoutALogUsesTheDefaultAndCreatesNothing) {
  const fs::path missing = dir_ / "no" / "such" / "tuning.db";
  Outcome o = run_kiln(run_args("--db " + missing.string()));
  ASSERT_EQ(o.exit_code, 0) << o.err;
  nlohmann::json j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["source"], "default");
  EXPECT_EQ(j["config"]["index"], space_.default_config().index);
  EXPECT_FALSE(fs::exists(dir_ / "no"));

  // The default location, when nothing is there, is not created either.
  o = run_kiln(run_args(""), "KILN_DB= XDG_DATA_HOME=" + (dir_ / "xdg").string());
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(nlohmann::json::parse(o.out)["source"], "default");
  EXPECT_FALSE(fs::exists(dir_ / "xdg"));
}

TEST_F(KilnDbCli, RunFindsTheLogAtTheDefaultLocations) {
  const fs::path db = seed();
  Outcome o = run_kiln(run_args(""), "KILN_DB=" + db.string());
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(nlohmann::json::parse(o.out)["source"], "record");

  fs::create_directories(dir_ / "xdg" / "kiln");
  fs::copy_file(db, dir_ / "xdg" / "kiln" / "tuning.db");
  o = run_kiln(run_args(""), "KILN_DB= XDG_DATA_HOME=" + (dir_ / "xdg").string());
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(nlohmann::json::parse(o.out)["source"], "record");

  fs::create_directories(dir_ / "home" / ".local" / "share");
  fs::rename(dir_ / "xdg" / "kiln", dir_ / "home" / ".local" / "share" / "kiln");
  o = run_kiln(run_args(""), "KILN_DB= XDG_DATA_HOME= HOME=" + (dir_ / "home").string());
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(nlohmann::json::parse(o.out)["source"], "record");
}

TEST_F(KilnDbCli, BestListsTheFastestRecordsAsJson) {
  const fs::path db = seed();
  Outcome o = run_kiln(
      "best --threads 1 --workload matmul:K=16,N=32,M=48 --target llvm --top 5 --json --db " +
      db.string());
  ASSERT_EQ(o.exit_code, 0) << o.err;
  nlohmann::json j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["workload"], kWorkload);
  EXPECT_EQ(j["target"], "llvm");
  ASSERT_EQ(j["records"].size(), 3u);  // 3, 5, 7; never the wrong answer, never the GPU record
  const nlohmann::json& first = j["records"][0];
  EXPECT_EQ(first["config"]["index"], 3);
  EXPECT_TRUE(first["config"]["knobs"].is_object());
  EXPECT_DOUBLE_EQ(first["time_s"].get<double>(), 0.001);
  EXPECT_NEAR(first["gflops"].get<double>(), workload_.flops() / 0.001 / 1e9, 1e-9);
  EXPECT_EQ(first["agent"], "agent-3");
  EXPECT_EQ(first["measured_at"], "2024-06-01T12:00:00.000Z");
  EXPECT_EQ(j["records"][1]["config"]["index"], 5);
  EXPECT_EQ(j["records"][2]["config"]["index"], 7);

  o = run_kiln("best --threads 1 --workload " + std::string(kWorkload) + " --target llvm --db " +
               db.string());
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find("config #3"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find("config #5"), std::string::npos) << o.out;
}

TEST_F(KilnDbCli, BestAnswersOnlyForTheTargetMeasured) {
  const fs::path db = seed();
  const std::string args =
      "best --workload " + std::string(kWorkload) + " --json --db " + db.string() + " --target ";
  Outcome sm80 = run_kiln(args + "'cuda -arch=sm_80'");
  ASSERT_EQ(sm80.exit_code, 0) << sm80.err;
  nlohmann::json j = nlohmann::json::parse(sm80.out);
  ASSERT_EQ(j["records"].size(), 1u);
  EXPECT_EQ(j["records"][0]["config"]["index"], 1);
  Outcome sm90 = run_kiln(args + "'cuda -arch=sm_90'");
  ASSERT_EQ(sm90.exit_code, 0) << sm90.err;
  EXPECT_TRUE(nlohmann::json::parse(sm90.out)["records"].empty());
  // Another CPU: the host's features, but another model and CPU name.
  Outcome other = run_kiln(args + "'llvm -mtriple=x86_64-linux-gnu -mcpu=skylake'");
  ASSERT_EQ(other.exit_code, 0) << other.err;
  EXPECT_TRUE(nlohmann::json::parse(other.out)["records"].empty());
  Outcome text = run_kiln("best --threads 1 --workload " + std::string(kWorkload) + " --db " +
                          db.string() + " --target 'cuda -arch=sm_90'");
  ASSERT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("no valid records"), std::string::npos) << text.out;
}

TEST_F(KilnDbCli, BestReportsBadInput) {
  const fs::path db = seed();
  Outcome missing = run_kiln("best --threads 1 --workload " + std::string(kWorkload) +
                             " --target llvm --db " + (dir_ / "missing.db").string());
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("no tuning log at"), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(dir_ / "missing.db"));
  Outcome workload =
      run_kiln("best --threads 1 --workload matmul:M=4 --target llvm --db " + db.string());
  EXPECT_EQ(workload.exit_code, 2);
  EXPECT_NE(workload.err.find("error: "), std::string::npos);
  Outcome top = run_kiln("best --threads 1 --workload " + std::string(kWorkload) +
                         " --target llvm --top 0 --db " + db.string());
  EXPECT_EQ(top.exit_code, 2);
  EXPECT_NE(top.err.find("--top"), std::string::npos);
  // A URL is an error, never a relative file path: neither a read (kiln run, kiln best) nor a
  // write (kiln tune) creates a folder named after its scheme.
  for (const std::string url :
       {"mysql://kiln@127.0.0.1:1/kiln", "postgresql://kiln@127.0.0.1:1/kiln"}) {
    const bool postgres = url.starts_with("postgresql");
    for (const std::string& command :
         {"best --workload " + std::string(kWorkload) + " --target llvm --db " + url,
          run_args("--db " + url),
          "tune --workload " + std::string(kWorkload) + " --target llvm --trials 1 --db " + url}) {
      Outcome refused = run_kiln(command);
      // A scheme kiln does not open is the user's mistake; a PostgreSQL server that does not
      // answer is not.
      EXPECT_EQ(refused.exit_code, postgres ? 1 : 2) << command;
      EXPECT_NE(refused.err.find(postgres ? "cannot connect" : "is a mysql URL"), std::string::npos)
          << refused.err;
    }
  }
  EXPECT_FALSE(fs::exists("mysql:"));
  EXPECT_FALSE(fs::exists("postgresql:"));
  Outcome help = run_kiln("best --help");
  EXPECT_EQ(help.exit_code, 0);
  for (const char* flag : {"--workload", "--target", "--top", "--db", "--json"}) {
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag;
  }
}

TEST_F(KilnDbCli, ExportThenImportIntoAnEmptyLogGivesTheSameBestAnswers) {
  const fs::path db = seed();
  Outcome exported = run_kiln("db export --db " + db.string());
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  EXPECT_EQ(std::count(exported.out.begin(), exported.out.end(), '\n'), 5);
  const fs::path lines = dir_ / "records.jsonl";
  Outcome to_file = run_kiln("db export --db " + db.string() + " --output " + lines.string());
  ASSERT_EQ(to_file.exit_code, 0) << to_file.err;
  EXPECT_EQ(file_bytes(lines), exported.out);

  const fs::path from_file = dir_ / "from_file.db";
  Outcome imported =
      run_kiln("db import --json --db " + from_file.string() + " --input " + lines.string());
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_EQ(nlohmann::json::parse(imported.out)["imported"], 5);
  const fs::path from_stdin = dir_ / "from_stdin.db";
  Outcome piped = run_kiln("db import --db " + from_stdin.string() + " < " + lines.string());
  ASSERT_EQ(piped.exit_code, 0) << piped.err;

  for (std::string target : {"llvm", "'cuda -arch=sm_80'"}) {
    const std::string best = "best --threads 0 --workload " + std::string(kWorkload) +
                             " --top 10 --json --target " + target;
    Outcome original = run_kiln(best + " --db " + db.string());
    ASSERT_EQ(original.exit_code, 0) << original.err;
    EXPECT_FALSE(nlohmann::json::parse(original.out)["records"].empty());
    for (const fs::path& copy : {from_file, from_stdin}) {
      Outcome answer = run_kiln(best + " --db " + copy.string());
      ASSERT_EQ(answer.exit_code, 0) << answer.err;
      EXPECT_EQ(answer.out, original.out) << copy;
    }
  }
  Outcome again = run_kiln("db export --db " + from_file.string());
  EXPECT_EQ(again.out, exported.out);
}

TEST_F(KilnDbCli, AMalformedLineAbortsTheImportWithItsNumber) {
  const fs::path db = seed();
  Outcome exported = run_kiln("db export --db " + db.string());
  ASSERT_EQ(exported.exit_code, 0);
  std::istringstream in(exported.out);
  std::string first, second;
  std::getline(in, first);
  std::getline(in, second);
  const fs::path lines = dir_ / "bad.jsonl";
  std::ofstream(lines) << first << "\n"
                       << second << "\n{\"workload\": \"matmul:M=4,N=4,K=4\"}\n"
                       << first << "\n";
  const fs::path target = dir_ / "target.db";
  Outcome imported = run_kiln("db import --db " + target.string() + " --input " + lines.string());
  EXPECT_EQ(imported.exit_code, 2);
  EXPECT_NE(imported.err.find("line 3"), std::string::npos) << imported.err;
  EXPECT_NE(imported.err.find("nothing was imported"), std::string::npos) << imported.err;
  Outcome stats = run_kiln("db stats --json --db " + target.string());
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  EXPECT_EQ(nlohmann::json::parse(stats.out)["records"], 0);
}

TEST_F(KilnDbCli, StatsCountsTheLog) {
  const fs::path db = seed();
  Outcome o = run_kiln("db stats --json --db " + db.string());
  ASSERT_EQ(o.exit_code, 0) << o.err;
  nlohmann::json j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["records"], 5);
  EXPECT_EQ(j["valid"], 4);
  EXPECT_EQ(j["workloads"], 1);
  EXPECT_EQ(j["targets"], 2);
  EXPECT_EQ(j["by_error"]["WRONG_ANSWER"], 1);
  EXPECT_EQ(j["schema_version"], kiln::core::kTuningLogSchemaVersion);
  Outcome text = run_kiln("db stats --db " + db.string());
  ASSERT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("records    5 (4 valid)"), std::string::npos) << text.out;
}

TEST_F(KilnDbCli, FilesThatAreNotUsableLogsAreRefusedUnchanged) {
  struct Case {
    std::string name;
    int exit_code;
    std::string message;
  };
  // A text file and another application's SQLite file: wrong --db (2). A log from a newer kiln
  // and a damaged log: the right file in a state this kiln cannot use (1).
  const fs::path notes = dir_ / "notes.db";
  std::ofstream(notes) << "not a database\n" << std::string(4000, '#');
  const fs::path foreign = dir_ / "foreign.db";
  raw_sql(foreign, "CREATE TABLE people (name TEXT)");
  const fs::path newer = seed("newer.db");
  raw_sql(newer, "PRAGMA user_version = 99");
  const fs::path damaged = seed("damaged.db");
  std::string bytes = file_bytes(damaged);
  for (size_t i = 100; i < 4096 && i < bytes.size(); ++i) bytes[i] = '\x5a';
  std::ofstream(damaged, std::ios::binary | std::ios::trunc) << bytes;
  const std::vector<std::pair<fs::path, Case>> cases = {
      {notes, {"notes", 2, "not a kiln tuning log"}},
      {foreign, {"foreign", 2, "not a kiln tuning log"}},
      {newer, {"newer", 1, "newer"}},
      {damaged, {"damaged", 1, "damaged"}},
  };
  for (const auto& [path, c] : cases) {
    SCOPED_TRACE(c.name);
    const std::string before = file_bytes(path);
    const std::vector<std::string> commands = {
        run_args("--db " + path.string()),
        "best --workload " + std::string(kWorkload) + " --target llvm --db " + path.string(),
        "db stats --db " + path.string(),
        "db export --db " + path.string(),
        "db import --db " + path.string() + " --input /dev/null",
    };
    for (const std::string& command : commands) {
      Outcome o = run_kiln(command);
      EXPECT_EQ(o.exit_code, c.exit_code) << command << "\n" << o.err;
      EXPECT_NE(o.err.find("error: "), std::string::npos) << o.err;
      EXPECT_NE(o.err.find(c.message), std::string::npos) << o.err;
      EXPECT_EQ(o.err.find("internal error"), std::string::npos) << o.err;
    }
    EXPECT_EQ(file_bytes(path), before);
  }
}

TEST_F(KilnDbCli, DbUsage) {
  Outcome none = run_kiln("db");
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.err.find("export, import or stats"), std::string::npos);
  Outcome unknown = run_kiln("db vacuum");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("vacuum"), std::string::npos);
  Outcome help = run_kiln("db --help");
  EXPECT_EQ(help.exit_code, 0);
  for (const char* action : {"export", "import", "stats"}) {
    EXPECT_NE(help.out.find(action), std::string::npos) << action;
  }
  Outcome import_help = run_kiln("help db");
  EXPECT_EQ(import_help.exit_code, 0);
  Outcome bad_flag = run_kiln("db export --db x.db --bogus");
  EXPECT_EQ(bad_flag.exit_code, 2);
  EXPECT_NE(bad_flag.err.find("kiln db export"), std::string::npos) << bad_flag.err;
  Outcome missing_input = run_kiln("db import --db " + (dir_ / "x.db").string() + " --input " +
                                   (dir_ / "none.jsonl").string());
  EXPECT_EQ(missing_input.exit_code, 2);
  EXPECT_NE(missing_input.err.find("none.jsonl"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ / "x.db"));
}

}  // namespace
