/// \file
/// The optimisation pipeline every generated module goes through (optimize.cc). Private to
/// codegen/llvm.
#pragma once

#include <llvm/IR/Module.h>
#include <llvm/Target/TargetMachine.h>

namespace kiln::core::codegen_llvm_internal {

/// Runs LLVM's default O3 pipeline on `module`, with loop and SLP vectorization, unrolling and
/// interleaving on, and vector costs from `machine`'s CPU model.
void optimize(llvm::Module& module, llvm::TargetMachine& machine);

}  // namespace kiln::core::codegen_llvm_internal
