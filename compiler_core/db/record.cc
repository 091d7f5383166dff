#include "compiler_core/db/record.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/db/record_internal.h"
#include "compiler_core/te/workload.h"

namespace kiln::core {
namespace {

constexpr std::array<const char*, kNumMeasureErrors> kErrorNames = {
    "OK",           "INVALID_CONFIG", "COMPILE_ERROR", "RUNTIME_ERROR",
    "WRONG_ANSWER", "TIMEOUT",        "DEVICE_LOST"};

using Json = nlohmann::json;

/// The field `name` of `object` as a string; InvalidArgument when it is missing (and required)
/// or not a string.
Status read_string(const Json& object, const char* name, bool required, std::string* out) {
  auto it = object.find(name);
  if (it == object.end()) {
    if (!required) return Status::ok();
    return invalid_argument(std::string("missing field '") + name + "'");
  }
  if (!it->is_string())
    return invalid_argument(std::string("field '") + name + "' is not a string");
  *out = it->get<std::string>();
  return Status::ok();
}

}  // namespace

const char* measure_error_name(MeasureError error) {
  const int value = static_cast<int>(error);
  if (value < 0 || value >= kNumMeasureErrors) return "UNKNOWN";
  return kErrorNames[static_cast<size_t>(value)];
}

Result<MeasureError> parse_measure_error(std::string_view name) {
  for (int i = 0; i < kNumMeasureErrors; ++i) {
    if (name == kErrorNames[static_cast<size_t>(i)]) return static_cast<MeasureError>(i);
  }
  return invalid_argument("unknown measurement error '" + std::string(name) +
                          "'; expected OK, INVALID_CONFIG, COMPILE_ERROR, RUNTIME_ERROR, "
                          "WRONG_ANSWER, TIMEOUT or DEVICE_LOST");
}

std::string TargetKey::features() const {
  // The canonical string holds `-mattr=` at most once and never inside another token.
  const size_t at = target.find(" -mattr=");
  if (at == std::string::npos) return "";
  const size_t start = at + 8;
  const size_t end = target.find(' ', start);
  return target.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

std::string TargetKey::str() const {
  std::string out = model.empty() ? target : target + " (" + model + ")";
  if (emulated) out += " (emulated)";
  if (threads > 0)
    out += " (" + std::to_string(threads) + (threads == 1 ? " thread)" : " threads)");
  return out;
}

Result<TargetKey> make_target_key(const Target& target, int threads) {
  if (target.kind != TargetKind::kLlvm || !target.is_host) {
    return TargetKey{target.str(), "", false, threads};
  }
  KILN_ASSIGN_OR_RETURN(Target resolved, resolve_host_target(target));
  return TargetKey{resolved.str(), host_cpu_model_name(), host_is_emulated(), threads};
}

double TuningRecord::median_cost() const {
  if (costs.empty()) return std::numeric_limits<double>::infinity();
  std::vector<double> sorted = costs;
  std::sort(sorted.begin(), sorted.end());
  const size_t mid = sorted.size() / 2;
  if (sorted.size() % 2 == 1) return sorted[mid];
  return (sorted[mid - 1] + sorted[mid]) / 2;
}

std::string TuningRecord::config_json() const {
  return "{\"index\":" + std::to_string(config_index) + ",\"knobs\":" + config_knobs + "}";
}

std::string record_to_json_line(const TuningRecord& record) {
  // Stored text was checked when appended; a row edited by hand is passed on as a string, so
  // that import names the field instead of export failing.
  auto as_object = [](const std::string& text) {
    Json parsed = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    return parsed.is_discarded() ? Json(text) : parsed;
  };
  nlohmann::ordered_json line = {
      {"workload", record.workload},
      {"target", record.target.target},
      {"model", record.target.model},
      {"emulated", record.target.emulated},
      {"threads", record.target.threads},
      {"features", record.target.features()},
      {"config", {{"index", record.config_index}, {"knobs", as_object(record.config_knobs)}}},
      {"costs", record.costs},
      {"error", measure_error_name(record.error)},
      {"error_message", record.error_message},
      {"agent", record.agent},
      {"device", record.device},
      {"measure_options", as_object(record.measure_options)},
      {"measured_at_ms", record.measured_at_ms},
      {"kiln_version", record.kiln_version},
  };
  return line.dump();
}

Result<TuningRecord> record_from_json_line(std::string_view line) {
  Json json = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return invalid_argument("not valid JSON");
  if (!json.is_object()) return invalid_argument("not a JSON object");
  TuningRecord record;
  KILN_RETURN_IF_ERROR(read_string(json, "workload", true, &record.workload));
  KILN_RETURN_IF_ERROR(read_string(json, "target", true, &record.target.target));
  KILN_RETURN_IF_ERROR(read_string(json, "model", true, &record.target.model));
  if (auto emulated = json.find("emulated"); emulated != json.end()) {
    if (!emulated->is_boolean()) return invalid_argument("field 'emulated' is not a boolean");
    record.target.emulated = emulated->get<bool>();
  }
  if (auto threads = json.find("threads"); threads != json.end()) {
    if (!threads->is_number_integer() || threads->get<int64_t>() < 0 ||
        threads->get<int64_t>() > kMaxRecordThreads) {
      return invalid_argument("field 'threads' is not an integer from 0 to " +
                              std::to_string(kMaxRecordThreads));
    }
    record.target.threads = threads->get<int>();
  }
  KILN_RETURN_IF_ERROR(read_string(json, "agent", true, &record.agent));
  KILN_RETURN_IF_ERROR(read_string(json, "device", false, &record.device));
  KILN_RETURN_IF_ERROR(read_string(json, "error_message", false, &record.error_message));
  KILN_RETURN_IF_ERROR(read_string(json, "kiln_version", false, &record.kiln_version));

  auto config = json.find("config");
  if (config == json.end()) return invalid_argument("missing field 'config'");
  if (!config->is_object() || !config->contains("index") || !config->contains("knobs")) {
    return invalid_argument("field 'config' is not an object {\"index\": N, \"knobs\": {...}}");
  }
  if (!(*config)["index"].is_number_integer()) {
    return invalid_argument("field 'config.index' is not an integer");
  }
  if (!(*config)["knobs"].is_object()) {
    return invalid_argument("field 'config.knobs' is not an object");
  }
  record.config_index = (*config)["index"].get<int64_t>();
  record.config_knobs = (*config)["knobs"].dump();

  auto costs = json.find("costs");
  if (costs == json.end()) return invalid_argument("missing field 'costs'");
  if (!costs->is_array()) return invalid_argument("field 'costs' is not an array of seconds");
  for (const Json& cost : *costs) {
    if (!cost.is_number()) return invalid_argument("field 'costs' holds a value that is no number");
    record.costs.push_back(cost.get<double>());
  }

  std::string error_name;
  KILN_RETURN_IF_ERROR(read_string(json, "error", true, &error_name));
  KILN_ASSIGN_OR_RETURN(record.error, parse_measure_error(error_name));

  if (auto options = json.find("measure_options"); options != json.end()) {
    if (!options->is_object()) return invalid_argument("field 'measure_options' is not an object");
    record.measure_options = options->dump();
  }

  auto measured_at = json.find("measured_at_ms");
  if (measured_at == json.end()) return invalid_argument("missing field 'measured_at_ms'");
  if (!measured_at->is_number_integer() || measured_at->get<int64_t>() <= 0) {
    return invalid_argument("field 'measured_at_ms' is not a positive integer (Unix ms)");
  }
  record.measured_at_ms = measured_at->get<int64_t>();

  KILN_ASSIGN_OR_RETURN(record.workload, db_internal::canonical_workload(record.workload));
  KILN_ASSIGN_OR_RETURN(record.target.target, db_internal::canonical_target(record.target.target));
  KILN_RETURN_IF_ERROR(db_internal::check_record_values(record));
  KILN_ASSIGN_OR_RETURN(record.target.threads, db_internal::record_threads(record));
  return record;
}

Result<TuningRecord> canonical_record(const TuningRecord& record, std::string_view kiln_version) {
  TuningRecord out = record;
  KILN_ASSIGN_OR_RETURN(out.workload, db_internal::canonical_workload(record.workload));
  KILN_ASSIGN_OR_RETURN(out.target.target, db_internal::canonical_target(record.target.target));
  KILN_RETURN_IF_ERROR(db_internal::check_record_values(out));
  KILN_ASSIGN_OR_RETURN(out.target.threads, db_internal::record_threads(out));
  if (out.measured_at_ms == 0) out.measured_at_ms = db_internal::now_unix_ms();
  if (out.kiln_version.empty()) out.kiln_version = kiln_version;
  return out;
}

namespace db_internal {

Result<std::string> canonical_workload(std::string_view workload) {
  Result<Workload> parsed = parse_workload(workload);
  if (!parsed) return invalid_argument("workload: " + parsed.status().message());
  return parsed->canonical();
}

Result<std::string> canonical_target(std::string_view target) {
  Result<Target> parsed = parse_target(target);
  if (!parsed) return invalid_argument("target: " + parsed.status().message());
  return parsed->str();
}

Status check_record_values(const TuningRecord& record) {
  if (record.config_index < 0) {
    return invalid_argument("config index " + std::to_string(record.config_index) + " is negative");
  }
  auto is_object_text = [](const std::string& text) {
    // accept() checks the syntax without building a DOM; only an object starts with '{'.
    const size_t first = text.find_first_not_of(" \t\r\n");
    return first != std::string::npos && text[first] == '{' && Json::accept(text);
  };
  if (!is_object_text(record.config_knobs)) {
    return invalid_argument("config knobs '" + record.config_knobs +
                            "' are not a JSON object {\"name\": value, ...}");
  }
  if (!is_object_text(record.measure_options)) {
    return invalid_argument("measure options '" + record.measure_options +
                            "' are not a JSON object");
  }
  const int error = static_cast<int>(record.error);
  if (error < 0 || error >= kNumMeasureErrors) {
    return invalid_argument("unknown measurement error code " + std::to_string(error));
  }
  for (double cost : record.costs) {
    if (!std::isfinite(cost) || cost < 0) {
      return invalid_argument("cost " + std::to_string(cost) +
                              " is not a finite, non-negative number of seconds");
    }
  }
  if (record.error == MeasureError::kOk && record.costs.empty()) {
    return invalid_argument("a record with error OK needs at least one measured cost");
  }
  return Status::ok();
}

Result<int> record_threads(const TuningRecord& record) {
  const int threads = record.target.threads;
  if (threads < 0 || threads > kMaxRecordThreads) {
    return invalid_argument("thread count " + std::to_string(threads) + " is not from 0 to " +
                            std::to_string(kMaxRecordThreads));
  }
  // check_record_values has made sure the options are a JSON object.
  const Json options = Json::parse(record.measure_options, nullptr, /*allow_exceptions=*/false);
  auto it = options.find("threads");
  if (it == options.end() || !it->is_number_integer() || it->get<int64_t>() <= 0 ||
      it->get<int64_t>() > kMaxRecordThreads) {
    return threads;  // the options leave the count to the board
  }
  const int from_options = it->get<int>();
  if (threads != 0 && threads != from_options) {
    return invalid_argument("thread count " + std::to_string(threads) +
                            " disagrees with the measure options' " + std::to_string(from_options));
  }
  return from_options;
}

int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace db_internal
}  // namespace kiln::core
