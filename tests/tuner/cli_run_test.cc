// `kiln run` as a user meets it: the real binary in a child process, checked on exit code and
// on the one line it prints for each kind of bad input.

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

struct Outcome {
  int exit_code = -1;
  std::string output;  ///< stdout and stderr together
  std::string out;     ///< stdout alone (with stdout_only)
};

Outcome run_kiln(const std::string& arguments, bool stdout_only = false) {
  std::string command =
      std::string(KILN_BINARY) + " " + arguments + (stdout_only ? " 2>/dev/null" : " 2>&1");
  Outcome o;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return o;
  std::array<char, 4096> chunk;
  size_t n;
  while ((n = fread(chunk.data(), 1, chunk.size(), pipe)) > 0) o.output.append(chunk.data(), n);
  int status = pclose(pipe);
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (stdout_only) o.out = o.output;
  return o;
}

void expect_usage_error(const std::string& arguments, const std::string& substring) {
  SCOPED_TRACE(arguments);
  Outcome o = run_kiln(arguments);
  EXPECT_EQ(o.exit_code, 2) << o.output;
  EXPECT_NE(o.output.find("error: "), std::string::npos) << o.output;
  EXPECT_NE(o.output.find(substring), std::string::npos) << o.output;
  // One line naming the problem, not a crash report.
  EXPECT_EQ(o.output.find("internal error"), std::string::npos) << o.output;
}

TEST(KilnRun, BuildsChecksAndTimesAMatmulAsJson) {
  Outcome o = run_kiln("run --workload matmul:M=64,N=48,K=32 --target llvm --threads 1 --json",
                       /*stdout_only=*/true);
  ASSERT_EQ(o.exit_code, 0) << o.output;
  nlohmann::json j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["workload"], "matmul:M=64,N=48,K=32");
  EXPECT_EQ(j["source"], "default");
  EXPECT_EQ(j["correct"], true);
  EXPECT_GT(j["time_s"].get<double>(), 0);
  EXPECT_GT(j["gflops"].get<double>(), 0);
  EXPECT_TRUE(j["config"].contains("index"));
}

TEST(KilnRun, AcceptsAConfigByIndex) {
  Outcome o = run_kiln(
      "run --workload conv2d:N=1,C=8,H=9,W=9,K=8,R=3,S=3,stride=1,pad=1 --target llvm "
      "--config '{\"index\": 7}' --json",
      /*stdout_only=*/true);
  ASSERT_EQ(o.exit_code, 0) << o.output;
  nlohmann::json j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["config"]["index"], 7);
  EXPECT_EQ(j["correct"], true);
}

TEST(KilnRun, RejectsBadWorkloads) {
  expect_usage_error("run --workload matmul --target llvm", "matmul");
  expect_usage_error("run --workload softmax:N=3 --target llvm", "softmax");
  expect_usage_error("run --workload matmul:M=0,N=4,K=4 --target llvm", "M");
  expect_usage_error("run --workload matmul:M=-3,N=4,K=4 --target llvm", "M");
  expect_usage_error("run --workload matmul:M=4,N=4 --target llvm", "K");
  expect_usage_error("run --workload matmul:M=4,N=4,K=4,Q=1 --target llvm", "Q");
  expect_usage_error("run --workload matmul:M=4,N=x,K=4 --target llvm", "N");
}

TEST(KilnRun, RejectsAbsurdSizesWithoutAllocating) {
  expect_usage_error("run --workload matmul:M=1000000,N=1000000,K=1000000 --target llvm", "limit");
}

TEST(KilnRun, RejectsKernelsLargerThanThePaddedInput) {
  expect_usage_error(
      "run --workload conv2d:N=1,C=3,H=4,W=4,K=8,R=7,S=7,stride=1,pad=1 --target llvm", "kernel");
}

TEST(KilnRun, RejectsInvalidConfigs) {
  expect_usage_error(
      "run --workload matmul:M=64,N=64,K=64 --target llvm --config '{\"index\": 99999999}'",
      "index");
  expect_usage_error(
      "run --workload matmul:M=64,N=64,K=64 --target llvm --config '{\"knobs\": {\"tile_m\": 5}}'",
      "knob");
  expect_usage_error("run --workload matmul:M=64,N=64,K=64 --target llvm --config 'nope'", "JSON");
}

TEST(KilnRun, RejectsBadTargetsAndFlags) {
  expect_usage_error("run --workload matmul:M=4,N=4,K=4 --target tpu", "tpu");
  expect_usage_error("run --workload matmul:M=4,N=4,K=4 --target 'llvm -mtriple=aarch64-linux-gnu'",
                     "host");
  expect_usage_error("run --workload matmul:M=4,N=4,K=4 --target llvm --threads 0", "threads");
  expect_usage_error("run --workload matmul:M=4,N=4,K=4 --target llvm --bogus", "bogus");
  expect_usage_error("frobnicate", "frobnicate");
}

TEST(KilnRun, HelpListsTheFlags) {
  Outcome o = run_kiln("run --help");
  EXPECT_EQ(o.exit_code, 0);
  for (const char* flag : {"--workload", "--target", "--config", "--threads", "--json"}) {
    EXPECT_NE(o.output.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
