#include "compiler_core/codegen/llvm/host.h"

#if defined(__aarch64__)
#include <sys/auxv.h>
#endif

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <llvm/ADT/StringMap.h>
#include <llvm/TargetParser/Host.h>
#include <llvm/TargetParser/Triple.h>

#include "compiler_core/codegen/llvm/codegen_llvm_internal.h"
#include "compiler_core/support/architecture.h"

namespace kiln::core {
namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  return text;
}

/// Calls `visit(key, value)` for every "key : value" line of a /proc/cpuinfo text, in order.
template <typename Visit>
void for_each_cpuinfo_entry(std::string_view cpuinfo, Visit visit) {
  while (!cpuinfo.empty()) {
    const size_t end = cpuinfo.find('\n');
    std::string_view line = cpuinfo.substr(0, end);
    cpuinfo = end == std::string_view::npos ? std::string_view() : cpuinfo.substr(end + 1);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    visit(trim(line.substr(0, colon)), trim(line.substr(colon + 1)));
  }
}

/// The value of the first line whose key is `key`, or "" when there is none.
std::string cpuinfo_value(std::string_view cpuinfo, std::string_view key) {
  std::string found;
  bool seen = false;
  for_each_cpuinfo_entry(cpuinfo, [&](std::string_view name, std::string_view value) {
    if (seen || name != key) return;
    found = std::string(value);
    seen = true;
  });
  return found;
}

bool cpuinfo_has(std::string_view cpuinfo, std::string_view key) {
  bool seen = false;
  for_each_cpuinfo_entry(
      cpuinfo, [&](std::string_view name, std::string_view) { seen = seen || name == key; });
  return seen;
}

/// This machine's /proc/cpuinfo, read once; "" when it cannot be read.
const std::string& host_cpuinfo() {
  static const std::string text = [] {
    std::ifstream in("/proc/cpuinfo");
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }();
  return text;
}

/// A hexadecimal cpuinfo value ("0x41"), or -1 when it is not one.
int64_t parse_hex(std::string_view text) {
  if (text.starts_with("0x") || text.starts_with("0X")) text.remove_prefix(2);
  int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return -1;
  return value;
}

std::string hex(int64_t value, int digits) {
  char text[32];
  std::snprintf(text, sizeof(text), "0x%0*llx", digits, static_cast<unsigned long long>(value));
  return text;
}

/// A code of the MIDR_EL1 register (implementer or part) and its name.
struct CodeName {
  int64_t code;
  const char* name;
};

/// Implementer codes of the Arm architecture's MIDR_EL1 register.
constexpr CodeName kVendors[] = {
    {0x41, "ARM"},       {0x42, "Broadcom"}, {0x43, "Cavium"}, {0x46, "Fujitsu"},
    {0x48, "HiSilicon"}, {0x4e, "NVIDIA"},   {0x50, "APM"},    {0x51, "Qualcomm"},
    {0x61, "Apple"},     {0xc0, "Ampere"},
};

/// Arm Ltd's part numbers (implementer 0x41), as the Technical Reference Manuals give them.
constexpr CodeName kArmParts[] = {
    {0xd03, "Cortex-A53"},  {0xd04, "Cortex-A35"},  {0xd05, "Cortex-A55"},
    {0xd06, "Cortex-A65"},  {0xd07, "Cortex-A57"},  {0xd08, "Cortex-A72"},
    {0xd09, "Cortex-A73"},  {0xd0a, "Cortex-A75"},  {0xd0b, "Cortex-A76"},
    {0xd0c, "Neoverse-N1"}, {0xd0d, "Cortex-A77"},  {0xd0e, "Cortex-A76AE"},
    {0xd40, "Neoverse-V1"}, {0xd41, "Cortex-A78"},  {0xd42, "Cortex-A78AE"},
    {0xd44, "Cortex-X1"},   {0xd46, "Cortex-A510"}, {0xd47, "Cortex-A710"},
    {0xd48, "Cortex-X2"},   {0xd49, "Neoverse-N2"}, {0xd4a, "Neoverse-E1"},
    {0xd4b, "Cortex-A78C"}, {0xd4d, "Cortex-A715"}, {0xd4e, "Cortex-X3"},
    {0xd4f, "Neoverse-V2"}, {0xd80, "Cortex-A520"}, {0xd81, "Cortex-A720"},
    {0xd82, "Cortex-X4"},
};

/// The name of `code` in `table`, or nullptr.
template <size_t N>
const char* name_of(const CodeName (&table)[N], int64_t code) {
  for (const CodeName& entry : table) {
    if (entry.code == code) return entry.name;
  }
  return nullptr;
}

std::string part_description(int64_t implementer, int64_t part) {
  const char* vendor = name_of(kVendors, implementer);
  if (vendor == nullptr) return "implementer " + hex(implementer, 2) + " part " + hex(part, 3);
  if (implementer == 0x41) {
    if (const char* name = name_of(kArmParts, part)) return std::string("ARM ") + name;
  }
  return std::string(vendor) + " part " + hex(part, 3);
}

