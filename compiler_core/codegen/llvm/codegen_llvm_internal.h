/// \file
/// Target helpers shared by the code generation files and host.cc (defined in
/// target_machine.cc): one-time LLVM initialisation and target lookup. Private to codegen/llvm
/// (LLVM types appear here, never in public headers).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Target/TargetMachine.h>

#include "compiler_core/support/status.h"
#include "compiler_core/target/target.h"

namespace kiln::core::codegen_llvm_internal {

/// Registers every LLVM target, MC layer, asm printer and parser. Thread-safe; runs once.
void initialize_llvm();

/// The LLVM target for `triple`; InvalidArgument naming the triple when LLVM does not know it.
Result<const llvm::Target*> lookup_target(const std::string& triple);

/// `attrs` as LLVM's comma-separated feature string ("+avx2,-avx512f").
std::string feature_string(const std::vector<std::string>& attrs);

/// True for i386 and x86_64 triples.
bool is_x86_triple(const std::string& triple);

/// InvalidArgument when `target.cpu` is unknown to the back end for `triple` (LLVM itself would
/// print a warning and ignore it). An empty CPU is accepted. Feature names are not checked:
/// LLVM 16 has no query for them, and an unknown one is ignored with a warning on stderr.
Status check_cpu(const llvm::Target& llvm_target, const std::string& triple, const Target& target);

/// The subtarget `target` describes on `triple`, after check_cpu passed.
std::unique_ptr<llvm::MCSubtargetInfo> create_subtarget_info(const llvm::Target& llvm_target,
                                                             const std::string& triple,
                                                             const Target& target);

/// Makes kiln's runtime (kiln_parallel_for, kiln_workspace_alloc and _free) and this process's
/// symbols (libm's expf, ...) visible to the code `jit` links: what JIT-compiled kernels and a
/// module's objects call. Internal when ORC refuses.
Status expose_runtime_symbols(llvm::orc::LLJIT& jit);

}  // namespace kiln::core::codegen_llvm_internal
