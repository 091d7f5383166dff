#include "compiler_core/lower/build_loop_nest.h"

#include <algorithm>
#include <map>
#include <set>

#include "compiler_core/ir/ir_visitor.h"
#include "compiler_core/lower/bounds.h"
#include "compiler_core/lower/simplify.h"
#include "compiler_core/lower/substitute.h"

namespace kiln::core::lower {
namespace {

using ir::Expr;
using ir::Stmt;

/// Collects the index lists of every TensorLoad of one tensor.
class CollectLoads : public ir::IRVisitor {
 public:
  explicit CollectLoads(const std::string& tensor) : tensor_(tensor) {}
  std::vector<std::vector<Expr>> loads;

 protected:
  void visit_node(const ir::TensorLoad* op) override {
    IRVisitor::visit_node(op);
    if (op->tensor == tensor_) loads.push_back(op->indices);
  }

 private:
  const std::string& tensor_;
};

class Inliner : public ir::IRMutator {
 public:
  explicit Inliner(const Stage& s) : stage_(s) {}

 protected:
  Expr mutate_node(const ir::TensorLoad* op, const Expr& self) override {
    Expr rewritten = IRMutator::mutate_node(op, self);
    const auto* load = rewritten.as<ir::TensorLoad>();
    if (load->tensor != stage_.name) return rewritten;
    std::map<std::string, Expr> values;
    for (size_t d = 0; d < stage_.axes.size(); ++d) values[stage_.axes[d]] = load->indices[d];
    return substitute(stage_.body, values);
  }

 private:
  const Stage& stage_;
};

struct Loop {
  std::string var;
  Expr extent;
  ir::ForKind kind = ir::ForKind::kSerial;
  bool reduce = false;
};

/// A stage's loops and the value of each of its axes in terms of them.
struct StagePlan {
  std::vector<Loop> loops;
  std::vector<Expr> store_indices;
  Expr value;  ///< the body with every axis replaced by its index
  Expr where;  ///< the stage's reduce_where, likewise; undefined when it has none
  std::vector<Expr> guards;
  std::set<std::string> shifted_outers;  // outer loops of splits shifted inwards
};

class NestBuilder {
 public:
  NestBuilder(const std::vector<Stage>& stages, const Schedule& schedule)
      : stages_(stages), schedule_(schedule) {}

  Stmt build_root() {
    std::vector<Stmt> nests;
    for (const Stage& s : stages_) {
      if (s.is_placeholder || s.attach != Stage::Attach::kRoot) continue;
      std::vector<ir::Range> region;
      for (int64_t extent : s.shape) region.push_back({Expr(0), Expr(extent)});
      nests.push_back(build_stage(s, region));
    }
    Stmt body = ir::Block::make(std::move(nests));
    const Stage& output = stages_.back();
    for (auto it = stages_.rbegin(); it != stages_.rend(); ++it) {
      const Stage& s = *it;
      if (s.is_placeholder || s.attach != Stage::Attach::kRoot || s.name == output.name) continue;
      std::vector<ir::Range> region;
      for (int64_t extent : s.shape) region.push_back({Expr(0), Expr(extent)});
      body = ir::Realize::make(s.name, region, body);
    }
    return body;
  }

 private:
  [[noreturn]] void fail(const Stage& s, const std::string& message) {
    throw ScheduleError(message, schedule_.describe(s));
  }

