// The optimisation pipeline: LLVM's O3 with the target machine's cost model, the same for JIT
// and cross compilation, so that an emitted object holds the code the host would run.

#include "compiler_core/codegen/llvm/optimize_internal.h"

#include <llvm/Analysis/CGSCCPassManager.h>
#include <llvm/Analysis/LoopAnalysisManager.h>
#include <llvm/Analysis/TargetTransformInfo.h>
#include <llvm/IR/PassManager.h>
#include <llvm/Passes/OptimizationLevel.h>
#include <llvm/Passes/PassBuilder.h>

namespace kiln::core::codegen_llvm_internal {

void optimize(llvm::Module& module, llvm::TargetMachine& machine) {
  // Declared in this order so that they are destroyed in the reverse one (PassBuilder docs).
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;

  llvm::PipelineTuningOptions tuning;
  tuning.LoopVectorization = true;
  tuning.SLPVectorization = true;
  tuning.LoopUnrolling = true;
  tuning.LoopInterleaving = true;
  llvm::PassBuilder builder(&machine, tuning);
  // Registered before the defaults, so that vector costs come from this CPU's model.
  fam.registerPass([&] { return machine.getTargetIRAnalysis(); });
  builder.registerModuleAnalyses(mam);
  builder.registerCGSCCAnalyses(cgam);
  builder.registerFunctionAnalyses(fam);
  builder.registerLoopAnalyses(lam);
  builder.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::ModulePassManager passes =
      builder.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3);
  passes.run(module, mam);
}

}  // namespace kiln::core::codegen_llvm_internal
