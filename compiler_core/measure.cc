#include "compiler_core/measure.h"

#include <algorithm>
#include <functional>
#include <random>

#include "compiler_core/te/reference.h"

namespace kiln::core {
namespace {

constexpr uint64_t kInputSeed = 20240601;

}  // namespace

Result<std::unique_ptr<MeasureHarness>> MeasureHarness::create(const Workload& workload,
                                                               int reference_threads) {
  std::unique_ptr<MeasureHarness> h(new MeasureHarness());
  std::mt19937_64 rng(kInputSeed);
  std::vector<const float*> inputs;
  for (const Shape& shape : workload.input_shapes()) {
    KILN_ASSIGN_OR_RETURN(Buffer b, Buffer::create(shape));
    b.fill_random(rng);
    h->buffers_.push_back(std::move(b));
  }
  for (const Buffer& b : h->buffers_) inputs.push_back(b.data());
  KILN_ASSIGN_OR_RETURN(Buffer out, Buffer::create(workload.output_shape()));
  h->buffers_.push_back(std::move(out));
  KILN_ASSIGN_OR_RETURN(h->expected_, Buffer::create(workload.output_shape()));
  run_reference(workload, inputs, h->expected_.data(), std::max(1, reference_threads));
  return h;
}

MeasureOutcome MeasureHarness::measure(Kernel& kernel, const TimingOptions& timing) {
  MeasureOutcome out = check(kernel);
  if (out.error == MeasureError::kOk) out.costs = time(kernel, timing).seconds;
  return out;
}

MeasureOutcome MeasureHarness::check(Kernel& kernel) {
  std::vector<float*> args = arguments();
  Buffer& output = buffers_.back();
  MeasureOutcome out;
  out.weights_prepacked = kernel.prepacks();
  std::fill(output.data(), output.data() + output.size(), 0.0f);
  kernel.run(args);  // prepare (weights packed ahead of time, if any) and run
  out.max_error = max_relative_error(output.data(), expected_.data(), output.size());
  if (!(out.max_error <= kMaxMeasureError)) {
    out.error = MeasureError::kWrongAnswer;
    out.message = "max relative error " + std::to_string(out.max_error);
  }
  return out;
}

TimingResult MeasureHarness::time(Kernel& kernel, const TimingOptions& timing) {
  std::vector<float*> args = arguments();
  return time_function([&] { kernel.run_prepared(args); }, timing);
}

std::vector<TimingResult> MeasureHarness::time_interleaved(const std::vector<Kernel*>& kernels,
                                                           const TimingOptions& timing) {
  std::vector<float*> args = arguments();
  std::vector<std::function<void()>> runs;
  for (Kernel* kernel : kernels) runs.push_back([kernel, &args] { kernel->run_prepared(args); });
  return core::time_interleaved(runs, timing);
}

std::vector<float*> MeasureHarness::arguments() {
  std::vector<float*> args;
  for (Buffer& b : buffers_) args.push_back(b.data());
  return args;
}

}  // namespace kiln::core
