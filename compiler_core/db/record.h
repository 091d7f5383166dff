/// \file
/// Tuning records: one measurement of one config of a workload on one piece of hardware, as the
/// tuning log stores it and as `kiln db export` writes it (one JSON object a line).
///
/// A record answers only for the hardware it was measured on. Its TargetKey holds the canonical
/// target string of the *resolved* target (for this host: `llvm -mcpu=CPU -mattr=<every feature,
/// on or off>`) together with the model name of the device, so that a record measured on one CPU
/// (or on `cuda -arch=sm_80`) never answers a query for another (or for sm_90).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "compiler_core/support/status.h"
#include "compiler_core/target/target.h"

namespace kiln::core {

/// The outcome of one measurement (DESIGN.md). The numbers are stored in the tuning log:
/// never renumber an enumerator, only append.
enum class MeasureError : int {
  kOk = 0,             ///< built, correct and timed; the record's costs are valid
  kInvalidConfig = 1,  ///< the config is not a point of the workload's space
  kCompileError = 2,   ///< lowering or code generation failed
  kRuntimeError = 3,   ///< the kernel crashed or failed while running
  kWrongAnswer = 4,    ///< the kernel's output differs from the reference implementation
  kTimeout = 5,        ///< building or running took longer than the measure options allow
  kDeviceLost = 6,     ///< the agent was lost while it held the task
};

/// Number of MeasureError values (they run from 0 to kNumMeasureErrors - 1).
inline constexpr int kNumMeasureErrors = 7;

/// The name of `error` as exported and printed: "OK", "INVALID_CONFIG", "COMPILE_ERROR",
/// "RUNTIME_ERROR", "WRONG_ANSWER", "TIMEOUT", "DEVICE_LOST".
const char* measure_error_name(MeasureError error);

/// Parses a name written by measure_error_name. InvalidArgument for any other string.
Result<MeasureError> parse_measure_error(std::string_view name);

/// The most threads a record may say it ran with.
inline constexpr int kMaxRecordThreads = 1024;

/// The hardware a record was measured on and the thread count it ran with; (target, model,
/// emulated) is the key of the log's targets table, the thread count a column of its records.
struct TargetKey {
  /// The canonical string of the resolved target (Target::str()): for this host the CPU and
  /// the full feature list, for a cross target its flags, for CUDA `cuda -arch=sm_NN`.
  std::string target;
  /// The device's model name (/proc/cpuinfo "model name" for this host, the board's for a
  /// fleet record). In a query, empty means any board of `target` (as for a cross target,
  /// whose string names the hardware).
  std::string model;
  /// Measured under user-mode emulation (qemu-user): such timings say nothing about a real
  /// board, so an emulated record answers only a query that asks for emulated records.
  bool emulated = false;
  /// The number of threads the kernel ran with: a schedule's speed depends on it, so a record
  /// measured with 2 threads never answers a query for 1. In a query, 0 takes every thread
  /// count; in a record, 0 means the board chose (its options asked for none and the agent
  /// did not say).
  int threads = 0;

  /// The -mattr features of `target`, comma-separated ("+avx2,-avx512f"); empty when none.
  std::string features() const;

  /// `target`, then ` (model)` when the model is known, ` (emulated)` and ` (N threads)`: for
  /// messages.
  std::string str() const;

  bool operator==(const TargetKey&) const = default;
};

/// The key under which this process measures `target` and looks its records up. A host target
/// (`llvm` without -mtriple) is resolved (CPU and every feature) and gets this machine's CPU
/// model name, and is emulated when this process runs under qemu-user; an already-resolved host
/// target gives the same key. Other targets keep their
/// canonical string and an empty model. `threads` is the key's thread count (0: any). Errors
/// are those of resolve_host_target.
Result<TargetKey> make_target_key(const Target& target, int threads);

/// One measurement, as stored in the tuning log.
struct TuningRecord {
  /// The workload; appending canonicalises it (Workload::canonical()), reading returns the
  /// canonical string.
  std::string workload;
  /// Where it was measured; appending canonicalises `target.target` (parse_target().str()) and
  /// fills `target.threads` from the measure options' "threads" when it is 0.
  TargetKey target;
  /// The config's stable index in the workload's space.
  int64_t config_index = 0;
  /// The knob values, a JSON object from knob name to integer value.
  std::string config_knobs = "{}";
  /// The per-run time of every sample, in seconds. At least one, each finite and not negative,
  /// when `error` is kOk; may be empty otherwise.
  std::vector<double> costs;
  MeasureError error = MeasureError::kOk;
  /// What went wrong, for any error but kOk.
  std::string error_message;
  /// The id of the agent that measured ("local" for this machine's worker).
  std::string agent;
  /// The device (board key or device name) it ran on.
  std::string device;
  /// The timing options used, a JSON object (number, repeat, min_repeat_ms, threads, ...). A
  /// positive "threads" must agree with target.threads.
  std::string measure_options = "{}";
  /// When the measurement finished, in milliseconds since the Unix epoch; 0 means "now" when
  /// appended.
  int64_t measured_at_ms = 0;
  /// The kiln version that measured; empty means this build's version when appended.
  std::string kiln_version;

  /// The median of `costs` (the mean of the middle two for an even count); +infinity when
  /// `costs` is empty. Best queries rank valid records by it.
  double median_cost() const;

  /// `{"index":N,"knobs":{...}}`, the form ConfigSpace::parse reads.
  std::string config_json() const;

  bool operator==(const TuningRecord&) const = default;
};

/// One line of `kiln db export` (no trailing newline): a JSON object with workload, target,
/// model, emulated, threads, features (informational), config {index, knobs}, costs, error (its
/// name), error_message, agent, device, measure_options (an object), measured_at_ms and
/// kiln_version.
std::string record_to_json_line(const TuningRecord& record);

/// Parses one line written by record_to_json_line. Every field but error_message, device,
/// measure_options, features, emulated (false when absent), threads (from measure_options when
/// absent) and kiln_version is required.
/// InvalidArgument naming the field for malformed JSON, a missing or mistyped field, an unknown
/// error name, a malformed workload or target, and costs that break TuningRecord's rules.
Result<TuningRecord> record_from_json_line(std::string_view line);

/// Checks `record` and returns it in canonical form (workload and target strings canonical,
/// measured_at_ms and kiln_version filled in). InvalidArgument for a malformed workload or
/// target, knobs or measure options that are not JSON objects, a thread count that is negative
/// or disagrees with the measure options', and costs that break the rules above.
/// `kiln_version` fills an empty version.
Result<TuningRecord> canonical_record(const TuningRecord& record, std::string_view kiln_version);

}  // namespace kiln::core
