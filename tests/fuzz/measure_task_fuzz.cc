// Fuzz target: a kiln.v1.MeasureTask as protobuf bytes, as a tracker receives one in a Submit
// and an agent in a TaskAssignment: the checks both run before anything is queued or built
// (agent::validate_task, the tracker's cached agent::TaskValidator, validate_measure_options).
// Bytes that parse are a task that validates or is refused with InvalidArgument or OutOfRange,
// and the cached validator agrees with the uncached one. Building and timing a valid task
// (agent::run_task) is left out: it compiles a kernel, far too slow for a fuzzer's loop; it
// validates the task first, with the same code.
#include <cstddef>
#include <cstdint>

#include "device_agent/task_adapter.h"
#include "kiln/v1/kiln.pb.h"
#include "proto/kiln/measure_options.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kiln;
  static const bool quiet = (fuzz::quiet_logs(), true);
  (void)quiet;
  static agent::TaskValidator validator;
  v1::MeasureTask task;
  if (!task.ParseFromArray(data, int(size))) return 0;
  const Status valid = agent::validate_task(task);
  const Status cached = validator.check(task);
  fuzz::check(valid.code() == cached.code(), "TaskValidator agrees with validate_task",
              valid.to_string() + " | " + cached.to_string());
  if (!valid.is_ok()) {
    fuzz::check(
        valid.code() == StatusCode::kInvalidArgument || valid.code() == StatusCode::kOutOfRange,
        "an invalid task is InvalidArgument or OutOfRange", valid.to_string());
    fuzz::check(!valid.message().empty(), "a refusal says why");
  }
  const Status options = validate_measure_options(task.options());
  if (!options.is_ok()) fuzz::check_refusal(options, "validate_measure_options refuses");
  return 0;
}
