#include "compiler_core/schedule/schedule.h"

#include <algorithm>
#include <set>
#include <sstream>

#include "compiler_core/ir/ir_visitor.h"
#include "compiler_core/lower/substitute.h"

namespace kiln::core {
namespace {

using ir::Expr;

/// Appends a stage. Room for a template's stages is made once: Stage is large, and cost-model
/// features build a schedule for every candidate a search looks at.
void add_stage(std::vector<Stage>& stages, Stage s) {
  if (stages.capacity() == 0) stages.reserve(8);
  stages.push_back(std::move(s));
}

std::vector<Expr> vars_of(const std::vector<std::string>& names) {
  std::vector<Expr> vars;
  for (const std::string& n : names) vars.push_back(ir::Var::make(n));
  return vars;
}

/// Rewrites TensorLoads of one tensor through a function of their indices.
class ReplaceLoads : public ir::IRMutator {
 public:
  ReplaceLoads(std::string tensor, std::function<Expr(const std::vector<Expr>&)> replace)
      : tensor_(std::move(tensor)), replace_(std::move(replace)) {}

 protected:
  Expr mutate_node(const ir::TensorLoad* op, const Expr& self) override {
    Expr rewritten = IRMutator::mutate_node(op, self);
    const auto* load = rewritten.as<ir::TensorLoad>();
    if (load->tensor != tensor_) return rewritten;
    return replace_(load->indices);
  }

 private:
  std::string tensor_;
  std::function<Expr(const std::vector<Expr>&)> replace_;
};

}  // namespace

Expr Tensor::operator()(std::vector<Expr> indices) const {
  KILN_CHECK(indices.size() == shape.size()) << "tensor " << name << " has " << shape.size()
                                             << " dimensions, read with " << indices.size();
  return ir::TensorLoad::make(name, std::move(indices));
}

Tensor Schedule::placeholder(const std::string& name, const Shape& shape) {
  Stage s;
  s.name = name;
  s.shape = shape;
  s.is_placeholder = true;
  add_stage(stages_, std::move(s));
  return {name, shape};
}

Tensor Schedule::compute(const std::string& name, const Shape& shape,
                         const std::vector<std::string>& axis_names,
                         const std::function<Expr(const std::vector<Expr>&)>& body) {
  KILN_CHECK(axis_names.size() == shape.size()) << "compute " << name << ": axis names";
  Stage s;
  s.name = name;
  s.shape = shape;
  for (const std::string& a : axis_names) s.axes.push_back(name + "." + a);
  s.body = body(vars_of(s.axes));
  s.leaves = s.axes;
  add_stage(stages_, std::move(s));
  return {name, shape};
}

Tensor Schedule::compute_sum(
    const std::string& name, const Shape& shape, const std::vector<std::string>& axis_names,
    const Shape& reduce_shape, const std::vector<std::string>& reduce_names,
    const std::function<Expr(const std::vector<Expr>&, const std::vector<Expr>&)>& body,
    const std::function<Expr(const std::vector<Expr>&, const std::vector<Expr>&)>& where) {
  KILN_CHECK(axis_names.size() == shape.size()) << "compute_sum " << name << ": axis names";
  KILN_CHECK(reduce_names.size() == reduce_shape.size()) << "compute_sum " << name;
  Stage s;
  s.name = name;
  s.shape = shape;
  for (const std::string& a : axis_names) s.axes.push_back(name + "." + a);
  for (const std::string& a : reduce_names) s.reduce_axes.push_back(name + "." + a);
  s.reduce_shape = reduce_shape;
  s.is_reduction = true;
  s.body = body(vars_of(s.axes), vars_of(s.reduce_axes));
  if (where) s.reduce_where = where(vars_of(s.axes), vars_of(s.reduce_axes));
  s.leaves = s.axes;
  s.leaves.insert(s.leaves.end(), s.reduce_axes.begin(), s.reduce_axes.end());
  add_stage(stages_, std::move(s));
  return {name, shape};
}

const Stage& Schedule::stage(const std::string& name) const {
  for (const Stage& s : stages_) {
    if (s.name == name) return s;
  }
  KILN_UNREACHABLE() << "no stage " << name;
}

Stage& Schedule::mutable_stage(const std::string& name) {
  for (Stage& s : stages_) {
    if (s.name == name) return s;
  }
  KILN_UNREACHABLE() << "no stage " << name;
}

std::string Schedule::describe(const Stage& s) const {
  std::ostringstream os;
  os << "stage " << s.name << " loops:";
  for (const std::string& l : s.leaves) {
    os << " " << l;
    auto it = s.kinds.find(l);
    if (it != s.kinds.end()) os << "(" << ir::for_kind_name(it->second) << ")";
  }
  return os.str();
}

int Schedule::leaf_position(const Stage& s, const std::string& var) const {
  auto it = std::find(s.leaves.begin(), s.leaves.end(), var);
  if (it == s.leaves.end()) {
    throw ScheduleError("no loop '" + var + "' in stage " + s.name, describe(s));
  }
  return int(it - s.leaves.begin());
}

std::string Schedule::axis(const Tensor& t, const std::string& axis_name) const {
  const Stage& s = stage(t.name);
  std::string full = t.name + "." + axis_name;
  bool found = std::find(s.axes.begin(), s.axes.end(), full) != s.axes.end() ||
               std::find(s.reduce_axes.begin(), s.reduce_axes.end(), full) != s.reduce_axes.end();
  KILN_CHECK(found) << "no axis " << axis_name << " in " << t.name;
  return full;
}

std::pair<std::string, std::string> Schedule::split_shift_inwards(const Tensor& t,
                                                                  const std::string& var,
                                                                  int64_t factor) {
  auto loops = split(t, var, factor);
  mutable_stage(t.name).relations.back().split.shift_inwards = true;
  return loops;
}

std::pair<std::string, std::string> Schedule::split(const Tensor& t, const std::string& var,
                                                    int64_t factor) {
  Stage& s = mutable_stage(t.name);
  int pos = leaf_position(s, var);
  if (factor < 1) {
    throw ScheduleError(
        "split of '" + var + "' by " + std::to_string(factor) + "; the factor must be at least 1",
        describe(s));
  }
  Relation r{Relation::Kind::kSplit, {var, var + ".o", var + ".i", factor}, {}};
  s.relations.push_back(r);
  s.leaves.erase(s.leaves.begin() + pos);
  s.leaves.insert(s.leaves.begin() + pos, {r.split.outer, r.split.inner});
  if (auto it = s.kinds.find(var); it != s.kinds.end()) s.kinds.erase(it);
  return {r.split.outer, r.split.inner};
}

std::string Schedule::fuse(const Tensor& t, const std::string& outer, const std::string& inner) {
  Stage& s = mutable_stage(t.name);
  int po = leaf_position(s, outer), pi = leaf_position(s, inner);
  if (pi != po + 1) {
    throw ScheduleError("fuse of '" + outer + "' and '" + inner +
                            "': the outer loop must directly enclose the inner one",
                        describe(s));
  }
  Relation r{Relation::Kind::kFuse, {}, {outer, inner, outer + ".fused"}};
  s.relations.push_back(r);
  s.leaves.erase(s.leaves.begin() + po, s.leaves.begin() + pi + 1);
  s.leaves.insert(s.leaves.begin() + po, r.fuse.fused);
  return r.fuse.fused;
}

void Schedule::reorder(const Tensor& t, const std::vector<std::string>& order) {
  Stage& s = mutable_stage(t.name);
  std::vector<int> positions;
  for (const std::string& v : order) positions.push_back(leaf_position(s, v));
  std::vector<int> sorted = positions;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    throw ScheduleError("reorder names a loop twice", describe(s));
  }
  for (size_t i = 0; i < order.size(); ++i) s.leaves[sorted[i]] = order[i];
}

