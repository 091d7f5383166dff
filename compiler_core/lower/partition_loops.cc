#include "compiler_core/lower/partition_loops.h"

#include "compiler_core/ir/ir_visitor.h"
#include "compiler_core/ir/printer.h"
#include "compiler_core/lower/simplify.h"
#include "compiler_core/lower/substitute.h"

namespace kiln::core::lower {
namespace {

using ir::Expr;
using ir::Stmt;

class PartitionLoops : public ir::IRMutator {
 public:
  using ir::IRMutator::mutate;

 protected:
  Stmt mutate_node(const ir::For* op, const Stmt& self) override {
    const int64_t* min = ir::as_const_int(op->min);
    const int64_t* extent = ir::as_const_int(op->extent);
    if (!min || !extent) return IRMutator::mutate_node(op, self);
    bool peelable = *extent >= 2 && op->for_kind != ir::ForKind::kVectorized &&
                    op->for_kind != ir::ForKind::kUnrolled;
    if (peelable) {
      Stmt full =
          with_range(op->var, *min, *min + *extent - 1, [&] { return simplify(op->body, scope_); });
      Stmt steady =
          with_range(op->var, *min, *min + *extent - 2, [&] { return simplify(op->body, scope_); });
      if (!ir::equal(full, steady)) {
        Stmt steady_body =
            with_range(op->var, *min, *min + *extent - 2, [&] { return mutate(steady); });
        Stmt tail = simplify(substitute(op->body, op->var, Expr(*min + *extent - 1)), scope_);
        tail = mutate(tail);
        Stmt loop = ir::For::make(op->var, op->min, Expr(*extent - 1), op->for_kind, steady_body);
        return ir::Block::make({loop, tail});
      }
    }
    Stmt body = with_range(op->var, *min, *min + *extent - 1, [&] { return mutate(op->body); });
    if (body.same_as(op->body)) return self;
    return ir::For::make(op->var, op->min, op->extent, op->for_kind, body);
  }

 private:
  template <typename F>
  Stmt with_range(const std::string& var, int64_t lo, int64_t hi, F f) {
    auto previous = scope_.find(var);
    std::optional<ConstInterval> saved;
    if (previous != scope_.end()) saved = previous->second;
    scope_[var] = {lo, hi};
    Stmt result = f();
    if (saved) {
      scope_[var] = *saved;
    } else {
      scope_.erase(var);
    }
    return result;
  }

  ConstScope scope_;
};

}  // namespace

Stmt partition_loops(const Stmt& s) { return PartitionLoops().mutate(s); }

}  // namespace kiln::core::lower
