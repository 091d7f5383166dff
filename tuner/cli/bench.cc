// `kiln bench`: the best stored kernel of a workload against the fastest library for it, in one
// process, on the same inputs, timed the same way.

#include <algorithm>
#include <functional>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <spdlog/fmt/fmt.h>
#include <nlohmann/json.hpp>

#include "compiler_core/build.h"
#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/runtime/buffer.h"
#include "compiler_core/runtime/thread_pool.h"
#include "compiler_core/runtime/timer.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/support/log.h"
#include "compiler_core/te/reference.h"
#include "compiler_core/te/workload.h"
#include "tuner/baseline/baselines.h"
#include "tuner/cli/commands.h"
#include "tuner/cli/flags.h"
#include "tuner/cli/tuning_log_flag.h"

namespace kiln::tuner {
namespace {

constexpr uint64_t kInputSeed = 20240601;
constexpr double kMaxRelativeError = 1e-4;

FlagSet make_flags() {
  FlagSet flags(
      "bench",
      "Times a kernel of a workload on this machine (the config --config names, else the best "
      "stored, else the template's default) against the libraries: OpenBLAS sgemm and oneDNN "
      "matmul for matmul and dense, oneDNN for "
      "batch_matmul and convolutions. Everything runs in this process on the same inputs, is "
      "checked against the reference, and is timed the same way, in 7 rounds: each round takes "
      "one sample of at least 200 ms (after a 20 ms pause and a warm-up run) of each in turn, "
      "so that a slow spell of the machine falls on all of them alike; each reports its median "
      "sample. The pause lets the threads a library leaves spinning after its calls (libgomp's, "
      "for some milliseconds) park before the next sample.",
      "The baseline is the fastest library that, like kiln's kernel, takes its inputs in plain "
      "layouts on every call: OpenBLAS and oneDNN's plain matmul (oneDNN with weights packed "
      "ahead of time is reported beside it), and oneDNN's convolution in its own blocked "
      "layouts. Where kiln packs constant weights once (convolutions, dense), so may the "
      "library: oneDNN's matmul with packed weights is one of dense's baselines. OpenBLAS runs "
      "with its own kernel choice: the process restarts itself without "
      "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE when they are set, and says so on stderr.\nWith "
      "--json: one object with workload, target, threads, config, source (\"record\", "
      "\"default\" or \"flag\" for --config), kiln_gflops, baseline, baseline_gflops, ratio, "
      "fma_peak_gflops, roofline, roofline_gflops and libraries.\nAfter the rounds it measures "
      "the roofline of the figures at the same thread count (0.3 s; 0 without AVX-512): this "
      "machine's AVX-512 FMA peak, or for a batch-1 dense layer the rate at which as many bytes "
      "as its weights are read, again and again, from the caches they stay in. GFLOP/s count "
      "the direct algorithm's FLOPs, so a Winograd kernel can pass the peak.\nExit "
      "codes: 0 done, 1 a kernel or a library computed a wrong answer or failed, 2 bad flags, "
      "workload, target or config.");
  flags.add_required_string("workload", "W", "the workload, e.g. matmul:M=1024,N=1024,K=1024");
  flags.add_string("target", "T", "the target: llvm (this machine's CPU)", "llvm");
  flags.add_string("config", "JSON",
                   "the config to time, {\"index\": N} or {\"knobs\": {\"name\": value, ...}}; "
                   "without it, the best stored config, else the template's default");
  add_db_flag(flags, "the tuning log to take the best config from; read only");
  add_threads_flag(flags, "threads of kiln's kernel and of the libraries");
  flags.add_bool("json", "print one JSON object on stdout");
  return flags;
}

struct Timed {
  std::string name;
  std::string implementation;
  double gflops = 0;
  double median_s = 0;
  std::vector<double> samples_s;
  double max_error = 0;
};

/// Every contender is timed in these rounds together (core::time_interleaved). The pause before
/// each sample lets the OpenMP workers of the library timed before stop spinning: they are bound
/// to the CPUs kiln's workers use, and a sample that began while they spun lost a few percent
/// (3x3 256@28 of stride 2, 2 threads, kiln bench: 231-236 GFLOP/s without the pause against
/// 237-242 with it, oneDNN 235-240 either way; the 7x7 stem 204-218 against 214-222).
const core::TimingOptions kTiming{
    .number = 1, .repeat = 7, .min_repeat_ms = 200, .warmup = 2, .cooldown_ms = 20};

/// The libraries for `workload`: (baseline, counts as a baseline). oneDNN's matmul with packed
/// weights is shown but not the baseline of matmul and batch_matmul, whose kernels pack inside
/// every call; it is one of dense's, whose kernels pack their constant weights once as well.
Result<std::vector<std::pair<std::unique_ptr<baseline::Baseline>, bool>>> libraries_for(
    const core::Workload& w, std::span<const float* const> inputs, int threads) {
  std::vector<std::pair<std::unique_ptr<baseline::Baseline>, bool>> out;
  switch (w.op) {
    case core::OpKind::kMatmul:
    case core::OpKind::kDense:
    case core::OpKind::kBatchMatmul: {
      const bool plain_dense = w.op == core::OpKind::kDense && !w.has_epilogue();
      if (w.op == core::OpKind::kMatmul || plain_dense) {
        KILN_ASSIGN_OR_RETURN(auto blas, baseline::OpenblasSgemm::create(w, inputs, threads));
        out.emplace_back(std::move(blas), true);
      }
      KILN_ASSIGN_OR_RETURN(auto plain, baseline::DnnlMatmul::create(w, inputs, threads, false));
      out.emplace_back(std::move(plain), true);
      KILN_ASSIGN_OR_RETURN(auto packed, baseline::DnnlMatmul::create(w, inputs, threads, true));
      out.emplace_back(std::move(packed), w.op == core::OpKind::kDense);
      break;
    }
    default: {
      KILN_ASSIGN_OR_RETURN(
          auto conv, baseline::DnnlConv2d::create(w, inputs, threads, baseline::ConvIo::kBlocked));
      out.emplace_back(std::move(conv), true);
      KILN_ASSIGN_OR_RETURN(
          auto plain, baseline::DnnlConv2d::create(w, inputs, threads, baseline::ConvIo::kPlainIo));
      out.emplace_back(std::move(plain), false);
      // oneDNN's Winograd, which it never picks itself, is a baseline too where it has one for
      // the shape (3x3 of stride 1): the fastest library is whichever is faster.
      const bool winograd_shape = w.op == core::OpKind::kConv2d && w.groups == 1 &&
                                  w.kernel_h == 3 && w.kernel_w == 3 && w.stride_h == 1 &&
                                  w.stride_w == 1 && w.dilation_h == 1 && w.dilation_w == 1;
      if (winograd_shape) {
        Result<std::unique_ptr<baseline::DnnlConv2d>> winograd = baseline::DnnlConv2d::create(
            w, inputs, threads, baseline::ConvIo::kBlocked, baseline::ConvAlgorithm::kWinograd);
        if (winograd.is_ok()) out.emplace_back(std::move(*winograd), true);
      }
    }
  }
  return out;
}

}  // namespace

int bench_command(const std::vector<std::string>& args) {
  // OpenBLAS reads its overrides when it loads: restart without them before anything else.
  std::vector<std::string> argv_strings = {"kiln", "bench"};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);