std::vector<std::string> Schedule::tile(const Tensor& t, const std::string& x, const std::string& y,
                                        int64_t fx, int64_t fy) {
  auto [xo, xi] = split(t, x, fx);
  auto [yo, yi] = split(t, y, fy);
  reorder(t, {xo, yo, xi, yi});
  return {xo, yo, xi, yi};
}

void Schedule::vectorize(const Tensor& t, const std::string& var) {
  Stage& s = mutable_stage(t.name);
  leaf_position(s, var);
  s.kinds[var] = ir::ForKind::kVectorized;
}

void Schedule::unroll(const Tensor& t, const std::string& var) {
  Stage& s = mutable_stage(t.name);
  leaf_position(s, var);
  s.kinds[var] = ir::ForKind::kUnrolled;
}

void Schedule::parallel(const Tensor& t, const std::string& var) {
  Stage& s = mutable_stage(t.name);
  leaf_position(s, var);
  s.kinds[var] = ir::ForKind::kParallel;
}

void Schedule::compute_at(const Tensor& producer, const Tensor& consumer, const std::string& var) {
  Stage& c = mutable_stage(consumer.name);
  leaf_position(c, var);
  Stage& p = mutable_stage(producer.name);
  if (p.is_placeholder) {
    throw ScheduleError("compute_at of placeholder " + p.name, describe(p));
  }
  p.attach = Stage::Attach::kAt;
  p.attach_stage = consumer.name;
  p.attach_var = var;
}

void Schedule::compute_inline(const Tensor& t) {
  Stage& s = mutable_stage(t.name);
  if (s.is_reduction || s.is_placeholder) {
    throw ScheduleError("compute_inline of " + s.name + ", which is not an elementwise stage",
                        describe(s));
  }
  s.attach = Stage::Attach::kInline;
}

namespace {

/// The names of the tensors `body` reads.
std::set<std::string> tensors_read(const Expr& body) {
  struct Reads : ir::IRVisitor {
    std::set<std::string> names;
    void visit_node(const ir::TensorLoad* op) override {
      names.insert(op->tensor);
      IRVisitor::visit_node(op);
    }
  } reads;
  reads.visit(body);
  return reads.names;
}

}  // namespace

