// Ahead-of-time objects (a module's kernels) linked into this process by ORC's LLJIT: the same
// runtime symbols as the JIT's kernels see, and nothing compiled here.

#include "compiler_core/codegen/llvm/codegen_llvm.h"

#include <memory>
#include <string>
#include <utility>

#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/Object/ObjectFile.h>
#include <llvm/Support/Error.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/TargetParser/Host.h>
#include <llvm/TargetParser/Triple.h>

#include "compiler_core/codegen/llvm/codegen_llvm_internal.h"

namespace kiln::core {
namespace {

std::string llvm_error_message(llvm::Error error) { return llvm::toString(std::move(error)); }

class OrcLinkedObjects : public LinkedObjects {
 public:
  explicit OrcLinkedObjects(std::unique_ptr<llvm::orc::LLJIT> jit) : jit_(std::move(jit)) {}

  Result<void (*)(float* const*)> lookup(const std::string& symbol) override {
    auto address = jit_->lookup(symbol);
    if (!address) {
      std::string message = llvm_error_message(address.takeError());
      if (message.find("Symbols not found") != std::string::npos &&
          message.find(symbol) != std::string::npos) {
        return Status(StatusCode::kNotFound, "no object defines '" + symbol + "'");
      }
      return internal_error("cannot link '" + symbol + "': " + message);
    }
    return address->toPtr<void (*)(float* const*)>();
  }

 private:
  std::unique_ptr<llvm::orc::LLJIT> jit_;
};

}  // namespace

Result<std::unique_ptr<LinkedObjects>> link_objects(
    const std::vector<std::vector<uint8_t>>& objects) {
  codegen_llvm_internal::initialize_llvm();
  const llvm::Triple process(llvm::sys::getProcessTriple());
  for (size_t i = 0; i < objects.size(); ++i) {
    llvm::MemoryBufferRef ref(
        llvm::StringRef(reinterpret_cast<const char*>(objects[i].data()), objects[i].size()),
        "object " + std::to_string(i));
    auto object = llvm::object::ObjectFile::createObjectFile(ref);
    if (!object) {
      return invalid_argument("object " + std::to_string(i) +
                              " is not an object file: " + llvm_error_message(object.takeError()));
    }
    const llvm::Triple::ArchType arch = (*object)->getArch();
    if (arch != process.getArch()) {
      return invalid_argument("object " + std::to_string(i) + " is code for " +
                              llvm::Triple::getArchTypeName(arch).str() + ", this host runs " +
                              process.getArchName().str());
    }
  }

  auto jit_or =
      llvm::orc::LLJITBuilder().setPlatformSetUp(llvm::orc::setUpInactivePlatform).create();
  if (!jit_or) {
    return internal_error("cannot create the llvm JIT: " + llvm_error_message(jit_or.takeError()));
  }
  std::unique_ptr<llvm::orc::LLJIT> jit = std::move(*jit_or);
  KILN_RETURN_IF_ERROR(codegen_llvm_internal::expose_runtime_symbols(*jit));
  for (size_t i = 0; i < objects.size(); ++i) {
    auto buffer = llvm::MemoryBuffer::getMemBufferCopy(
        llvm::StringRef(reinterpret_cast<const char*>(objects[i].data()), objects[i].size()),
        "kiln_object_" + std::to_string(i));
    if (llvm::Error error = jit->addObjectFile(std::move(buffer))) {
      return invalid_argument("cannot add object " + std::to_string(i) + ": " +
                              llvm_error_message(std::move(error)));
    }
  }
  std::unique_ptr<LinkedObjects> linked = std::make_unique<OrcLinkedObjects>(std::move(jit));
  return linked;
}

}  // namespace kiln::core
