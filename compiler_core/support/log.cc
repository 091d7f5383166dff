#include "compiler_core/support/log.h"

#include <mutex>
#include <string>

#include <spdlog/cfg/env.h>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace kiln {
namespace {

constexpr const char* kComponents[] = {"core",  "lower",   "codegen", "cost",
                                       "tuner", "tracker", "agent",   "db"};

spdlog::level::level_enum& default_level() {
  static spdlog::level::level_enum level = spdlog::level::warn;
  return level;
}

std::mutex& registry_mutex() {
  static std::mutex mutex;
  return mutex;
}

}  // namespace

std::shared_ptr<spdlog::logger> logger(std::string_view component) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  std::string name(component);
  if (auto existing = spdlog::get(name)) return existing;
  auto created = spdlog::stderr_color_mt(name);
  created->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  created->set_level(default_level());
  return created;
}

bool set_log_level(std::string_view level) {
  auto parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") return false;
  default_level() = parsed;
  for (const char* name : kComponents) logger(name)->set_level(parsed);
  spdlog::cfg::load_env_levels();
  return true;
}

}  // namespace kiln