void Schedule::prepack(const Tensor& t) {
  Stage& s = mutable_stage(t.name);
  if (s.is_placeholder || s.attach != Stage::Attach::kRoot) {
    throw ScheduleError("prepack of " + s.name + ", which is not a computed root stage",
                        describe(s));
  }
  for (const std::string& name : tensors_read(s.body)) {
    if (!stage(name).is_placeholder) {
      throw ScheduleError("prepack of " + s.name + ", which reads stage " + name +
                              " (only placeholders, the weights, may be read ahead of time)",
                          describe(s));
    }
  }
  if (&s == &stages_.back()) {
    throw ScheduleError("prepack of the output stage " + s.name, describe(s));
  }
  s.prepacked = true;
}

Schedule Schedule::without_prepacked() const {
  Schedule out = *this;
  for (Stage& s : out.stages_) {
    if (!s.prepacked) continue;
    Stage placeholder;
    placeholder.name = s.name;
    placeholder.shape = s.shape;
    placeholder.is_placeholder = true;
    s = std::move(placeholder);
  }
  return out;
}

std::vector<Schedule> Schedule::prepacked_stages() const {
  std::vector<Schedule> out;
  for (const Stage& s : stages_) {
    if (!s.prepacked) continue;
    Schedule part;
    std::set<std::string> reads = tensors_read(s.body);
    for (const Stage& p : stages_) {
      if (p.is_placeholder && reads.count(p.name)) part.stages_.push_back(p);
    }
    Stage output = s;
    output.prepacked = false;
    part.stages_.push_back(std::move(output));
    out.push_back(std::move(part));
  }
  return out;
}

Tensor Schedule::cache_write(const Tensor& t) {
  auto it = std::find_if(stages_.begin(), stages_.end(),
                         [&](const Stage& s) { return s.name == t.name; });
  KILN_CHECK(it != stages_.end()) << "no stage " << t.name;
  Stage original = *it;
  if (original.is_placeholder) {
    throw ScheduleError("cache_write of placeholder " + t.name, describe(original));
  }
  Stage local = original;
  local.name = t.name + ".local";
  std::map<std::string, Expr> rename;
  auto renamed = [&](std::vector<std::string>& names) {
    for (std::string& n : names) {
      std::string fresh = local.name + n.substr(t.name.size());
      rename[n] = ir::Var::make(fresh);
      n = fresh;
    }
  };
  renamed(local.axes);
  renamed(local.reduce_axes);
  local.body = lower::substitute(original.body, rename);
  if (original.reduce_where.defined()) {
    local.reduce_where = lower::substitute(original.reduce_where, rename);
  }
  local.leaves = local.axes;
  local.leaves.insert(local.leaves.end(), local.reduce_axes.begin(), local.reduce_axes.end());
  local.relations.clear();
  local.kinds.clear();
  local.attach = Stage::Attach::kRoot;

  Stage& copy = *it;
  copy.is_reduction = false;
  copy.reduce_axes.clear();
  copy.reduce_shape.clear();
  copy.reduce_where = Expr();
  copy.body = ir::TensorLoad::make(local.name, vars_of(copy.axes));
  copy.leaves = copy.axes;
  copy.relations.clear();
  copy.kinds.clear();
  stages_.insert(it, std::move(local));
  return {t.name + ".local", t.shape};
}

Tensor Schedule::layout_transform(
    const Tensor& source, const std::string& name, const Shape& new_shape,
    const std::vector<std::string>& axis_names,
    const std::function<std::vector<Expr>(const std::vector<Expr>&)>& to_source,
    const std::function<std::vector<Expr>(const std::vector<Expr>&)>& from_source) {
  auto it = std::find_if(stages_.begin(), stages_.end(),
                         [&](const Stage& s) { return s.name == source.name; });
  KILN_CHECK(it != stages_.end()) << "no stage " << source.name;
  Stage packed;
  packed.name = name;
  packed.shape = new_shape;
  for (const std::string& a : axis_names) packed.axes.push_back(name + "." + a);
  std::vector<Expr> src = to_source(vars_of(packed.axes));
  KILN_CHECK(src.size() == source.shape.size()) << "layout_transform " << name;
  Expr in_bounds;
  std::vector<Expr> clamped;
  for (size_t d = 0; d < src.size(); ++d) {
    Expr c = ir::LE::make(Expr(0), src[d]) && ir::LT::make(src[d], Expr(source.shape[d]));
    in_bounds = in_bounds.defined() ? ir::And::make(in_bounds, c) : c;
    clamped.push_back(ir::max(Expr(0), ir::min(src[d], Expr(source.shape[d] - 1))));
  }
  packed.body = ir::select(in_bounds, source(clamped), ir::f32(0));
  packed.leaves = packed.axes;
  size_t position = size_t(it - stages_.begin()) + 1;
  // Later readers of the source read the packed tensor instead.
  ReplaceLoads replace(source.name, [&](const std::vector<Expr>& old_indices) {
    return ir::TensorLoad::make(name, from_source(old_indices));
  });
  for (size_t i = position; i < stages_.size(); ++i) {
    if (stages_[i].body.defined()) stages_[i].body = replace.mutate(stages_[i].body);
  }
  stages_.insert(stages_.begin() + long(position), std::move(packed));
  return {name, new_shape};
}

}  // namespace kiln::core
