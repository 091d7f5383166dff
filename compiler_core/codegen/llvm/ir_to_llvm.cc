// The visitor that turns a LoweredFunc into LLVM IR. Lowering has already expanded vectorized
// and unrolled loops and flattened storage, so each node maps to a few LLVM instructions;
// parallel loops become outlined tasks run by the runtime's thread pool.

#include "compiler_core/codegen/llvm/ir_to_llvm_internal.h"

#include <algorithm>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <llvm/IR/BasicBlock.h>
#include <llvm/IR/Constants.h>
#include <llvm/IR/DerivedTypes.h>
#include <llvm/IR/Function.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/Verifier.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/TargetParser/Triple.h>

#include "compiler_core/ir/ir_visitor.h"
#include "compiler_core/ir/printer.h"
#include "compiler_core/support/check.h"

namespace kiln::core::codegen_llvm_internal {
namespace {

/// Allocations up to this size live on the stack; larger ones come from kiln_workspace_alloc.
constexpr int64_t kMaxStackAllocationBytes = 64 * 1024;
/// Alignment of Allocate'd buffers: a cache line, and the widest vector register.
constexpr uint64_t kBufferAlignment = 64;
/// Loads and stores claim only the element alignment: buffers come from callers.
constexpr uint64_t kElementAlignment = 4;

/// Function attributes every generated function gets.
struct FunctionOptions {
  std::string cpu;
  std::string features;
  bool x86 = false;
  bool avx512 = false;
};

/// A name-to-value map with shadowing (a loop variable may reuse an outer name). Each binding
/// also records when it was made: a later binding belongs to a more deeply nested loop.
class Scope {
 public:
  void push(const std::string& name, llvm::Value* value) {
    map_[name].push_back({value, next_order_++});
  }
  void pop(const std::string& name) {
    auto it = map_.find(name);
    KILN_CHECK(it != map_.end()) << "pop of unbound name " << name;
    it->second.pop_back();
    if (it->second.empty()) map_.erase(it);
  }
  llvm::Value* find(const std::string& name) const {
    auto it = map_.find(name);
    return it == map_.end() ? nullptr : it->second.back().value;
  }
  /// The order of `name`'s innermost binding, or -1 when it is not bound.
  int order(const std::string& name) const {
    auto it = map_.find(name);
    return it == map_.end() ? -1 : it->second.back().order;
  }

 private:
  struct Binding {
    llvm::Value* value;
    int order;
  };
  std::unordered_map<std::string, std::vector<Binding>> map_;
  int next_order_ = 0;
};

/// Every Var name and buffer name a statement mentions, sorted so that the environment of an
/// outlined loop has a deterministic layout.
class NameCollector : public ir::IRVisitor {
 public:
  std::set<std::string> vars;
  std::set<std::string> buffers;

