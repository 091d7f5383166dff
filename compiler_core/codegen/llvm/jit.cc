// The ORC JIT for host kernels, kept as small and apart as LLVM's KaleidoscopeJIT: KernelJit is
// created fallibly, takes one module and answers one lookup. jit_compile around it builds the
// host's target machine, generates and optimizes the module, and logs where the time went.

#include "compiler_core/codegen/llvm/codegen_llvm.h"

#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include <llvm/ExecutionEngine/Orc/CompileUtils.h>
#include <llvm/ExecutionEngine/Orc/Core.h>
#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/Support/CodeGen.h>
#include <llvm/Support/Error.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/TargetParser/Host.h>
#include <llvm/TargetParser/Triple.h>

#include "compiler_core/codegen/llvm/codegen_llvm_internal.h"
#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/codegen/llvm/ir_to_llvm_internal.h"
#include "compiler_core/codegen/llvm/optimize_internal.h"
#include "compiler_core/runtime/thread_pool.h"
#include "compiler_core/runtime/workspace.h"
#include "compiler_core/support/log.h"

namespace kiln::core {
namespace {

std::string llvm_error_message(llvm::Error error) { return llvm::toString(std::move(error)); }

/// The JIT of one kernel: LLJIT with kiln's runtime and this process's symbols visible to the
/// code. It owns the code it compiled; destroying it frees the code.
class KernelJit {
 public:
  /// A JIT whose compiler is `machine`, the target machine that optimized the module: one per
  /// compile, because a TargetMachine caches subtargets without a lock. `machine_builder`
  /// describes the same machine; `layout` is the module's. Internal when ORC fails.
  static Result<std::unique_ptr<KernelJit>> create(
      llvm::orc::JITTargetMachineBuilder machine_builder,
      std::unique_ptr<llvm::TargetMachine> machine, const llvm::DataLayout& layout) {
    // The holder makes the compile function creator copyable.
    auto machine_holder =
        std::make_shared<std::unique_ptr<llvm::TargetMachine>>(std::move(machine));
    auto jit_or =
        llvm::orc::LLJITBuilder()
            .setJITTargetMachineBuilder(std::move(machine_builder))
            .setDataLayout(layout)
            .setCompileFunctionCreator(
                [machine_holder](llvm::orc::JITTargetMachineBuilder)
                    -> llvm::Expected<std::unique_ptr<llvm::orc::IRCompileLayer::IRCompiler>> {
                  return std::make_unique<llvm::orc::TMOwningSimpleCompiler>(
                      std::move(*machine_holder));
                })
            // No static constructors or atexit handlers to run: skip the generic platform,
            // which would compile a support module for every JIT.
            .setPlatformSetUp(llvm::orc::setUpInactivePlatform)
            .create();
    if (!jit_or) {
      return internal_error("cannot create the llvm JIT: " +
                            llvm_error_message(jit_or.takeError()));
    }
    std::unique_ptr<llvm::orc::LLJIT> jit = std::move(*jit_or);

    KILN_RETURN_IF_ERROR(codegen_llvm_internal::expose_runtime_symbols(*jit));
    return std::unique_ptr<KernelJit>(new KernelJit(std::move(jit)));
  }

  /// Hands `module` (and the context it lives in) to the JIT; nothing is compiled yet.
  Status add_module(std::unique_ptr<llvm::Module> module, std::unique_ptr<llvm::LLVMContext> ctx) {
    const std::string name = module->getName().str();
    if (llvm::Error error =
            jit_->addIRModule(llvm::orc::ThreadSafeModule(std::move(module), std::move(ctx)))) {
      return internal_error("cannot add the module for '" + name +
                            "' to the JIT: " + llvm_error_message(std::move(error)));
    }
    return Status::ok();
  }

  /// The entry point `name`: runs the back end (instruction selection, register allocation,
  /// linking) on first use.
  Result<void (*)(float* const*)> lookup(const std::string& name) {
    auto address = jit_->lookup(name);
    if (!address) {
      return internal_error("cannot compile '" + name +
                            "' in the JIT: " + llvm_error_message(address.takeError()));
    }
    return address->toPtr<void (*)(float* const*)>();
  }

 private:
  explicit KernelJit(std::unique_ptr<llvm::orc::LLJIT> jit) : jit_(std::move(jit)) {}

  std::unique_ptr<llvm::orc::LLJIT> jit_;
};

/// A JIT-compiled function. Its KernelJit owns the code; destroying it frees the code.
class LlvmJitFunction : public JitFunction {
 public:
  LlvmJitFunction(std::unique_ptr<KernelJit> jit, void (*entry)(float* const*), std::string ir)
      : jit_(std::move(jit)), entry_(entry), ir_(std::move(ir)) {}

  void call(float* const* args) const override { entry_(args); }
  const std::string& llvm_ir() const override { return ir_; }

