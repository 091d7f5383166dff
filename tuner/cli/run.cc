// `kiln run`: build one kernel for this machine, check it against the reference implementation,
// time it, and print one line (or one JSON object).

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <spdlog/fmt/fmt.h>
#include <nlohmann/json.hpp>

#include "compiler_core/build.h"
#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/db/apply_best.h"
#include "compiler_core/db/tuning_log.h"
#include "compiler_core/runtime/buffer.h"
#include "compiler_core/runtime/thread_pool.h"
#include "compiler_core/runtime/timer.h"
#include "compiler_core/schedule/config_space.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/support/log.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/reference.h"
#include "compiler_core/te/workload.h"
#include "tuner/cli/commands.h"
#include "tuner/cli/flags.h"
#include "tuner/cli/tuning_log_flag.h"

namespace kiln::tuner {
namespace {

// Inputs are the same on every run, so that a wrong answer can be reproduced.
constexpr uint64_t kInputSeed = 20240601;

// float32 kernels reorder their sums; the reference accumulates in double.
constexpr double kMaxRelativeError = 1e-4;

FlagSet make_flags() {
  FlagSet flags(
      "run",
      "Builds the kernel of a workload for this machine with the given config, else the "
      "fastest valid config the tuning log holds for this machine, else the schedule "
      "template's default config, checks its output against the reference "
      "implementation, and times it.",
      "The output is correct when its largest relative error against the reference is "
      "at most 1e-4. Timing: one warm-up run, then the median of 5 samples of at least "
      "100 ms each. A tuning log that does not exist is not created: the default "
      "config is used.\nWith --json: one object with workload, target, config, source "
      "(\"record\" from the tuning log, \"default\", or \"flag\" for --config), "
      "correct, max_relative_error, time_s, gflops and threads.\nExit codes: 0 correct, "
      "1 wrong output, a failed build or a damaged tuning log, 2 bad flags, workload, "
      "target or config, or a --db file that is not a tuning log.\nkiln run --module MODULE runs a "
      "model that kiln compile wrote: see kiln run --module M --help.");
  flags.add_required_string("workload", "W",
                            "the workload, e.g. matmul:M=1024,N=1024,K=1024 or "
                            "conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1");
  flags.add_required_string("target", "T",
                            "the target; only this machine's CPU runs kernels: llvm, or llvm "
                            "-mcpu=CPU -mattr=+feat,...");
  flags.add_string("config", "JSON",
                   "the config to build, {\"index\": N} or {\"knobs\": {\"name\": value, ...}}; "
                   "without it, the best stored config, else the template's default");
  add_db_flag(flags, "the tuning log to take the best config from; read only");
  add_threads_flag(flags, "threads for parallel loops");
  flags.add_bool("json", "print one JSON object on stdout instead of a line of text");
  return flags;
}

struct RunOutcome {
  std::string config_json;
  int64_t config_index = 0;
  std::string source;
  double max_error = 0;
  bool correct = false;
  double time_s = 0;
  double gflops = 0;
};

}  // namespace

int run_command(const std::vector<std::string>& args) {
  if (is_module_run(args)) return run_module_command(args);
  FlagSet flags = make_flags();
  if (auto exit_code = parse_flags_or_exit(flags, args)) return *exit_code;
  int threads = static_cast<int>(flags.get_int("threads"));
  bool json = flags.get_bool("json");

  Result<core::Workload> workload = core::parse_workload(flags.get_string("workload"));
  if (!workload) return report_error(workload.status());
  Result<core::Target> parsed_target = core::parse_target(flags.get_string("target"));
  if (!parsed_target) return report_error(parsed_target.status());
  Result<core::Target> target = core::resolve_host_target(*parsed_target);
  if (!target) return report_error(target.status());

  Result<core::ConfigSpace> space = core::config_space(*workload, *target);
  if (!space) return report_error(space.status());
  RunOutcome outcome;
  core::Config config = space->default_config();
  outcome.source = "default";
  if (flags.is_set("config")) {
    Result<core::Config> given = space->parse(flags.get_string("config"));
    if (!given) return report_error(given.status());
    config = *given;
    outcome.source = "flag";
  } else {
    Result<core::BestConfig> best = best_stored_config(flags, *workload, *target, *space);
    if (!best) return report_error(best.status());
    config = best->config;
    outcome.source = core::config_source_name(best->source);
  }
  outcome.config_index = config.index;
  outcome.config_json = space->to_json(config);
  logger("tuner")->debug("run workload={} target={} config={} source={} threads={}",
                         workload->canonical(), target->str(), outcome.config_json, outcome.source,
                         threads);

  core::set_num_threads(threads);
  Result<std::unique_ptr<core::Kernel>> kernel = core::build_kernel(*workload, *target, config);
  if (!kernel) return report_error(kernel.status());

  std::mt19937_64 rng(kInputSeed);
  std::vector<core::Buffer> buffers;
  for (const core::Shape& shape : workload->input_shapes()) {
    Result<core::Buffer> input = core::Buffer::create(shape);
    if (!input) return report_error(input.status());
    input->fill_random(rng);
    buffers.push_back(std::move(*input));
  }
  Result<core::Buffer> output = core::Buffer::create(workload->output_shape());
  if (!output) return report_error(output.status());
  Result<core::Buffer> expected = core::Buffer::create(workload->output_shape());
  if (!expected) return report_error(expected.status());
  buffers.push_back(std::move(*output));

  std::vector<float*> arguments;
  std::vector<const float*> inputs;
  for (core::Buffer& buffer : buffers) arguments.push_back(buffer.data());
  inputs.assign(arguments.begin(), arguments.end() - 1);
  float* result = arguments.back();

  (*kernel)->run(arguments);
  core::run_reference(*workload, inputs, expected->data(), threads);
  outcome.max_error = core::max_relative_error(result, expected->data(), expected->size());
  outcome.correct = outcome.max_error <= kMaxRelativeError;

  core::TimingOptions timing{.number = 1, .repeat = 5, .min_repeat_ms = 100, .warmup = 1};
  core::TimingResult times =
      core::time_function([&] { (*kernel)->run_prepared(arguments); }, timing);
  outcome.time_s = times.median();
  outcome.gflops = outcome.time_s > 0 ? workload->flops() / outcome.time_s / 1e9 : 0;

  if (json) {
    nlohmann::ordered_json object = {
        {"workload", workload->canonical()},
        {"target", parsed_target->str()},
        {"config", nlohmann::ordered_json::parse(outcome.config_json)},
        {"source", outcome.source},
        {"correct", outcome.correct},
        {"max_relative_error", outcome.max_error},
        {"time_s", outcome.time_s},
        {"gflops", outcome.gflops},
        {"threads", threads},
    };
    std::cout << object.dump() << "\n";
  } else {
    std::string source = outcome.source == "flag"     ? "from --config"
                         : outcome.source == "record" ? "best record"
                                                      : outcome.source;
    std::cout << fmt::format("{}  {}  config #{} ({})  {}  {:.3g} s  {:.1f} GFLOP/s\n",
                             workload->canonical(), parsed_target->str(), outcome.config_index,
                             source, outcome.correct ? "correct" : "WRONG", outcome.time_s,
                             outcome.gflops);
  }
  if (!outcome.correct) {
    std::cerr << fmt::format(
        "error: the kernel's output differs from the reference: max relative error {:.3g} > "
        "{:.0e}\n",
        outcome.max_error, kMaxRelativeError);
    return 1;
  }
  return 0;
}

}  // namespace kiln::tuner