 protected:
  using ir::IRVisitor::visit_node;
  void visit_node(const ir::Var* op) override { vars.insert(op->name); }
  void visit_node(const ir::Load* op) override {
    buffers.insert(op->buffer);
    ir::IRVisitor::visit_node(op);
  }
  void visit_node(const ir::Store* op) override {
    buffers.insert(op->buffer);
    ir::IRVisitor::visit_node(op);
  }
};

/// The constant a scalar or broadcast integer expression has, if any.
const int64_t* constant_int(const ir::Expr& e) {
  if (const ir::Broadcast* b = e.as<ir::Broadcast>()) return ir::as_const_int(b->value);
  return ir::as_const_int(e);
}

bool is_power_of_two(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

int log2_of(int64_t v) {
  int n = 0;
  while ((int64_t{1} << n) < v) ++n;
  return n;
}

/// Emits one LoweredFunc into an LLVM module: an exported `void name(float** args)` that loads
/// the argument pointers and calls an always-inlined `kernel_body(float* noalias ...)`, plus
/// one outlined task per parallel loop.
class CodeGen : public ir::IRVisitor {
 public:
  CodeGen(llvm::Module& module, FunctionOptions options)
      : module_(module), ctx_(module.getContext()), builder_(ctx_), options_(std::move(options)) {
    i1_ = llvm::Type::getInt1Ty(ctx_);
    i64_ = llvm::Type::getInt64Ty(ctx_);
    f32_ = llvm::Type::getFloatTy(ctx_);
    ptr_ = llvm::PointerType::get(ctx_, 0);
    void_ = llvm::Type::getVoidTy(ctx_);
    // Contraction of a*b+c into an FMA and nothing more (ir.h's float semantics).
    llvm::FastMathFlags fmf;
    fmf.setAllowContract(true);
    builder_.setFastMathFlags(fmf);
  }

  void emit(const ir::LoweredFunc& func) {
    func_name_ = func.name;
    std::set<std::string> unique_args(func.args.begin(), func.args.end());
    KILN_CHECK(unique_args.size() == func.args.size())
        << "function " << func.name << " has two arguments with the same name";

    // The wrapper is created first so that it keeps the exported name even if a caller named
    // the kernel "kernel_body".
    llvm::Function* wrapper =
        create_function(func.name, llvm::FunctionType::get(void_, {ptr_}, false),
                        llvm::Function::ExternalLinkage, /*always_inline=*/false);
    std::vector<llvm::Type*> params(func.args.size(), ptr_);
    llvm::Function* body =
        create_function("kernel_body", llvm::FunctionType::get(void_, params, false),
                        llvm::Function::InternalLinkage, /*always_inline=*/true);
    for (size_t i = 0; i < func.args.size(); ++i) {
      body->addParamAttr(static_cast<unsigned>(i), llvm::Attribute::NoAlias);
      body->getArg(static_cast<unsigned>(i))->setName(func.args[i]);
    }

    builder_.SetInsertPoint(llvm::BasicBlock::Create(ctx_, "entry", wrapper));
    std::vector<llvm::Value*> pointers;
    for (size_t i = 0; i < func.args.size(); ++i) {
      llvm::Value* slot = builder_.CreateConstInBoundsGEP1_64(ptr_, wrapper->getArg(0), i);
      pointers.push_back(builder_.CreateLoad(ptr_, slot, func.args[i]));
    }
    builder_.CreateCall(body, pointers);
    builder_.CreateRetVoid();

    builder_.SetInsertPoint(llvm::BasicBlock::Create(ctx_, "entry", body));
    for (size_t i = 0; i < func.args.size(); ++i) {
      buffers_.push(func.args[i], body->getArg(static_cast<unsigned>(i)));
    }
    codegen(func.body);
    builder_.CreateRetVoid();
  }

 protected:
  using ir::IRVisitor::visit_node;

  void visit_node(const ir::IntImm* op) override { value_ = builder_.getInt64(op->value); }
  void visit_node(const ir::FloatImm* op) override {
    value_ = llvm::ConstantFP::get(f32_, op->value);
  }
  void visit_node(const ir::Var* op) override {
    value_ = vars_.find(op->name);
    KILN_CHECK(value_ != nullptr) << "variable " << op->name << " is not bound in " << func_name_;
  }

  void visit_node(const ir::Add* op) override {
    llvm::Value* a = codegen(op->a);
    llvm::Value* b = codegen(op->b);
    value_ = op->type.is_float() ? builder_.CreateFAdd(a, b)
                                 : builder_.CreateAdd(a, b, "", false, /*HasNSW=*/true);
  }
  void visit_node(const ir::Sub* op) override {
    llvm::Value* a = codegen(op->a);
    llvm::Value* b = codegen(op->b);
    value_ = op->type.is_float() ? builder_.CreateFSub(a, b)
                                 : builder_.CreateSub(a, b, "", false, /*HasNSW=*/true);
  }
  void visit_node(const ir::Mul* op) override {
    llvm::Value* a = codegen(op->a);
    llvm::Value* b = codegen(op->b);
    value_ = op->type.is_float() ? builder_.CreateFMul(a, b)
                                 : builder_.CreateMul(a, b, "", false, /*HasNSW=*/true);
  }
  void visit_node(const ir::Div* op) override {
    llvm::Value* a = codegen(op->a);
    llvm::Value* b = codegen(op->b);
    if (op->type.is_float()) {
      value_ = builder_.CreateFDiv(a, b);
      return;
    }
    KILN_CHECK(op->type.is_int()) << "Div of bools";
    value_ = floor_div(a, b, constant_int(op->b));
  }
  void visit_node(const ir::Mod* op) override {
    KILN_CHECK(op->type.is_int()) << "Mod is defined on integers only: " << ir::Expr(op);
    llvm::Value* a = codegen(op->a);
    llvm::Value* b = codegen(op->b);
    value_ = floor_mod(a, b, constant_int(op->b));
  }
  void visit_node(const ir::Min* op) override {
    llvm::Value* a = codegen(op->a);
    llvm::Value* b = codegen(op->b);
    if (op->type.is_float()) {
      value_ = builder_.CreateSelect(builder_.CreateFCmpOLT(a, b), a, b);
    } else {
      value_ = builder_.CreateSelect(builder_.CreateICmpSLT(a, b), a, b);
    }
  }
  void visit_node(const ir::Max* op) override {
    llvm::Value* a = codegen(op->a);
    llvm::Value* b = codegen(op->b);
    if (op->type.is_float()) {
      value_ = builder_.CreateSelect(builder_.CreateFCmpOGT(a, b), a, b);
    } else {
      value_ = builder_.CreateSelect(builder_.CreateICmpSGT(a, b), a, b);
    }
  }

  void visit_node(const ir::EQ* op) override {
    compare(op->a, op->b, llvm::CmpInst::FCMP_OEQ, llvm::CmpInst::ICMP_EQ, llvm::CmpInst::ICMP_EQ);
  }
  void visit_node(const ir::NE* op) override {
    compare(op->a, op->b, llvm::CmpInst::FCMP_ONE, llvm::CmpInst::ICMP_NE, llvm::CmpInst::ICMP_NE);
  }
  void visit_node(const ir::LT* op) override {
    compare(op->a, op->b, llvm::CmpInst::FCMP_OLT, llvm::CmpInst::ICMP_SLT,
            llvm::CmpInst::ICMP_ULT);
  }
  void visit_node(const ir::LE* op) override {
    compare(op->a, op->b, llvm::CmpInst::FCMP_OLE, llvm::CmpInst::ICMP_SLE,
            llvm::CmpInst::ICMP_ULE);
  }
  void visit_node(const ir::And* op) override {
    KILN_CHECK(op->type.is_bool()) << "And of non-bools: " << ir::Expr(op);
    llvm::Value* a = codegen(op->a);
    llvm::Value* b = codegen(op->b);
    value_ = builder_.CreateAnd(a, b);
  }
  void visit_node(const ir::Or* op) override {
    KILN_CHECK(op->type.is_bool()) << "Or of non-bools: " << ir::Expr(op);
    llvm::Value* a = codegen(op->a);
    llvm::Value* b = codegen(op->b);
    value_ = builder_.CreateOr(a, b);
  }
  void visit_node(const ir::Not* op) override { value_ = builder_.CreateNot(codegen(op->a)); }

  void visit_node(const ir::Select* op) override {
    if (op->guarded) {
      value_ = guarded_load(op);
      return;
    }
    llvm::Value* c = codegen(op->condition);
    llvm::Value* t = codegen(op->true_value);
    llvm::Value* f = codegen(op->false_value);
    // A scalar condition selects whole vectors, which LLVM's select accepts as is.
    value_ = builder_.CreateSelect(c, t, f);
  }

  void visit_node(const ir::Cast* op) override {
    const ir::Type from = op->value.type();
    const ir::Type to = op->type;
    llvm::Value* v = codegen(op->value);
    llvm::Type* to_type = llvm_type(to);
    if (from.code == to.code) {
      value_ = v;
    } else if (from.is_int() && to.is_float()) {
      value_ = builder_.CreateSIToFP(v, to_type);
    } else if (from.is_float() && to.is_int()) {
      value_ = builder_.CreateFPToSI(v, to_type);
    } else if (from.is_bool() && to.is_int()) {
      value_ = builder_.CreateZExt(v, to_type);
    } else if (from.is_bool() && to.is_float()) {
      value_ = builder_.CreateUIToFP(v, to_type);
    } else if (from.is_int() && to.is_bool()) {
      value_ = builder_.CreateICmpNE(v, llvm::Constant::getNullValue(v->getType()));
    } else {
      value_ = builder_.CreateFCmpUNE(v, llvm::Constant::getNullValue(v->getType()));
    }
  }

  void visit_node(const ir::Ramp* op) override {
    llvm::Value* base = codegen(op->base);
    llvm::Value* stride = codegen(op->stride);
    const int lanes = op->lanes;
    const bool is_float = op->type.is_float();
    KILN_CHECK(!op->type.is_bool()) << "Ramp of bools";
    std::vector<llvm::Constant*> steps;
    for (int i = 0; i < lanes; ++i) {
      steps.push_back(is_float ? llvm::ConstantFP::get(f32_, i) : builder_.getInt64(i));
    }
    llvm::Value* step_vector = llvm::ConstantVector::get(steps);
    llvm::Value* base_vector = builder_.CreateVectorSplat(lanes, base);
    llvm::Value* stride_vector = builder_.CreateVectorSplat(lanes, stride);
    if (is_float) {
      value_ = builder_.CreateFAdd(base_vector, builder_.CreateFMul(stride_vector, step_vector));
    } else {
      value_ = builder_.CreateAdd(base_vector,
                                  builder_.CreateMul(stride_vector, step_vector, "", false, true),
                                  "", false, true);
    }
  }

  void visit_node(const ir::Broadcast* op) override {
    value_ = builder_.CreateVectorSplat(op->lanes, codegen(op->value));
  }

  void visit_node(const ir::Load* op) override {
    const ir::Expr& index = op->index;
    const int lanes = index.type().lanes;
    if (lanes == 1) {
      value_ = builder_.CreateAlignedLoad(f32_, element_pointer(op->buffer, index_value(index)),
                                          llvm::Align(kElementAlignment));
      return;
    }
    if (const ir::Ramp* ramp = dense_ramp(index)) {
      llvm::Value* p = element_pointer(op->buffer, index_value(ramp->base));
      value_ = builder_.CreateAlignedLoad(llvm::FixedVectorType::get(f32_, lanes), p,
                                          llvm::Align(kElementAlignment));
      return;
    }
    if (const ir::Ramp* ramp = ramp_of_stride(index, 2)) {
      value_ = deinterleaved_load(op->buffer, ramp->base, lanes);
      return;
    }
    if (const ir::Broadcast* b = index.as<ir::Broadcast>()) {
      llvm::Value* scalar = builder_.CreateAlignedLoad(
          f32_, element_pointer(op->buffer, index_value(b->value)), llvm::Align(kElementAlignment));
      value_ = builder_.CreateVectorSplat(lanes, scalar);
      return;
    }
    // A gather, one lane at a time: correct for any index, used only by tails and packing.
    std::vector<llvm::Value*> pointers = lane_pointers(op->buffer, index);
    llvm::Value* result = llvm::PoisonValue::get(llvm::FixedVectorType::get(f32_, lanes));
    for (int i = 0; i < lanes; ++i) {
      llvm::Value* element =
          builder_.CreateAlignedLoad(f32_, pointers[i], llvm::Align(kElementAlignment));
      result = builder_.CreateInsertElement(result, element, builder_.getInt64(i));
    }
    value_ = result;
  }

  void visit_node(const ir::Call* op) override {
    switch (op->op) {
      case ir::CallOp::kExp:
        // The intrinsic takes vectors too; where the target has no vector exp, LLVM calls
        // expf lane by lane (the JIT resolves it from the process, an object file from libm).
        value_ = builder_.CreateUnaryIntrinsic(llvm::Intrinsic::exp, codegen(op->args[0]));
        return;
    }
    KILN_UNREACHABLE() << "call " << ir::Expr(op);
  }

  void visit_node(const ir::TensorLoad* op) override {
    KILN_UNREACHABLE() << "TensorLoad of " << op->tensor
                       << " reached code generation; storage flattening must remove it";
  }

  void visit_node(const ir::For* op) override {
    if (op->for_kind == ir::ForKind::kParallel) {
      emit_parallel_for(op);
    } else {
      // Vectorized and unrolled loops are expanded by lowering; one that is left is still
      // correct as a serial loop, and LLVM may vectorize or unroll it anyway.
      emit_serial_for(op);
    }
  }

  void visit_node(const ir::Store* op) override {
    llvm::Value* value = codegen(op->value);
    const ir::Expr& index = op->index;
    const int lanes = index.type().lanes;
    if (lanes == 1) {
      builder_.CreateAlignedStore(value, element_pointer(op->buffer, index_value(index)),
                                  llvm::Align(kElementAlignment));
      return;
    }
    if (const ir::Ramp* ramp = dense_ramp(index)) {
      builder_.CreateAlignedStore(value, element_pointer(op->buffer, index_value(ramp->base)),
                                  llvm::Align(kElementAlignment));
      return;
    }
    // A scatter, one lane at a time, in lane order (a later lane wins on equal indices).
    std::vector<llvm::Value*> pointers = lane_pointers(op->buffer, index);
    for (int i = 0; i < lanes; ++i) {
      llvm::Value* element = builder_.CreateExtractElement(value, builder_.getInt64(i));
      builder_.CreateAlignedStore(element, pointers[i], llvm::Align(kElementAlignment));
    }
  }

  void visit_node(const ir::TensorStore* op) override {
    KILN_UNREACHABLE() << "TensorStore of " << op->tensor
                       << " reached code generation; storage flattening must remove it";
  }

  void visit_node(const ir::Block* op) override {
    for (const ir::Stmt& s : op->stmts) codegen(s);
  }

  void visit_node(const ir::IfThenElse* op) override {
    llvm::Value* condition = codegen(op->condition);
    llvm::Function* f = builder_.GetInsertBlock()->getParent();
    llvm::BasicBlock* then_block = llvm::BasicBlock::Create(ctx_, "then", f);
    llvm::BasicBlock* else_block =
        op->else_case.defined() ? llvm::BasicBlock::Create(ctx_, "else", f) : nullptr;
    llvm::BasicBlock* after = llvm::BasicBlock::Create(ctx_, "endif", f);
    builder_.CreateCondBr(condition, then_block, else_block ? else_block : after);
    builder_.SetInsertPoint(then_block);
    codegen_region(op->then_case);
    builder_.CreateBr(after);
    if (else_block != nullptr) {
      builder_.SetInsertPoint(else_block);
      codegen_region(op->else_case);
      builder_.CreateBr(after);
    }
    builder_.SetInsertPoint(after);
  }

  void visit_node(const ir::Realize* op) override {
    KILN_UNREACHABLE() << "Realize of " << op->tensor
                       << " reached code generation; storage flattening must remove it";
  }

  void visit_node(const ir::Allocate* op) override {
    const int64_t bytes = op->size * int64_t{sizeof(float)};
    if (bytes <= kMaxStackAllocationBytes) {
      // In the entry block of the current function (the task, inside a parallel loop), so
      // that a loop around the Allocate does not grow the stack.
      llvm::AllocaInst* buffer =
          create_entry_alloca(llvm::ArrayType::get(f32_, static_cast<uint64_t>(op->size)),
                              kBufferAlignment, op->buffer);
      buffers_.push(op->buffer, buffer);
      codegen(op->body);
      buffers_.pop(op->buffer);
      return;
    }
    // From the calling thread's workspace (runtime/workspace.h), which keeps it for the next
    // iteration of a loop around the Allocate.
    llvm::FunctionCallee alloc_fn = module_.getOrInsertFunction(
        "kiln_workspace_alloc", llvm::FunctionType::get(ptr_, {i64_}, false));
    if (auto* f = llvm::dyn_cast<llvm::Function>(alloc_fn.getCallee())) {
      f->addRetAttr(llvm::Attribute::NoAlias);  // a fresh buffer, as malloc's
    }
    llvm::FunctionCallee free_fn = module_.getOrInsertFunction(
        "kiln_workspace_free", llvm::FunctionType::get(void_, {ptr_}, false));
    llvm::Value* buffer = builder_.CreateCall(alloc_fn, {builder_.getInt64(bytes)}, op->buffer);
    buffers_.push(op->buffer, buffer);
    codegen(op->body);
    buffers_.pop(op->buffer);
    builder_.CreateCall(free_fn, {buffer});
  }

 private:
  llvm::Value* codegen(const ir::Expr& e) {
    KILN_CHECK(e.defined()) << "undefined expression in " << func_name_;
    value_ = nullptr;
    visit(e);
    KILN_CHECK(value_ != nullptr) << "no value for " << e;
    llvm::Value* result = value_;
    value_ = nullptr;
    return result;
  }

  void codegen(const ir::Stmt& s) {
    if (s.defined()) visit(s);
  }

  llvm::Type* llvm_type(ir::Type t) const {
    llvm::Type* element = t.is_float() ? f32_ : t.is_int() ? i64_ : i1_;
    if (t.is_scalar()) return element;
    return llvm::FixedVectorType::get(element, static_cast<unsigned>(t.lanes));
  }

  /// A Ramp index with stride 1, which one dense vector access covers.
  static const ir::Ramp* dense_ramp(const ir::Expr& index) { return ramp_of_stride(index, 1); }

  /// A Ramp index with the constant stride `stride`, else null.
  static const ir::Ramp* ramp_of_stride(const ir::Expr& index, int64_t stride) {
    const ir::Ramp* ramp = index.as<ir::Ramp>();
    if (ramp == nullptr) return nullptr;
    const int64_t* constant = ir::as_const_int(ramp->stride);
    return constant != nullptr && *constant == stride ? ramp : nullptr;
  }

  /// Elements base, base + 2, ..., base + 2·(lanes - 1) of `buffer` (the columns a strided
  /// convolution's vector reads): two dense loads and a shuffle of their even lanes, instead of
  /// a load a lane. The second load's last lane would read one element past the last one
  /// wanted, perhaps past the buffer's end, so it is masked off.
  llvm::Value* deinterleaved_load(const std::string& buffer, const ir::Expr& base, int lanes) {
    auto* type = llvm::FixedVectorType::get(f32_, unsigned(lanes));
    const llvm::Align align(kElementAlignment);
    llvm::Value* low_pointer = element_pointer(buffer, index_value(base));
    llvm::Value* low = builder_.CreateAlignedLoad(type, low_pointer, align);
    llvm::Value* high_pointer =
        builder_.CreateInBoundsGEP(f32_, low_pointer, builder_.getInt64(lanes));
    std::vector<llvm::Constant*> mask(size_t(lanes), builder_.getTrue());
    mask.back() = builder_.getFalse();
    llvm::Value* high = builder_.CreateMaskedLoad(
        type, high_pointer, align, llvm::ConstantVector::get(mask), llvm::PoisonValue::get(type));
    std::vector<int> even(static_cast<size_t>(lanes));
    for (int i = 0; i < lanes; ++i) even[size_t(i)] = 2 * i;
    return builder_.CreateShuffleVector(low, high, even);
  }

  llvm::Function* create_function(const std::string& name, llvm::FunctionType* type,
                                  llvm::Function::LinkageTypes linkage, bool always_inline) {
    llvm::Function* f = llvm::Function::Create(type, linkage, name, module_);
    f->addFnAttr(llvm::Attribute::NoUnwind);
    if (!options_.cpu.empty()) f->addFnAttr("target-cpu", options_.cpu);
    if (!options_.features.empty()) f->addFnAttr("target-features", options_.features);
    // Without these two, LLVM's X86 back end splits 512-bit vectors into 256-bit halves on
    // many CPU models; the schedules ask for 16 lanes on purpose.
    if (options_.x86) {
      if (options_.avx512) f->addFnAttr("prefer-vector-width", "512");
      f->addFnAttr("min-legal-vector-width", "512");
    }
    f->addFnAttr("frame-pointer", "none");
    if (always_inline) f->addFnAttr(llvm::Attribute::AlwaysInline);
    return f;
  }

  llvm::AllocaInst* create_entry_alloca(llvm::Type* type, uint64_t align, const std::string& name) {
    llvm::Function* f = builder_.GetInsertBlock()->getParent();
    llvm::BasicBlock& entry = f->getEntryBlock();
    llvm::IRBuilder<> entry_builder(&entry, entry.begin());
    llvm::AllocaInst* alloca = entry_builder.CreateAlloca(type, nullptr, name);
    alloca->setAlignment(llvm::Align(align));
    return alloca;
  }

  /// One addend of a linearized index: `scale * expr`.
  struct IndexTerm {
    ir::Expr expr;
    int64_t scale;
    int order;        ///< binding order of the innermost variable in expr (-1: none)
    std::string key;  ///< expr printed: a stable order among terms of the same depth
  };

  static void linearize(const ir::Expr& e, int64_t scale, std::vector<IndexTerm>* terms,
                        int64_t* constant) {
    if (const int64_t* value = ir::as_const_int(e)) {
      *constant += scale * *value;
      return;
    }
    if (const ir::Add* add = e.as<ir::Add>()) {
      linearize(add->a, scale, terms, constant);
      linearize(add->b, scale, terms, constant);
      return;
    }
    if (const ir::Sub* sub = e.as<ir::Sub>()) {
      linearize(sub->a, scale, terms, constant);
      linearize(sub->b, -scale, terms, constant);
      return;
    }
    if (const ir::Mul* mul = e.as<ir::Mul>()) {
      if (const int64_t* c = ir::as_const_int(mul->b)) {
        linearize(mul->a, scale * *c, terms, constant);
        return;
      }
      if (const int64_t* c = ir::as_const_int(mul->a)) {
        linearize(mul->b, scale * *c, terms, constant);
        return;
      }
    }
    terms->push_back({e, scale, -1, {}});
  }

  /// A scalar index emitted as (its variable terms, outermost loop first) + its constant.
  /// Accesses that differ by a constant then share one variable part, which is what lets
  /// LLVM's BasicAA tell them apart: the rows of a register tile of C become disjoint, and
  /// LICM can keep them in registers across the reduction loop. The loop-invariant prefix of
  /// the sum can also be hoisted. Integer arithmetic does not overflow (ir.h), so the
  /// reassociation is exact. Partial sums are reused within a region (see index_cache_),
  /// which keeps unrolled tiles from handing LLVM thousands of redundant instructions.
  llvm::Value* index_value(const ir::Expr& index) {
    if (!index.type().is_scalar()) return codegen(index);
    std::vector<IndexTerm> terms;
    int64_t constant = 0;
    linearize(index, 1, &terms, &constant);
    for (IndexTerm& term : terms) {
      NameCollector names;
      names.visit(term.expr);
      term.key = ir::to_string(term.expr);
      // The key names each variable's binding, so that a shadowing loop variable of the same
      // name never reuses a cached value of the outer one.
      for (const std::string& name : names.vars) {
        const int order = vars_.order(name);
        term.order = std::max(term.order, order);
        term.key += " " + name + "#" + std::to_string(order);
      }
    }
    std::stable_sort(terms.begin(), terms.end(), [](const IndexTerm& a, const IndexTerm& b) {
      return a.order != b.order ? a.order < b.order : a.key < b.key;
    });
    // Merge repeated terms (i*4 + i is i*5) and drop cancelled ones.
    std::vector<IndexTerm> merged;
    for (IndexTerm& term : terms) {
      if (!merged.empty() && merged.back().key == term.key) {
        merged.back().scale += term.scale;
      } else {
        merged.push_back(std::move(term));
      }
    }
    std::string key;
    llvm::Value* sum = nullptr;
    for (const IndexTerm& term : merged) {
      if (term.scale == 0) continue;
      key += "(" + term.key + ")*" + std::to_string(term.scale) + "+";
      if (llvm::Value* known = cached_index(key)) {
        sum = known;
        continue;
      }
      llvm::Value* v = codegen(term.expr);
      const int64_t magnitude = sum != nullptr && term.scale < 0 ? -term.scale : term.scale;
      if (magnitude != 1) v = builder_.CreateMul(v, builder_.getInt64(magnitude), "", false, true);
      if (sum == nullptr) {
        sum = v;
      } else if (term.scale < 0) {
        sum = builder_.CreateSub(sum, v, "", false, true);
      } else {
        sum = builder_.CreateAdd(sum, v, "", false, true);
      }
      index_cache_.back()[key] = sum;
    }
    if (sum == nullptr) return builder_.getInt64(constant);
    if (constant == 0) return sum;
    key += std::to_string(constant);
    if (llvm::Value* known = cached_index(key)) return known;
    sum = builder_.CreateAdd(sum, builder_.getInt64(constant), "", false, true);
    index_cache_.back()[key] = sum;
    return sum;
  }

  llvm::Value* cached_index(const std::string& key) const {
    for (auto frame = index_cache_.rbegin(); frame != index_cache_.rend(); ++frame) {
      auto it = frame->find(key);
      if (it != frame->end()) return it->second;
    }
    return nullptr;
  }

  /// Emits `s` as a region of its own: index values it computes are forgotten afterwards,
  /// since they do not dominate the code that follows it.
  void codegen_region(const ir::Stmt& s) {
    index_cache_.emplace_back();
    codegen(s);
    index_cache_.pop_back();
  }

  /// A guarded select: its load reads memory only in the lanes whose condition holds. A dense
  /// vector load becomes a masked load, any other vector index a masked gather; a scalar load
  /// (or one broadcast over a vector condition) is read in a branch taken when its condition
  /// (any lane) holds. The pointers are not `inbounds`: off lanes may point outside the buffer.
  llvm::Value* guarded_load(const ir::Select* op) {
    llvm::Value* condition = codegen(op->condition);
    llvm::Value* otherwise = codegen(op->false_value);
    const ir::Load* load = op->true_value.as<ir::Load>();
    const int lanes = op->type.lanes;
    if (load != nullptr && lanes > 1 && condition->getType()->isVectorTy()) {
      auto* type = llvm::FixedVectorType::get(f32_, lanes);
      if (const ir::Ramp* ramp = dense_ramp(load->index)) {
        llvm::Value* p = element_pointer(load->buffer, index_value(ramp->base), false);
        return builder_.CreateMaskedLoad(type, p, llvm::Align(kElementAlignment), condition,
                                         otherwise);
      }
      llvm::Value* pointers = element_pointer(load->buffer, codegen(load->index), false);
      return builder_.CreateMaskedGather(type, pointers, llvm::Align(kElementAlignment), condition,
                                         otherwise);
    }
    llvm::Value* any =
        condition->getType()->isVectorTy() ? builder_.CreateOrReduce(condition) : condition;
    llvm::Function* f = builder_.GetInsertBlock()->getParent();
    llvm::BasicBlock* before = builder_.GetInsertBlock();
    llvm::BasicBlock* read = llvm::BasicBlock::Create(ctx_, "guard.read", f);
    llvm::BasicBlock* after = llvm::BasicBlock::Create(ctx_, "guard.end", f);
    builder_.CreateCondBr(any, read, after);
    builder_.SetInsertPoint(read);
    index_cache_.emplace_back();  // what is computed here is not available after the branch
    llvm::Value* value = codegen(op->true_value);
    index_cache_.pop_back();
    llvm::BasicBlock* read_end = builder_.GetInsertBlock();
    builder_.CreateBr(after);
    builder_.SetInsertPoint(after);
    llvm::PHINode* phi = builder_.CreatePHI(value->getType(), 2);
    phi->addIncoming(value, read_end);
    phi->addIncoming(otherwise, before);
    if (condition->getType()->isVectorTy()) return builder_.CreateSelect(condition, phi, otherwise);
    return phi;
  }

  /// The address of element `index` (a vector of addresses for a vector index) of `buffer`;
  /// `inbounds` unless it may point outside the buffer (the off lanes of a guarded load).
  llvm::Value* element_pointer(const std::string& buffer, llvm::Value* index,
                               bool inbounds = true) {
    llvm::Value* base = buffers_.find(buffer);
    KILN_CHECK(base != nullptr) << "buffer " << buffer << " is not bound in " << func_name_;
    return inbounds ? builder_.CreateInBoundsGEP(f32_, base, index)
                    : builder_.CreateGEP(f32_, base, index);
  }

  /// One element pointer per lane of a vector index. A strided Ramp (packing, transposes)
  /// becomes its base pointer plus lane * stride, which is less IR than a vector of indices
  /// taken apart lane by lane, and tells alias analysis how the lanes relate.
  std::vector<llvm::Value*> lane_pointers(const std::string& buffer, const ir::Expr& index) {
    const int lanes = index.type().lanes;
    std::vector<llvm::Value*> pointers;
    if (const ir::Ramp* ramp = index.as<ir::Ramp>()) {
      llvm::Value* base = element_pointer(buffer, index_value(ramp->base));
      const int64_t* constant_stride = ir::as_const_int(ramp->stride);
      llvm::Value* stride = constant_stride == nullptr ? codegen(ramp->stride) : nullptr;
      for (int i = 0; i < lanes; ++i) {
        llvm::Value* offset =
            constant_stride != nullptr
                ? builder_.getInt64(*constant_stride * i)
                : builder_.CreateMul(stride, builder_.getInt64(i), "", false, true);
        pointers.push_back(i == 0 ? base : builder_.CreateInBoundsGEP(f32_, base, offset));
      }
      return pointers;
    }
    llvm::Value* indices = codegen(index);
    for (int i = 0; i < lanes; ++i) {
      llvm::Value* lane_index = builder_.CreateExtractElement(indices, builder_.getInt64(i));
      pointers.push_back(element_pointer(buffer, lane_index));
    }
    return pointers;
  }

  void compare(const ir::Expr& a_expr, const ir::Expr& b_expr, llvm::CmpInst::Predicate fp,
               llvm::CmpInst::Predicate signed_int, llvm::CmpInst::Predicate boolean) {
    llvm::Value* a = codegen(a_expr);
    llvm::Value* b = codegen(b_expr);
    const ir::Type t = a_expr.type();
    if (t.is_float()) {
      value_ = builder_.CreateFCmp(fp, a, b);
    } else {
      value_ = builder_.CreateICmp(t.is_int() ? signed_int : boolean, a, b);
    }
  }

  /// floor(a / b). `divisor` is b's value when it is a constant.
  llvm::Value* floor_div(llvm::Value* a, llvm::Value* b, const int64_t* divisor) {
    llvm::Type* type = a->getType();
    if (divisor != nullptr && is_power_of_two(*divisor)) {
      return builder_.CreateAShr(a, llvm::ConstantInt::get(type, log2_of(*divisor)));
    }
    if (divisor != nullptr && *divisor > 0) {
      // For b > 0, with s = a >> 63 (all ones when a < 0): floor(a / b) = s ^ ((s ^ a) / b),
      // and s ^ a >= 0, so an unsigned division (a multiply by a magic constant) does it.
      llvm::Value* sign = builder_.CreateAShr(a, llvm::ConstantInt::get(type, 63));
      llvm::Value* magnitude = builder_.CreateXor(sign, a);
      llvm::Value* quotient =
          builder_.CreateUDiv(magnitude, llvm::ConstantInt::get(type, *divisor));
      return builder_.CreateXor(sign, quotient);
    }
    KILN_CHECK(divisor == nullptr || *divisor != 0) << "division by zero in " << func_name_;
    // General case: truncating division, minus one when the remainder is non-zero and its
    // sign differs from the divisor's.
    llvm::Value* q = builder_.CreateSDiv(a, b);
    llvm::Value* r = builder_.CreateSRem(a, b);
    llvm::Value* adjust = floor_adjustment(r, b);
    return builder_.CreateSelect(adjust, builder_.CreateSub(q, llvm::ConstantInt::get(type, 1)), q);
  }

  /// a - b * floor(a / b): the result has the sign of b.
  llvm::Value* floor_mod(llvm::Value* a, llvm::Value* b, const int64_t* divisor) {
    llvm::Type* type = a->getType();
    if (divisor != nullptr && is_power_of_two(*divisor)) {
      return builder_.CreateAnd(a, llvm::ConstantInt::get(type, *divisor - 1));
    }
    if (divisor != nullptr && *divisor > 0) {
      llvm::Value* r = builder_.CreateSRem(a, b);
      llvm::Value* negative = builder_.CreateICmpSLT(r, llvm::ConstantInt::get(type, 0));
      return builder_.CreateSelect(negative, builder_.CreateAdd(r, b), r);
    }
    KILN_CHECK(divisor == nullptr || *divisor != 0) << "modulo by zero in " << func_name_;
    llvm::Value* r = builder_.CreateSRem(a, b);
    return builder_.CreateSelect(floor_adjustment(r, b), builder_.CreateAdd(r, b), r);
  }

  /// True where a truncated remainder `r` must move toward the divisor `b`'s sign.
  llvm::Value* floor_adjustment(llvm::Value* r, llvm::Value* b) {
    llvm::Value* zero = llvm::Constant::getNullValue(r->getType());
    llvm::Value* nonzero = builder_.CreateICmpNE(r, zero);
    llvm::Value* signs_differ = builder_.CreateICmpSLT(builder_.CreateXor(r, b), zero);
    return builder_.CreateAnd(nonzero, signs_differ);
  }

  void emit_serial_for(const ir::For* op) {
    llvm::Value* min = codegen(op->min);
    llvm::Value* extent = codegen(op->extent);
    llvm::Value* end = builder_.CreateAdd(min, extent, op->var + ".end", false, true);
    llvm::Function* f = builder_.GetInsertBlock()->getParent();
    llvm::BasicBlock* preheader = builder_.GetInsertBlock();
    llvm::BasicBlock* loop = llvm::BasicBlock::Create(ctx_, op->var + ".loop", f);
    llvm::BasicBlock* exit = llvm::BasicBlock::Create(ctx_, op->var + ".exit", f);
    // A guarded, bottom-tested loop: the rotated form LLVM's loop passes expect.
    builder_.CreateCondBr(builder_.CreateICmpSLT(min, end), loop, exit);
    builder_.SetInsertPoint(loop);
    llvm::PHINode* var = builder_.CreatePHI(i64_, 2, op->var);
    var->addIncoming(min, preheader);
    vars_.push(op->var, var);
    codegen_region(op->body);
    vars_.pop(op->var);
    llvm::Value* next =
        builder_.CreateAdd(var, builder_.getInt64(1), op->var + ".next", false, true);
    var->addIncoming(next, builder_.GetInsertBlock());
    builder_.CreateCondBr(builder_.CreateICmpSLT(next, end), loop, exit);
    builder_.SetInsertPoint(exit);
  }

  /// Outlines the body into `void task(i64 index, ptr env)` and calls kiln_parallel_for. The
  /// environment is a struct on the caller's stack holding the loop's min and every variable
  /// and buffer pointer the body uses from outside. The task calls an always-inlined body
  /// function whose pointer parameters are noalias, so the body keeps the alias facts the
  /// kernel's arguments have.
  void emit_parallel_for(const ir::For* op) {
    llvm::Value* min = codegen(op->min);
    llvm::Value* extent = codegen(op->extent);

    NameCollector names;
    names.visit(op->body);
    struct Capture {
      std::string name;
      bool is_buffer;
      llvm::Value* value;
    };
    std::vector<Capture> captures;
    for (const std::string& name : names.vars) {
      if (name == op->var) continue;
      if (llvm::Value* v = vars_.find(name)) captures.push_back({name, false, v});
    }
    for (const std::string& name : names.buffers) {
      if (llvm::Value* v = buffers_.find(name)) captures.push_back({name, true, v});
    }

    std::vector<llvm::Type*> fields{i64_};
    for (const Capture& c : captures) fields.push_back(c.is_buffer ? ptr_ : i64_);
    llvm::StructType* env_type = llvm::StructType::get(ctx_, fields);
    llvm::AllocaInst* env = create_entry_alloca(env_type, 8, op->var + ".env");
    builder_.CreateStore(min, builder_.CreateStructGEP(env_type, env, 0));
    for (size_t i = 0; i < captures.size(); ++i) {
      builder_.CreateStore(captures[i].value,
                           builder_.CreateStructGEP(env_type, env, static_cast<unsigned>(i + 1)));
    }

    const std::string task_name =
        func_name_ + ".par." + op->var + "." + std::to_string(task_count_++);
    std::vector<llvm::Type*> body_params(fields);  // the loop variable, then the captures
    llvm::Function* body_fn =
        create_function(task_name + ".body", llvm::FunctionType::get(void_, body_params, false),
                        llvm::Function::InternalLinkage, /*always_inline=*/true);
    body_fn->getArg(0)->setName(op->var);
    for (size_t i = 0; i < captures.size(); ++i) {
      llvm::Argument* arg = body_fn->getArg(static_cast<unsigned>(i + 1));
      arg->setName(captures[i].name);
      if (captures[i].is_buffer) body_fn->addParamAttr(arg->getArgNo(), llvm::Attribute::NoAlias);
    }
    llvm::Function* task =
        create_function(task_name, llvm::FunctionType::get(void_, {i64_, ptr_}, false),
                        llvm::Function::InternalLinkage, /*always_inline=*/false);

    const llvm::IRBuilderBase::InsertPoint saved_point = builder_.saveIP();
    Scope saved_vars = std::exchange(vars_, Scope());
    Scope saved_buffers = std::exchange(buffers_, Scope());
    IndexCache saved_cache = std::exchange(index_cache_, IndexCache(1));

    builder_.SetInsertPoint(llvm::BasicBlock::Create(ctx_, "entry", task));
    llvm::Value* task_env = task->getArg(1);
    llvm::Value* task_min =
        builder_.CreateLoad(i64_, builder_.CreateStructGEP(env_type, task_env, 0), "min");
    std::vector<llvm::Value*> body_args{
        builder_.CreateAdd(task_min, task->getArg(0), op->var, false, true)};
    for (size_t i = 0; i < captures.size(); ++i) {
      llvm::Value* field =
          builder_.CreateStructGEP(env_type, task_env, static_cast<unsigned>(i + 1));
      body_args.push_back(builder_.CreateLoad(fields[i + 1], field, captures[i].name));
    }
    builder_.CreateCall(body_fn, body_args);
    builder_.CreateRetVoid();

    builder_.SetInsertPoint(llvm::BasicBlock::Create(ctx_, "entry", body_fn));
    // Captures first: they are invariant in the task, the loop variable varies.
    for (size_t i = 0; i < captures.size(); ++i) {
      Scope& scope = captures[i].is_buffer ? buffers_ : vars_;
      scope.push(captures[i].name, body_fn->getArg(static_cast<unsigned>(i + 1)));
    }
    vars_.push(op->var, body_fn->getArg(0));
    codegen(op->body);
    builder_.CreateRetVoid();

    vars_ = std::move(saved_vars);
    buffers_ = std::move(saved_buffers);
    index_cache_ = std::move(saved_cache);
    builder_.restoreIP(saved_point);
    llvm::FunctionCallee parallel_for = module_.getOrInsertFunction(
        "kiln_parallel_for",
        llvm::FunctionType::get(llvm::Type::getInt32Ty(ctx_), {i64_, ptr_, ptr_}, false));
    builder_.CreateCall(parallel_for, {extent, task, env});
  }

  llvm::Module& module_;
  llvm::LLVMContext& ctx_;
  llvm::IRBuilder<> builder_;
  FunctionOptions options_;
  Scope vars_;
  Scope buffers_;
  /// Index values emitted so far, one frame per enclosing region (loop body, branch): a value
  /// made in a region dominates everything emitted later inside it.
  using IndexCache = std::vector<std::unordered_map<std::string, llvm::Value*>>;
  IndexCache index_cache_ = IndexCache(1);
  llvm::Value* value_ = nullptr;
  std::string func_name_;
  int task_count_ = 0;
  llvm::Type* i1_ = nullptr;
  llvm::Type* i64_ = nullptr;
  llvm::Type* f32_ = nullptr;
  llvm::Type* ptr_ = nullptr;
  llvm::Type* void_ = nullptr;
};

}  // namespace

Result<std::unique_ptr<llvm::Module>> generate_module(const ir::LoweredFunc& func,
                                                      llvm::LLVMContext& ctx,
                                                      llvm::TargetMachine& machine) {
  auto module = std::make_unique<llvm::Module>(func.name, ctx);
  module->setTargetTriple(machine.getTargetTriple().str());
  module->setDataLayout(machine.createDataLayout());

  FunctionOptions options;
  options.cpu = std::string(machine.getTargetCPU());
  options.features = std::string(machine.getTargetFeatureString());
  options.x86 = machine.getTargetTriple().isX86();
  options.avx512 = options.x86 && machine.getMCSubtargetInfo()->checkFeatures("+avx512f");
  CodeGen(*module, options).emit(func);

  std::string message;
  llvm::raw_string_ostream os(message);
  if (llvm::verifyModule(*module, &os)) {
    os.flush();
    return internal_error("llvm rejected the code generated for '" + func.name + "': " + message +
                          "\nkiln IR:\n" + ir::to_string(func.body) +
                          "\nthis is a kiln bug; please report it with the IR above");
  }
  return module;
}

std::string print_module(const llvm::Module& module) {
  std::string text;
  llvm::raw_string_ostream os(text);
  module.print(os, nullptr);
  os.flush();
  return text;
}

}  // namespace kiln::core::codegen_llvm_internal
