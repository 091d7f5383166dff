/// \file
/// Status and Result<T>: how kiln reports failures that users or the environment cause (bad
/// workload strings, invalid configs, files, databases, the network). Bugs are not reported
/// this way: they throw kiln::InternalError through KILN_CHECK (see check.h).
///
/// A Status is OK or carries a StatusCode and a message. Messages follow LLVM's style: a
/// lower-case start, no final period, the offending value and the accepted form.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace kiln {

/// What kind of failure a Status describes; the CLI maps InvalidArgument, OutOfRange and
/// NotFound to exit code 2 (bad input) and everything else to 1.
enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     ///< malformed input: workload, target, config, flag
  kInvalidConfig,       ///< a config that the workload's space does not contain or cannot build
  kOutOfRange,          ///< an index past the end of a space
  kNotFound,            ///< a file, job or record that does not exist
  kAlreadyExists,       ///< a job, task or agent id that is taken
  kResourceExhausted,   ///< a buffer or queue beyond its limit
  kFailedPrecondition,  ///< the environment is not in the state the call needs
  kAborted,             ///< a lost race (a lease that moved): retry
  kUnavailable,         ///< a service or device is not reachable
  kDataLoss,            ///< corrupt stored data
  kInternal,            ///< a failure inside a library kiln calls (LLVM, SQLite, ...)
};

/// Returns the name of `code` as written in logs and JSON ("invalid_argument", ...).
const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return Status(); }

  bool is_ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  /// True for failures that mean "the caller's input is wrong" (CLI exit code 2).
  bool is_user_error() const {
    return code_ == StatusCode::kInvalidArgument || code_ == StatusCode::kInvalidConfig ||
           code_ == StatusCode::kOutOfRange || code_ == StatusCode::kNotFound ||
           code_ == StatusCode::kResourceExhausted;
  }

  /// "invalid_argument: message".
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string message) {
  return Status(StatusCode::kInvalidArgument, std::move(message));
}
inline Status invalid_config(std::string message) {
  return Status(StatusCode::kInvalidConfig, std::move(message));
}
inline Status internal_error(std::string message) {
  return Status(StatusCode::kInternal, std::move(message));
}

/// Either a value or a failed Status (LLVM's Expected, Arrow's Result).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design

  bool is_ok() const { return value_.has_value(); }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const { return status_; }

  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace kiln

/// Returns the failed Status of `expr` (a Status) from the enclosing function.
#define KILN_RETURN_IF_ERROR(expr)                  \
  do {                                              \
    ::kiln::Status kiln_status_ = (expr);           \
    if (!kiln_status_.is_ok()) return kiln_status_; \
  } while (0)

#define KILN_CONCAT_INNER_(a, b) a##b
#define KILN_CONCAT_(a, b) KILN_CONCAT_INNER_(a, b)

/// `KILN_ASSIGN_OR_RETURN(auto x, make_x())`: unwraps a Result or returns its Status.
#define KILN_ASSIGN_OR_RETURN(lhs, expr) \
  KILN_ASSIGN_OR_RETURN_IMPL_(KILN_CONCAT_(kiln_result_, __LINE__), lhs, expr)
#define KILN_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.is_ok()) return tmp.status();            \
  lhs = std::move(tmp).value()
