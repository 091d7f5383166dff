// Whole-model tuning from the command line: the tasks of ResNet-18 (exported by PyTorch at test
// time), `kiln tune --model` on a model of a heavy and a light convolution with real
// measurement, and its refusals.

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/model/two_conv_model.h"
#include "tests/support/process.h"
#include "tuner/model_tuning.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

class ModelTuningCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("kiln_model_tuning_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  test::Finished run(const std::vector<std::string>& args, const std::string& tag) {
    return test::run_to_end(args, dir_, tag);
  }
  std::string write_two_conv_model() {
    const std::string path = (dir_ / "two_conv.onnx").string();
    std::ofstream(path, std::ios::binary) << model_test::two_conv_model();
    return path;
  }
  fs::path dir_;
};

TEST_F(ModelTuningCli, ResNet18HasSixteenDistinctTasksWeightedByUse) {
  test::Finished probe = run({"/usr/bin/python3", "-c", "import torch, torchvision"}, "probe");
  if (probe.code != 0) {
    if (std::getenv("KILN_REQUIRE_MODEL") != nullptr) FAIL() << "python3-torch is missing";
    GTEST_SKIP() << "python3-torch or python3-torchvision is missing";
  }
  test::Finished exported =
      run({"/usr/bin/python3", KILN_EXPORT_SCRIPT, "resnet18", dir_.string()}, "export");
  ASSERT_EQ(exported.code, 0) << exported.err;
  Result<std::vector<tuner::ModelTask>> tasks =
      tuner::extract_model_tasks_from_file((dir_ / "model.onnx").string());
  ASSERT_TRUE(tasks.is_ok()) << tasks.status().message();
  std::map<std::string, int64_t> weight;
  int64_t kernels = 0;
  for (const tuner::ModelTask& t : *tasks) {
    EXPECT_TRUE(weight.emplace(t.workload, t.weight).second) << "listed twice: " << t.workload;
    kernels += t.weight;
  }
  // 20 convolutions (the stem, 16 in the basic blocks, 3 downsampling 1x1) and the classifier.
  EXPECT_EQ(tasks->size(), 16u);
  EXPECT_EQ(kernels, 21);
  const std::string conv = "conv2d:N=1,";
  // In each stage after the first, the first block's two 3x3 convolutions and the second
  // block's first one differ; the residual convolutions of both blocks are one task.
  EXPECT_EQ(weight[conv + "C=3,H=224,W=224,K=64,R=7,S=7,stride=2,pad=3,bias=1,act=relu"], 1);
  EXPECT_EQ(weight[conv + "C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1,bias=1,act=relu"], 2);
  EXPECT_EQ(weight[conv + "C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1,bias=1,residual=1,act=relu"],
            2);
  EXPECT_EQ(weight[conv + "C=64,H=56,W=56,K=128,R=3,S=3,stride=2,pad=1,bias=1,act=relu"], 1);
  EXPECT_EQ(weight[conv + "C=64,H=56,W=56,K=128,R=1,S=1,stride=2,pad=0,bias=1"], 1);
  EXPECT_EQ(weight[conv + "C=128,H=28,W=28,K=128,R=3,S=3,stride=1,pad=1,bias=1,act=relu"], 1);
  EXPECT_EQ(weight[conv + "C=512,H=7,W=7,K=512,R=3,S=3,stride=1,pad=1,bias=1,residual=1,act=relu"],
            2);
  EXPECT_EQ(weight["dense:M=1,N=1000,K=512,bias=1"], 1);
}

