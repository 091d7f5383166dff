#include "compiler_core/schedule/config_space.h"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "compiler_core/support/check.h"

namespace kiln::core {

ConfigSpace::ConfigSpace(std::string template_name, std::vector<Knob> knobs)
    : template_name_(std::move(template_name)), knobs_(std::move(knobs)) {
  size_ = 1;
  for (const Knob& k : knobs_) {
    KILN_CHECK(!k.choices.empty()) << "knob " << k.name << " without choices";
    size_ *= int64_t(k.choices.size());
  }
  default_ = *at(0);
}

Result<Config> ConfigSpace::at(int64_t index) const {
  if (index < 0 || index >= size_) {
    return Status(StatusCode::kOutOfRange, "config index " + std::to_string(index) +
                                               " is outside the space of " + template_name_ +
                                               " (0 to " + std::to_string(size_ - 1) + ")");
  }
  return decode(points_.empty() ? index : points_[size_t(index)], index);
}

Config ConfigSpace::decode(int64_t raw, int64_t index) const {
  Config c;
  c.index = index;
  int64_t rest = raw;
  for (const Knob& k : knobs_) {
    int64_t n = int64_t(k.choices.size());
    c.values.push_back(k.choices[size_t(rest % n)]);
    rest /= n;
  }
  return c;
}

void ConfigSpace::restrict_to(const std::function<bool(const std::vector<int64_t>&)>& fits,
                              std::string why) {
  KILN_CHECK(points_.empty()) << "space " << template_name_ << " is restricted twice";
  const Config old_default = default_;
  std::vector<int64_t> points;
  for (int64_t raw = 0; raw < size_; ++raw) {
    if (fits(decode(raw, raw).values)) points.push_back(raw);
  }
  KILN_CHECK(!points.empty()) << "no point of " << template_name_ << " fits: " << why;
  if (int64_t(points.size()) == size_) return;
  points_ = std::move(points);
  size_ = int64_t(points_.size());
  restriction_ = std::move(why);
  Result<Config> kept = from_values(old_default.values);
  default_ = kept.is_ok() ? *kept : *at(0);
}

Result<Config> ConfigSpace::from_values(const std::vector<int64_t>& values) const {
  if (values.size() != knobs_.size()) {
    return invalid_config("config has " + std::to_string(values.size()) + " values; " +
                          template_name_ + " has " + std::to_string(knobs_.size()) + " knobs");
  }
  int64_t index = 0, radix = 1;
  for (size_t i = 0; i < knobs_.size(); ++i) {
    const Knob& k = knobs_[i];
    auto it = std::find(k.choices.begin(), k.choices.end(), values[i]);
    if (it == k.choices.end()) {
      std::string accepted;
      for (int64_t c : k.choices) accepted += (accepted.empty() ? "" : ", ") + std::to_string(c);
      return invalid_config("knob '" + k.name + "' = " + std::to_string(values[i]) +
                            " is not in the space of " + template_name_ +
                            " (accepted: " + accepted + ")");
    }
    index += int64_t(it - k.choices.begin()) * radix;
    radix *= int64_t(k.choices.size());
  }
  if (points_.empty()) return Config{index, values};
  auto point = std::lower_bound(points_.begin(), points_.end(), index);
  if (point == points_.end() || *point != index) {
    std::string named;
    for (size_t i = 0; i < knobs_.size(); ++i) {
      named += (i == 0 ? "" : ", ") + knobs_[i].name + "=" + std::to_string(values[i]);
    }
    return invalid_config("config {" + named + "} is not in the space of " + template_name_ +
                          ": " + restriction_);
  }
  return Config{int64_t(point - points_.begin()), values};
}

Result<Config> ConfigSpace::parse(std::string_view text) const {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return invalid_config("config '" + std::string(text) +
                          "' is not a JSON object; expected {\"index\": N} or "
                          "{\"knobs\": {\"name\": value, ...}}");
  }
  if (j.contains("knobs")) {
    const nlohmann::json& knobs = j["knobs"];
    if (!knobs.is_object()) return invalid_config("config field 'knobs' is not an object");
    // A stored config (one with its index) may predate knobs appended to the template since:
    // those take their first choice, which keeps the kernel it was measured as.
    size_t named = knobs_.size();
    if (j.contains("index")) {
      while (named > 0 && !knobs.contains(knobs_[named - 1].name)) --named;
    }
    std::vector<int64_t> values;
    for (size_t i = 0; i < knobs_.size(); ++i) {
      const Knob& k = knobs_[i];
      if (i >= named) {
        values.push_back(k.choices.front());
        continue;
      }
      if (!knobs.contains(k.name)) {
        return invalid_config("config does not set knob '" + k.name + "' of " + template_name_);
      }
      if (!knobs[k.name].is_number_integer()) {
        return invalid_config("knob '" + k.name + "' is not an integer");
      }
      values.push_back(knobs[k.name].get<int64_t>());
    }
    for (const auto& [name, value] : knobs.items()) {
      bool known =
          std::any_of(knobs_.begin(), knobs_.end(), [&](const Knob& k) { return k.name == name; });
      if (!known) return invalid_config("unknown knob '" + name + "' for " + template_name_);
    }
    KILN_ASSIGN_OR_RETURN(Config c, from_values(values));
    if (j.contains("index") &&
        (!j["index"].is_number_integer() || j["index"].get<int64_t>() != c.index)) {
      return invalid_config("config index does not match its knobs (knobs give " +
                            std::to_string(c.index) + ")");
    }
    return c;
  }
  if (j.contains("index")) {
    if (!j["index"].is_number_integer()) return invalid_config("config index is not an integer");
    return at(j["index"].get<int64_t>());
  }
  return invalid_config("config has neither 'index' nor 'knobs'");
}

std::string ConfigSpace::to_json(const Config& config) const {
  nlohmann::json knobs = nlohmann::json::object();
  for (size_t i = 0; i < knobs_.size(); ++i) knobs[knobs_[i].name] = config.values[i];
  nlohmann::json j;
  j["index"] = config.index;
  j["knobs"] = knobs;
  return j.dump();
}

int ConfigSpace::knob_index(std::string_view name) const {
  for (size_t i = 0; i < knobs_.size(); ++i) {
    if (knobs_[i].name == name) return int(i);
  }
  return -1;
}

int64_t ConfigSpace::value(const Config& config, std::string_view name) const {
  const int i = knob_index(name);
  KILN_CHECK(i >= 0) << "no knob " << name << " in " << template_name_;
  return config.values[size_t(i)];
}

}  // namespace kiln::core
