#include "cost_model/features.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "compiler_core/ir/printer.h"
#include "compiler_core/lower/pipeline.h"
#include "compiler_core/schedule/templates.h"

namespace kiln::cost {
namespace {

namespace core = kiln::core;

core::Target avx512() {
  auto t = core::parse_target("llvm -mcpu=znver4 -mattr=+avx512f");
  EXPECT_TRUE(t.is_ok());
  return *t;
}

core::Workload workload(const std::string& text) {
  auto w = core::parse_workload(text);
  EXPECT_TRUE(w.is_ok()) << text;
  return *w;
}

core::Config config_of(const core::Workload& w, const core::Target& t,
                       const std::string& knobs_json) {
  auto space = core::config_space(w, t);
  EXPECT_TRUE(space.is_ok());
  auto c = space->parse(knobs_json);
  EXPECT_TRUE(c.is_ok()) << c.status().to_string();
  return *c;
}

std::vector<float> features(const core::Workload& w, const core::Target& t, const core::Config& c) {
  std::vector<float> row(kNumFeatures, -1.0f);
  Status status = candidate_features(w, t, c, row);
  EXPECT_TRUE(status.is_ok()) << status.to_string();
  return row;
}

/// Bitwise equality: features must be identical, not merely close.
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

/// The program as code generation receives it (the whole pipeline), printed.
std::string lowered(const core::Workload& w, const core::Target& t, const core::Config& c) {
  auto schedule = core::make_schedule(w, t, c);
  EXPECT_TRUE(schedule.is_ok());
  return core::ir::to_string(core::lower::lower_schedule(*schedule, "f").body);
}

const char* kTiled =
    R"({"knobs": {"tile_m": 6, "tile_n_vectors": 2, "unroll_k": 4, "order": 0, "pack_b": 1,
                  "parallel": 1, "pack_a": 1, "k_block": 0}})";

TEST(Features, LayoutHasOneUniqueNamePerFeature) {
  const std::vector<std::string>& names = feature_names();
  ASSERT_EQ(names.size(), static_cast<size_t>(kNumFeatures));
  std::set<std::string> unique(names.begin(), names.end());
  EXPECT_EQ(unique.size(), names.size());
  for (const std::string& n : names) EXPECT_FALSE(n.empty());
  EXPECT_EQ(names[kTrafficL2], "global.traffic_l2");
  EXPECT_EQ(names[kStatementOffset(1) + kLoopOffset(2) + kLoopKind], "stmt1.loop2.kind");
  EXPECT_EQ(names[kStatementOffset(0) + kAccessOffset(1) + kAccessLevelReuse + 3],
            "stmt0.access1.level3_reuse");
  EXPECT_GE(kFeatureVersion, 1);
}

TEST(Features, AreDeterministic) {
  core::Target t = avx512();
  core::Workload w = workload("matmul:M=256,N=192,K=320");
  auto space = core::config_space(w, t);
  ASSERT_TRUE(space.is_ok());
  for (int64_t index : {int64_t{0}, int64_t{17}, int64_t{4242}, space->size() - 1}) {
    auto c = space->at(index);
    ASSERT_TRUE(c.is_ok());
    std::vector<float> first = features(w, t, *c);
    std::vector<float> second = features(w, t, *c);
    EXPECT_TRUE(same_bits(first, second)) << "config " << index;
  }
}

TEST(Features, OfTheSameLoopNestAreTheSame) {
  core::Target t = avx512();
  core::Workload w = workload("matmul:M=64,N=96,K=200");
  auto schedule = core::make_schedule(w, t, config_of(w, t, kTiled));
  ASSERT_TRUE(schedule.is_ok());
  core::lower::LoopNest nest = core::lower::lower_for_features(*schedule);
  std::vector<float> a(kNumFeatures), b(kNumFeatures);
  features_of_loop_nest(nest, a);
  features_of_loop_nest(nest, b);
  EXPECT_TRUE(same_bits(a, b));
}

TEST(Features, ConfigsThatLowerToTheSameProgramGetIdenticalFeatures) {
  // With K = 128, K blocks of 256 and of 512 both cover all of K: the two configs differ in
  // their knobs but lower to the same program (the loop over K blocks has one iteration).
  core::Target t = avx512();
  core::Workload w = workload("matmul:M=64,N=64,K=128");
  const char* block256 =
      R"({"knobs": {"tile_m": 4, "tile_n_vectors": 2, "unroll_k": 2, "order": 1, "pack_b": 1,
                    "parallel": 0, "pack_a": 0, "k_block": 256}})";
  const char* block512 =
      R"({"knobs": {"tile_m": 4, "tile_n_vectors": 2, "unroll_k": 2, "order": 1, "pack_b": 1,
                    "parallel": 0, "pack_a": 0, "k_block": 512}})";
  core::Config a = config_of(w, t, block256);
  core::Config b = config_of(w, t, block512);
  ASSERT_NE(a.index, b.index);
  ASSERT_EQ(lowered(w, t, a), lowered(w, t, b)) << "the premise: one program for both";
  EXPECT_TRUE(same_bits(features(w, t, a), features(w, t, b)));
}

TEST(Features, DifferentProgramsGetDifferentFeatures) {
  core::Target t = avx512();
  core::Workload w = workload("matmul:M=128,N=128,K=128");
  auto space = core::config_space(w, t);
  ASSERT_TRUE(space.is_ok());
  std::vector<float> a = features(w, t, *space->at(0));
  std::vector<float> b = features(w, t, *space->at(1));  // tile_m 1 -> 2
  EXPECT_FALSE(same_bits(a, b));
}

