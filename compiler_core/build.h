/// \file
/// The compiler core's front door: from (workload, target, config) to a callable kernel or an
/// object file. Lowering and code generation happen behind it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "compiler_core/schedule/config_space.h"
#include "compiler_core/support/status.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"

namespace kiln::core {

/// A compiled kernel for the host.
///
/// Some schedules pack their weights ahead of time (Schedule::prepack): the kernel then has a
/// prepare step, which computes the packed weights from the weight inputs into a buffer the
/// kernel owns, and a main step, which reads them. `run` does both; inference, and timing that
/// compares with libraries that reorder weights once (oneDNN's blocked convolution), calls
/// `prepare` once and then `run_prepared`.
class Kernel {
 public:
  virtual ~Kernel() = default;
  /// Runs the kernel: prepare, then run_prepared. `buffers` holds the inputs in
  /// Workload::input_shapes() order, then the output; each at least as large as its shape and
  /// 64-byte aligned.
  virtual void run(std::span<float* const> buffers) {
    prepare(buffers);
    run_prepared(buffers);
  }
  /// Computes what depends on the weights alone from `buffers` (as for run; only the weight
  /// inputs are read). Nothing for a kernel that does not prepack.
  virtual void prepare(std::span<float* const> buffers) = 0;
  /// Runs the main step on the weights of the last prepare(): the output is right when the
  /// weight inputs still hold what they held then. Without a prepare step, the same as run.
  virtual void run_prepared(std::span<float* const> buffers) = 0;
  /// True when the kernel has a prepare step.
  virtual bool prepacks() const = 0;
  /// The lowered loop program, printed.
  virtual const std::string& lowered() const = 0;
};

/// Builds the kernel of `config` for `workload` on the host `target`. InvalidConfig when
/// `config` is not a point of the workload's space; InvalidArgument for a non-host target.
Result<std::unique_ptr<Kernel>> build_kernel(const Workload& workload, const Target& target,
                                             const Config& config);

/// What build_code writes: an ELF object, text assembly, or the optimized LLVM IR.
enum class CodeFormat { kObject, kAssembly, kLlvmIr };

/// The name of the one function build_code and build_object compile: `kiln_<op>`.
std::string kernel_function_name(const Workload& workload);

/// Compiles the kernel, as one function (weights packed inside it: code for another machine has
/// no prepare step), for `target` (any triple LLVM knows) into `format`. InvalidConfig when
/// `config` is not a point of the space or its schedule is invalid; InvalidArgument for a
/// target that is not an llvm target or a triple LLVM does not know.
Result<std::string> build_code(const Workload& workload, const Target& target, const Config& config,
                               CodeFormat format);

/// One function of a kernel compiled ahead of time: its symbol, its ELF object, and for each
/// argument where the buffer comes from: the caller's buffer at that position (>= 0, inputs in
/// Workload::input_shapes() order, then the output), or packed buffer -1 - i.
struct CompiledFunction {
  std::string symbol;
  std::vector<uint8_t> object;
  std::vector<int> sources;
};

/// A kernel compiled ahead of time with its prepack steps kept apart, as build_kernel keeps them
/// for the host: what a module stores, so that it packs each weight once when it loads.
struct KernelCode {
  std::vector<CompiledFunction> prepare;  ///< prepare[i] computes packed buffer i
  std::vector<Shape> packed_shapes;       ///< one per prepare step, float32
  CompiledFunction main;
  int64_t arity = 0;  ///< caller buffers: the workload's inputs and its output
};

/// Compiles `workload` with `config` for `target` (any llvm triple) into one object per
/// function, whose symbols start with `symbol_prefix` (a C identifier, unique in the module that
/// will hold them). Errors as for build_code.
Result<KernelCode> build_kernel_code(const Workload& workload, const Target& target,
                                     const Config& config, const std::string& symbol_prefix);

/// build_code's object file as bytes.
Result<std::vector<uint8_t>> build_object(const Workload& workload, const Target& target,
                                          const Config& config);

}  // namespace kiln::core
