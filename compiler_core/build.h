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
class Kernel {
 public:
  virtual ~Kernel() = default;
  /// Runs the kernel. `buffers` holds the inputs in Workload::input_shapes() order, then the
  /// output; each at least as large as its shape and 64-byte aligned.
  virtual void run(std::span<float* const> buffers) = 0;
  /// The lowered loop program, printed.
  virtual const std::string& lowered() const = 0;
};

/// Builds the kernel of `config` for `workload` on the host `target`. InvalidConfig when
/// `config` is not a point of the workload's space; InvalidArgument for a non-host target.
Result<std::unique_ptr<Kernel>> build_kernel(const Workload& workload, const Target& target,
                                             const Config& config);

/// Compiles the kernel to an ELF object file for `target` (any triple LLVM knows).
Result<std::vector<uint8_t>> build_object(const Workload& workload, const Target& target,
                                          const Config& config);

}  // namespace kiln::core
