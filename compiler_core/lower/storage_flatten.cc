#include "compiler_core/lower/storage_flatten.h"

#include <map>

#include "compiler_core/ir/ir_visitor.h"
#include "compiler_core/lower/bounds.h"
#include "compiler_core/lower/simplify.h"

namespace kiln::core::lower {
namespace {

using ir::Expr;
using ir::Stmt;

struct Layout {
  std::vector<Expr> mins;
  std::vector<int64_t> strides;
};

class StorageFlatten : public ir::IRMutator {
 public:
  StorageFlatten(const std::vector<std::string>& args, const std::vector<Shape>& shapes) {
    for (size_t i = 0; i < args.size(); ++i) layouts_[args[i]] = dense(shapes[i]);
  }

  using ir::IRMutator::mutate;

 protected:
  static Layout dense(const std::vector<int64_t>& extents) {
    Layout l;
    l.strides.assign(extents.size(), 1);
    for (size_t d = extents.size(); d-- > 1;) l.strides[d - 1] = l.strides[d] * extents[d];
    l.mins.assign(extents.size(), Expr(0));
    return l;
  }

  Expr flat_index(const std::string& tensor, const std::vector<Expr>& indices) {
    auto it = layouts_.find(tensor);
    KILN_CHECK(it != layouts_.end()) << "access to unknown tensor " << tensor;
    const Layout& l = it->second;
    KILN_CHECK(indices.size() == l.strides.size()) << "rank of " << tensor;
    Expr index;
    for (size_t d = 0; d < indices.size(); ++d) {
      Expr term = (indices[d] - l.mins[d]) * Expr(l.strides[d]);
      index = index.defined() ? index + term : term;
    }
    return index.defined() ? index : Expr(0);
  }

  Expr mutate_node(const ir::TensorLoad* op, const Expr& self) override {
    std::vector<Expr> indices;
    for (const Expr& i : op->indices) indices.push_back(mutate(i));
    return ir::Load::make(op->tensor, flat_index(op->tensor, indices));
  }

  Stmt mutate_node(const ir::TensorStore* op, const Stmt&) override {
    std::vector<Expr> indices;
    for (const Expr& i : op->indices) indices.push_back(mutate(i));
    return ir::Store::make(op->tensor, flat_index(op->tensor, indices), mutate(op->value));
  }

  Stmt mutate_node(const ir::For* op, const Stmt& self) override {
    ConstInterval m = constant_bounds(op->min, scope_);
    ConstInterval e = constant_bounds(op->extent, scope_);
    ConstInterval range{m.lo,
                        (m.hi && e.hi) ? std::optional<int64_t>(*m.hi + *e.hi - 1) : std::nullopt};
    auto saved = scope_;
    scope_[op->var] = range;
    Stmt result = IRMutator::mutate_node(op, self);
    scope_ = std::move(saved);
    return result;
  }

  Stmt mutate_node(const ir::Realize* op, const Stmt&) override {
    std::vector<int64_t> extents;
    Layout layout;
    for (const ir::Range& r : op->bounds) {
      ConstInterval e = constant_bounds(simplify(r.extent, scope_), scope_);
      KILN_CHECK(e.hi && *e.hi > 0) << "no constant bound for the size of " << op->tensor;
      extents.push_back(*e.hi);
    }
    layout = dense(extents);
    for (size_t d = 0; d < op->bounds.size(); ++d) layout.mins[d] = op->bounds[d].min;
    int64_t size = 1;
    for (int64_t e : extents) size *= e;
    auto previous = layouts_.find(op->tensor);
    std::optional<Layout> saved;
    if (previous != layouts_.end()) saved = previous->second;
    layouts_[op->tensor] = layout;
    Stmt body = mutate(op->body);
    if (saved) {
      layouts_[op->tensor] = *saved;
    } else {
      layouts_.erase(op->tensor);
    }
    return ir::Allocate::make(op->tensor, size, body);
  }

 private:
  std::map<std::string, Layout> layouts_;
  ConstScope scope_;
};

}  // namespace

Stmt storage_flatten(const Stmt& s, const std::vector<std::string>& args,
                     const std::vector<Shape>& shapes) {
  return StorageFlatten(args, shapes).mutate(s);
}

}  // namespace kiln::core::lower