  FlagSet flags = make_flags();
  if (auto exit_code = parse_flags_or_exit(flags, args)) return *exit_code;
  baseline::reexec_without_openblas_overrides(int(argv.size() - 1), argv.data());
  const int threads = int(flags.get_int("threads"));
  const bool json = flags.get_bool("json");
  baseline::place_benchmark_threads(threads);

  Result<core::Workload> workload = core::parse_workload(flags.get_string("workload"));
  if (!workload) return report_error(workload.status());
  Result<core::Target> parsed = core::parse_target(flags.get_string("target"));
  if (!parsed) return report_error(parsed.status());
  if (!parsed->is_host) {
    return report_error(invalid_argument("target '" + parsed->str() +
                                         "' is not this machine; kiln bench runs kernels here"));
  }
  Result<core::Target> target = core::resolve_host_target(*parsed);
  if (!target) return report_error(target.status());
  Result<core::ConfigSpace> space = core::config_space(*workload, *target);
  if (!space) return report_error(space.status());
  core::Config config = space->default_config();
  std::string source = "flag";
  if (flags.is_set("config")) {
    Result<core::Config> given = space->parse(flags.get_string("config"));
    if (!given) return report_error(given.status());
    config = *given;
  } else {
    Result<core::BestConfig> best = best_stored_config(flags, *workload, *target, *space);
    if (!best) return report_error(best.status());
    config = best->config;
    source = core::config_source_name(best->source);
  }
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
  Result<core::Buffer> expected = core::Buffer::create(workload->output_shape());
  if (!output) return report_error(output.status());
  if (!expected) return report_error(expected.status());
  std::vector<float*> arguments;
  for (core::Buffer& b : buffers) arguments.push_back(b.data());
  std::vector<const float*> inputs(arguments.begin(), arguments.end());
  arguments.push_back(output->data());
  {
    baseline::ScopedAllCpus unpinned;  // the reference's threads may use every CPU
    core::run_reference(*workload, inputs, expected->data(), threads);
  }
  const double flops = workload->flops();
  const int64_t count = expected->size();
  bool wrong = false;

