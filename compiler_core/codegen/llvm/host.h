/// \file
/// The host CPU as LLVM sees it, and the facts a board reports about itself: its CPU model,
/// its features and whether it runs under user-mode emulation (qemu-user).
///
/// On AArch64 the features come from the kernel's HWCAP bits (getauxval), not from
/// /proc/cpuinfo as LLVM's own detection does: under qemu-user that file is the x86 host's.
/// The functions that read text or bits are pure, so that tests can feed them any machine.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "compiler_core/support/status.h"
#include "compiler_core/target/target.h"

namespace kiln::core {

/// Fills in a host target (`llvm` without -mtriple): the process triple, a CPU model LLVM
/// knows (LLVM 16 calls Zen 5 "generic"; then the nearest known model with the same vector
/// ISA), the detected features unless -mattr overrides them, and vector_lanes from the
/// features. On AArch64 the detected features are those of aarch64_features_from_hwcaps, each
/// spelled on or off. Non-host targets come back with vector_lanes set from their triple and
/// -mattr.
Result<Target> resolve_host_target(const Target& target);

/// The CPU model of this machine: on x86 the OS's "model name" (/proc/cpuinfo); on AArch64 the
/// part name from "CPU implementer" and "CPU part" ("ARM Cortex-A72"). Under emulation it names
/// the emulation and the real CPU: "qemu-user aarch64 on AMD EPYC 9B45". "unknown" when the OS
/// says nothing.
std::string host_cpu_model_name();

/// True when this process runs under user-mode emulation (qemu-user): /proc/cpuinfo describes
/// another architecture than the one this process was built for (cpuinfo_shows_emulation).
/// False when /proc/cpuinfo cannot be read. Computed once.
bool host_is_emulated();

/// The AArch64 features LLVM 16 knows that Linux reports in AT_HWCAP (`hwcap`) and AT_HWCAP2
/// (`hwcap2`), by LLVM name, each on or off: fp-armv8 (fp), neon (asimd), aes (aes and pmull),
/// sha2 (sha1 and sha2), crc (crc32), lse (atomics), fullfp16 (fphp and asimdhp), rdm
/// (asimdrdm), rcpc (lrcpc), dotprod (asimddp), sve, i8mm, bf16 and others (host.cc lists
/// them). A feature that needs several bits is on only when all are set. Any architecture may
/// call it; the bits mean something only on AArch64 Linux.
std::map<std::string, bool> aarch64_features_from_hwcaps(uint64_t hwcap, uint64_t hwcap2);

/// The CPU an AArch64 /proc/cpuinfo text describes, from its "CPU implementer" and "CPU part"
/// lines: "ARM Cortex-A72" (0x41, 0xd08), "ARM Neoverse-N1" (0xd0c), "ARM Cortex-A76" (0xd0b),
/// ..., "ARM part 0xd99" for an Arm part not in the table, "Qualcomm part 0x802" for another
/// vendor's part, "implementer 0x99 part 0x001" for an unknown vendor. A big.LITTLE system's
/// distinct cores are joined by " + " in the order they first appear. Empty when the text has
/// no "CPU implementer" line.
std::string arm_cpu_name_from_cpuinfo(std::string_view cpuinfo);

/// True when the /proc/cpuinfo text `cpuinfo` belongs to another architecture than a process
/// built for AArch64 (`aarch64` true) or x86 (false): for AArch64, no "CPU implementer" line
/// (every arm64 Linux kernel prints one) or an x86 "vendor_id" or "flags" line; for x86, a
/// "CPU implementer" line. False for an empty text (nothing to judge by).
bool cpuinfo_shows_emulation(std::string_view cpuinfo, bool aarch64);

/// host_cpu_model_name's answer for the /proc/cpuinfo text `cpuinfo` seen by a process built for
/// AArch64 (`aarch64` true) or x86.
std::string cpu_model_name_from_cpuinfo(std::string_view cpuinfo, bool aarch64);

}  // namespace kiln::core
