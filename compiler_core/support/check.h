/// \file
/// Checks for conditions that only a bug in kiln can break (Halide's internal_assert, TVM's
/// ICHECK). A failed KILN_CHECK throws kiln::InternalError carrying the file, line, condition
/// and the streamed message. Never use these for anything a user can cause: that is a Status.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace kiln {

/// A bug in kiln. Caught at the three boundaries (CLI main, gRPC handlers, worker process).
class InternalError : public std::runtime_error {
 public:
  explicit InternalError(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {

/// Collects a message and throws InternalError when destroyed.
class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* condition);
  [[noreturn]] ~CheckFailure() noexcept(false);

  template <typename T>
  CheckFailure& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  std::ostringstream stream_;
};

}  // namespace detail
}  // namespace kiln

#define KILN_CHECK(cond) \
  if (cond) {            \
  } else                 \
    ::kiln::detail::CheckFailure(__FILE__, __LINE__, #cond)

#define KILN_UNREACHABLE() ::kiln::detail::CheckFailure(__FILE__, __LINE__, "unreachable")
