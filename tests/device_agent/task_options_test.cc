// A task's measure options come from a peer: the agent refuses values outside their bounds as
// INVALID_CONFIG before anything turns them into a duration or a thread count (1e300 seconds
// overflowed the worker's timeout; 5,000 threads reached the thread pool's internal check).

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "device_agent/task_adapter.h"
#include "device_agent/worker.h"
#include "kiln/v1/kiln.pb.h"

namespace kiln::agent {
namespace {

namespace pb = kiln::v1;

pb::MeasureTask task_with(const std::function<void(pb::MeasureOptions&)>& edit) {
  pb::MeasureTask task;
  task.set_task_id("t");
  task.mutable_workload()->set_canonical("matmul:M=8,N=8,K=8");
  task.mutable_target()->set_canonical("llvm");
  task.mutable_config()->set_index(0);
  edit(*task.mutable_options());
  return task;
}

struct BadOption {
  const char* name;
  std::function<void(pb::MeasureOptions&)> edit;
};

TEST(TaskOptions, OutOfBoundsOptionsAreInvalidConfigsNamingTheOption) {
  const BadOption cases[] = {
      {"timeout_s", [](pb::MeasureOptions& o) { o.set_timeout_s(INFINITY); }},
      {"timeout_s", [](pb::MeasureOptions& o) { o.set_timeout_s(1e300); }},
      {"timeout_s", [](pb::MeasureOptions& o) { o.set_timeout_s(std::nan("")); }},
      {"threads", [](pb::MeasureOptions& o) { o.set_threads(5000); }},
      {"threads", [](pb::MeasureOptions& o) { o.set_threads(-1); }},
      {"repeat", [](pb::MeasureOptions& o) { o.set_repeat(2000000000); }},
      {"min_repeat_ms", [](pb::MeasureOptions& o) { o.set_min_repeat_ms(1e12); }},
      {"number", [](pb::MeasureOptions& o) { o.set_number(-5); }},
  };
  std::map<std::string, std::unique_ptr<core::MeasureHarness>> harnesses;
  Worker worker({}, WorkerLimits{});  // never spawned: the options are refused first
  for (const BadOption& c : cases) {
    const pb::MeasureTask task = task_with(c.edit);
    for (const pb::MeasureResult& r : {run_task(task, harnesses), worker.measure(task)}) {
      EXPECT_EQ(r.error_code(), pb::MEASURE_ERROR_CODE_INVALID_CONFIG) << c.name;
      EXPECT_NE(r.error_message().find(c.name), std::string::npos) << r.error_message();
    }
  }
  // Options within bounds still measure.
  const pb::MeasureResult ok = run_task(task_with([](pb::MeasureOptions& o) {
                                          o.set_repeat(2);
                                          o.set_threads(1);
                                          o.set_timeout_s(30);
                                        }),
                                        harnesses);
  EXPECT_EQ(ok.error_code(), pb::MEASURE_ERROR_CODE_OK) << ok.error_message();
}

}  // namespace
}  // namespace kiln::agent
