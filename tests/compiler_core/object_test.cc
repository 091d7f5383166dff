// Cross-compilation: every operator compiles to an object file for an ARM board.

#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "compiler_core/build.h"
#include "compiler_core/schedule/templates.h"

namespace kiln::core {
namespace {

constexpr uint16_t kElfMachineAarch64 = 183;
constexpr uint16_t kElfMachineX86_64 = 62;

uint16_t elf_machine(const std::vector<uint8_t>& object) {
  if (object.size() < 20 || std::memcmp(object.data(),
                                        "\x7f"
                                        "ELF",
                                        4) != 0)
    return 0;
  return uint16_t(object[18] | (object[19] << 8));  // e_machine, little-endian
}

class ObjectForEveryOperator : public ::testing::TestWithParam<const char*> {};

TEST_P(ObjectForEveryOperator, Aarch64ObjectHasTheArmMachine) {
  Result<Workload> w = parse_workload(GetParam());
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  Result<Target> t = parse_target("llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72");
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->vector_lanes, 4);
  Result<ConfigSpace> space = config_space(*w, *t);
  ASSERT_TRUE(space.is_ok());
  Result<std::vector<uint8_t>> object = build_object(*w, *t, space->default_config());
  ASSERT_TRUE(object.is_ok()) << object.status().to_string();
  EXPECT_EQ(elf_machine(*object), kElfMachineAarch64);
}

INSTANTIATE_TEST_SUITE_P(
    Operators, ObjectForEveryOperator,
    ::testing::Values("matmul:M=64,N=64,K=64", "dense:M=1,N=100,K=64,bias=1,act=relu",
                      "batch_matmul:B=2,M=16,N=16,K=16",
                      "conv2d:N=1,C=16,H=14,W=14,K=16,R=3,S=3,stride=1,pad=1",
                      "conv2d:N=1,C=8,H=14,W=14,K=8,R=3,S=3,stride=2,pad=1,groups=2,layout=NHWC",
                      "depthwise_conv2d:N=1,C=32,H=14,W=14,R=3,S=3,stride=1,pad=1"));

TEST(Object, X86TripleGivesAnX86Object) {
  Result<Workload> w = parse_workload("matmul:M=32,N=32,K=32");
  Result<Target> t = parse_target("llvm -mtriple=x86_64-linux-gnu -mcpu=skylake-avx512");
  ASSERT_TRUE(w.is_ok() && t.is_ok());
  Result<std::vector<uint8_t>> object =
      build_object(*w, *t, config_space(*w, *t)->default_config());
  ASSERT_TRUE(object.is_ok()) << object.status().to_string();
  EXPECT_EQ(elf_machine(*object), kElfMachineX86_64);
}

TEST(Object, UnknownTripleIsInvalidArgument) {
  Result<Workload> w = parse_workload("matmul:M=32,N=32,K=32");
  Result<Target> t = parse_target("llvm -mtriple=nonsense-unknown-none");
  ASSERT_TRUE(w.is_ok() && t.is_ok());
  Result<std::vector<uint8_t>> object =
      build_object(*w, *t, config_space(*w, *t)->default_config());
  ASSERT_FALSE(object.is_ok());
  EXPECT_EQ(object.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(object.status().message().find("nonsense"), std::string::npos);
}

TEST(Object, KernelsForOtherTriplesAreNotRunHere) {
  Result<Workload> w = parse_workload("matmul:M=32,N=32,K=32");
  Result<Target> t = parse_target("llvm -mtriple=aarch64-linux-gnu");
  ASSERT_TRUE(w.is_ok() && t.is_ok());
  Result<std::unique_ptr<Kernel>> k = build_kernel(*w, *t, config_space(*w, *t)->default_config());
  ASSERT_FALSE(k.is_ok());
  EXPECT_EQ(k.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kiln::core
