// Fuzz target: target strings (`llvm -mtriple=... -mcpu=... -mattr=...`, `cuda -arch=sm_XX`)
// through core::parse_target, as every command, the services and the tuning log read them. A
// string parses or is refused with a user error; a parsed target's str() parses back to the
// same target (target.h).
#include <cstddef>
#include <cstdint>
#include <string>

#include "compiler_core/target/target.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kiln;
  static const bool quiet = (fuzz::quiet_logs(), true);
  (void)quiet;
  Result<core::Target> target = core::parse_target(fuzz::as_text(data, size));
  if (!target.is_ok()) {
    fuzz::check_refusal(target.status(), "parse_target refuses with a user error");
    return 0;
  }
  const std::string text = target->str();
  Result<core::Target> again = core::parse_target(text);
  fuzz::check(again.is_ok() && *again == *target, "parse_target(t.str()) == t", text);
  fuzz::check(again->str() == text, "str() is stable", text);
  (void)target->is_aarch64();
  (void)target->is_x86();
  fuzz::check(target->vector_registers() > 0, "a target has vector registers", text);
  return 0;
}
