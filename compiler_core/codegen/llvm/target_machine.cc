// LLVM's target registry as kiln uses it: one-time initialisation, triple and CPU checks, and
// the subtarget a Target describes. Shared by code generation and host detection.

#include "compiler_core/codegen/llvm/codegen_llvm_internal.h"

#include <mutex>
#include <string>
#include <vector>

#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/TargetParser/Triple.h>

namespace kiln::core::codegen_llvm_internal {

void initialize_llvm() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeAllTargetInfos();
    llvm::InitializeAllTargets();
    llvm::InitializeAllTargetMCs();
    llvm::InitializeAllAsmPrinters();
    llvm::InitializeAllAsmParsers();
  });
}

Result<const llvm::Target*> lookup_target(const std::string& triple) {
  initialize_llvm();
  std::string error;
  const llvm::Target* target = llvm::TargetRegistry::lookupTarget(triple, error);
  // lookupTarget accepts some triples whose architecture it cannot parse when only one back
  // end is registered; an unknown architecture is never usable, so reject it as well.
  if (target == nullptr || llvm::Triple(triple).getArch() == llvm::Triple::UnknownArch) {
    return invalid_argument("unknown target triple '" + triple +
                            "'; use an LLVM triple such as x86_64-linux-gnu or "
                            "aarch64-linux-gnu (" +
                            error + ")");
  }
  return target;
}

std::string feature_string(const std::vector<std::string>& attrs) {
  std::string out;
  for (const std::string& attr : attrs) {
    if (!out.empty()) out += ',';
    out += attr;
  }
  return out;
}

bool is_x86_triple(const std::string& triple) {
  const llvm::Triple t(triple);
  return t.getArch() == llvm::Triple::x86_64 || t.getArch() == llvm::Triple::x86;
}

Status check_cpu(const llvm::Target& llvm_target, const std::string& triple, const Target& target) {
  if (target.cpu.empty()) return Status::ok();
  std::unique_ptr<llvm::MCSubtargetInfo> info(llvm_target.createMCSubtargetInfo(triple, "", ""));
  if (info == nullptr) {
    return internal_error("llvm has no subtarget information for triple '" + triple + "'");
  }
  if (!info->isCPUStringValid(target.cpu)) {
    return invalid_argument("unknown cpu '" + target.cpu + "' for triple '" + triple +
                            "'; use a cpu that `llc -mtriple=" + triple + " -mcpu=help` lists");
  }
  return Status::ok();
}

std::unique_ptr<llvm::MCSubtargetInfo> create_subtarget_info(const llvm::Target& llvm_target,
                                                             const std::string& triple,
                                                             const Target& target) {
  return std::unique_ptr<llvm::MCSubtargetInfo>(
      llvm_target.createMCSubtargetInfo(triple, target.cpu, feature_string(target.attrs)));
}

}  // namespace kiln::core::codegen_llvm_internal