  StagePlan plan(const Stage& s, const std::vector<ir::Range>& region) {
    std::map<std::string, Expr> extent;
    std::map<std::string, int64_t> shifted;  // parent of a shifted split: its last outer start
    std::set<std::string> shifted_outers;
    std::set<std::string> reduce_vars;
    for (size_t d = 0; d < s.axes.size(); ++d) extent[s.axes[d]] = region[d].extent;
    for (size_t d = 0; d < s.reduce_axes.size(); ++d) {
      extent[s.reduce_axes[d]] = Expr(s.reduce_shape[d]);
      reduce_vars.insert(s.reduce_axes[d]);
    }
    for (const Relation& r : s.relations) {
      if (r.kind == Relation::Kind::kSplit) {
        const SplitRelation& sp = r.split;
        Expr e = simplify(extent.at(sp.parent));
        Expr f(sp.factor);
        const int64_t* ce = ir::as_const_int(e);
        if (sp.shift_inwards) {
          if (!ce || *ce < sp.factor) {
            fail(s, "split of '" + sp.parent + "' by " + std::to_string(sp.factor) +
                        " with the last part shifted inwards needs a constant extent of at "
                        "least the factor");
          }
          if (reduce_vars.count(sp.parent)) {
            fail(s, "reduction loop '" + sp.parent +
                        "' split with the last part shifted inwards: its overlap would be summed "
                        "twice");
          }
          extent[sp.outer] = Expr((*ce + sp.factor - 1) / sp.factor);
          extent[sp.inner] = Expr(sp.factor);
          shifted[sp.parent] = *ce - sp.factor;
          shifted_outers.insert(sp.outer);
        } else if (ce) {
          extent[sp.outer] = Expr((*ce + sp.factor - 1) / sp.factor);
          extent[sp.inner] = (*ce % sp.factor == 0 || *ce <= sp.factor)
                                 ? Expr(std::min(*ce, sp.factor))
                                 : ir::min(f, e - ir::Var::make(sp.outer) * f);
        } else {
          extent[sp.outer] = (e + Expr(sp.factor - 1)) / f;
          extent[sp.inner] = ir::min(f, e - ir::Var::make(sp.outer) * f);
        }
        if (reduce_vars.count(sp.parent)) reduce_vars.insert({sp.outer, sp.inner});
      } else {
        const FuseRelation& fu = r.fuse;
        const int64_t* eo = ir::as_const_int(simplify(extent.at(fu.outer)));
        const int64_t* ei = ir::as_const_int(simplify(extent.at(fu.inner)));
        if (!eo || !ei) fail(s, "fuse of '" + fu.outer + "' with a loop of non-constant extent");
        if (reduce_vars.count(fu.outer) != reduce_vars.count(fu.inner)) {
          fail(s, "fuse of a reduction loop with a spatial loop ('" + fu.outer + "', '" + fu.inner +
                      "')");
        }
        extent[fu.fused] = Expr(*eo * *ei);
        if (reduce_vars.count(fu.outer)) reduce_vars.insert(fu.fused);
      }
    }
    // Values of every variable in terms of the leaves, from the leaves back to the axes.
    std::map<std::string, Expr> value;
    for (const std::string& leaf : s.leaves) value[leaf] = ir::Var::make(leaf);
    for (auto it = s.relations.rbegin(); it != s.relations.rend(); ++it) {
      if (it->kind == Relation::Kind::kSplit) {
        const SplitRelation& sp = it->split;
        Expr start = value.at(sp.outer) * Expr(sp.factor);
        if (sp.shift_inwards) start = ir::min(start, Expr(shifted.at(sp.parent)));
        value[sp.parent] = start + value.at(sp.inner);
      } else {
        const FuseRelation& fu = it->fuse;
        Expr ei = extent.at(fu.inner);
        value[fu.outer] = value.at(fu.fused) / ei;
        value[fu.inner] = value.at(fu.fused) % ei;
      }
    }
    std::map<std::string, Expr> non_leaf;
    for (const auto& [name, v] : value) {
      if (std::find(s.leaves.begin(), s.leaves.end(), name) == s.leaves.end()) {
        non_leaf[name] = v;
      }
    }

    StagePlan p;
    p.shifted_outers = std::move(shifted_outers);
    for (size_t pos = 0; pos < s.leaves.size(); ++pos) {
      const std::string& leaf = s.leaves[pos];
      Loop loop;
      loop.var = leaf;
      loop.reduce = reduce_vars.count(leaf) > 0;
      auto kind = s.kinds.find(leaf);
      if (kind != s.kinds.end()) loop.kind = kind->second;
      Expr e = simplify(substitute(extent.at(leaf), non_leaf));
      bool encloses = true;
      for (size_t later = pos; later < s.leaves.size(); ++later) {
        encloses &= !uses_var(e, s.leaves[later]);
      }
      if (!encloses) {
        ConstInterval b = constant_bounds(e, {});
        if (!b.hi) fail(s, "loop '" + leaf + "' has an extent that depends on an inner loop");
        p.guards.push_back(ir::Var::make(leaf) < e);
        e = Expr(*b.hi);
      }
      loop.extent = e;
      p.loops.push_back(loop);
    }
    std::map<std::string, Expr> axis_index;
    for (size_t d = 0; d < s.axes.size(); ++d) {
      Expr index = simplify(region[d].min + value.at(s.axes[d]));
      axis_index[s.axes[d]] = index;
      p.store_indices.push_back(index);
    }
    for (const std::string& r : s.reduce_axes) axis_index[r] = value.at(r);
    p.value = substitute(s.body, axis_index);
    if (s.reduce_where.defined()) p.where = substitute(s.reduce_where, axis_index);
    return p;
  }

