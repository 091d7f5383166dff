// `kiln model eval` run as a real process against tuning logs seeded through the library with
// made-up but learnable costs.

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "compiler_core/db/record.h"
#include "compiler_core/db/tuning_log.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/te/workload.h"

namespace {

namespace fs = std::filesystem;
namespace core = kiln::core;

// A cross target: its key is its own string, whatever machine runs the test.
constexpr const char* kTarget = "llvm -mtriple=x86_64-linux-gnu -mcpu=znver4 -mattr=+avx512f";
constexpr const char* kWorkload = "matmul:M=128,N=128,K=128";
constexpr const char* kOther = "matmul:M=96,N=160,K=64";

struct Outcome {
  int exit_code = -1;
  std::string out;
  std::string err;
};

Outcome run_kiln(const std::string& arguments) {
  char err_path[] = "/tmp/kiln_model_cli_stderr_XXXXXX";
  const int fd = mkstemp(err_path);
  if (fd < 0) return {};
  close(fd);
  const std::string command = std::string(KILN_BINARY) + " " + arguments + " 2>" + err_path;
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

class KilnModelCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kiln_model_cli_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    db_ = dir_ / "tuning.db";
  }
  void TearDown() override { fs::remove_all(dir_); }

  /// Appends `count` records of `workload` whose costs fall with the register tile's size.
  void seed(const std::string& workload, int count) {
    core::Workload w = *core::parse_workload(workload);
    core::Target t = *core::parse_target(kTarget);
    core::ConfigSpace space = *core::config_space(w, t);
    std::vector<core::TuningRecord> records;
    for (int i = 0; i < count; ++i) {
      core::Config c = *space.at((i * 37) % space.size());
      core::TuningRecord r;
      r.workload = w.canonical();
      r.target = core::TargetKey{t.str(), ""};
      r.config_index = c.index;
      r.config_knobs = nlohmann::json::parse(space.to_json(c)).at("knobs").dump();
      const double tile = double(space.value(c, "tile_m") * space.value(c, "tile_n_vectors"));
      r.costs = {1e-3 / (1 + std::log2(tile) + (space.value(c, "pack_b") ? 1 : 0))};
      r.agent = "test";
      records.push_back(r);
    }
    auto log = core::TuningLog::open(db_);
    ASSERT_TRUE(log.is_ok()) << log.status().to_string();
    ASSERT_TRUE(log->append(records).is_ok());
  }

  std::string eval_args(const std::string& workload) const {
    return "model eval --db " + db_.string() + " --workload " + workload + " --target '" + kTarget +
           "'";
  }

  fs::path dir_;
  fs::path db_;
};

TEST_F(KilnModelCli, EvalReportsTrainedAndPretrainedScoresAsJson) {
  seed(kWorkload, 160);
  seed(kOther, 120);
  Outcome o = run_kiln(eval_args(kWorkload) + " --json --seed 3");
  ASSERT_EQ(o.exit_code, 0) << o.err;
  nlohmann::json j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j.at("workload"), kWorkload);
  EXPECT_EQ(j.at("records"), 160);
  EXPECT_EQ(j.at("held_out"), 80);
  EXPECT_EQ(j.at("top_true"), 1);
  EXPECT_EQ(j.at("k"), 4);
  EXPECT_EQ(j.at("trained").at("train_records"), 80);
  EXPECT_GT(j.at("trained").at("spearman").get<double>(), 0.5);
  EXPECT_EQ(j.at("pretrained").at("train_records"), 120);
  EXPECT_EQ(j.at("pretrained").at("train_workloads"), 1);
  EXPECT_TRUE(j.at("pretrained").at("spearman").is_number());
  EXPECT_GE(j.at("feature_version").get<int>(), 1);
}

TEST_F(KilnModelCli, EvalWithoutOtherShapesSaysSo) {
  seed(kWorkload, 40);
  Outcome o = run_kiln(eval_args(kWorkload) + " --top-k 3");
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find("Spearman"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("predicted top 3"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("no other matmul workload"), std::string::npos) << o.out;
  Outcome j = run_kiln(eval_args(kWorkload) + " --json");
  ASSERT_EQ(j.exit_code, 0) << j.err;
  EXPECT_TRUE(nlohmann::json::parse(j.out).at("pretrained").is_null());
}

TEST_F(KilnModelCli, TooFewRecordsIsBadInput) {
  seed(kOther, 30);
  Outcome o = run_kiln(eval_args(kWorkload));
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE(o.err.find("too few OK records of matmul:M=128,N=128,K=128"), std::string::npos)
      << o.err;
}

TEST_F(KilnModelCli, UsageErrorsExitTwo) {
  Outcome missing = run_kiln("model eval --db " + db_.string());
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("--workload"), std::string::npos) << missing.err;

  Outcome no_db = run_kiln(eval_args(kWorkload));  // db_ was never created
  EXPECT_EQ(no_db.exit_code, 2);
  EXPECT_NE(no_db.err.find("error:"), std::string::npos) << no_db.err;

  Outcome action = run_kiln("model train");
  EXPECT_EQ(action.exit_code, 2);
  EXPECT_NE(action.err.find("unknown action 'train' for 'kiln model'"), std::string::npos)
      << action.err;

  Outcome none = run_kiln("model");
  EXPECT_EQ(none.exit_code, 2);

  Outcome help = run_kiln("model eval --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--train-percent"), std::string::npos) << help.out;
}

}  // namespace
