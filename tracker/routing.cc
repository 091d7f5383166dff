#include "tracker/routing_internal.h"

namespace kiln::tracker::internal {

namespace pb = kiln::v1;

std::string normalize_architecture(std::string_view triple) {
  const std::string_view architecture = triple.substr(0, triple.find('-'));
  if (architecture == "arm64") return "aarch64";
  if (architecture == "amd64") return "x86_64";
  return std::string(architecture);
}

Requirement requirement_of(const pb::MeasureTask& task) {
  const pb::Target& target = task.target();
  Requirement requirement;
  requirement.architecture = normalize_architecture(target.triple());
  for (const std::string& feature : target.features()) {
    if (feature.size() > 1 && feature[0] == '+') requirement.features.push_back(feature.substr(1));
  }
  requirement.target = !target.canonical().empty() ? target.canonical() : target.triple();
  return requirement;
}

Capability capability_of(const pb::RegisterAgent& registration) {
  Capability capability;
  capability.architecture = normalize_architecture(!registration.facts().architecture().empty()
                                                       ? registration.facts().architecture()
                                                       : registration.target().triple());
  for (const std::string& feature : registration.facts().isa_features()) {
    const std::string_view name = std::string_view(feature).substr(feature.starts_with('+'));
    if (!name.empty()) capability.features.emplace(name);
  }
  for (const std::string& feature : registration.target().features()) {
    if (feature.size() > 1 && feature[0] == '+') capability.features.insert(feature.substr(1));
  }
  return capability;
}

}  // namespace kiln::tracker::internal
