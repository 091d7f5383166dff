/// \file
/// The arm64 build the arm suite runs (scripts/cross_build_arm64.sh: the arm64 kiln and its
/// sysroot) and qemu-user, and what a test does when they are missing.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace kiln::test {

/// What is missing of the arm64 kiln, its sysroot and qemu-aarch64; empty when all are there.
inline std::string missing_arm64_build() {
  namespace fs = std::filesystem;
  if (fs::exists(KILN_ARM64_BINARY) && fs::is_directory(KILN_ARM64_SYSROOT) &&
      fs::exists(KILN_QEMU_AARCH64)) {
    return "";
  }
  return std::string(KILN_ARM64_BINARY) + ", " + KILN_ARM64_SYSROOT + " or " + KILN_QEMU_AARCH64 +
         " is missing; run scripts/cross_build_arm64.sh";
}

}  // namespace kiln::test

/// Skips the calling test when the arm64 build is missing. The README's test command builds it
/// first and sets KILN_REQUIRE_ARM: there a missing piece is a failure, not a skip.
#define KILN_NEED_ARM64_BUILD()                                               \
  do {                                                                        \
    const std::string kiln_missing = ::kiln::test::missing_arm64_build();     \
    if (!kiln_missing.empty()) {                                              \
      if (std::getenv("KILN_REQUIRE_ARM") != nullptr) FAIL() << kiln_missing; \
      GTEST_SKIP() << kiln_missing;                                           \
    }                                                                         \
  } while (0)