  static Stmt guarded(Stmt s, const std::vector<Expr>& guards, bool spatial_only,
                      const std::vector<Loop>& loops) {
    for (const Expr& g : guards) {
      if (spatial_only) {
        bool uses_reduce = false;
        for (const Loop& l : loops) uses_reduce |= l.reduce && uses_var(g, l.var);
        if (uses_reduce) continue;
      }
      s = ir::IfThenElse::make(g, s);
    }
    return s;
  }

  std::vector<ir::Range> infer_region(const Stage& producer, const Stage& consumer,
                                      const StagePlan& plan, size_t position) {
    SymScope scope;
    for (size_t q = position + 1; q < plan.loops.size(); ++q) {
      const Loop& l = plan.loops[q];
      SymInterval e = symbolic_bounds(l.extent - Expr(1), scope);
      if (!e.defined()) fail(consumer, "cannot bound loop '" + l.var + "' for compute_at");
      scope[l.var] = {Expr(0), e.hi};
    }
    // The reads, each with the scope that bounds its variables.
    std::vector<std::pair<std::vector<Expr>, const SymScope*>> reads;
    CollectLoads loads(producer.name);
    loads.visit(plan.value);
    for (const auto& indices : loads.loads) reads.push_back({indices, &scope});
    bool guarded = !plan.guards.empty();
    // Stages computed inside a deeper loop of the consumer read the producer too: their reads,
    // over their own loops, at every iteration of the consumer's loops down to theirs.
    std::vector<SymScope> inner_scopes;
    inner_scopes.reserve(stages_.size());
    for (size_t q = position + 1; q < plan.loops.size(); ++q) {
      for (const Stage& inner : stages_) {
        if (inner.attach != Stage::Attach::kAt || inner.attach_stage != consumer.name ||
            inner.attach_var != plan.loops[q].var || !inner.body.defined()) {
          continue;
        }
        CollectLoads inner_loads(producer.name);
        inner_loads.visit(inner.body);
        if (inner_loads.loads.empty()) continue;
        StagePlan inner_plan = this->plan(inner, infer_region(inner, consumer, plan, q));
        SymScope& inner_scope = inner_scopes.emplace_back(scope);
        for (const Loop& l : inner_plan.loops) {
          SymInterval e = symbolic_bounds(l.extent - Expr(1), inner_scope);
          if (!e.defined()) fail(inner, "cannot bound loop '" + l.var + "' for compute_at");
          inner_scope[l.var] = {Expr(0), e.hi};
        }
        CollectLoads nested(producer.name);
        nested.visit(inner_plan.value);
        for (const auto& indices : nested.loads) reads.push_back({indices, &inner_scope});
        guarded |= !inner_plan.guards.empty();
      }
    }
    if (reads.empty()) {
      fail(producer, "compute_at of " + producer.name + " into " + consumer.name +
                         ", which does not read it");
    }
    std::vector<ir::Range> region;
    for (size_t d = 0; d < producer.shape.size(); ++d) {
      Expr lo, hi;
      for (const auto& [indices, read_scope] : reads) {
        SymInterval b = symbolic_bounds(indices[d], *read_scope);
        if (!b.defined()) {
          fail(consumer,
               "cannot infer the region of " + producer.name + " read by " + consumer.name);
        }
        lo = lo.defined() ? ir::min(lo, b.lo) : b.lo;
        hi = hi.defined() ? ir::max(hi, b.hi) : b.hi;
      }
      // Without guards the consumer's loops stay inside its own domain, so what it reads is
      // in bounds by construction; guarded loops overshoot and need the clamp.
      if (guarded) {
        lo = ir::max(lo, Expr(0));
        hi = ir::min(hi, Expr(producer.shape[d] - 1));
      }
      lo = simplify(lo);
      hi = simplify(hi);
      region.push_back({lo, simplify(hi - lo + Expr(1))});
    }
    return region;
  }

