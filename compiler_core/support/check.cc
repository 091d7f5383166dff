#include "compiler_core/support/check.h"

namespace kiln::detail {

CheckFailure::CheckFailure(const char* file, int line, const char* condition) {
  stream_ << "internal error at " << file << ":" << line << ": check failed: " << condition << ": ";
}

CheckFailure::~CheckFailure() noexcept(false) { throw InternalError(stream_.str()); }

}  // namespace kiln::detail
