// Fuzz target: workload strings (`OP:KEY=VALUE,...`) through core::parse_workload, as `kiln
// run --workload`, `kiln tune`, the Tuning service and every tuning record read them. A string
// parses or is refused with a user error; a parsed workload's canonical string parses back to
// the same workload (workload.h), and its shapes and FLOP count can be computed.
#include <cstddef>
#include <cstdint>
#include <string>

#include "compiler_core/te/workload.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kiln;
  static const bool quiet = (fuzz::quiet_logs(), true);
  (void)quiet;
  const std::string_view text = fuzz::as_text(data, size);
  Result<core::Workload> workload = core::parse_workload(text);
  if (!workload.is_ok()) {
    fuzz::check_refusal(workload.status(), "parse_workload refuses with a user error");
    return 0;
  }
  const std::string canonical = workload->canonical();
  Result<core::Workload> again = core::parse_workload(canonical);
  fuzz::check(again.is_ok() && *again == *workload, "parse_workload(w.canonical()) == w",
              canonical);
  fuzz::check(again->canonical() == canonical, "canonical() is stable", canonical);
  fuzz::check(workload->flops() > 0, "a parsed workload does work", canonical);
  for (const core::Shape& shape : workload->input_shapes()) (void)shape;
  (void)workload->output_shape();
  return 0;
}