  // Every contender runs once and is checked, then all are timed together.
  core::set_num_threads(threads);
  (*kernel)->run(arguments);
  Timed kiln{.name = "kiln", .implementation = space->to_json(config)};
  kiln.max_error = core::max_relative_error(output->data(), expected->data(), count);
  wrong |= !(kiln.max_error <= kMaxRelativeError);

  auto libraries = libraries_for(*workload, inputs, threads);
  if (!libraries) return report_error(libraries.status());
  std::vector<Timed> timed(libraries->size());
  std::vector<float> library_output(static_cast<size_t>(count));
  std::vector<Timed*> contenders = {&kiln};
  std::vector<std::function<void()>> runs = {[&] { (*kernel)->run_prepared(arguments); }};
  for (size_t i = 0; i < libraries->size(); ++i) {
    baseline::Baseline& library = *(*libraries)[i].first;
    library.run();
    library.read_output(library_output.data());
    Timed& t = timed[i];
    t.name = library.name();
    t.implementation = library.implementation();
    t.max_error = core::max_relative_error(library_output.data(), expected->data(), count);
    if (!(t.max_error <= kMaxRelativeError)) {
      logger("tuner")->error("library={} computed a wrong answer: max relative error {}", t.name,
                             t.max_error);
      wrong = true;
    }
    contenders.push_back(&t);
    runs.push_back([&library] { library.run(); });
  }
  std::vector<core::TimingResult> times = core::time_interleaved(runs, kTiming);
  for (size_t i = 0; i < contenders.size(); ++i) {
    contenders[i]->samples_s = times[i].seconds;
    contenders[i]->median_s = times[i].median();
    contenders[i]->gflops = contenders[i]->median_s > 0 ? flops / contenders[i]->median_s / 1e9 : 0;
  }
  const Timed* baseline = nullptr;
  for (size_t i = 0; i < timed.size(); ++i) {
    if ((*libraries)[i].second && (!baseline || timed[i].gflops > baseline->gflops)) {
      baseline = &timed[i];
    }
  }
  const double ratio = baseline && baseline->gflops > 0 ? kiln.gflops / baseline->gflops : 0;
  // The roofline the figures sit under: where both sides run near it, their ratio can move
  // only by the few percent left. A batch-1 dense layer reads each weight once per call for
  // one FMA: the rate its weights are read at bounds it, not the FMA peak.
  const double peak = baseline::fma_peak_gflops(threads);
  const bool bandwidth_bound = workload->op == core::OpKind::kDense && workload->m == 1;
  const double weight_bytes = 4.0 * static_cast<double>(workload->n * workload->k);
  const double read_gbs =
      bandwidth_bound ? baseline::read_bandwidth_gbs(size_t(weight_bytes), threads) : 0;
  const double roofline = bandwidth_bound ? read_gbs * flops / weight_bytes : peak;

