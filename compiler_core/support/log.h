/// \file
/// Named spdlog loggers, one per component (core, lower, cost, tuner, tracker, agent, db).
/// All log to stderr; stdout belongs to --json output and progress lines.
#pragma once

#include <memory>
#include <string_view>

#include <spdlog/spdlog.h>

namespace kiln {

/// Returns the logger named `component`, creating it (stderr, shared format) on first use.
std::shared_ptr<spdlog::logger> logger(std::string_view component);

/// Sets every kiln logger's level from `level` ("trace", "debug", "info", "warn", "error",
/// "off"), then applies SPDLOG_LEVEL from the environment. Returns false for an unknown level.
bool set_log_level(std::string_view level);

}  // namespace kiln