TEST(Features, DescribeTheMicroKernel) {
  core::Target t = avx512();
  core::Workload w = workload("matmul:M=240,N=256,K=256");
  std::vector<float> f = features(w, t, config_of(w, t, kTiled));
  const float* main = f.data() + kStatementOffset(0);
  EXPECT_EQ(main[kStmtPresent], 1);
  EXPECT_EQ(main[kStmtIsReduction], 1);        // C.local = C.local + A * B
  EXPECT_EQ(main[kStmtFlopsPerIteration], 2);  // one multiply, one add
  EXPECT_EQ(main[kStmtVectorWidth], 16);       // AVX-512 float lanes
  EXPECT_EQ(main[kStmtVectorInnermost], 1);
  // A 6 x 2-vector register tile: 12 accumulators.
  EXPECT_FLOAT_EQ(main[kStmtAccumulatorVectors], static_cast<float>(std::log2(1.0 + 12)));
  EXPECT_GT(main[kStmtParallelExtent], 0);
  // The innermost loop is the vectorized one; the store target moves along it contiguously.
  EXPECT_EQ(main[kLoopOffset(0) + kLoopKind], 2);
  const float* store = main + kAccessOffset(0);
  EXPECT_EQ(store[kAccessIsReadWrite], 1);
  EXPECT_EQ(store[kAccessIsLocal], 1);
  EXPECT_EQ(store[kAccessVectorPattern], 2);
  // One of the two loads (A) is broadcast along the vector, the other (B) contiguous.
  std::multiset<float> patterns = {main[kAccessOffset(1) + kAccessVectorPattern],
                                   main[kAccessOffset(2) + kAccessVectorPattern]};
  EXPECT_EQ(patterns, (std::multiset<float>{1, 2}));
  EXPECT_FLOAT_EQ(f[kTotalFlops], static_cast<float>(std::log2(1.0 + 2.0 * 240 * 256 * 256)));
  EXPECT_GT(f[kParallelFraction], 0);
  EXPECT_EQ(f[kNumLocalBuffers], 3);  // A.packed, B.packed, C.local
}

TEST(Features, EstimatedCyclesFavourRegisterTilesThatCoverTheFmaLatencyAndFit) {
  core::Target t = avx512();
  core::Workload w = workload("matmul:M=240,N=256,K=256");
  auto tile = [&](int m, int n_vectors) {
    const std::string knobs = "{\"knobs\": {\"tile_m\": " + std::to_string(m) +
                              ", \"tile_n_vectors\": " + std::to_string(n_vectors) +
                              ", \"unroll_k\": 4, \"order\": 0, \"pack_b\": 1, "
                              "\"parallel\": 1, \"pack_a\": 1, \"k_block\": 0}}";
    return estimated_cycles(features(w, t, config_of(w, t, knobs)), t.vector_registers());
  };
  const double one = tile(1, 1), four = tile(2, 2), twelve = tile(6, 2), twenty_four = tile(6, 4);
  // One accumulator leaves the FMA pipeline idle most of the time; more hide its latency.
  EXPECT_GT(one, 2 * four);
  EXPECT_GT(four, twelve);
  // 24 accumulators and their loads still fit in AVX-512's 32 registers: as fast as 12.
  EXPECT_LE(twenty_four, twelve * 1.01);
  // 16 x 4 = 64 accumulators spill.
  EXPECT_GT(tile(16, 4), twenty_four);
  // The same program estimated for 16 registers (AVX2's count) spills sooner.
  std::vector<float> f = features(w, t, config_of(w, t, kTiled));
  EXPECT_GT(estimated_cycles(f, 8), estimated_cycles(f, 32));
}

TEST(Features, SeeParallelAndPackingKnobsThroughTheIr) {
  core::Target t = avx512();
  core::Workload w = workload("matmul:M=128,N=128,K=128");
  std::string serial = kTiled;
  serial.replace(serial.find("\"parallel\": 1"), 13, "\"parallel\": 0");
  std::vector<float> par = features(w, t, config_of(w, t, kTiled));
  std::vector<float> ser = features(w, t, config_of(w, t, serial));
  EXPECT_GT(par[kMaxParallelExtent], 0);
  EXPECT_EQ(ser[kMaxParallelExtent], 0);
  EXPECT_EQ(ser[kParallelFraction], 0);
}

TEST(Features, InvalidConfigIsReportedAndLeavesTheRowAlone) {
  core::Target t = avx512();
  core::Workload w = workload("matmul:M=64,N=64,K=64");
  core::Config bogus{.index = 3, .values = {1, 2, 3}};
  std::vector<float> row(kNumFeatures, 7.0f);
  Status status = candidate_features(w, t, bogus, row);
  EXPECT_FALSE(status.is_ok());
  EXPECT_EQ(row, std::vector<float>(kNumFeatures, 7.0f));
}

TEST(Features, CoverConvolutions) {
  core::Target t = avx512();
  core::Workload w = workload("conv2d:N=1,C=32,H=28,W=28,K=64,R=3,S=3,stride=1,pad=1");
  auto space = core::config_space(w, t);
  ASSERT_TRUE(space.is_ok());
  std::vector<float> f = features(w, t, space->default_config());
  EXPECT_EQ(f[kStatementOffset(0) + kStmtPresent], 1);
  EXPECT_NEAR(f[kTotalFlops], std::log2(1.0 + w.flops()), 0.5);
}

}  // namespace
}  // namespace kiln::cost
