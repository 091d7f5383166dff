#include "compiler_core/support/architecture.h"

namespace kiln {

std::string triple_architecture(std::string_view triple) {
  const std::string_view arch = triple.substr(0, triple.find('-'));
  if (arch == "arm64") return "aarch64";
  if (arch == "amd64") return "x86_64";
  return std::string(arch);
}

std::string host_architecture() {
#if defined(__aarch64__)
  return "aarch64";
#elif defined(__x86_64__)
  return "x86_64";
#elif defined(__i386__)
  return "i386";
#else
  return "unknown";
#endif
}

}  // namespace kiln
