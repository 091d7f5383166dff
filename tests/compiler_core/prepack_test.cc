// Weights packed ahead of time (Schedule::prepack): the schedule split, the kernel's prepare
// step, and what prepacking refuses.

#include <random>
#include <string>

#include <gtest/gtest.h>

#include "compiler_core/build.h"
#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/lower/pipeline.h"
#include "compiler_core/runtime/buffer.h"
#include "compiler_core/schedule/schedule.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/te/reference.h"

namespace kiln::core {
namespace {

constexpr const char* kConv = "conv2d:N=1,C=8,H=9,W=9,K=20,R=3,S=3,stride=1,pad=1";

TEST(Prepack, SplitsTheWeightPackingOutOfTheKernel) {
  Workload w = *parse_workload(kConv);
  Target t = *resolve_host_target(Target{});
  ConfigSpace space = *config_space(w, t);
  Schedule sch = *make_schedule(w, t, space.default_config());
  std::vector<Schedule> parts = sch.prepacked_stages();
  ASSERT_EQ(parts.size(), 1u);
  // The prepare schedule reads the weights alone and writes kernel.packed.
  ASSERT_EQ(parts[0].stages().size(), 2u);
  EXPECT_EQ(parts[0].stages()[0].name, "W");
  EXPECT_EQ(parts[0].stages().back().name, "kernel.packed");
  // In the kernel proper, kernel.packed is an input.
  lower::LoopNest nest = lower::build_loop_nest(sch.without_prepacked());
  EXPECT_EQ(nest.args, (std::vector<std::string>{"I", "W", "kernel.packed", "O"}));
  // The whole schedule still lowers to one function that computes everything.
  lower::LoopNest whole = lower::build_loop_nest(sch);
  EXPECT_EQ(whole.args, (std::vector<std::string>{"I", "W", "O"}));
}

TEST(Prepack, PreparedKernelMatchesTheReferenceUntilTheWeightsChange) {
  Workload w = *parse_workload(kConv);
  Target t = *resolve_host_target(Target{});
  ConfigSpace space = *config_space(w, t);
  std::unique_ptr<Kernel> kernel = std::move(build_kernel(w, t, space.default_config())).value();
  ASSERT_TRUE(kernel->prepacks());

  std::mt19937_64 rng(3);
  std::vector<Buffer> inputs;
  for (const Shape& shape : w.input_shapes()) {
    inputs.push_back(std::move(Buffer::create(shape)).value());
    inputs.back().fill_random(rng);
  }
  Buffer out = std::move(Buffer::create(w.output_shape())).value();
  Buffer expected = std::move(Buffer::create(w.output_shape())).value();
  std::vector<float*> args = {inputs[0].data(), inputs[1].data(), out.data()};
  std::vector<const float*> in = {inputs[0].data(), inputs[1].data()};

  kernel->prepare(args);
  run_reference(w, in, expected.data(), 1);
  for (int repeat = 0; repeat < 2; ++repeat) {
    std::fill(out.data(), out.data() + out.size(), 1e30f);
    kernel->run_prepared(args);
    EXPECT_LE(max_relative_error(out.data(), expected.data(), out.size()), 1e-4);
  }

  // New weights: run_prepared still computes with the old packing; run (prepare + main) and
  // a fresh prepare pick the new ones up.
  inputs[1].fill_random(rng);
  run_reference(w, in, expected.data(), 1);
  kernel->run_prepared(args);
  EXPECT_GT(max_relative_error(out.data(), expected.data(), out.size()), 1e-2);
  kernel->run(args);
  EXPECT_LE(max_relative_error(out.data(), expected.data(), out.size()), 1e-4);
}

TEST(Prepack, MatmulHasNoPrepareStep) {
  Workload w = *parse_workload("matmul:M=16,N=16,K=16");
  Target t = *resolve_host_target(Target{});
  ConfigSpace space = *config_space(w, t);
  std::unique_ptr<Kernel> kernel = std::move(build_kernel(w, t, space.default_config())).value();
  EXPECT_FALSE(kernel->prepacks());
}

TEST(Prepack, RefusesStagesThatReadComputedStagesAndTheOutput) {
  Schedule sch;
  Tensor a = sch.placeholder("A", {8});
  Tensor b = sch.compute("B", {8}, {"i"},
                         [&](const std::vector<ir::Expr>& x) { return a({x[0]}) * ir::f32(2); });
  Tensor c = sch.compute("C", {8}, {"i"},
                         [&](const std::vector<ir::Expr>& x) { return b({x[0]}) + ir::f32(1); });
  Tensor d =
      sch.compute("D", {8}, {"i"}, [&](const std::vector<ir::Expr>& x) { return c({x[0]}); });
  try {
    sch.prepack(c);
    FAIL() << "prepack of a stage that reads a computed stage";
  } catch (const ScheduleError& e) {
    EXPECT_NE(std::string(e.what()).find("reads stage B"), std::string::npos) << e.what();
  }
  EXPECT_THROW(sch.prepack(d), ScheduleError);
  EXPECT_THROW(sch.prepack(a), ScheduleError);
  sch.prepack(b);
  EXPECT_TRUE(sch.stage("B").prepacked);
}

}  // namespace
}  // namespace kiln::core