/// An AArch64 feature by its LLVM 16 name and the HWCAP bits that must all be set for it.
struct HwcapFeature {
  const char* name;
  uint64_t hwcap;
  uint64_t hwcap2;
};

constexpr uint64_t bit(int n) { return uint64_t{1} << n; }

// Bit numbers from Linux's arch/arm64/include/uapi/asm/hwcap.h (a stable ABI); names as LLVM
// 16's AArch64 back end spells them (`llc -mtriple=aarch64 -mattr=help`). Several HWCAP bits
// make one LLVM feature where LLVM's feature covers several architecture features.
constexpr HwcapFeature kHwcapFeatures[] = {
    {"fp-armv8", bit(0), 0},            // fp
    {"neon", bit(1), 0},                // asimd
    {"aes", bit(3) | bit(4), 0},        // aes, pmull
    {"sha2", bit(5) | bit(6), 0},       // sha1, sha2
    {"crc", bit(7), 0},                 // crc32
    {"lse", bit(8), 0},                 // atomics
    {"fullfp16", bit(9) | bit(10), 0},  // fphp, asimdhp
    {"rdm", bit(12), 0},                // asimdrdm
    {"jsconv", bit(13), 0},             // jscvt
    {"complxnum", bit(14), 0},          // fcma
    {"rcpc", bit(15), 0},               // lrcpc
    {"ccpp", bit(16), 0},               // dcpop
    {"sha3", bit(17) | bit(21), 0},     // sha3, sha512
    {"sm4", bit(18) | bit(19), 0},      // sm3, sm4
    {"dotprod", bit(20), 0},            // asimddp
    {"sve", bit(22), 0},                // sve
    {"fp16fml", bit(23), 0},            // asimdfhm
    {"dit", bit(24), 0},                // dit
    {"lse2", bit(25), 0},               // uscat
    {"rcpc-immo", bit(26), 0},          // ilrcpc
    {"flagm", bit(27), 0},              // flagm
    {"ssbs", bit(28), 0},               // ssbs
    {"sb", bit(29), 0},                 // sb
    {"pauth", bit(30) | bit(31), 0},    // paca, pacg
    {"ccdp", 0, bit(0)},                // dcpodp
    {"sve2", 0, bit(1)},                // sve2
    {"sve2-aes", 0, bit(2) | bit(3)},   // sveaes, svepmull
    {"sve2-bitperm", 0, bit(4)},        // svebitperm
    {"sve2-sha3", 0, bit(5)},           // svesha3
    {"sve2-sm4", 0, bit(6)},            // svesm4
    {"altnzcv", 0, bit(7)},             // flagm2
    {"fptoint", 0, bit(8)},             // frint
    {"f32mm", 0, bit(10)},              // svef32mm
    {"f64mm", 0, bit(11)},              // svef64mm
    {"i8mm", 0, bit(13)},               // i8mm
    {"bf16", 0, bit(14)},               // bf16
    {"rand", 0, bit(16)},               // rng
    {"bti", 0, bit(17)},                // bti
    {"mte", 0, bit(18)},                // mte
    {"sme", 0, bit(23)},                // sme
};

bool is_arm_triple(const std::string& triple) {
  const llvm::Triple t(triple);
  return t.isAArch64() || t.isARM() || t.isThumb();
}

bool enabled(const std::map<std::string, bool>& features, const std::string& name) {
  auto it = features.find(name);
  return it != features.end() && it->second;
}

int lanes_from_features(const std::map<std::string, bool>& features) {
  if (enabled(features, "avx512f")) return 16;
  if (enabled(features, "avx2") || enabled(features, "avx")) return 8;
  return 4;
}

/// The nearest CPU model LLVM 16 knows for an x86 host it calls "generic" (Zen 5, newer
/// Intel parts): one with the same vector ISA, so that its cost model fits.
std::string x86_model_for_generic(const std::map<std::string, bool>& features) {
  if (enabled(features, "avx512f")) {
    return cpuinfo_value(host_cpuinfo(), "vendor_id") == "AuthenticAMD" ? "znver4"
                                                                        : "icelake-server";
  }
  if (enabled(features, "avx2")) return "x86-64-v3";
  return "x86-64";
}

/// This host's features by LLVM name, each on or off. On AArch64 from the kernel's HWCAP bits;
/// elsewhere (and should the kernel give no bits) from LLVM's detection.
std::map<std::string, bool> detected_features() {
#if defined(__aarch64__)
  const uint64_t hwcap = getauxval(AT_HWCAP);
  if (hwcap != 0) return aarch64_features_from_hwcaps(hwcap, getauxval(AT_HWCAP2));
#endif
  std::map<std::string, bool> features;
  llvm::StringMap<bool> detected;
  if (llvm::sys::getHostCPUFeatures(detected)) {
    for (const auto& entry : detected) features[entry.getKey().str()] = entry.getValue();
  }
  return features;
}

