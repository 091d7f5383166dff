// Property tests: random (shape, config) pairs of every operator build, run and match the
// reference implementation. The seed is printed; set KILN_TEST_SEED to replay a run.

#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "compiler_core/build.h"
#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/ir/printer.h"
#include "compiler_core/lower/pipeline.h"
#include "compiler_core/runtime/buffer.h"
#include "compiler_core/runtime/thread_pool.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/te/reference.h"

namespace kiln::core {
namespace {

constexpr int kCasesPerOperator = 200;
constexpr int kFusedCases = 100;
constexpr double kTolerance = 1e-4;

uint64_t test_seed() {
  static const uint64_t seed = [] {
    const char* env = std::getenv("KILN_TEST_SEED");
    uint64_t s = env ? std::strtoull(env, nullptr, 10) : 20261122;
    std::cout << "property test seed: " << s << " (set KILN_TEST_SEED to replay)\n";
    return s;
  }();
  return seed;
}

Target host() {
  static const Target target = [] {
    Result<Target> parsed = parse_target("llvm");
    KILN_CHECK(parsed.is_ok()) << parsed.status().to_string();
    Result<Target> resolved = resolve_host_target(*parsed);
    KILN_CHECK(resolved.is_ok()) << resolved.status().to_string();
    return *resolved;
  }();
  return target;
}

int64_t pick(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

/// Builds `config` of `workload`, runs it on random inputs and compares with the reference.
void check_case(const std::string& text, const Config* config, std::mt19937_64& rng) {
  SCOPED_TRACE("workload " + text);
  Result<Workload> w = parse_workload(text);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  Result<ConfigSpace> space = config_space(*w, host());
  ASSERT_TRUE(space.is_ok()) << space.status().to_string();
  Config chosen = config ? *config : *space->at(pick(rng, 0, space->size() - 1));
  SCOPED_TRACE("config " + space->to_json(chosen));
  Result<std::unique_ptr<Kernel>> kernel = build_kernel(*w, host(), chosen);
  ASSERT_TRUE(kernel.is_ok()) << kernel.status().to_string();

  std::vector<Buffer> inputs;
  std::vector<const float*> input_ptrs;
  std::vector<float*> args;
  for (const Shape& shape : w->input_shapes()) {
    Result<Buffer> b = Buffer::create(shape);
    ASSERT_TRUE(b.is_ok());
    b->fill_random(rng);
    inputs.push_back(std::move(*b));
  }
  for (Buffer& b : inputs) {
    input_ptrs.push_back(b.data());
    args.push_back(b.data());
  }
  Result<Buffer> out = Buffer::create(w->output_shape());
  Result<Buffer> expected = Buffer::create(w->output_shape());
  ASSERT_TRUE(out.is_ok() && expected.is_ok());
  // Poison the output so that an element the kernel never writes cannot pass.
  for (int64_t i = 0; i < out->size(); ++i) out->data()[i] = 1e30f;
  args.push_back(out->data());
  (*kernel)->run(args);
  run_reference(*w, input_ptrs, expected->data(), 2);
  double err = max_relative_error(out->data(), expected->data(), out->size());
  EXPECT_LE(err, kTolerance) << "lowered:\n" << (*kernel)->lowered().substr(0, 4000);
}

std::string random_matmul(std::mt19937_64& rng) {
  return "matmul:M=" + std::to_string(pick(rng, 1, 96)) +
         ",N=" + std::to_string(pick(rng, 1, 150)) + ",K=" + std::to_string(pick(rng, 1, 80));
}

std::string random_dense(std::mt19937_64& rng) {
  std::string s = "dense:M=" + std::to_string(pick(rng, 1, 40)) +
                  ",N=" + std::to_string(pick(rng, 1, 130)) +
                  ",K=" + std::to_string(pick(rng, 1, 90));
  s += ",bias=" + std::to_string(pick(rng, 0, 1));
  s += pick(rng, 0, 1) ? ",act=relu" : ",act=none";
  return s;
}

std::string random_batch_matmul(std::mt19937_64& rng) {
  return "batch_matmul:B=" + std::to_string(pick(rng, 1, 4)) +
         ",M=" + std::to_string(pick(rng, 1, 40)) + ",N=" + std::to_string(pick(rng, 1, 70)) +
         ",K=" + std::to_string(pick(rng, 1, 40));
}

std::string conv_geometry(std::mt19937_64& rng, int64_t* r, int64_t* s) {
  *r = pick(rng, 1, 5);
  *s = pick(rng, 1, 5);
  int64_t stride = pick(rng, 1, 2), dilation = pick(rng, 1, 2), pad = pick(rng, 0, 3);
  int64_t h = std::max<int64_t>(pick(rng, 1, 14), (*r - 1) * dilation + 1);
  int64_t w = std::max<int64_t>(pick(rng, 1, 14), (*s - 1) * dilation + 1);
  return ",H=" + std::to_string(h) + ",W=" + std::to_string(w) + ",R=" + std::to_string(*r) +
         ",S=" + std::to_string(*s) + ",stride=" + std::to_string(stride) +
         ",pad=" + std::to_string(pad) + ",dilation=" + std::to_string(dilation) +
         (pick(rng, 0, 1) ? ",layout=NHWC" : ",layout=NCHW");
}

std::string random_conv2d(std::mt19937_64& rng) {
  int64_t groups = pick(rng, 0, 2) == 0 ? pick(rng, 2, 3) : 1;
  int64_t c = groups * pick(rng, 1, 12), k = groups * pick(rng, 1, 20);
  int64_t r, s;
  std::string geometry = conv_geometry(rng, &r, &s);
  return "conv2d:N=" + std::to_string(pick(rng, 1, 2)) + ",C=" + std::to_string(c) +
         ",K=" + std::to_string(k) + geometry + ",groups=" + std::to_string(groups);
}

std::string random_depthwise(std::mt19937_64& rng) {
  int64_t r, s;
  std::string geometry = conv_geometry(rng, &r, &s);
  return "depthwise_conv2d:N=" + std::to_string(pick(rng, 1, 2)) +
         ",C=" + std::to_string(pick(rng, 1, 40)) + geometry;
}

/// A random fused epilogue: bias, residual and an activation, each present or not.
std::string random_epilogue(std::mt19937_64& rng) {
  static const char* const kActivations[] = {"none", "relu", "relu6", "hardswish", "sigmoid"};
  std::string s;
  if (pick(rng, 0, 1)) s += ",bias=1";
  if (pick(rng, 0, 1)) s += ",residual=1";
  s += std::string(",act=") + kActivations[pick(rng, 0, 4)];
  return s;
}

std::string random_fused_dense(std::mt19937_64& rng) {
  return "dense:M=" + std::to_string(pick(rng, 1, 40)) + ",N=" + std::to_string(pick(rng, 1, 130)) +
         ",K=" + std::to_string(pick(rng, 1, 90)) + random_epilogue(rng);
}
std::string random_fused_conv2d(std::mt19937_64& rng) {
  return random_conv2d(rng) + random_epilogue(rng);
}
std::string random_fused_depthwise(std::mt19937_64& rng) {
  return random_depthwise(rng) + random_epilogue(rng);
}

void run_random_cases(uint64_t salt, std::string (*make)(std::mt19937_64&),
                      int cases = kCasesPerOperator) {
  std::mt19937_64 rng(test_seed() ^ salt);
  set_num_threads(2);
  for (int i = 0; i < cases && !::testing::Test::HasFailure(); ++i) {
    std::string text = make(rng);
    check_case(text, nullptr, rng);
  }
}

TEST(KernelProperty, MatmulMatchesReference) { run_random_cases(1, random_matmul); }
TEST(KernelProperty, DenseMatchesReference) { run_random_cases(2, random_dense); }
TEST(KernelProperty, BatchMatmulMatchesReference) { run_random_cases(3, random_batch_matmul); }
TEST(KernelProperty, Conv2dMatchesReference) { run_random_cases(4, random_conv2d); }
TEST(KernelProperty, DepthwiseConv2dMatchesReference) { run_random_cases(5, random_depthwise); }

// Fused epilogues (bias, residual, activation) on random shapes and configs of every variant.
TEST(KernelProperty, FusedDenseMatchesReference) {
  run_random_cases(8, random_fused_dense, kFusedCases);
}
TEST(KernelProperty, FusedConv2dMatchesReference) {
  run_random_cases(9, random_fused_conv2d, kFusedCases);
}
TEST(KernelProperty, FusedDepthwiseConv2dMatchesReference) {
  run_random_cases(10, random_fused_depthwise, kFusedCases);
}

// An epilogue changes neither the knobs nor the points of a space: a tuned config of the plain
// workload is a config of the fused one.
TEST(KernelProperty, EpiloguesKeepTheConfigSpace) {
  for (const char* plain : {"dense:M=4,N=64,K=32", "conv2d:N=1,C=8,H=8,W=32,K=16,R=3,S=3,pad=1",
                            "conv2d:N=1,C=8,H=8,W=8,K=16,R=1,S=1,layout=NHWC",
                            "depthwise_conv2d:N=1,C=16,H=20,W=20,R=3,S=3,pad=1"}) {
    Result<Workload> w = parse_workload(plain);
    ASSERT_TRUE(w.is_ok()) << plain;
    Result<Workload> fused = parse_workload(std::string(plain) + ",bias=1,residual=1,act=sigmoid");
    ASSERT_TRUE(fused.is_ok()) << plain;
    Result<ConfigSpace> a = config_space(*w, host()), b = config_space(*fused, host());
    ASSERT_TRUE(a.is_ok() && b.is_ok()) << plain;
    EXPECT_EQ(a->size(), b->size()) << plain;
    ASSERT_EQ(a->knobs().size(), b->knobs().size()) << plain;
    for (size_t k = 0; k < a->knobs().size(); ++k) {
      EXPECT_EQ(a->knobs()[k].name, b->knobs()[k].name) << plain;
      EXPECT_EQ(a->knobs()[k].choices, b->knobs()[k].choices) << plain;
    }
    EXPECT_EQ(a->to_json(a->default_config()), b->to_json(b->default_config())) << plain;
  }
}

TEST(KernelProperty, ShapesNoTileDivides) {
  std::mt19937_64 rng(test_seed());
  set_num_threads(2);
  check_case("matmul:M=1000,N=257,K=333", nullptr, rng);
  check_case("matmul:M=1000,N=257,K=333", nullptr, rng);
  check_case("dense:M=7,N=1000,K=333,bias=1,act=relu", nullptr, rng);
  check_case("conv2d:N=1,C=13,H=17,W=19,K=29,R=3,S=5,stride=2,pad=3,dilation=2,groups=1", nullptr,
             rng);
  check_case("conv2d:N=1,C=12,H=15,W=9,K=18,R=1,S=3,stride=2,pad=0,groups=3,layout=NHWC", nullptr,
             rng);
  check_case("depthwise_conv2d:N=1,C=37,H=11,W=13,R=3,S=2,stride=2,pad=1,dilation=2", nullptr, rng);
}

TEST(KernelProperty, DefaultConfigsMatchReference) {
  std::mt19937_64 rng(test_seed());
  for (const char* text :
       {"matmul:M=128,N=96,K=64", "dense:M=1,N=100,K=64,bias=1,act=relu",
        "batch_matmul:B=3,M=16,N=40,K=24", "conv2d:N=1,C=16,H=14,W=14,K=32,R=3,S=3,stride=1,pad=1",
        "depthwise_conv2d:N=1,C=32,H=14,W=14,R=3,S=3,stride=1,pad=1",
        "dense:M=1,N=100,K=64,bias=1,residual=1,act=hardswish",
        "conv2d:N=1,C=16,H=14,W=14,K=32,R=3,S=3,stride=1,pad=1,bias=1,residual=1,act=relu6",
        "conv2d:N=1,C=16,H=14,W=16,K=32,R=1,S=1,stride=1,pad=0,bias=1,act=sigmoid",
        "depthwise_conv2d:N=1,C=32,H=14,W=14,R=3,S=3,stride=1,pad=1,bias=1,act=relu6"}) {
    Result<Workload> w = parse_workload(text);
    ASSERT_TRUE(w.is_ok());
    Config def = config_space(*w, host())->default_config();
    check_case(text, &def, rng);
  }
}

TEST(KernelProperty, InvalidConfigsAreRejected) {
  Result<Workload> w = parse_workload("matmul:M=64,N=64,K=64");
  ASSERT_TRUE(w.is_ok());
  Result<ConfigSpace> space = config_space(*w, host());
  ASSERT_TRUE(space.is_ok());

  Result<Config> past_end = space->at(space->size());
  ASSERT_FALSE(past_end.is_ok());
  EXPECT_EQ(past_end.status().code(), StatusCode::kOutOfRange);

  Config bad_value = space->default_config();
  bad_value.values[0] = 5;  // tile_m = 5 is not a choice
  Result<std::unique_ptr<Kernel>> k1 = build_kernel(*w, host(), bad_value);
  ASSERT_FALSE(k1.is_ok());
  EXPECT_EQ(k1.status().code(), StatusCode::kInvalidConfig);
  EXPECT_NE(k1.status().message().find("tile_m"), std::string::npos);

  Config mismatched = space->default_config();
  mismatched.index += 1;
  Result<std::unique_ptr<Kernel>> k2 = build_kernel(*w, host(), mismatched);
  ASSERT_FALSE(k2.is_ok());
  EXPECT_EQ(k2.status().code(), StatusCode::kInvalidConfig);

  Config too_few;
  Result<std::unique_ptr<Kernel>> k3 = build_kernel(*w, host(), too_few);
  ASSERT_FALSE(k3.is_ok());
  EXPECT_EQ(k3.status().code(), StatusCode::kInvalidConfig);

  Result<Config> unknown_knob = space->parse(R"({"knobs":{"tile_q":3}})");
  ASSERT_FALSE(unknown_knob.is_ok());
  EXPECT_EQ(unknown_knob.status().code(), StatusCode::kInvalidConfig);

  Result<Config> not_json = space->parse("{tile_m: 6");
  ASSERT_FALSE(not_json.is_ok());
  EXPECT_EQ(not_json.status().code(), StatusCode::kInvalidConfig);
}

/// Checks `cases` random configs of each workload's direct variant (knob `knob` at `value`)
/// against the reference.
void check_direct_variant(const std::vector<const char*>& workloads, int cases, uint64_t salt,
                          const std::string& knob = "variant", int64_t value = 1) {
  std::mt19937_64 rng(test_seed() ^ salt);
  set_num_threads(2);
  for (const char* text : workloads) {
    Result<Workload> w = parse_workload(text);
    ASSERT_TRUE(w.is_ok()) << text;
    Result<ConfigSpace> space = config_space(*w, host());
    ASSERT_TRUE(space.is_ok());
    const int variant = space->knob_index(knob);
    ASSERT_GE(variant, 0) << text << ": the variant " << knob << " applies";
    // The Winograd variant takes precedence over the direct ones: off unless it is the one.
    const int winograd = knob == "winograd" ? -1 : space->knob_index("winograd");
    std::uniform_int_distribution<int64_t> index(0, space->size() - 1);
    for (int i = 0; i < cases && !::testing::Test::HasFailure(); ++i) {
      Result<Config> any = space->at(index(rng));
      ASSERT_TRUE(any.is_ok());
      std::vector<int64_t> values = any->values;
      values[size_t(variant)] = value;
      if (winograd >= 0) values[size_t(winograd)] = 0;
      Result<Config> config = space->from_values(values);
      ASSERT_TRUE(config.is_ok());
      check_case(text, &*config, rng);
    }
  }
}

/// The direct variant is not in the config space of any of `workloads`.
void expect_no_direct_variant(const std::vector<const char*>& workloads) {
  for (const char* text : workloads) {
    Result<Workload> w = parse_workload(text);
    ASSERT_TRUE(w.is_ok()) << text;
    Result<ConfigSpace> space = config_space(*w, host());
    ASSERT_TRUE(space.is_ok());
    EXPECT_EQ(space->knob_index("variant"), -1) << text;
  }
}

/// Checks a random config of `text` whose knobs named in `pinned` take the values given; each
/// must be a knob of the space, but "variant", which only some spaces have. False, checking
/// nothing, when that point is not in the space (over the register budget).
bool check_pinned_config(const std::string& text,
                         const std::vector<std::pair<std::string, int64_t>>& pinned,
                         std::mt19937_64& rng) {
  Result<Workload> w = parse_workload(text);
  EXPECT_TRUE(w.is_ok()) << text;
  if (!w.is_ok()) return false;
  Result<ConfigSpace> space = config_space(*w, host());
  EXPECT_TRUE(space.is_ok()) << text;
  if (!space.is_ok()) return false;
  std::vector<int64_t> values = space->at(pick(rng, 0, space->size() - 1))->values;
  for (const auto& [knob, value] : pinned) {
    const int i = space->knob_index(knob);
    EXPECT_TRUE(i >= 0 || knob == "variant") << text << " has no knob " << knob;
    if (i >= 0) values[size_t(i)] = value;
  }
  Result<Config> config = space->from_values(values);
  if (!config.is_ok()) return false;
  check_case(text, &*config, rng);
  return true;
}

// Register tiles of several output rows (tile_oh), also where the rows are not a multiple of
// the tile, in both variants, grouped and NHWC too.
TEST(KernelProperty, Conv2dRowTilesMatchReference) {
  std::mt19937_64 rng(test_seed() ^ 0x70e);
  set_num_threads(2);
  for (const char* text :
       {"conv2d:N=1,C=6,H=7,W=9,K=20,R=3,S=3,stride=1,pad=1",
        "conv2d:N=2,C=4,H=11,W=16,K=8,R=3,S=2,stride=2,pad=1",
        "conv2d:N=1,C=6,H=5,W=6,K=18,R=1,S=3,stride=1,pad=0,groups=3,layout=NHWC"}) {
    Result<Workload> w = parse_workload(text);
    ASSERT_TRUE(w.is_ok()) << text;
    Result<ConfigSpace> space = config_space(*w, host());
    ASSERT_TRUE(space.is_ok());
    const int rows = space->knob_index("tile_oh");
    ASSERT_GE(rows, 0) << text;
    const int64_t variants = space->knob_index("variant") >= 0 ? 2 : 1;
    for (int64_t tile_oh : space->knobs()[size_t(rows)].choices) {
      for (int64_t v = 0; v < variants && !::testing::Test::HasFailure(); ++v) {
        EXPECT_TRUE(check_pinned_config(text, {{"tile_oh", tile_oh}, {"variant", v}}, rng));
      }
    }
  }
}

// The channel-blocked conv2d skips taps on the input's padding: kernel rows that read a padding
// row, and, where a register tile spans the whole output row, kernel columns that read a
// padding column. Whole-row tiles with strides, dilation and row tiles match the reference.
/// The lowered loop nest of `text` in the config `config_json` names, as text.
std::string lowered_kernel(const char* text, const char* config_json) {
  Result<Workload> w = parse_workload(text);
  EXPECT_TRUE(w.is_ok());
  if (!w.is_ok()) return "";
  Result<ConfigSpace> space = config_space(*w, host());
  EXPECT_TRUE(space.is_ok());
  if (!space.is_ok()) return "";
  Result<Config> config = space->parse(config_json);
  EXPECT_TRUE(config.is_ok()) << config.status().to_string();
  if (!config.is_ok()) return "";
  Result<Schedule> schedule = make_schedule(*w, host(), *config);
  EXPECT_TRUE(schedule.is_ok());
  if (!schedule.is_ok()) return "";
  return ir::to_string(lower::lower_schedule(*schedule, "conv").body);
}

/// `text` (3x3, padding 1, a 7-column output) in `config`, a tile of one row of 7: each copy of
/// the reduction's body accumulates 6 + 7 + 6 taps into `accumulator` for the three kernel
/// columns (21 without the skip), inside a test of the kernel row.
void expect_padding_taps_skipped(const char* text, const char* config_json,
                                 const std::string& accumulator) {
  const std::string lowered = lowered_kernel(text, config_json);
  const std::string update = "= (" + accumulator + "[";
  int64_t updates = 0;
  for (size_t at = lowered.find(update); at != std::string::npos;
       at = lowered.find(update, at + 1)) {
    ++updates;
  }
  EXPECT_GT(updates, 0) << lowered;
  EXPECT_EQ(updates % 19, 0) << lowered;
  EXPECT_NE(updates % 21, 0) << lowered;
  EXPECT_NE(lowered.find("if ("), std::string::npos) << lowered;
}

TEST(KernelProperty, BlockedConv2dSkipsPaddingTapsAndMatchesReference) {
  std::mt19937_64 rng(test_seed() ^ 0x9ad);
  set_num_threads(2);
  for (const char* text : {"conv2d:N=1,C=8,H=7,W=7,K=16,R=3,S=3,stride=1,pad=1",
                           "conv2d:N=1,C=5,H=14,W=13,K=16,R=3,S=3,stride=2,pad=1",
                           "conv2d:N=1,C=4,H=9,W=7,K=8,R=3,S=3,stride=1,pad=2,dilation=2",
                           "conv2d:N=1,C=3,H=11,W=11,K=8,R=5,S=5,stride=2,pad=2,layout=NHWC"}) {
    for (int64_t tile_ow : {int64_t(14), int64_t(28), int64_t(4)}) {
      for (int64_t tile_oh : {int64_t(1), int64_t(2), int64_t(4)}) {
        // A point over the register budget is not in the space: nothing to check.
        check_pinned_config(text, {{"tile_ow", tile_ow}, {"tile_oh", tile_oh}, {"variant", 0}},
                            rng);
      }
    }
  }
  expect_padding_taps_skipped("conv2d:N=1,C=8,H=7,W=7,K=16,R=3,S=3,stride=1,pad=1",
                              R"({"knobs": {"block_k_vectors": 1, "block_c": 8, "tile_ow": 7,)"
                              R"( "unroll_c": 1, "parallel": 0, "tile_oh": 1}})",
                              "out.blocked.local");
}

// The channel-blocked depthwise variant packs the input rows an output row reads inside the
// output's loop (pack_per_row = 1): strides, dilation, padding and both layouts.
TEST(KernelProperty, DepthwisePackedPerRowMatchesReference) {
  std::mt19937_64 rng(test_seed() ^ 0x9ac);
  set_num_threads(2);
  for (const char* text :
       {"depthwise_conv2d:N=1,C=24,H=13,W=11,R=3,S=3,stride=2,pad=1,layout=NHWC",
        "depthwise_conv2d:N=2,C=20,H=9,W=10,R=3,S=3,stride=1,pad=1",
        "depthwise_conv2d:N=1,C=16,H=12,W=12,R=3,S=3,stride=1,pad=2,dilation=2,layout=NHWC",
        "depthwise_conv2d:N=1,C=8,H=15,W=9,R=5,S=5,stride=2,pad=2,bias=1,act=relu6"}) {
    for (int trial = 0; trial < 3 && !::testing::Test::HasFailure(); ++trial) {
      EXPECT_TRUE(check_pinned_config(text, {{"pack_per_row", 1}, {"variant", 0}}, rng));
    }
  }
}

// The direct NCHW variant of conv2d applies where the vectorized columns are whole vectors: a
// flat 1×1 convolution (columns = H·W) or rows of a multiple of the vector width, strided too.
TEST(KernelProperty, DirectConv2dVariantMatchesReference) {
  check_direct_variant({"conv2d:N=2,C=7,H=4,W=8,K=10,R=1,S=1,stride=1,pad=0",
                        "conv2d:N=1,C=5,H=9,W=32,K=12,R=3,S=3,stride=2,pad=1",
                        "conv2d:N=1,C=3,H=20,W=32,K=9,R=7,S=7,stride=2,pad=3",
                        "conv2d:N=1,C=4,H=5,W=18,K=6,R=3,S=3,stride=1,pad=0"},
                       8, 6);
}

// NCHW: columns of whole vectors, no groups. NHWC: no groups.
TEST(KernelProperty, DirectConv2dVariantsOnlyWhereTheyApply) {
  expect_no_direct_variant(
      {"conv2d:N=1,C=16,H=15,W=15,K=16,R=3,S=3,stride=1,pad=1",
       "conv2d:N=1,C=8,H=8,W=32,K=8,R=3,S=3,stride=1,pad=1,groups=2,layout=NHWC",
       "conv2d:N=1,C=8,H=8,W=32,K=8,R=3,S=3,stride=1,pad=1,groups=2"});
}

// Winograd's F(2x2, 3x3) on NHWC: output rows and columns odd (a last tile half outside),
// padding 0, 1 and 2, output channels not a multiple of the block (zero-padded weights), batches,
// several vectors of input channels, and epilogues.
TEST(KernelProperty, WinogradConv2dVariantMatchesReference) {
  check_direct_variant({"conv2d:N=1,C=16,H=9,W=9,K=20,R=3,S=3,stride=1,pad=1,layout=NHWC",
                        "conv2d:N=2,C=32,H=6,W=7,K=16,R=3,S=3,stride=1,pad=0,layout=NHWC",
                        "conv2d:N=1,C=16,H=5,W=12,K=40,R=3,S=3,stride=1,pad=2,layout=NHWC",
                        "conv2d:N=1,C=48,H=7,W=7,K=64,R=3,S=3,stride=1,pad=1,layout=NHWC",
                        "conv2d:N=1,C=16,H=14,W=14,K=33,R=3,S=3,stride=1,pad=1,layout=NHWC"},
                       6, 16, "winograd");
  check_direct_variant(
      {"conv2d:N=1,C=16,H=9,W=10,K=24,R=3,S=3,stride=1,pad=1,bias=1,act=relu6,layout=NHWC",
       "conv2d:N=2,C=32,H=7,W=6,K=16,R=3,S=3,stride=1,pad=1,bias=1,residual=1,act=relu,"
       "layout=NHWC"},
      6, 17, "winograd");
}

// F(4x4, 3x3): output sides that are not multiples of 4 (last tiles a quarter to three quarters
// outside), padding 0, 1 and 2, batches, 128 input channels (its rounding errors grow with the
// sum's length) and epilogues.
TEST(KernelProperty, Winograd4x4Conv2dVariantMatchesReference) {
  check_direct_variant({"conv2d:N=1,C=16,H=9,W=9,K=20,R=3,S=3,stride=1,pad=1,layout=NHWC",
                        "conv2d:N=2,C=32,H=7,W=10,K=16,R=3,S=3,stride=1,pad=0,layout=NHWC",
                        "conv2d:N=1,C=16,H=6,W=13,K=40,R=3,S=3,stride=1,pad=2,layout=NHWC",
                        "conv2d:N=1,C=128,H=14,W=14,K=32,R=3,S=3,stride=1,pad=1,layout=NHWC"},
                       5, 18, "winograd", 2);
  check_direct_variant(
      {"conv2d:N=1,C=16,H=10,W=9,K=24,R=3,S=3,stride=1,pad=1,bias=1,act=relu6,layout=NHWC",
       "conv2d:N=1,C=32,H=7,W=6,K=16,R=3,S=3,stride=1,pad=1,bias=1,residual=1,act=relu,"
       "layout=NHWC"},
      5, 19, "winograd", 2);
}

// Winograd's F(2x2, 3x3) only on 3x3 NHWC convolutions of stride 1, without dilation or groups,
// whose input channels fill whole vectors.
TEST(KernelProperty, WinogradVariantOnlyWhereItApplies) {
  for (const char* text : {"conv2d:N=1,C=16,H=14,W=14,K=16,R=3,S=3,stride=1,pad=1",
                           "conv2d:N=1,C=16,H=14,W=14,K=16,R=3,S=3,stride=2,pad=1,layout=NHWC",
                           "conv2d:N=1,C=16,H=14,W=14,K=16,R=3,S=3,stride=1,pad=2,dilation=2,"
                           "layout=NHWC",
                           "conv2d:N=1,C=16,H=14,W=14,K=16,R=1,S=1,stride=1,pad=0,layout=NHWC",
                           "conv2d:N=1,C=16,H=14,W=14,K=16,R=5,S=5,stride=1,pad=2,layout=NHWC",
                           "conv2d:N=1,C=7,H=14,W=14,K=16,R=3,S=3,stride=1,pad=1,layout=NHWC",
                           "conv2d:N=1,C=32,H=14,W=14,K=32,R=3,S=3,stride=1,pad=1,groups=2,"
                           "layout=NHWC"}) {
    Result<Workload> w = parse_workload(text);
    ASSERT_TRUE(w.is_ok()) << text;
    Result<ConfigSpace> space = config_space(*w, host());
    ASSERT_TRUE(space.is_ok());
    EXPECT_EQ(space->knob_index("winograd"), -1) << text;
  }
  Result<Workload> w =
      parse_workload("conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1,layout=NHWC");
  ASSERT_TRUE(w.is_ok());
  Result<ConfigSpace> space = config_space(*w, host());
  ASSERT_TRUE(space.is_ok());
  const int winograd = space->knob_index("winograd");
  ASSERT_EQ(winograd, int(space->knobs().size()) - 2) << "appended last, before k_steps";
  EXPECT_EQ(space->knobs()[size_t(winograd)].choices, (std::vector<int64_t>{0, 1, 2}))
      << "F(4x4, 3x3) after F(2x2, 3x3)";
  EXPECT_EQ(space->knob_index("k_steps"), int(space->knobs().size()) - 1) << "appended last";
  EXPECT_EQ(space->knobs().back().choices, (std::vector<int64_t>{1, 2, 4}))
      << "one step for all output channels first, as before the knob";
}

// Steps of rows of tiles split into parts of the output channels (k_steps 2 and 4, rounded
// down to a divisor of the blocks: output channels of 4 blocks, and of 3, the last partial)
// give the reference's output, with epilogues, on 2 threads.
TEST(KernelProperty, WinogradStepsSplitOverOutputChannelsMatchReference) {
  std::mt19937_64 rng(test_seed() ^ 23);
  set_num_threads(2);
  int checked = 0;
  for (const char* text :
       {"conv2d:N=1,C=16,H=9,W=9,K=64,R=3,S=3,stride=1,pad=1,layout=NHWC",
        "conv2d:N=2,C=32,H=7,W=10,K=48,R=3,S=3,stride=1,pad=0,bias=1,act=relu,layout=NHWC",
        "conv2d:N=1,C=16,H=12,W=12,K=40,R=3,S=3,stride=1,pad=1,residual=1,layout=NHWC"}) {
    for (int64_t variant : {1, 2}) {
      for (int64_t parts : {2, 4}) {
        for (int attempt = 0; attempt < 8; ++attempt) {
          if (check_pinned_config(text,
                                  {{"winograd", variant},
                                   {"channels_outer", 0},
                                   {"parallel", 1},
                                   {"block_k_vectors", 1},
                                   {"k_steps", parts}},
                                  rng)) {
            ++checked;
            break;
          }
        }
      }
    }
  }
  EXPECT_EQ(checked, 12) << "a point of each case is in the space";
}

// The direct NHWC variant of conv2d: any input channel count (blocks and unrolls rounded down
// to divisors: 3 for a stem), output channels not a multiple of the block (zero-padded
// weights), strides, dilation, padding (a bordered copy of the input) or none (read in place),
// tiles that do not divide the output, and epilogues.
TEST(KernelProperty, DirectNhwcConv2dVariantMatchesReference) {
  check_direct_variant({"conv2d:N=1,C=8,H=9,W=9,K=20,R=3,S=3,stride=1,pad=1,layout=NHWC",
                        "conv2d:N=2,C=16,H=6,W=7,K=32,R=1,S=1,stride=1,pad=0,layout=NHWC",
                        "conv2d:N=1,C=3,H=20,W=18,K=16,R=7,S=7,stride=2,pad=3,layout=NHWC",
                        "conv2d:N=1,C=12,H=14,W=14,K=24,R=1,S=1,stride=2,pad=0,layout=NHWC",
                        "conv2d:N=1,C=5,H=11,W=10,K=16,R=3,S=3,stride=1,pad=2,dilation=2,"
                        "layout=NHWC",
                        "conv2d:N=1,C=24,H=7,W=7,K=48,R=3,S=3,stride=1,pad=1,layout=NHWC"},
                       6, 14);
  check_direct_variant(
      {"conv2d:N=1,C=8,H=9,W=9,K=20,R=3,S=3,stride=2,pad=1,bias=1,act=relu6,layout=NHWC",
       "conv2d:N=2,C=16,H=6,W=7,K=32,R=1,S=1,stride=1,pad=0,bias=1,residual=1,act=relu,"
       "layout=NHWC"},
      6, 15);
}

// The direct NHWC variant skips the taps that read the input's zero border, as the blocked one
// does: whole kernel rows at the top and bottom output rows (register tiles of one output row),
// and kernel columns where a tile spans the whole output row. Strides, dilation and both.
TEST(KernelProperty, DirectNhwcConv2dSkipsPaddingTapsAndMatchesReference) {
  std::mt19937_64 rng(test_seed() ^ 0x9ae);
  set_num_threads(2);
  for (const char* text : {"conv2d:N=1,C=12,H=7,W=7,K=16,R=3,S=3,stride=1,pad=1,layout=NHWC",
                           "conv2d:N=1,C=5,H=14,W=13,K=16,R=3,S=3,stride=2,pad=1,layout=NHWC",
                           "conv2d:N=1,C=4,H=9,W=7,K=8,R=3,S=3,stride=1,pad=2,dilation=2,"
                           "layout=NHWC",
                           "conv2d:N=1,C=3,H=11,W=11,K=8,R=5,S=5,stride=2,pad=2,bias=1,act=relu,"
                           "layout=NHWC",
                           "conv2d:N=2,C=3,H=9,W=20,K=16,R=3,S=3,stride=2,pad=1,layout=NHWC"}) {
    for (int64_t tile_ow : {int64_t(14), int64_t(7), int64_t(4)}) {
      for (int64_t tile_oh : {int64_t(1), int64_t(2)}) {
        check_pinned_config(text, {{"tile_ow", tile_ow}, {"tile_oh", tile_oh}, {"variant", 1}},
                            rng);
      }
    }
  }
  expect_padding_taps_skipped(
      "conv2d:N=1,C=12,H=7,W=7,K=16,R=3,S=3,stride=1,pad=1,layout=NHWC",
      R"({"knobs": {"block_k_vectors": 1, "block_c": 4, "tile_ow": 7, "unroll_c": 1,)"
      R"( "parallel": 0, "tile_oh": 1, "variant": 1, "channels_outer": 0}})",
      "O.local");
  // Where every border tap is skipped (tiles of one whole row), the taps read the input itself:
  // no bordered copy. Narrower tiles and taller ones still read one.
  const char* text = "conv2d:N=1,C=12,H=14,W=14,K=16,R=3,S=3,stride=2,pad=1,layout=NHWC";
  const std::string knobs =
      R"("block_k_vectors": 1, "block_c": 4, "unroll_c": 1, "parallel": 1, "variant": 1,)"
      R"( "channels_outer": 0)";
  for (const auto& [tiles, bordered] :
       std::vector<std::pair<std::string, bool>>{{R"("tile_ow": 7, "tile_oh": 1)", false},
                                                 {R"("tile_ow": 4, "tile_oh": 1)", true},
                                                 {R"("tile_ow": 7, "tile_oh": 2)", true}}) {
    const std::string config = R"({"knobs": {)" + knobs + ", " + tiles + "}}";
    const std::string lowered = lowered_kernel(text, config.c_str());
    EXPECT_FALSE(lowered.empty()) << tiles;
    EXPECT_EQ(lowered.find("data.padded") != std::string::npos, bordered) << tiles << lowered;
  }
  // With channels that are not whole vectors (3: a network's first layer), the copy is made in
  // vectors along rows of width × channels values: its stores are dense vectors.
  const std::string first_layer =
      lowered_kernel("conv2d:N=1,C=3,H=32,W=32,K=16,R=3,S=3,stride=2,pad=1,layout=NHWC",
                     (R"({"knobs": {)" + knobs + R"(, "tile_ow": 4, "tile_oh": 2}})").c_str());
  EXPECT_NE(first_layer.find("data.padded[ramp("), std::string::npos) << first_layer;
}

// The direct NCHW variant of depthwise convolution: rows of at least a vector (whole vectors,
// the last shifted inwards; rows narrower than the target's vector take a narrower one, down to
// 4 lanes: the 14- and 7-column layers of MobileNetV2), any padding (masked loads), kernel
// sizes and batches, column stride 1 or 2 (every other column: two loads and a shuffle, the
// last column of the padded plane the last one read).
TEST(KernelProperty, DirectDepthwiseVariantMatchesReference) {
  check_direct_variant(
      {"depthwise_conv2d:N=1,C=6,H=28,W=28,R=3,S=3,stride=2,pad=1",
       "depthwise_conv2d:N=1,C=5,H=14,W=14,R=3,S=3,stride=2,pad=1",
       "depthwise_conv2d:N=2,C=3,H=9,W=9,R=3,S=3,stride=1,pad=1",
       "depthwise_conv2d:N=1,C=4,H=11,W=11,R=3,S=3,stride=2,pad=1,bias=1,act=relu6",
       "depthwise_conv2d:N=2,C=5,H=9,W=20,R=3,S=3,stride=1,pad=1",
       "depthwise_conv2d:N=1,C=3,H=6,W=16,R=5,S=5,stride=1,pad=2",
       "depthwise_conv2d:N=1,C=4,H=7,W=35,R=3,S=3,stride=1,pad=0",
       "depthwise_conv2d:N=1,C=16,H=28,W=28,R=3,S=3,stride=1,pad=1",
       "depthwise_conv2d:N=1,C=3,H=40,W=40,R=3,S=3,stride=2,pad=1",
       "depthwise_conv2d:N=2,C=4,H=9,W=35,R=3,S=3,stride=2,pad=0",
       "depthwise_conv2d:N=1,C=5,H=12,W=38,R=5,S=5,stride=2,pad=2"},
      6, 7);
}

// The direct variants with an epilogue: the sum is a stage of its own computed at the tile.
TEST(KernelProperty, FusedDirectVariantsMatchReference) {
  check_direct_variant(
      {"conv2d:N=2,C=7,H=4,W=8,K=10,R=1,S=1,stride=1,pad=0,bias=1,residual=1,act=relu6",
       "conv2d:N=1,C=5,H=9,W=32,K=12,R=3,S=3,stride=2,pad=1,bias=1,act=hardswish",
       "conv2d:N=1,C=4,H=5,W=18,K=6,R=3,S=3,stride=1,pad=0,residual=1,act=sigmoid"},
      6, 11);
  check_direct_variant(
      {"depthwise_conv2d:N=2,C=5,H=9,W=20,R=3,S=3,stride=1,pad=1,bias=1,residual=1,act=relu",
       "depthwise_conv2d:N=1,C=4,H=40,W=36,R=3,S=3,stride=2,pad=1,bias=1,residual=1,act=relu6",
       "depthwise_conv2d:N=1,C=4,H=7,W=35,R=3,S=3,stride=1,pad=0,bias=1,act=sigmoid",
       "depthwise_conv2d:N=1,C=16,H=28,W=28,R=3,S=3,stride=1,pad=1,residual=1,act=hardswish"},
      6, 12);
}

// NCHW: rows of at least a vector, column stride 1 or 2. NHWC: channels in whole vectors.
TEST(KernelProperty, DirectDepthwiseVariantsOnlyWhereTheyApply) {
  expect_no_direct_variant(
      {"depthwise_conv2d:N=1,C=8,H=3,W=3,R=3,S=3,stride=1,pad=1",
       "depthwise_conv2d:N=1,C=8,H=6,W=6,R=3,S=3,stride=2,pad=1",
       "depthwise_conv2d:N=1,C=8,H=60,W=60,R=3,S=3,stride=3,pad=1",
       "depthwise_conv2d:N=1,C=7,H=20,W=20,R=3,S=3,stride=1,pad=1,layout=NHWC"});
}

// The direct NHWC variant of depthwise convolution: taps on the padding select zero from a
// clamped read, so any padding, stride and dilation; register tiles that do not divide the
// output row; channel blocks rounded down to a divisor; epilogues in a stage at the tile.
TEST(KernelProperty, DirectNhwcDepthwiseVariantMatchesReference) {
  check_direct_variant(
      {"depthwise_conv2d:N=1,C=32,H=13,W=11,R=3,S=3,stride=2,pad=1,layout=NHWC",
       "depthwise_conv2d:N=2,C=48,H=9,W=10,R=3,S=3,stride=1,pad=1,layout=NHWC",
       "depthwise_conv2d:N=1,C=16,H=12,W=12,R=3,S=3,stride=1,pad=2,dilation=2,layout=NHWC",
       "depthwise_conv2d:N=1,C=16,H=15,W=9,R=5,S=5,stride=2,pad=2,layout=NHWC",
       "depthwise_conv2d:N=1,C=32,H=7,W=7,R=3,S=3,stride=1,pad=0,layout=NHWC",
       "depthwise_conv2d:N=1,C=48,H=14,W=14,R=3,S=3,stride=2,pad=1,bias=1,act=relu6,layout=NHWC",
       "depthwise_conv2d:N=2,C=16,H=9,W=20,R=3,S=3,stride=1,pad=1,bias=1,residual=1,act=hardswish,"
       "layout=NHWC"},
      6, 13);
}

}  // namespace
}  // namespace kiln::core
