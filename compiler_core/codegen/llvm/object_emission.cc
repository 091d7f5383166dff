// Ahead-of-time code for any triple LLVM knows, the host's included: the module is generated
// and optimized as for the JIT, then printed (LLVM IR) or written out by LLVM's code generator
// (an object file, text assembly).

#include "compiler_core/codegen/llvm/codegen_llvm.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <llvm/ADT/SmallVector.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/Support/CodeGen.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/Target/TargetOptions.h>

#include "compiler_core/codegen/llvm/codegen_llvm_internal.h"
#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/codegen/llvm/ir_to_llvm_internal.h"
#include "compiler_core/codegen/llvm/optimize_internal.h"

namespace kiln::core {
namespace {

/// An optimized module and the target machine it was made for. The context outlives both.
struct OptimizedModule {
  std::unique_ptr<llvm::LLVMContext> ctx;
  std::unique_ptr<llvm::TargetMachine> machine;
  std::unique_ptr<llvm::Module> module;
  Target target;  ///< with the host's triple, CPU and features filled in
};

/// Generates and optimizes `func` for `target`. `what` names the output in the message for a
/// non-llvm target ("a CPU object").
Result<OptimizedModule> optimized_module(const ir::LoweredFunc& func, const Target& target,
                                         const std::string& what) {
  codegen_llvm_internal::initialize_llvm();
  if (target.kind != TargetKind::kLlvm) {
    return invalid_argument("cannot emit " + what + " for target '" + target.str() +
                            "'; use an llvm target");
  }
  OptimizedModule out;
  out.target = target;
  if (target.is_host && target.triple.empty()) {
    KILN_ASSIGN_OR_RETURN(out.target, resolve_host_target(target));
  }
  const Target& resolved = out.target;
  KILN_ASSIGN_OR_RETURN(const llvm::Target* llvm_target,
                        codegen_llvm_internal::lookup_target(resolved.triple));
  KILN_RETURN_IF_ERROR(codegen_llvm_internal::check_cpu(*llvm_target, resolved.triple, resolved));

  llvm::TargetOptions options;
  options.AllowFPOpFusion = llvm::FPOpFusion::Fast;
  out.machine.reset(llvm_target->createTargetMachine(
      resolved.triple, resolved.cpu, codegen_llvm_internal::feature_string(resolved.attrs), options,
      llvm::Reloc::PIC_, std::nullopt, llvm::CodeGenOpt::Aggressive));
  if (out.machine == nullptr) {
    return internal_error("llvm cannot create a target machine for '" + resolved.str() + "'");
  }

  out.ctx = std::make_unique<llvm::LLVMContext>();
  KILN_ASSIGN_OR_RETURN(out.module,
                        codegen_llvm_internal::generate_module(func, *out.ctx, *out.machine));
  codegen_llvm_internal::optimize(*out.module, *out.machine);
  return out;
}

/// Runs LLVM's code generator on `optimized`, writing a file of `type`.
Result<llvm::SmallVector<char, 0>> emit_file(OptimizedModule& optimized, llvm::CodeGenFileType type,
                                             const std::string& what) {
  llvm::SmallVector<char, 0> buffer;
  llvm::raw_svector_ostream os(buffer);
  llvm::legacy::PassManager emit;
  if (optimized.machine->addPassesToEmitFile(emit, os, nullptr, type)) {
    return internal_error("llvm cannot emit " + what + " for triple '" + optimized.target.triple +
                          "'");
  }
  emit.run(*optimized.module);
  return buffer;
}

}  // namespace

Result<std::vector<uint8_t>> compile_object(const ir::LoweredFunc& func, const Target& target) {
  KILN_ASSIGN_OR_RETURN(OptimizedModule optimized, optimized_module(func, target, "a CPU object"));
  KILN_ASSIGN_OR_RETURN(auto buffer, emit_file(optimized, llvm::CGFT_ObjectFile, "an object file"));
  return std::vector<uint8_t>(buffer.begin(), buffer.end());
}

Result<std::string> emit_assembly(const ir::LoweredFunc& func, const Target& target) {
  KILN_ASSIGN_OR_RETURN(OptimizedModule optimized, optimized_module(func, target, "assembly"));
  KILN_ASSIGN_OR_RETURN(auto buffer, emit_file(optimized, llvm::CGFT_AssemblyFile, "assembly"));
  return std::string(buffer.begin(), buffer.end());
}

Result<std::string> emit_llvm_ir(const ir::LoweredFunc& func, const Target& target) {
  KILN_ASSIGN_OR_RETURN(OptimizedModule optimized, optimized_module(func, target, "LLVM IR"));
  return codegen_llvm_internal::print_module(*optimized.module);
}

}  // namespace kiln::core