/// vector_lanes of a target that is not this host: 4 on ARM; on x86 what the CPU model and
/// -mattr give together, as LLVM's subtarget sees them.
Result<int> cross_target_lanes(const Target& target) {
  if (!codegen_llvm_internal::is_x86_triple(target.triple)) return 4;
  KILN_ASSIGN_OR_RETURN(const llvm::Target* llvm_target,
                        codegen_llvm_internal::lookup_target(target.triple));
  KILN_RETURN_IF_ERROR(codegen_llvm_internal::check_cpu(*llvm_target, target.triple, target));
  auto info = codegen_llvm_internal::create_subtarget_info(*llvm_target, target.triple, target);
  if (info == nullptr) {
    return internal_error("llvm has no subtarget information for triple '" + target.triple + "'");
  }
  if (info->checkFeatures("+avx512f")) return 16;
  if (info->checkFeatures("+avx2") || info->checkFeatures("+avx")) return 8;
  return 4;
}

}  // namespace

std::map<std::string, bool> aarch64_features_from_hwcaps(uint64_t hwcap, uint64_t hwcap2) {
  std::map<std::string, bool> features;
  for (const HwcapFeature& feature : kHwcapFeatures) {
    features[feature.name] =
        (hwcap & feature.hwcap) == feature.hwcap && (hwcap2 & feature.hwcap2) == feature.hwcap2;
  }
  return features;
}

std::string arm_cpu_name_from_cpuinfo(std::string_view cpuinfo) {
  std::vector<std::string> names;
  int64_t implementer = -1;
  for_each_cpuinfo_entry(cpuinfo, [&](std::string_view key, std::string_view value) {
    if (key == "CPU implementer") {
      implementer = parse_hex(value);
      return;
    }
    if (key != "CPU part" || implementer < 0) return;
    const int64_t part = parse_hex(value);
    if (part < 0) return;
    std::string name = part_description(implementer, part);
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  });
  std::string out;
  for (const std::string& name : names) out += (out.empty() ? "" : " + ") + name;
  return out;
}

bool cpuinfo_shows_emulation(std::string_view cpuinfo, bool aarch64) {
  if (trim(cpuinfo).empty()) return false;
  if (aarch64) {
    return !cpuinfo_has(cpuinfo, "CPU implementer") || cpuinfo_has(cpuinfo, "vendor_id") ||
           cpuinfo_has(cpuinfo, "flags");
  }
  return cpuinfo_has(cpuinfo, "CPU implementer");
}

std::string cpu_model_name_from_cpuinfo(std::string_view cpuinfo, bool aarch64) {
  // The name of the CPU the text describes, whichever architecture that is.
  std::string described = cpuinfo_has(cpuinfo, "CPU implementer")
                              ? arm_cpu_name_from_cpuinfo(cpuinfo)
                              : cpuinfo_value(cpuinfo, "model name");
  if (described.empty()) described = "unknown";
  if (cpuinfo_shows_emulation(cpuinfo, aarch64)) {
    return std::string("qemu-user ") + (aarch64 ? "aarch64" : "x86_64") + " on " + described;
  }
  return described;
}

Result<Target> resolve_host_target(const Target& target) {
  if (target.kind != TargetKind::kLlvm) return target;
  codegen_llvm_internal::initialize_llvm();
  Target out = target;
  if (!target.is_host) {
    if (is_arm_triple(target.triple)) {
      out.vector_lanes = 4;
      return out;
    }
    KILN_ASSIGN_OR_RETURN(out.vector_lanes, cross_target_lanes(target));
    return out;
  }

  out.triple = llvm::sys::getProcessTriple();
  // Detected features first, then -mattr entries in order (a later entry wins). Every feature
  // is spelled out, on or off, as clang's -march=native does: the CPU model alone could imply
  // features this host lacks (a Cortex-A72 without the crypto extension).
  std::map<std::string, bool> features = detected_features();
  const std::map<std::string, bool> host_features = features;
  for (const std::string& attr : target.attrs) {
    if (attr.size() < 2) continue;
    features[attr.substr(1)] = attr[0] == '+';
  }

  if (out.cpu.empty()) {
    out.cpu = llvm::sys::getHostCPUName().str();
    if (out.cpu == "generic" && codegen_llvm_internal::is_x86_triple(out.triple)) {
      out.cpu = x86_model_for_generic(host_features);
    }
  }
  out.attrs.clear();
  for (const auto& [name, on] : features) out.attrs.push_back((on ? "+" : "-") + name);
  out.vector_lanes = is_arm_triple(out.triple) ? 4 : lanes_from_features(features);
  return out;
}

std::string host_cpu_model_name() {
  return cpu_model_name_from_cpuinfo(host_cpuinfo(), host_architecture() == "aarch64");
}

bool host_is_emulated() {
  static const bool emulated =
      cpuinfo_shows_emulation(host_cpuinfo(), host_architecture() == "aarch64");
  return emulated;
}

}  // namespace kiln::core