  Stmt attach_producers(const Stage& consumer, const StagePlan& plan, size_t position, Stmt inner) {
    const std::string& var = plan.loops[position].var;
    for (auto it = stages_.rbegin(); it != stages_.rend(); ++it) {
      const Stage& p = *it;
      if (p.attach != Stage::Attach::kAt || p.attach_stage != consumer.name ||
          p.attach_var != var) {
        continue;
      }
      check_only_reader(p, consumer, plan, position);
      std::vector<ir::Range> region = infer_region(p, consumer, plan, position);
      inner = ir::Realize::make(p.name, region, ir::Block::make({build_stage(p, region), inner}));
    }
    return inner;
  }

  /// The readers of a stage computed at loop `position` of `consumer` are the consumer and
  /// stages computed at deeper loops of the consumer (whose reads infer_region adds).
  void check_only_reader(const Stage& producer, const Stage& consumer, const StagePlan& plan,
                         size_t position) {
    auto computed_deeper = [&](const Stage& s) {
      if (s.attach != Stage::Attach::kAt || s.attach_stage != consumer.name) return false;
      for (size_t q = position + 1; q < plan.loops.size(); ++q) {
        if (plan.loops[q].var == s.attach_var) return true;
      }
      return false;
    };
    for (const Stage& s : stages_) {
      if (s.name == consumer.name || !s.body.defined() || computed_deeper(s)) continue;
      CollectLoads loads(producer.name);
      loads.visit(s.body);
      if (!loads.loads.empty()) {
        fail(producer, "compute_at of " + producer.name + " into " + consumer.name + ", but " +
                           s.name + " reads it too");
      }
    }
  }

  /// Where each conjunct of a reduction's condition is tested: inside the innermost loop it
  /// depends on, and inside the first reduction loop at least (the accumulator's
  /// initialization is outside that); entry q of the result is the test inside loop q. A test
  /// inside a serial loop skips the loops within it. One inside an unrolled loop is kept only
  /// where it depends on no serial loop of the stage, so that unrolling decides it in every
  /// copy; otherwise it would be a branch per copy of the body, costing more than the terms it
  /// skips, and as the terms are zero they are all summed.
  static std::vector<Expr> place_condition(const StagePlan& p, size_t first_reduce) {
    std::vector<Expr> tests(p.loops.size());
    if (!p.where.defined()) return tests;
    std::vector<Expr> conjuncts, pending = {p.where};
    while (!pending.empty()) {
      Expr e = pending.back();
      pending.pop_back();
      if (const ir::And* a = e.as<ir::And>()) {
        pending.push_back(a->a);
        pending.push_back(a->b);
      } else {
        conjuncts.push_back(e);
      }
    }
    for (Expr c : conjuncts) {
      for (const Loop& l : p.loops) {  // a loop of one iteration is not a dependence
        const int64_t* extent = ir::as_const_int(l.extent);
        if (extent && *extent == 1) c = substitute(c, l.var, Expr(0));
      }
      size_t level = first_reduce;
      bool on_serial = false;
      for (size_t q = 0; q < p.loops.size(); ++q) {
        if (!uses_var(c, p.loops[q].var)) continue;
        if (q >= first_reduce) level = q;
        on_serial |= p.loops[q].kind != ir::ForKind::kUnrolled;
      }
      const ir::ForKind kind = p.loops[level].kind;
      const bool decided_by_unrolling = kind == ir::ForKind::kUnrolled && !on_serial;
      if (kind != ir::ForKind::kSerial && !decided_by_unrolling) continue;
      tests[level] = tests[level].defined() ? tests[level] && c : c;
    }
    return tests;
  }