 private:
  std::unique_ptr<KernelJit> jit_;
  void (*entry_)(float* const*);
  std::string ir_;
};

/// Milliseconds since `start`, and restarts it.
double lap_ms(std::chrono::steady_clock::time_point* start) {
  const auto now = std::chrono::steady_clock::now();
  const double ms = std::chrono::duration<double, std::milli>(now - *start).count();
  *start = now;
  return ms;
}

/// The host target with triple, CPU and features filled in.
Result<Target> resolved_host(const Target& target) {
  if (!target.triple.empty() && !target.cpu.empty()) return target;
  return resolve_host_target(target);
}

}  // namespace

namespace codegen_llvm_internal {

Status expose_runtime_symbols(llvm::orc::LLJIT& jit) {
  llvm::orc::JITDylib& main = jit.getMainJITDylib();
  llvm::orc::SymbolMap runtime_symbols;
  auto define = [&](const char* name, auto* function) {
    runtime_symbols[jit.mangleAndIntern(name)] =
        llvm::JITEvaluatedSymbol(llvm::pointerToJITTargetAddress(function),
                                 llvm::JITSymbolFlags::Exported | llvm::JITSymbolFlags::Callable);
  };
  define("kiln_parallel_for", &kiln_parallel_for);
  define("kiln_workspace_alloc", &kiln_workspace_alloc);
  define("kiln_workspace_free", &kiln_workspace_free);
  if (llvm::Error error = main.define(llvm::orc::absoluteSymbols(std::move(runtime_symbols)))) {
    return internal_error("cannot define kiln's runtime in the JIT: " +
                          llvm_error_message(std::move(error)));
  }
  auto generator = llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
      jit.getDataLayout().getGlobalPrefix());
  if (!generator) {
    return internal_error("cannot search this process for symbols: " +
                          llvm_error_message(generator.takeError()));
  }
  main.addGenerator(std::move(*generator));
  return Status::ok();
}

}  // namespace codegen_llvm_internal

Result<std::unique_ptr<JitFunction>> jit_compile(const ir::LoweredFunc& func,
                                                 const Target& target) {
  auto clock = std::chrono::steady_clock::now();
  codegen_llvm_internal::initialize_llvm();
  if (target.kind != TargetKind::kLlvm) {
    return invalid_argument("cannot JIT-compile for target '" + target.str() +
                            "'; the JIT runs llvm targets on this host only");
  }
  KILN_ASSIGN_OR_RETURN(const Target host, resolved_host(target));
  const std::string process_triple = llvm::sys::getProcessTriple();
  if (llvm::Triple(host.triple).getArch() != llvm::Triple(process_triple).getArch()) {
    return invalid_argument("cannot JIT-compile for triple '" + host.triple +
                            "' on a host whose triple is '" + process_triple +
                            "'; use compile_object for other targets");
  }
  KILN_ASSIGN_OR_RETURN(const llvm::Target* llvm_target,
                        codegen_llvm_internal::lookup_target(process_triple));
  KILN_RETURN_IF_ERROR(codegen_llvm_internal::check_cpu(*llvm_target, process_triple, host));

  llvm::orc::JITTargetMachineBuilder machine_builder{llvm::Triple(process_triple)};
  machine_builder.setCPU(host.cpu);
  machine_builder.addFeatures(host.attrs);
  machine_builder.setCodeGenOptLevel(llvm::CodeGenOpt::Aggressive);
  machine_builder.getOptions().AllowFPOpFusion = llvm::FPOpFusion::Fast;
  auto machine_or = machine_builder.createTargetMachine();
  if (!machine_or) {
    return internal_error("cannot create an llvm target machine for '" + host.str() +
                          "': " + llvm_error_message(machine_or.takeError()));
  }
  std::unique_ptr<llvm::TargetMachine> machine = std::move(*machine_or);

  auto ctx = std::make_unique<llvm::LLVMContext>();
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<llvm::Module> module,
                        codegen_llvm_internal::generate_module(func, *ctx, *machine));
  const double generate_ms = lap_ms(&clock);
  codegen_llvm_internal::optimize(*module, *machine);
  const double optimize_ms = lap_ms(&clock);
  std::string ir_text = codegen_llvm_internal::print_module(*module);
  const double print_ms = lap_ms(&clock);
  const llvm::DataLayout layout = module->getDataLayout();

  // The target machine that optimized the module also compiles it.
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<KernelJit> jit,
                        KernelJit::create(machine_builder, std::move(machine), layout));
  KILN_RETURN_IF_ERROR(jit->add_module(std::move(module), std::move(ctx)));
  KILN_ASSIGN_OR_RETURN(void (*entry)(float* const*), jit->lookup(func.name));

  // The lookup ran the back end: instruction selection, register allocation, linking.
  const double machine_code_ms = lap_ms(&clock);
  logger("core")->debug(
      "jit compiled func={} generate_ms={:.2f} optimize_ms={:.2f} "
      "print_ms={:.2f} machine_code_ms={:.2f}",
      func.name, generate_ms, optimize_ms, print_ms, machine_code_ms);
  return std::unique_ptr<JitFunction>(
      std::make_unique<LlvmJitFunction>(std::move(jit), entry, std::move(ir_text)));
}

}  // namespace kiln::core