  std::vector<std::string> removed = baseline::removed_openblas_overrides();
  if (json) {
    nlohmann::ordered_json libs = nlohmann::ordered_json::object();
    for (const Timed& t : timed) {
      libs[t.name] = {{"gflops", t.gflops},
                      {"median_s", t.median_s},
                      {"samples_s", t.samples_s},
                      {"implementation", t.implementation},
                      {"max_relative_error", t.max_error}};
    }
    nlohmann::ordered_json object = {{"workload", workload->canonical()},
                                     {"target", parsed->str()},
                                     {"threads", threads},
                                     {"config", nlohmann::ordered_json::parse(kiln.implementation)},
                                     {"source", source},
                                     {"kiln_gflops", kiln.gflops},
                                     {"kiln_median_s", kiln.median_s},
                                     {"kiln_samples_s", kiln.samples_s},
                                     {"kiln_max_relative_error", kiln.max_error},
                                     {"baseline", baseline ? baseline->name : ""},
                                     {"baseline_gflops", baseline ? baseline->gflops : 0},
                                     {"ratio", ratio},
                                     {"fma_peak_gflops", peak},
                                     {"roofline", bandwidth_bound ? "weight_read" : "fma_peak"},
                                     {"roofline_gflops", roofline},
                                     {"libraries", libs},
                                     {"openblas_core", baseline::openblas_core_name()},
                                     {"openblas_overrides_removed", removed},
                                     {"onednn_version", baseline::onednn_version()}};
    std::cout << object.dump() << "\n";
  } else {
    std::cout << fmt::format("{}  {} thread{}  ({} config #{})\n", workload->canonical(), threads,
                             threads == 1 ? "" : "s",
                             source == "record" ? "best stored"
                             : source == "flag" ? "from --config"
                                                : "default",
                             config.index);
    std::cout << fmt::format("  {:<16} {:8.1f} GFLOP/s\n", "kiln", kiln.gflops);
    for (const Timed& t : timed) {
      std::cout << fmt::format("  {:<16} {:8.1f} GFLOP/s  {}{}\n", t.name, t.gflops,
                               t.implementation, &t == baseline ? "  (baseline)" : "");
    }
    std::cout << fmt::format("  kiln / {} = {:.2f}\n", baseline ? baseline->name : "none", ratio);
    if (roofline > 0) {
      std::cout << (bandwidth_bound
                        ? fmt::format(
                              "  roofline {:.1f} GFLOP/s (its {:.1f} MiB of weights read at "
                              "{:.1f} GB/s)",
                              roofline, weight_bytes / (1 << 20), read_gbs)
                        : fmt::format("  roofline {:.1f} GFLOP/s (AVX-512 FMA peak)", roofline));
      std::cout << fmt::format(": kiln at {:.0f}%", 100 * kiln.gflops / roofline);
      if (baseline) {
        std::cout << fmt::format(", {} at {:.0f}%", baseline->name,
                                 100 * baseline->gflops / roofline);
      }
      std::cout << "\n";
    }
    if (!removed.empty()) {
      std::cout << "  (OpenBLAS with its own kernels (" << baseline::openblas_core_name()
                << "): removed";
      for (const std::string& r : removed) std::cout << " " << r;
      std::cout << ")\n";
    }
  }
  if (wrong) {
    std::cerr << "error: a kernel's output differs from the reference (see the max relative "
                 "errors with --json)\n";
    return 1;
  }
  return 0;
}

}  // namespace kiln::tuner