TEST_F(ModelTuningCli, TuneModelGivesTheHeavyTaskMoreTrialsAndCompileUsesTheRecords) {
  const std::string model = write_two_conv_model();
  const std::string db = (dir_ / "log.db").string();
  const std::string plot = (dir_ / "latency.svg").string();
  test::Finished tuned =
      run({KILN_BINARY, "tune", "--model", model, "--target", "llvm", "--trials", "80", "--batch",
           "8", "--threads", "1", "--db", db, "--plot", plot, "--json"},
          "tune");
  ASSERT_EQ(tuned.code, 0) << tuned.err;
  EXPECT_NE(tuned.err.find("estimated latency"), std::string::npos) << tuned.err;
  nlohmann::json out = nlohmann::json::parse(tuned.out);
  EXPECT_EQ(out["trials"], 80);
  EXPECT_EQ(out["scheduler"], "gradient");
  ASSERT_EQ(out["tasks"].size(), 2u);
  std::map<std::string, nlohmann::json> task;
  for (const nlohmann::json& t : out["tasks"]) task[t["workload"]] = t;
  ASSERT_TRUE(task.count(model_test::kHeavyTask)) << out.dump();
  ASSERT_TRUE(task.count(model_test::kLightTask)) << out.dump();
  const int64_t heavy = task[model_test::kHeavyTask]["trials"];
  const int64_t light = task[model_test::kLightTask]["trials"];
  EXPECT_EQ(heavy + light, 80);
  EXPECT_GE(light, 8) << "the warm-up gives every task a batch";
  EXPECT_GT(heavy, 2 * light) << out.dump();
  const double latency = out["latency_s"];
  EXPECT_NEAR(latency,
              double(task[model_test::kHeavyTask]["best"]["time_s"]) +
                  double(task[model_test::kLightTask]["best"]["time_s"]),
              1e-12);
  EXPECT_GT(out["trials_to_95pct"].get<int64_t>(), 0);
  std::ifstream svg(plot);
  std::string text((std::istreambuf_iterator<char>(svg)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("estimated latency (ms)"), std::string::npos);

  // The same command again: the job is complete, nothing is measured.
  test::Finished again = run({KILN_BINARY, "tune", "--model", model, "--target", "llvm", "--trials",
                              "80", "--batch", "8", "--threads", "1", "--db", db, "--json"},
                             "again");
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(nlohmann::json::parse(again.out)["resumed"], 80);

  test::Finished compiled = run({KILN_BINARY, "compile", model, "--target", "llvm", "--db", db,
                                 "--threads", "1", "-o", (dir_ / "m.kmod").string(), "--json"},
                                "compile");
  ASSERT_EQ(compiled.code, 0) << compiled.err;
  EXPECT_EQ(nlohmann::json::parse(compiled.out)["tuned_tasks"], 2);
}

TEST_F(ModelTuningCli, RefusesWhatItCannotTune) {
  const std::string model = write_two_conv_model();
  const std::string db = (dir_ / "log.db").string();
  test::Finished both = run({KILN_BINARY, "tune", "--model", model, "--workload",
                             "matmul:M=8,N=8,K=8", "--target", "llvm", "--db", db},
                            "both");
  EXPECT_EQ(both.code, 2);
  EXPECT_NE(both.err.find("either --workload"), std::string::npos) << both.err;
  test::Finished neither = run({KILN_BINARY, "tune", "--target", "llvm", "--db", db}, "neither");
  EXPECT_EQ(neither.code, 2);
  test::Finished scheduler = run({KILN_BINARY, "tune", "--model", model, "--target", "llvm",
                                  "--scheduler", "greedy", "--db", db},
                                 "scheduler");
  EXPECT_EQ(scheduler.code, 2);
  EXPECT_NE(scheduler.err.find("gradient or round-robin"), std::string::npos) << scheduler.err;
  test::Finished without_model = run({KILN_BINARY, "tune", "--workload", "matmul:M=8,N=8,K=8",
                                      "--target", "llvm", "--scheduler", "round-robin", "--db", db},
                                     "without_model");
  EXPECT_EQ(without_model.code, 2);
  EXPECT_NE(without_model.err.find("--scheduler needs --model"), std::string::npos);
  const std::string garbage = (dir_ / "garbage.onnx").string();
  std::ofstream(garbage) << "not a model";
  test::Finished bad =
      run({KILN_BINARY, "tune", "--model", garbage, "--target", "llvm", "--db", db}, "garbage");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("garbage.onnx"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(db)) << "nothing is tuned, so no log is made";
}

}  // namespace
}  // namespace kiln
