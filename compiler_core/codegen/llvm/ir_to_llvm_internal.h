/// \file
/// kiln's loop IR to LLVM IR (ir_to_llvm.cc). Private to codegen/llvm.
#pragma once

#include <memory>
#include <string>

#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/Target/TargetMachine.h>

#include "compiler_core/ir/function.h"
#include "compiler_core/support/status.h"

namespace kiln::core::codegen_llvm_internal {

/// Generates and verifies the module for `func` on `machine`, not yet optimized: an exported
/// `void NAME(float** args)` that loads the argument pointers and calls an always-inlined
/// `kernel_body(float* noalias ...)`, plus one outlined task per parallel loop (called through
/// `kiln_parallel_for`). Every function carries `machine`'s CPU and features. Internal when LLVM
/// rejects the module (a bug in lowering or code generation); the message holds the kiln IR.
Result<std::unique_ptr<llvm::Module>> generate_module(const ir::LoweredFunc& func,
                                                      llvm::LLVMContext& ctx,
                                                      llvm::TargetMachine& machine);

/// `module` as LLVM's textual IR.
std::string print_module(const llvm::Module& module);

}  // namespace kiln::core::codegen_llvm_internal
