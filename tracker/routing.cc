#include "tracker/routing_internal.h"

#include "compiler_core/support/architecture.h"

namespace kiln::tracker::internal {

namespace pb = kiln::v1;

Requirement requirement_of(const pb::MeasureTask& task) {
  const pb::Target& target = task.target();
  Requirement requirement;
  requirement.architecture = triple_architecture(target.triple());
  for (const std::string& feature : target.features()) {
    if (feature.size() > 1 && feature[0] == '+') requirement.features.push_back(feature.substr(1));
  }
  requirement.target = !target.canonical().empty() ? target.canonical() : target.triple();
  return requirement;
}

Capability capability_of(const pb::RegisterAgent& registration) {
  Capability capability;
  capability.architecture = triple_architecture(!registration.facts().architecture().empty()
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