  Stmt build_stage(const Stage& s, const std::vector<ir::Range>& region) {
    StagePlan p = plan(s, region);
    Stmt update;
    Stmt init;
    if (s.is_reduction) {
      Expr current = ir::TensorLoad::make(s.name, p.store_indices);
      update = ir::TensorStore::make(s.name, p.store_indices, current + p.value);
      init = ir::TensorStore::make(s.name, p.store_indices, ir::f32(0));
    } else {
      update = ir::TensorStore::make(s.name, p.store_indices, p.value);
    }
    update = guarded(update, p.guards, false, p.loops);
    size_t first_reduce = p.loops.size();
    for (size_t q = 0; q < p.loops.size(); ++q) {
      if (p.loops[q].reduce) {
        first_reduce = q;
        break;
      }
    }
    for (size_t q = first_reduce; q < p.loops.size(); ++q) {
      if (p.shifted_outers.count(p.loops[q].var)) {
        fail(s, "loop '" + p.loops[q].var +
                    "' of a split shifted inwards is inside the reduction: the overlap would be "
                    "summed twice");
      }
    }
    std::vector<Expr> tests = place_condition(p, first_reduce);
    Stmt stmt = update;
    for (size_t q = p.loops.size(); q-- > 0;) {
      const Loop& l = p.loops[q];
      if (tests[q].defined()) stmt = ir::IfThenElse::make(tests[q], stmt);
      stmt = attach_producers(s, p, q, stmt);
      stmt = ir::For::make(l.var, Expr(0), l.extent, l.kind, stmt);
      if (q == first_reduce) {
        Stmt init_nest = guarded(init, p.guards, true, p.loops);
        for (size_t r = p.loops.size(); r-- > q + 1;) {
          const Loop& il = p.loops[r];
          if (il.reduce) continue;
          init_nest = ir::For::make(il.var, Expr(0), il.extent, il.kind, init_nest);
        }
        stmt = ir::Block::make({init_nest, stmt});
      }
    }
    if (s.is_reduction && first_reduce == p.loops.size()) {
      KILN_UNREACHABLE() << "reduction stage " << s.name << " without reduction loops";
    }
    return stmt;
  }

  const std::vector<Stage>& stages_;
  const Schedule& schedule_;
};

}  // namespace

LoopNest build_loop_nest(const Schedule& schedule) {
  KILN_CHECK(!schedule.stages().empty() && !schedule.stages().back().is_placeholder)
      << "schedule without output";
  // Inline elementwise stages into their readers, in definition order. Only then do the
  // stages need a copy: cost-model features build a nest for every candidate a search sees.
  const bool inlines =
      std::any_of(schedule.stages().begin(), schedule.stages().end(),
                  [](const Stage& s) { return s.attach == Stage::Attach::kInline; });
  std::vector<Stage> inlined;
  if (inlines) inlined = schedule.stages();
  for (size_t i = 0; i < inlined.size(); ++i) {
    if (inlined[i].attach != Stage::Attach::kInline) continue;
    Inliner inliner(inlined[i]);
    for (size_t j = i + 1; j < inlined.size(); ++j) {
      if (inlined[j].body.defined()) inlined[j].body = inliner.mutate(inlined[j].body);
    }
  }
  const std::vector<Stage>& stages = inlines ? inlined : schedule.stages();
  for (const Stage& s : stages) {
    if (s.attach != Stage::Attach::kAt) continue;
    bool found = false;
    for (const Stage& c : stages) {
      if (c.name != s.attach_stage) continue;
      found = c.attach != Stage::Attach::kInline;
    }
    if (!found) {
      throw ScheduleError("compute_at of " + s.name + " into " + s.attach_stage +
                              ", which is inlined or does not exist",
                          schedule.describe(s));
    }
  }
  LoopNest nest;
  nest.body = NestBuilder(stages, schedule).build_root();
  for (const Stage& s : stages) {
    if (!s.is_placeholder) continue;
    nest.args.push_back(s.name);
    nest.arg_shapes.push_back(s.shape);
  }
  nest.args.push_back(stages.back().name);
  nest.arg_shapes.push_back(stages.back().shape);
  return nest;
}

}  // namespace kiln::core::lower
