// Config spaces: restriction to the points a predicate accepts, and the register budget that
// keeps ARM spaces to tiles that fit NEON's 32 registers while x86 spaces keep every point.
#include "compiler_core/schedule/config_space.h"

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "compiler_core/schedule/templates.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"

namespace kiln::core {
namespace {

using ::testing::HasSubstr;

ConfigSpace two_knobs() { return ConfigSpace("t", {{"a", {1, 2, 3}}, {"b", {10, 20}}}); }

TEST(ConfigSpaceRestriction, NumbersTheAcceptedPointsInMixedRadixOrder) {
  ConfigSpace space = two_knobs();
  ASSERT_EQ(space.size(), 6);
  // Accept a·b <= 40: (1,10) (2,10) (3,10) (1,20) (2,20); (3,20) is refused.
  space.restrict_to([](const std::vector<int64_t>& v) { return v[0] * v[1] <= 40; },
                    "a times b is over 40");
  EXPECT_TRUE(space.restricted());
  ASSERT_EQ(space.size(), 5);
  EXPECT_EQ(space.at(3)->values, (std::vector<int64_t>{1, 20}));
  EXPECT_EQ(space.at(4)->values, (std::vector<int64_t>{2, 20}));
  EXPECT_EQ(space.at(5).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(space.from_values({2, 20})->index, 4);
  EXPECT_EQ(space.parse(R"({"knobs": {"a": 2, "b": 20}})")->index, 4);
  EXPECT_EQ(space.parse(R"({"index": 4})")->values, (std::vector<int64_t>{2, 20}));

  Result<Config> refused = space.from_values({3, 20});
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidConfig);
  EXPECT_THAT(refused.status().message(), HasSubstr("a=3, b=20"));
  EXPECT_THAT(refused.status().message(), HasSubstr("a times b is over 40"));
}

TEST(ConfigSpaceRestriction, EveryIndexRoundTripsThroughItsValues) {
  ConfigSpace space = two_knobs();
  space.restrict_to([](const std::vector<int64_t>& v) { return v[0] != 2; }, "a is 2");
  for (int64_t i = 0; i < space.size(); ++i) {
    Config c = *space.at(i);
    EXPECT_EQ(space.from_values(c.values)->index, i);
    EXPECT_EQ(space.parse(space.to_json(c))->index, i);
  }
}

TEST(ConfigSpaceRestriction, AcceptingEveryPointChangesNothing) {
  ConfigSpace space = two_knobs();
  space.restrict_to([](const std::vector<int64_t>&) { return true; }, "never");
  EXPECT_FALSE(space.restricted());
  EXPECT_EQ(space.size(), 6);
}

TEST(ConfigSpaceRestriction, ADefaultOutsideFallsBackToTheFirstPoint) {
  ConfigSpace space = two_knobs();
  space.set_default(*space.from_values({3, 20}));
  space.restrict_to([](const std::vector<int64_t>& v) { return v[0] * v[1] <= 40; }, "too big");
  EXPECT_EQ(space.default_config().index, 0);
}

Target target(std::string_view text) { return *parse_target(text); }

const char* const kWorkloads[] = {
    "matmul:M=1024,N=1024,K=1024",
    "dense:M=1,N=1000,K=2048,bias=1,act=relu",
    "batch_matmul:B=12,M=128,N=128,K=64",
    "conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1",
    "conv2d:N=1,C=3,H=224,W=224,K=64,R=7,S=7,stride=2,pad=3",
    "conv2d:N=1,C=64,H=28,W=28,K=64,R=3,S=3,stride=1,pad=1,layout=NHWC,groups=2,dilation=2",
    "depthwise_conv2d:N=1,C=256,H=28,W=28,R=3,S=3,stride=1,pad=1",
};

TEST(RegisterBudget, TargetsReportTheirVectorRegisters) {
  Target a72 = target("llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72");
  EXPECT_TRUE(a72.is_aarch64());
  EXPECT_FALSE(a72.is_x86());
  EXPECT_EQ(a72.vector_lanes, 4);
  EXPECT_EQ(a72.vector_registers(), 32);
  EXPECT_EQ(target("llvm -mtriple=x86_64-linux-gnu -mattr=+avx512f").vector_registers(), 32);
  EXPECT_EQ(target("llvm -mtriple=x86_64-linux-gnu -mattr=+avx2").vector_registers(), 16);
  EXPECT_TRUE(target("llvm -mtriple=x86_64-linux-gnu").is_x86());
  EXPECT_FALSE(target("cuda -arch=sm_90").is_x86());
}

// Every point of an ARM space keeps its register tile within NEON's 32 registers, counted as
// the templates count it: accumulators, one step's operand vectors and a broadcast.
int64_t registers_of(const ConfigSpace& space, const Config& c) {
  auto v = [&](std::string_view name) { return space.value(c, name); };
  if (space.template_name() == "matmul") {
    return v("tile_m") * v("tile_n_vectors") + v("tile_n_vectors") + 1;
  }
  if (space.template_name() == "conv2d") {
    return v("tile_oh") * v("tile_ow") * v("block_k_vectors") + v("block_k_vectors") + 1;
  }
  if (space.knob_index("variant") >= 0 && v("variant") == 1) return v("tile_ow") + 2;
  return v("tile_ow") * v("block_c_vectors") + v("block_c_vectors") + 1;
}

TEST(RegisterBudget, ArmSpacesHoldOnlyTilesThatFitNeon) {
  for (const char* cpu : {"cortex-a72", "neoverse-n1"}) {
    const Target arm = target(std::string("llvm -mtriple=aarch64-linux-gnu -mcpu=") + cpu);
    for (const char* text : kWorkloads) {
      SCOPED_TRACE(text);
      const Workload w = *parse_workload(text);
      const ConfigSpace space = *config_space(w, arm);
      int64_t unrestricted = 1;
      for (const Knob& knob : space.knobs()) unrestricted *= int64_t(knob.choices.size());
      EXPECT_TRUE(space.restricted());
      EXPECT_LT(space.size(), unrestricted);
      for (int64_t i = 0; i < space.size(); ++i) {
        const Config c = *space.at(i);
        ASSERT_LE(registers_of(space, c), 32) << space.to_json(c);
      }
      EXPECT_LE(registers_of(space, space.default_config()), 32);
    }
  }
}

TEST(RegisterBudget, X86SpacesKeepEveryPointAndTheirIndices) {
  const Target x86 = target("llvm -mtriple=x86_64-linux-gnu -mattr=+avx512f");
  const ConfigSpace matmul = *config_space(*parse_workload(kWorkloads[0]), x86);
  EXPECT_FALSE(matmul.restricted());
  EXPECT_EQ(matmul.size(), 10 * 4 * 4 * 2 * 2 * 2 * 2 * 4);
  // The default 6 × 2-vector tile keeps the index records have stored it under.
  EXPECT_EQ(matmul.default_config().values, (std::vector<int64_t>{6, 2, 4, 0, 1, 1, 1, 0}));
  EXPECT_EQ(matmul.default_config().index, 4 + 1 * 10 + 2 * 40);
  const ConfigSpace conv = *config_space(*parse_workload(kWorkloads[3]), x86);
  EXPECT_FALSE(conv.restricted());
  // 56 columns are not whole AVX-512 vectors: no direct variant knob.
  EXPECT_EQ(conv.size(), 3 * 6 * 10 * 4 * 2 * 3);
}

}  // namespace
}  // namespace kiln::core
