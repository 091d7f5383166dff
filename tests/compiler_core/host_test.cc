// Host facts from what the kernel reports: HWCAP bits to LLVM's AArch64 feature names, and
// /proc/cpuinfo texts of real and emulated machines to a CPU model and an emulation verdict.
// The functions are pure, so every machine is a string or two integers here.

#include "compiler_core/codegen/llvm/host.h"

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "compiler_core/build.h"
#include "compiler_core/schedule/templates.h"

namespace kiln::core {
namespace {

constexpr uint64_t bits(std::initializer_list<int> numbers) {
  uint64_t out = 0;
  for (int n : numbers) out |= uint64_t{1} << n;
  return out;
}

// AT_HWCAP of a Raspberry Pi 4 (Cortex-A72 without the crypto extension): fp asimd evtstrm
// crc32 cpuid.
constexpr uint64_t kRaspberryPi4Hwcap = bits({0, 1, 2, 7, 11});
// AT_HWCAP of a Neoverse-N1 (AWS Graviton2): fp asimd evtstrm aes pmull sha1 sha2 crc32
// atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs.
constexpr uint64_t kNeoverseN1Hwcap =
    bits({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 16, 20, 28});

// /proc/cpuinfo of a Raspberry Pi 4, two of its four cores.
constexpr const char* kCortexA72Cpuinfo =
    "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
    "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n"
    "CPU revision\t: 3\n\n"
    "processor\t: 1\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
    "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n"
    "CPU revision\t: 3\n\n";

// /proc/cpuinfo of an x86 machine, as a program under qemu-aarch64 reads it too.
constexpr const char* kZen5Cpuinfo =
    "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n"
    "model name\t: AMD EPYC 9B45 128-Core Processor\nflags\t\t: fpu vme de pse avx512f\n\n";

std::string cpuinfo_of(const std::string& implementer, const std::string& part) {
  return "processor\t: 0\nFeatures\t: fp asimd\nCPU implementer\t: " + implementer +
         "\nCPU architecture: 8\nCPU part\t: " + part + "\n\n";
}

TEST(HostFacts, RaspberryPi4HwcapsHaveNeonAndCrcButNoCrypto) {
  std::map<std::string, bool> f = aarch64_features_from_hwcaps(kRaspberryPi4Hwcap, 0);
  EXPECT_TRUE(f.at("fp-armv8"));
  EXPECT_TRUE(f.at("neon"));
  EXPECT_TRUE(f.at("crc"));
  // Spelled out as off, so that -mcpu=cortex-a72's implied crypto is not assumed.
  EXPECT_FALSE(f.at("aes"));
  EXPECT_FALSE(f.at("sha2"));
  EXPECT_FALSE(f.at("lse"));
  EXPECT_FALSE(f.at("dotprod"));
  EXPECT_FALSE(f.at("sve"));
}

TEST(HostFacts, NeoverseN1HwcapsMapToLlvmNames) {
  std::map<std::string, bool> f = aarch64_features_from_hwcaps(kNeoverseN1Hwcap, 0);
  for (const char* on : {"fp-armv8", "neon", "aes", "sha2", "crc", "lse", "fullfp16", "rdm", "rcpc",
                         "ccpp", "dotprod", "ssbs"}) {
    EXPECT_TRUE(f.at(on)) << on;
  }
  for (const char* off : {"sve", "sve2", "i8mm", "bf16", "sha3", "fp16fml", "rcpc-immo"}) {
    EXPECT_FALSE(f.at(off)) << off;
  }
}

TEST(HostFacts, AFeatureOfSeveralBitsNeedsThemAll) {
  // fphp without asimdhp: half precision in scalar registers only is not LLVM's fullfp16.
  EXPECT_FALSE(aarch64_features_from_hwcaps(bits({0, 1, 9}), 0).at("fullfp16"));
  EXPECT_TRUE(aarch64_features_from_hwcaps(bits({0, 1, 9, 10}), 0).at("fullfp16"));
  EXPECT_FALSE(aarch64_features_from_hwcaps(bits({3}), 0).at("aes"));  // aes without pmull
}

TEST(HostFacts, Hwcap2BitsGiveI8mmBf16AndSve2) {
  std::map<std::string, bool> f =
      aarch64_features_from_hwcaps(kNeoverseN1Hwcap | bits({22}), bits({1, 13, 14}));
  EXPECT_TRUE(f.at("sve"));
  EXPECT_TRUE(f.at("sve2"));
  EXPECT_TRUE(f.at("i8mm"));
  EXPECT_TRUE(f.at("bf16"));
  EXPECT_FALSE(f.at("sve2-aes"));
}

TEST(HostFacts, EveryMappedFeatureIsOneLlvmKnows) {
  // LLVM warns on stderr about a feature it does not know and ignores it; compile an object
  // with all of them on and make sure no warning appears. A made-up name shows the warning is
  // there to be seen.
  std::string all;
  for (const auto& [name, on] : aarch64_features_from_hwcaps(~uint64_t{0}, ~uint64_t{0})) {
    EXPECT_TRUE(on) << name;
    all += (all.empty() ? "+" : ",+") + name;
  }
  Result<Workload> w = parse_workload("matmul:M=8,N=8,K=8");
  ASSERT_TRUE(w.is_ok());
  auto warnings_for = [&](const std::string& attrs) {
    Result<Target> t =
        parse_target("llvm -mtriple=aarch64-linux-gnu -mcpu=neoverse-n1 -mattr=" + attrs);
    EXPECT_TRUE(t.is_ok()) << t.status().to_string();
    Result<ConfigSpace> space = config_space(*w, *t);
    EXPECT_TRUE(space.is_ok()) << space.status().to_string();
    ::testing::internal::CaptureStderr();
    Result<std::vector<uint8_t>> object = build_object(*w, *t, space->default_config());
    std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_TRUE(object.is_ok()) << object.status().to_string();
    return err;
  };
  EXPECT_NE(warnings_for("+neon,+not-a-feature").find("not-a-feature"), std::string::npos);
  EXPECT_EQ(warnings_for(all), "");
}

TEST(HostFacts, CpuinfoPartsNameTheCore) {
  EXPECT_EQ(arm_cpu_name_from_cpuinfo(kCortexA72Cpuinfo), "ARM Cortex-A72");
  EXPECT_EQ(arm_cpu_name_from_cpuinfo(cpuinfo_of("0x41", "0xd0c")), "ARM Neoverse-N1");
  EXPECT_EQ(arm_cpu_name_from_cpuinfo(cpuinfo_of("0x41", "0xd0b")), "ARM Cortex-A76");
  EXPECT_EQ(arm_cpu_name_from_cpuinfo(cpuinfo_of("0x41", "0xd99")), "ARM part 0xd99");
  EXPECT_EQ(arm_cpu_name_from_cpuinfo(cpuinfo_of("0x51", "0x802")), "Qualcomm part 0x802");
  EXPECT_EQ(arm_cpu_name_from_cpuinfo(cpuinfo_of("0x99", "0x1")), "implementer 0x99 part 0x001");
  EXPECT_EQ(arm_cpu_name_from_cpuinfo(kZen5Cpuinfo), "");
}

TEST(HostFacts, BigLittleCpuinfoNamesEachKindOfCoreOnce) {
  const std::string text = cpuinfo_of("0x41", "0xd05") + cpuinfo_of("0x41", "0xd05") +
                           cpuinfo_of("0x41", "0xd0b") + cpuinfo_of("0x41", "0xd0b");
  EXPECT_EQ(arm_cpu_name_from_cpuinfo(text), "ARM Cortex-A55 + ARM Cortex-A76");
}

TEST(HostFacts, AnX86CpuinfoSeenFromAarch64IsEmulation) {
  EXPECT_TRUE(cpuinfo_shows_emulation(kZen5Cpuinfo, /*aarch64=*/true));
  EXPECT_EQ(cpu_model_name_from_cpuinfo(kZen5Cpuinfo, true),
            "qemu-user aarch64 on AMD EPYC 9B45 128-Core Processor");
  // An arm64 text with an x86 flags line is not a real arm64 kernel's either.
  EXPECT_TRUE(cpuinfo_shows_emulation(std::string(kCortexA72Cpuinfo) + "flags\t: fpu\n", true));
}

TEST(HostFacts, NativeCpuinfoIsNotEmulation) {
  EXPECT_FALSE(cpuinfo_shows_emulation(kCortexA72Cpuinfo, /*aarch64=*/true));
  EXPECT_EQ(cpu_model_name_from_cpuinfo(kCortexA72Cpuinfo, true), "ARM Cortex-A72");
  EXPECT_FALSE(cpuinfo_shows_emulation(kZen5Cpuinfo, /*aarch64=*/false));
  EXPECT_EQ(cpu_model_name_from_cpuinfo(kZen5Cpuinfo, false), "AMD EPYC 9B45 128-Core Processor");
}

TEST(HostFacts, AnArmCpuinfoSeenFromX86IsEmulation) {
  EXPECT_TRUE(cpuinfo_shows_emulation(kCortexA72Cpuinfo, /*aarch64=*/false));
  EXPECT_EQ(cpu_model_name_from_cpuinfo(kCortexA72Cpuinfo, false),
            "qemu-user x86_64 on ARM Cortex-A72");
}

TEST(HostFacts, AnUnreadableCpuinfoProvesNothing) {
  EXPECT_FALSE(cpuinfo_shows_emulation("", true));
  EXPECT_FALSE(cpuinfo_shows_emulation("", false));
  EXPECT_EQ(cpu_model_name_from_cpuinfo("", false), "unknown");
}

TEST(HostFacts, ThisMachineAgreesWithItself) {
  // Whatever this machine is, its model name names the emulation exactly when it is emulated.
  const std::string name = host_cpu_model_name();
  EXPECT_FALSE(name.empty());
  EXPECT_EQ(name.starts_with("qemu-user "), host_is_emulated()) << name;
}

}  // namespace
}  // namespace kiln::core
