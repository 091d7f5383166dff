/// \file
/// LLVM 16 code generation for CPUs: lowered functions to LLVM IR, optimized, then either
/// JIT-compiled for this host through ORC or emitted as an object file for any triple.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compiler_core/ir/function.h"
#include "compiler_core/support/status.h"
#include "compiler_core/target/target.h"

namespace kiln::core {

/// A host function compiled by the JIT; it owns the code and frees it when destroyed.
class JitFunction {
 public:
  virtual ~JitFunction() = default;
  /// Calls the function with one pointer per LoweredFunc argument, in order.
  virtual void call(float* const* args) const = 0;
  /// The optimized LLVM IR, for debugging.
  virtual const std::string& llvm_ir() const = 0;
};

/// Compiles `func` for the host `target` (resolved by resolve_host_target). Internal for
/// LLVM failures (which are bugs in lowering or code generation).
Result<std::unique_ptr<JitFunction>> jit_compile(const ir::LoweredFunc& func,
                                                 const Target& target);

/// Compiles `func` into an ELF object for `target`'s triple, CPU and features.
/// InvalidArgument for a triple LLVM does not know.
Result<std::vector<uint8_t>> compile_object(const ir::LoweredFunc& func, const Target& target);

}  // namespace kiln::core
