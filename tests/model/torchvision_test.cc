// Real architectures that nobody here wrote: torchvision's classification models with random
// weights, exported to ONNX by export_torchvision.py at test time (no model files are
// committed), compiled by `kiln compile` and run by `kiln run --module` on PyTorch's input. The
// outputs agree with PyTorch's within 1e-3 of the largest output.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "compiler_core/graph/npz.h"
#include "tests/support/process.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

using Outcome = test::Finished;

Outcome run(const std::vector<std::string>& args, const fs::path& dir, const std::string& tag) {
  return test::run_to_end(args, dir, tag);
}

/// True when Debian's python3 has torch and torchvision; a missing peer skips the test unless
/// KILN_REQUIRE_MODEL is set (the README's test command sets it).
bool have_torch(const fs::path& dir) {
  return run({"/usr/bin/python3", "-c", "import torch, torchvision, numpy"}, dir, "probe").code ==
         0;
}

class TorchvisionModel : public ::testing::TestWithParam<std::string> {};

TEST_P(TorchvisionModel, MatchesPyTorch) {
  const std::string model = GetParam();
  const fs::path dir = fs::path(::testing::TempDir()) / ("kiln_tv_" + model);
  fs::remove_all(dir);
  fs::create_directories(dir);
  if (!have_torch(dir)) {
    if (std::getenv("KILN_REQUIRE_MODEL") != nullptr) FAIL() << "python3-torch is missing";
    GTEST_SKIP() << "python3-torch or python3-torchvision is missing";
  }
  Outcome exported =
      run({"/usr/bin/python3", KILN_EXPORT_SCRIPT, model, dir.string()}, dir, "export");
  ASSERT_EQ(exported.code, 0) << exported.err;

  // A tuning log that does not exist: every task takes its template's default config.
  const fs::path module = dir / (model + ".kmod");
  Outcome compiled = run({KILN_BINARY, "compile", (dir / "model.onnx").string(), "--target", "llvm",
                          "--db", (dir / "none.db").string(), "-o", module.string()},
                         dir, "compile");
  ASSERT_EQ(compiled.code, 0) << compiled.err;
  Outcome ran = run(
      {KILN_BINARY, "run", "--module", module.string(), "--inputs", (dir / "input.npz").string(),
       "--outputs", (dir / "output.npz").string(), "--repeat", "1", "--threads", "2"},
      dir, "run");
  ASSERT_EQ(ran.code, 0) << ran.err;

  auto expected = graph::read_npz((dir / "expected.npz").string());
  auto actual = graph::read_npz((dir / "output.npz").string());
  ASSERT_TRUE(expected.is_ok()) << expected.status().message();
  ASSERT_TRUE(actual.is_ok()) << actual.status().message();
  const graph::Tensor& want = expected->at("output");
  const graph::Tensor& got = actual->at("output");
  ASSERT_EQ(got.info, want.info);
  double largest = 0, worst = 0;
  for (float v : want.f32) largest = std::max(largest, double(std::fabs(v)));
  for (size_t i = 0; i < want.f32.size(); ++i) {
    worst = std::max(worst, double(std::fabs(got.f32[i] - want.f32[i])));
  }
  EXPECT_LE(worst, 1e-3 * largest)
      << model << ": largest |difference| " << worst << " against largest |output| " << largest;
  std::cout << model << ": max |kiln - pytorch| / max |pytorch| = " << worst / largest << "\n"
            << compiled.out;
  fs::remove_all(dir);
}

// ResNet-18, ResNet-50 and MobileNetV2, and other torchvision classifiers built only of the
// operators kiln imports: concatenations, channel shuffles, squeeze-excitation, grouped and
// depthwise convolutions, ceil-mode pooling.
INSTANTIATE_TEST_SUITE_P(Torchvision, TorchvisionModel,
                         ::testing::Values("resnet18", "resnet50", "mobilenet_v2", "squeezenet1_1",
                                           "mobilenet_v3_small", "shufflenet_v2_x0_5",
                                           "efficientnet_b0", "googlenet", "regnet_x_400mf",
                                           "mnasnet0_5", "densenet121", "resnext50_32x4d"));

}  // namespace
}  // namespace kiln
