/// \file
/// LLVM 16 code generation for CPUs: lowered functions to LLVM IR, optimized, then either
/// JIT-compiled for this host through ORC or emitted for any triple as an object file, text
/// assembly or the optimized LLVM IR. All three emitters run the same pipeline as the JIT, so
/// for the host they show the code the JIT runs.
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
Result<std::unique_ptr<JitFunction>> jit_compile(const ir::LoweredFunc& func, const Target& target);

/// Object files compiled ahead of time for this host's architecture, linked into this process by
/// LLVM's JIT linker (a module's kernels); it owns the code and frees it when destroyed.
class LinkedObjects {
 public:
  virtual ~LinkedObjects() = default;
  /// The entry point of function `symbol`. NotFound when no object defines it; Internal when
  /// linking fails (an undefined symbol the objects need).
  virtual Result<void (*)(float* const*)> lookup(const std::string& symbol) = 0;
};

/// Links `objects` (relocatable ELF objects, as compile_object writes them) into this process,
/// with kiln's runtime and this process's symbols (libm) visible to them. InvalidArgument for
/// bytes that are not an object file for this host's architecture.
Result<std::unique_ptr<LinkedObjects>> link_objects(
    const std::vector<std::vector<uint8_t>>& objects);

/// Compiles `func` into an ELF object for `target`'s triple, CPU and features (a host target
/// is resolved first). InvalidArgument for a non-llvm target, or a triple or CPU LLVM does not
/// know; Internal for LLVM failures.
Result<std::vector<uint8_t>> compile_object(const ir::LoweredFunc& func, const Target& target);

/// The text assembly of `func` for `target`, in LLVM's syntax for the triple (what `llc`
/// prints): the same code compile_object puts in the object. Errors as for compile_object.
Result<std::string> emit_assembly(const ir::LoweredFunc& func, const Target& target);

/// The LLVM IR of `func` for `target` after the optimisation pipeline, as text: the module
/// that compile_object and emit_assembly hand to LLVM's code generator. Errors as for
/// compile_object.
Result<std::string> emit_llvm_ir(const ir::LoweredFunc& func, const Target& target);

}  // namespace kiln::core
