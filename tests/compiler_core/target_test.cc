#include "compiler_core/target/target.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kiln::core {
namespace {

using ::testing::HasSubstr;

Target parse_ok(std::string_view text) {
  Result<Target> t = parse_target(text);
  EXPECT_TRUE(t.is_ok()) << text << ": " << t.status().to_string();
  return t.is_ok() ? *t : Target{};
}

void expect_error(std::string_view text, std::string_view substring) {
  Result<Target> t = parse_target(text);
  ASSERT_FALSE(t.is_ok()) << text << " parsed as " << t->str();
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument) << text;
  EXPECT_THAT(t.status().message(), HasSubstr(std::string(substring))) << text;
}

TEST(ParseTarget, HostLlvm) {
  Target t = parse_ok("llvm");
  EXPECT_EQ(t.kind, TargetKind::kLlvm);
  EXPECT_TRUE(t.is_host);
  EXPECT_TRUE(t.triple.empty());
  EXPECT_TRUE(t.cpu.empty());
  EXPECT_TRUE(t.attrs.empty());
  EXPECT_EQ(t.vector_lanes, 4);
  EXPECT_EQ(t.str(), "llvm");
}

TEST(ParseTarget, CrossTriple) {
  Target t = parse_ok("llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72");
  EXPECT_FALSE(t.is_host);
  EXPECT_EQ(t.triple, "aarch64-linux-gnu");
  EXPECT_EQ(t.cpu, "cortex-a72");
  EXPECT_EQ(t.vector_lanes, 4);
  EXPECT_EQ(t.str(), "llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72");
}

TEST(ParseTarget, HostWithCpuAndAttrs) {
  Target t = parse_ok("llvm -mcpu=znver4 -mattr=+avx512f,+fma");
  EXPECT_TRUE(t.is_host);
  EXPECT_EQ(t.cpu, "znver4");
  EXPECT_EQ(t.attrs, (std::vector<std::string>{"+avx512f", "+fma"}));
  EXPECT_EQ(t.vector_lanes, 16);
}

TEST(ParseTarget, VectorLanesFromAttrs) {
  EXPECT_EQ(parse_ok("llvm -mattr=+avx2").vector_lanes, 8);
  EXPECT_EQ(parse_ok("llvm -mattr=+avx").vector_lanes, 8);
  EXPECT_EQ(parse_ok("llvm -mattr=+sse4.2").vector_lanes, 4);
  EXPECT_EQ(parse_ok("llvm -mattr=+avx512f,-avx512f,+avx2").vector_lanes, 8);
  EXPECT_EQ(parse_ok("llvm -mattr=-avx2").vector_lanes, 4);
  EXPECT_EQ(parse_ok("llvm -mtriple=x86_64-linux-gnu -mattr=+avx512f").vector_lanes, 16);
  EXPECT_EQ(parse_ok("llvm -mtriple=aarch64-linux-gnu -mattr=+neon").vector_lanes, 4);
}

TEST(ParseTarget, StrUsesCanonicalOrderAndRoundTrips) {
  Target t = parse_ok("  llvm   -mattr=+avx2,-fma -mcpu=skylake\t-mtriple=x86_64-linux-gnu ");
  EXPECT_EQ(t.str(), "llvm -mtriple=x86_64-linux-gnu -mcpu=skylake -mattr=+avx2,-fma");
  for (const char* text : {"llvm", "llvm -mcpu=znver4", "llvm -mattr=+avx512f",
                           "llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72", "cuda -arch=sm_90",
                           "cuda -arch=sm_90a"}) {
    Target parsed = parse_ok(text);
    EXPECT_EQ(parsed.str(), text);
    EXPECT_EQ(parse_ok(parsed.str()), parsed) << text;
  }
}

TEST(ParseTarget, Cuda) {
  Target t = parse_ok("cuda -arch=sm_90");
  EXPECT_EQ(t.kind, TargetKind::kCuda);
  EXPECT_EQ(t.arch, "sm_90");
  EXPECT_EQ(t.vector_lanes, 4);
  EXPECT_FALSE(t.is_host);
  EXPECT_EQ(parse_ok("cuda").str(), "cuda");
}

TEST(ParseTargetErrors, Empty) {
  expect_error("", "empty target string");
  expect_error("   ", "empty target string");
}

TEST(ParseTargetErrors, UnknownKindListsAcceptedKinds) {
  expect_error("opencl", "unknown target kind 'opencl'");
  expect_error("opencl", "accepted kinds: llvm, cuda");
  expect_error("-mcpu=znver4 llvm", "unknown target kind '-mcpu=znver4'");
}

TEST(ParseTargetErrors, UnknownFlagListsAcceptedFlags) {
  expect_error("llvm -mfoo=bar", "unknown flag '-mfoo' for llvm");
  expect_error("llvm -mfoo=bar", "accepted flags: -mtriple=TRIPLE, -mcpu=CPU, -mattr=");
  expect_error("llvm -arch=sm_90", "unknown flag '-arch' for llvm");
  expect_error("cuda -mcpu=x", "unknown flag '-mcpu' for cuda");
  expect_error("cuda -mcpu=x", "accepted flags: -arch=sm_NN");
  expect_error("llvm mcpu=znver4", "unknown flag 'mcpu'");
}

TEST(ParseTargetErrors, EmptyOrMissingValues) {
  expect_error("llvm -mcpu=", "flag -mcpu in target 'llvm -mcpu=' has no value");
  expect_error("llvm -mcpu", "has no value");
  expect_error("llvm -mtriple= aarch64-linux-gnu", "has no value");
  expect_error("cuda -arch=", "has no value");
}

TEST(ParseTargetErrors, MalformedValues) {
  expect_error("llvm -mattr=avx2", "malformed -mattr entry 'avx2'");
  expect_error("llvm -mattr=+avx2,", "malformed -mattr entry ''");
  expect_error("llvm -mattr=+", "malformed -mattr entry '+'");
  expect_error("cuda -arch=90", "malformed -arch '90'");
  expect_error("cuda -arch=sm_", "expected sm_NN");
  expect_error("llvm -mcpu=a -mcpu=b", "flag -mcpu given twice");
}

}  // namespace
}  // namespace kiln::core
