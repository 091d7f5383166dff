// A cross module: torchvision's ResNet-18 (random weights, exported by
// tests/model/export_torchvision.py) compiled on this machine for aarch64, loaded and run by the
// arm64 kiln under qemu-user. Its outputs match PyTorch's and the host module's; the host kiln
// refuses the aarch64 module with a message that names both architectures.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "compiler_core/graph/npz.h"
#include "tests/arm/arm_build.h"
#include "tests/support/process.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

constexpr const char* kArmTarget = "llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72";

using Outcome = test::Finished;

Outcome run(const std::vector<std::string>& args, const fs::path& dir, const std::string& tag) {
  return test::run_to_end(args, dir, tag);
}

/// The largest |a - b| over the largest |b|.
double relative_difference(const graph::Tensor& a, const graph::Tensor& b) {
  double largest = 0, worst = 0;
  for (size_t i = 0; i < b.f32.size(); ++i) {
    largest = std::max(largest, double(std::fabs(b.f32[i])));
    worst = std::max(worst, double(std::fabs(a.f32[i] - b.f32[i])));
  }
  return worst / largest;
}

TEST(ArmModule, ResNet18CompiledHereRunsInTheArm64Kiln) {
  const fs::path dir = fs::path(::testing::TempDir()) / "kiln_arm_module";
  fs::remove_all(dir);
  fs::create_directories(dir);
  KILN_NEED_ARM64_BUILD();
  Outcome exported =
      run({"/usr/bin/python3", KILN_EXPORT_SCRIPT, "resnet18", dir.string()}, dir, "export");
  if (exported.code != 0 && std::getenv("KILN_REQUIRE_ARM") == nullptr &&
      exported.err.find("No module named") != std::string::npos) {
    GTEST_SKIP() << "python3-torch is missing";
  }
  ASSERT_EQ(exported.code, 0) << exported.err;
  const std::string model = (dir / "model.onnx").string();
  const std::string none_db = (dir / "none.db").string();

  Outcome arm_compile = run({KILN_BINARY, "compile", model, "--target", kArmTarget, "--db", none_db,
                             "-o", (dir / "arm.kmod").string()},
                            dir, "compile_arm");
  ASSERT_EQ(arm_compile.code, 0) << arm_compile.err;
  Outcome host_compile = run({KILN_BINARY, "compile", model, "--target", "llvm", "--db", none_db,
                              "-o", (dir / "host.kmod").string()},
                             dir, "compile_host");
  ASSERT_EQ(host_compile.code, 0) << host_compile.err;

  // This machine cannot run the aarch64 module, and says why.
  Outcome refused =
      run({KILN_BINARY, "run", "--module", (dir / "arm.kmod").string()}, dir, "refused");
  EXPECT_EQ(refused.code, 2) << refused.err;
  EXPECT_NE(refused.err.find("aarch64"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("x86_64"), std::string::npos) << refused.err;

  Outcome host_run = run(
      {KILN_BINARY, "run", "--module", (dir / "host.kmod").string(), "--inputs",
       (dir / "input.npz").string(), "--outputs", (dir / "host_out.npz").string(), "--repeat", "1"},
      dir, "run_host");
  ASSERT_EQ(host_run.code, 0) << host_run.err;
  Outcome arm_run =
      run({KILN_QEMU_AARCH64, "-L", KILN_ARM64_SYSROOT, KILN_ARM64_BINARY, "run", "--module",
           (dir / "arm.kmod").string(), "--inputs", (dir / "input.npz").string(), "--outputs",
           (dir / "arm_out.npz").string(), "--repeat", "1", "--threads", "2"},
          dir, "run_arm");
  ASSERT_EQ(arm_run.code, 0) << arm_run.err;
  std::cout << arm_run.out;

  auto expected = graph::read_npz((dir / "expected.npz").string());
  auto host = graph::read_npz((dir / "host_out.npz").string());
  auto arm = graph::read_npz((dir / "arm_out.npz").string());
  ASSERT_TRUE(expected.is_ok() && host.is_ok() && arm.is_ok());
  const graph::Tensor& want = expected->at("output");
  ASSERT_EQ(arm->at("output").info, want.info);
  const double against_pytorch = relative_difference(arm->at("output"), want);
  const double against_host = relative_difference(arm->at("output"), host->at("output"));
  std::cout << "aarch64 module: max |difference| / max |output|: " << against_pytorch
            << " against PyTorch, " << against_host << " against the host module\n";
  EXPECT_LE(against_pytorch, 1e-3);
  EXPECT_LE(against_host, 1e-3);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kiln
