// `kiln emit` as a user meets it: the real binary in a child process, writing the code of a
// kernel for an ARM board (and this machine) as assembly, an object file and LLVM IR, and one
// line naming the problem for each kind of bad input.

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

constexpr uint16_t kElfMachineAarch64 = 183;
constexpr const char* kCortexA72 = "'llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72'";
constexpr const char* kMatmul = "matmul:M=64,N=64,K=64";

struct Outcome {
  int exit_code = -1;
  std::string output;  ///< stdout and stderr together, or stdout alone (stdout_only)
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
  return o;
}

void expect_usage_error(const std::string& arguments, const std::string& substring) {
  SCOPED_TRACE(arguments);
  Outcome o = run_kiln(arguments);
  EXPECT_EQ(o.exit_code, 2) << o.output;
  EXPECT_NE(o.output.find("error: "), std::string::npos) << o.output;
  EXPECT_NE(o.output.find(substring), std::string::npos) << o.output;
  EXPECT_EQ(o.output.find("internal error"), std::string::npos) << o.output;
}

std::string emit_args(const std::string& rest) {
  return std::string("emit --workload ") + kMatmul + " --target " + kCortexA72 + " " + rest;
}

class KilnEmit : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kiln_emit_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
};

TEST_F(KilnEmit, Aarch64AssemblyOfAMatmulUsesFusedMultiplyAdds) {
  Outcome o = run_kiln(emit_args(""), /*stdout_only=*/true);
  ASSERT_EQ(o.exit_code, 0) << o.output;
  EXPECT_NE(o.output.find("kiln_matmul:"), std::string::npos) << o.output.substr(0, 2000);
  EXPECT_NE(o.output.find("fmla"), std::string::npos) << o.output.substr(0, 2000);
}

TEST_F(KilnEmit, ObjectFormatWritesAnAarch64Elf) {
  const std::filesystem::path object = dir_ / "matmul.o";
  Outcome o = run_kiln(emit_args("--format obj -o " + object.string()));
  ASSERT_EQ(o.exit_code, 0) << o.output;
  EXPECT_EQ(o.output, "");  // the object went to the file, nothing to the terminal
  std::ifstream in(object, std::ios::binary);
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
  ASSERT_GE(bytes.size(), 20u);
  EXPECT_EQ(std::string(bytes.begin(), bytes.begin() + 4),
            "\x7f"
            "ELF");
  EXPECT_EQ(uint16_t(bytes[18] | (bytes[19] << 8)), kElfMachineAarch64);  // e_machine
}

TEST_F(KilnEmit, LlvmFormatPrintsTheOptimizedModule) {
  Outcome o = run_kiln(emit_args("--format llvm"), /*stdout_only=*/true);
  ASSERT_EQ(o.exit_code, 0) << o.output;
  EXPECT_NE(o.output.find("define "), std::string::npos) << o.output.substr(0, 2000);
  EXPECT_NE(o.output.find("target triple = \"aarch64"), std::string::npos);
}

TEST_F(KilnEmit, AssemblyGoesToTheFileOFlagNames) {
  const std::filesystem::path file = dir_ / "matmul.s";
  Outcome o = run_kiln(emit_args("-o " + file.string() + " --json"), /*stdout_only=*/true);
  ASSERT_EQ(o.exit_code, 0) << o.output;
  nlohmann::json j = nlohmann::json::parse(o.output);
  EXPECT_EQ(j["format"], "asm");
  EXPECT_EQ(j["output"], file.string());
  EXPECT_EQ(j["triple"], "aarch64-linux-gnu");
  EXPECT_EQ(j["cpu"], "cortex-a72");
  EXPECT_TRUE(j["config"].contains("index"));
  EXPECT_FALSE(j.contains("code"));
  EXPECT_EQ(j["bytes"].get<uint64_t>(), std::filesystem::file_size(file));
}

TEST_F(KilnEmit, HostTargetEmitsForThisMachine) {
  Outcome o = run_kiln(std::string("emit --workload ") + kMatmul + " --target llvm --json",
                       /*stdout_only=*/true);
  ASSERT_EQ(o.exit_code, 0) << o.output;
  nlohmann::json j = nlohmann::json::parse(o.output);
  EXPECT_EQ(j["target"], "llvm");
  EXPECT_FALSE(j["triple"].get<std::string>().empty());
  EXPECT_FALSE(j["cpu"].get<std::string>().empty());
  EXPECT_NE(j["code"].get<std::string>().find("kiln_matmul"), std::string::npos);
}

TEST_F(KilnEmit, AConfigByIndexIsCompiled) {
  Outcome o = run_kiln(emit_args("--config '{\"index\": 3}' --json"), /*stdout_only=*/true);
  ASSERT_EQ(o.exit_code, 0) << o.output;
  EXPECT_EQ(nlohmann::json::parse(o.output)["config"]["index"], 3);
}

TEST_F(KilnEmit, RejectsBadTargetsFormatsConfigsAndOutputs) {
  expect_usage_error(
      std::string("emit --workload ") + kMatmul + " --target 'llvm -mtriple=nonsense-unknown-none'",
      "nonsense");
  expect_usage_error(std::string("emit --workload ") + kMatmul +
                         " --target 'llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-z99'",
                     "cortex-z99");
  expect_usage_error(std::string("emit --workload ") + kMatmul + " --target tpu", "tpu");
  expect_usage_error(emit_args("--format exe"), "exe");
  expect_usage_error(emit_args("--format obj"), "-o FILE");
  expect_usage_error(emit_args("--config '{\"index\": 99999999}'"), "index");
  expect_usage_error(emit_args("--config 'nope'"), "JSON");
  expect_usage_error(emit_args("-o " + (dir_ / "no-such-folder" / "x.s").string()),
                     "no-such-folder");
  expect_usage_error("emit --target llvm", "--workload");
  expect_usage_error(emit_args("--bogus"), "bogus");
}

TEST_F(KilnEmit, HelpListsTheFlags) {
  Outcome o = run_kiln("emit --help");
  EXPECT_EQ(o.exit_code, 0);
  for (const char* flag : {"--workload", "--target", "--config", "--format", "--output", "-o FILE",
                           "--json", "asm", "obj", "llvm"}) {
    EXPECT_NE(o.output.find(flag), std::string::npos) << flag;
  }
  Outcome listed = run_kiln("--help");
  EXPECT_NE(listed.output.find("emit"), std::string::npos);
}

}  // namespace

namespace {

// The errors a user meets when pointing the fleet commands at ARM boards: each is a usage error
// (exit 2) that names what to do, before any connection is made (port 1 listens for nothing).
TEST(KilnFleetUsage, ArmTargetsAndWorkersAreCheckedBeforeConnecting) {
  expect_usage_error("agent --tracker 127.0.0.1:1 --key k --target " + std::string(kCortexA72),
                     "an agent builds for its own CPU");
  expect_usage_error("agent --tracker 127.0.0.1:1 --key k --worker 'no-such-kiln-worker x'",
                     "is not in PATH");
  expect_usage_error("agent --tracker 127.0.0.1:1 --key k --worker ' '", "--worker is empty");
  expect_usage_error("tune --workload " + std::string(kMatmul) +
                         " --target 'llvm -mcpu=cortex-a72' --tracker 127.0.0.1:1 --device-key k",
                     "names a CPU but no architecture");
  expect_usage_error("best --workload " + std::string(kMatmul) + " --target " + kCortexA72 +
                         " --emulated --server 127.0.0.1:1",
                     "--emulated reads a tuning log");
}

}  // namespace
