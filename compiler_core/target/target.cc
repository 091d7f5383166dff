#include "compiler_core/target/target.h"

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

#include "compiler_core/support/architecture.h"

namespace kiln::core {
namespace {

constexpr std::string_view kAcceptedKinds = "llvm, cuda";
constexpr std::string_view kLlvmFlags = "-mtriple=TRIPLE, -mcpu=CPU, -mattr=+feat,-feat";
constexpr std::string_view kCudaFlags = "-arch=sm_NN";

std::vector<std::string_view> split_whitespace(std::string_view text) {
  std::vector<std::string_view> tokens;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    size_t j = i;
    while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j]))) ++j;
    if (j > i) tokens.push_back(text.substr(i, j - i));
    i = j;
  }
  return tokens;
}

bool is_aarch64_triple(std::string_view triple) {
  return triple.starts_with("aarch64") || triple.starts_with("arm64");
}

bool is_x86_triple(std::string_view triple) {
  return triple.starts_with("x86_64") || triple.starts_with("amd64") ||
         (triple.size() >= 4 && triple[0] == 'i' && triple.substr(2, 2) == "86");
}


/// Lanes from the features -mattr switches on; a later "-feat" cancels an earlier "+feat".
int lanes_from_attrs(const std::vector<std::string>& attrs) {
  auto enabled = [&](std::string_view feature) {
    bool on = false;
    for (const std::string& attr : attrs) {
      if (std::string_view(attr).substr(1) == feature) on = attr[0] == '+';
    }
    return on;
  };
  if (enabled("avx512f")) return 16;
  if (enabled("avx2") || enabled("avx")) return 8;
  return 4;
}

/// "sm_" then digits, optionally one lower-case letter (sm_90a).
bool is_valid_arch(std::string_view arch) {
  if (!arch.starts_with("sm_")) return false;
  std::string_view rest = arch.substr(3);
  if (!rest.empty() && std::islower(static_cast<unsigned char>(rest.back()))) {
    rest.remove_suffix(1);
  }
  return !rest.empty() && std::all_of(rest.begin(), rest.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c));
  });
}

Status parse_mattr(std::string_view text, std::string_view value, Target* target) {
  size_t start = 0;
  while (start <= value.size()) {
    size_t comma = value.find(',', start);
    if (comma == std::string_view::npos) comma = value.size();
    std::string_view attr = value.substr(start, comma - start);
    if (attr.size() < 2 || (attr[0] != '+' && attr[0] != '-')) {
      return invalid_argument("malformed -mattr entry '" + std::string(attr) + "' in target '" +
                              std::string(text) +
                              "'; each entry is +feature or -feature, e.g. -mattr=+avx2,+fma");
    }
    target->attrs.emplace_back(attr);
    start = comma + 1;
  }
  return Status::ok();
}

}  // namespace

bool Target::is_aarch64() const {
  if (kind != TargetKind::kLlvm) return false;
  if (triple.empty()) return is_host && host_architecture() == "aarch64";
  return is_aarch64_triple(triple);
}

bool Target::is_x86() const {
  if (kind != TargetKind::kLlvm) return false;
  if (triple.empty()) return is_host && is_x86_triple(host_architecture());
  return is_x86_triple(triple);
}

int Target::vector_registers() const {
  if (is_aarch64()) return 32;
  return vector_lanes >= 16 ? 32 : 16;
}

std::string Target::str() const {
  if (kind == TargetKind::kCuda) {
    return arch.empty() ? "cuda" : "cuda -arch=" + arch;
  }
  std::string out = "llvm";
  if (!triple.empty() && !is_host) out += " -mtriple=" + triple;
  if (!cpu.empty()) out += " -mcpu=" + cpu;
  if (!attrs.empty()) {
    out += " -mattr=";
    for (size_t i = 0; i < attrs.size(); ++i) {
      if (i > 0) out += ',';
      out += attrs[i];
    }
  }
  return out;
}

Result<Target> parse_target(std::string_view text) {
  const std::vector<std::string_view> tokens = split_whitespace(text);
  if (tokens.empty()) {
    return invalid_argument(
        "empty target string; expected 'llvm [-mtriple=T] [-mcpu=C] [-mattr=+a,-b]' or "
        "'cuda -arch=sm_NN'");
  }
  Target target;
  const std::string_view kind = tokens[0];
  if (kind == "llvm") {
    target.kind = TargetKind::kLlvm;
  } else if (kind == "cuda") {
    target.kind = TargetKind::kCuda;
  } else {
    return invalid_argument("unknown target kind '" + std::string(kind) + "' in target '" +
                            std::string(text) +
                            "'; accepted kinds: " + std::string(kAcceptedKinds));
  }
  const bool is_llvm = target.kind == TargetKind::kLlvm;
  const std::string accepted_flags(is_llvm ? kLlvmFlags : kCudaFlags);

  std::vector<std::string_view> seen;
  for (size_t i = 1; i < tokens.size(); ++i) {
    const std::string_view token = tokens[i];
    const size_t eq = token.find('=');
    const std::string_view flag = token.substr(0, eq);
    const bool known =
        is_llvm ? (flag == "-mtriple" || flag == "-mcpu" || flag == "-mattr") : flag == "-arch";
    if (!known) {
      return invalid_argument("unknown flag '" + std::string(flag) + "' for " + std::string(kind) +
                              " in target '" + std::string(text) +
                              "'; accepted flags: " + accepted_flags);
    }
    if (eq == std::string_view::npos || eq + 1 == token.size()) {
      return invalid_argument("flag " + std::string(flag) + " in target '" + std::string(text) +
                              "' has no value; write it as " + std::string(flag) +
                              "=VALUE with no spaces around '='");
    }
    if (std::find(seen.begin(), seen.end(), flag) != seen.end()) {
      return invalid_argument("flag " + std::string(flag) + " given twice in target '" +
                              std::string(text) + "'; give each flag once");
    }
    seen.push_back(flag);
    const std::string_view value = token.substr(eq + 1);
    if (flag == "-mtriple") {
      target.triple = value;
    } else if (flag == "-mcpu") {
      target.cpu = value;
    } else if (flag == "-mattr") {
      KILN_RETURN_IF_ERROR(parse_mattr(text, value, &target));
    } else {
      if (!is_valid_arch(value)) {
        return invalid_argument("malformed -arch '" + std::string(value) + "' in target '" +
                                std::string(text) + "'; expected sm_NN such as sm_90");
      }
      target.arch = value;
    }
  }

  // Only a CPU target without -mtriple is this process's host; a CUDA target runs on a GPU
  // and is built by its own back end, so it is never "host" in the JIT sense.
  target.is_host = is_llvm && target.triple.empty();
  target.vector_lanes = 4;
  if (is_llvm && !is_aarch64_triple(target.triple)) {
    target.vector_lanes = lanes_from_attrs(target.attrs);
  }
  return target;
}

}  // namespace kiln::core
