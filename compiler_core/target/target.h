/// \file
/// Targets, parsed from TVM-style strings: `llvm` (this host), `llvm -mtriple=aarch64-linux-gnu
/// -mcpu=cortex-a72`, `llvm -mcpu=znver4 -mattr=+avx512f`, `cuda -arch=sm_90`.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "compiler_core/support/status.h"

namespace kiln::core {

enum class TargetKind { kLlvm, kCuda };

struct Target {
  TargetKind kind = TargetKind::kLlvm;
  bool is_host = true;            ///< `llvm` with no -mtriple: runs here through the JIT
  std::string triple;             ///< empty for the host until resolved by codegen
  std::string cpu;                ///< -mcpu, or the host CPU model LLVM should use
  std::vector<std::string> attrs; ///< -mattr entries, each "+feat" or "-feat"
  std::string arch;               ///< cuda -arch=sm_XX

  /// float32 lanes of the widest vector register the target has: 16 with AVX-512, 8 with
  /// AVX2, 4 with NEON/SSE. Used by schedule templates.
  int vector_lanes = 4;

  /// True when the code runs on AArch64: an aarch64/arm64 triple, or a host target (before its
  /// triple is resolved) in a process built for AArch64.
  bool is_aarch64() const;
  /// True when the code runs on x86: an x86_64/i?86 triple, or an unresolved host target in a
  /// process built for x86.
  bool is_x86() const;

  /// The vector registers a micro-kernel may keep live: 32 on AArch64 (NEON's v0-v31) and with
  /// AVX-512 (zmm0-31), 16 with AVX2 or SSE. Templates keep register tiles within this budget.
  int vector_registers() const;

  /// The canonical string (flags in a fixed order).
  std::string str() const;

  /// Field-by-field equality; parse_target(t.str()) == t for every parsed t.
  bool operator==(const Target&) const = default;
};

/// Parses `text`. `llvm` alone means the host; its CPU and features are filled in by
/// `resolve_host_target` (codegen/llvm), since only LLVM knows them. Errors: unknown kind,
/// unknown flag, malformed flag (InvalidArgument, naming the flag and the accepted form).
Result<Target> parse_target(std::string_view text);

}  // namespace kiln::core
