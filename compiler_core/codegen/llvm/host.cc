#include "compiler_core/codegen/llvm/host.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <string>
#include <string_view>

#include <llvm/ADT/StringMap.h>
#include <llvm/TargetParser/Host.h>
#include <llvm/TargetParser/Triple.h>

#include "compiler_core/codegen/llvm/codegen_llvm_internal.h"

namespace kiln::core {
namespace {

/// The value of the first /proc/cpuinfo line whose key is `key`, or "" when there is none.
std::string cpuinfo_value(std::string_view key) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string_view name(line.data(), colon);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
    if (name != key) continue;
    std::string_view value = std::string_view(line).substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
      value.remove_prefix(1);
    }
    while (!value.empty() && (value.back() == ' ' || value.back() == '\r')) {
      value.remove_suffix(1);
    }
    return std::string(value);
  }
  return "";
}

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
    return cpuinfo_value("vendor_id") == "AuthenticAMD" ? "znver4" : "icelake-server";
  }
  if (enabled(features, "avx2")) return "x86-64-v3";
  return "x86-64";
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
  // features this host lacks.
  std::map<std::string, bool> features;
  llvm::StringMap<bool> detected;
  if (llvm::sys::getHostCPUFeatures(detected)) {
    for (const auto& entry : detected) features[entry.getKey().str()] = entry.getValue();
  }
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
  std::string name = cpuinfo_value("model name");
  return name.empty() ? "unknown" : name;
}

}  // namespace kiln::core
