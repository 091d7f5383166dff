// The matmul family: C[i, j] = sum_k A[i, k] · B[k, j] (dense reads its weights as W[j, k] and
// applies its epilogue: bias, residual, activation; batch_matmul has a leading batch axis).
//
// The schedule is the classic one of BLIS and TVM's x86 dense: B is packed into panels of
// `nr` columns (B.packed[j / nr, k, j % nr], zero-padded), the output is tiled mr × nr, and
// each tile accumulates in a local mr × nr buffer (cache_write + compute_at) that unrolling
// and vectorization turn into mr · nr / lanes vector registers, with k outermost in the tile.

#include "compiler_core/schedule/templates_internal.h"

namespace kiln::core::templates {
namespace {

using ir::Expr;

struct MatmulShape {
  bool batched = false;
  bool weights_transposed = false;  ///< dense: W[N, K]
  int64_t b = 1, m = 0, n = 0, k = 0;
};

MatmulShape shape_of(const Workload& w) {
  MatmulShape s;
  s.batched = w.op == OpKind::kBatchMatmul;
  s.weights_transposed = w.op == OpKind::kDense;
  s.b = s.batched ? w.batch : 1;
  s.m = w.m;
  s.n = w.n;
  s.k = w.k;
  return s;
}

/// The K-blocked schedule: `acc` is the reduction itself, tiled mr × nr with the K block loop
/// between the outer and the inner tile loop; each tile's update loops over its K block with
/// the tile's rows unrolled and its columns as unrolled vectors.
void schedule_k_blocked(Schedule& sch, const Tensor& acc, bool batched, int64_t mr, int64_t nr,
                        int64_t lanes, int64_t k_block, int64_t uk, bool columns_outer,
                        bool parallel) {
  auto [io, ii] = sch.split(acc, sch.axis(acc, "i"), mr);
  auto [jo, ji] = sch.split(acc, sch.axis(acc, "j"), nr);
  auto [ko, ki] = sch.split(acc, sch.axis(acc, "k"), k_block);
  auto [kio, kii] = sch.split(acc, ki, uk);
  auto [jio, jii] = sch.split(acc, ji, lanes);
  const std::string& tile_outer = columns_outer ? jo : io;
  const std::string& tile_inner = columns_outer ? io : jo;
  std::vector<std::string> order;
  if (batched) order.push_back(sch.axis(acc, "b"));
  order.insert(order.end(), {tile_outer, ko, tile_inner, kio, kii, ii, jio, jii});
  sch.reorder(acc, order);
  sch.unroll(acc, kii);
  sch.unroll(acc, ii);
  sch.unroll(acc, jio);
  sch.vectorize(acc, jii);
  if (parallel) sch.parallel(acc, batched ? sch.axis(acc, "b") : tile_outer);
}

}  // namespace

ConfigSpace matmul_space(const Workload& w, const Target& t) {
  (void)w;
  std::vector<Knob> knobs = {
      {"tile_m", {1, 2, 3, 4, 6, 8, 10, 12, 14, 16}},  // rows of the register tile
      {"tile_n_vectors", {1, 2, 3, 4}},                // columns of the tile, in vectors
      {"unroll_k", {1, 2, 4, 8}},
      {"order", {0, 1}},     // 0: column panels outermost (B panel stays in cache); 1: rows
      {"pack_b", {1, 0}},    // pack B into zero-padded column panels
      {"parallel", {1, 0}},  // run the outermost tile loop on the thread pool
      {"pack_a", {1, 0}},    // pack A into row panels of tile_m rows, read contiguously
      // 0: each tile accumulates all of K in registers; else K is cut into blocks of this
      // size, outside the row tiles, so a block of the B panel stays in L1 across them, and
      // C accumulates in memory between blocks (as BLIS does).
      {"k_block", {0, 128, 256, 512}},
  };
  ConfigSpace space("matmul", knobs);
  // A step of the tile keeps tile_m × tile_n_vectors accumulators, the tile_n_vectors vectors
  // of the B panel's row and a broadcast of A live.
  templates::fit_register_budget(
      space, t, [](const std::vector<int64_t>& v) { return v[0] * v[1] + v[1] + 1; });
  // x86: a 6 × 2-vector tile (12 accumulators), k unrolled by 4, packed panels. AArch64:
  // NEON's two FMA pipes have a latency of 4 to 7 cycles, so a 6 × 4-vector tile (24 of the 32
  // registers accumulate) keeps both busy with 10 operand loads to 24 FMAs.
  templates::set_default_if_in_space(space, t.is_aarch64()
                                                ? std::vector<int64_t>{6, 4, 4, 0, 1, 1, 1, 0}
                                                : std::vector<int64_t>{6, 2, 4, 0, 1, 1, 1, 0});
  return space;
}

Schedule matmul_schedule(const Workload& w, const Target& t, const ConfigSpace& space,
                         const Config& c) {
  MatmulShape s = shape_of(w);
  const int64_t lanes = t.vector_lanes;
  const int64_t mr = space.value(c, "tile_m");
  const int64_t nr = space.value(c, "tile_n_vectors") * lanes;
  const int64_t uk = space.value(c, "unroll_k");
  const bool columns_outer = space.value(c, "order") == 0;
  const bool pack = space.value(c, "pack_b") == 1;
  const bool parallel = space.value(c, "parallel") == 1;
  const bool pack_a = space.value(c, "pack_a") == 1;
  const int64_t k_block = space.value(c, "k_block");

  Schedule sch;
  Shape a_shape = s.batched ? Shape{s.b, s.m, s.k} : Shape{s.m, s.k};
  Shape b_shape =
      s.batched ? Shape{s.b, s.k, s.n} : (s.weights_transposed ? Shape{s.n, s.k} : Shape{s.k, s.n});
  Tensor a = sch.placeholder("A", a_shape);
  Tensor b = sch.placeholder(s.weights_transposed ? "W" : "B", b_shape);
  const bool has_epilogue = w.op == OpKind::kDense && w.has_epilogue();
  Shape out_shape = s.batched ? Shape{s.b, s.m, s.n} : Shape{s.m, s.n};
  EpilogueInputs epilogue;
  if (has_epilogue) epilogue = add_epilogue_inputs(sch, w, out_shape);
  std::vector<std::string> out_axes =
      s.batched ? std::vector<std::string>{"b", "i", "j"} : std::vector<std::string>{"i", "j"};
  auto read_b = [&](const Expr& bi, const Expr& k, const Expr& j) {
    if (s.batched) return b({bi, k, j});
    return s.weights_transposed ? b({j, k}) : b({k, j});
  };
  Tensor acc = sch.compute_sum(has_epilogue ? "acc" : "C", out_shape, out_axes, {s.k}, {"k"},
                               [&](const std::vector<Expr>& x, const std::vector<Expr>& r) {
                                 Expr bi = s.batched ? x[0] : Expr();
                                 const Expr& i = x[x.size() - 2];
                                 const Expr& j = x[x.size() - 1];
                                 Expr av = s.batched ? a({bi, i, r[0]}) : a({i, r[0]});
                                 return av * read_b(bi, r[0], j);
                               });
  Tensor out = acc;
  if (has_epilogue) {
    out = sch.compute("C", out_shape, out_axes, [&](const std::vector<Expr>& x) {
      return apply_epilogue(w, epilogue, acc(x), x.back(), x);
    });
  } else if (k_block == 0) {
    acc = sch.cache_write(out);
  }

  if (pack) {
    const int64_t panels = ceil_div(s.n, nr);
    Shape packed_shape = s.batched ? Shape{s.b, panels, s.k, nr} : Shape{panels, s.k, nr};
    std::vector<std::string> packed_axes = s.batched
                                               ? std::vector<std::string>{"b", "jb", "k", "jv"}
                                               : std::vector<std::string>{"jb", "k", "jv"};
    Tensor packed = sch.layout_transform(
        b, "B.packed", packed_shape, packed_axes,
        [&](const std::vector<Expr>& x) -> std::vector<Expr> {
          size_t o = s.batched ? 1 : 0;
          Expr j = x[o] * Expr(nr) + x[o + 2];
          if (s.batched) return {x[0], x[2], j};
          if (s.weights_transposed) return {j, x[1]};
          return {x[1], j};
        },
        [&](const std::vector<Expr>& x) -> std::vector<Expr> {
          if (s.batched) return {x[0], x[2] / Expr(nr), x[1], x[2] % Expr(nr)};
          if (s.weights_transposed) return {x[0] / Expr(nr), x[1], x[0] % Expr(nr)};
          return {x[1] / Expr(nr), x[0], x[1] % Expr(nr)};
        });
    std::string jv = sch.axis(packed, "jv");
    auto [jvo, jvi] = sch.split(packed, jv, lanes);
    sch.vectorize(packed, jvi);
    if (parallel) sch.parallel(packed, s.batched ? sch.axis(packed, "b") : sch.axis(packed, "jb"));
    // A dense layer's weights are constant (a model's, graph/passes.cc): packed once, as
    // libraries pack them once, instead of on every call; at batch 1 the packing would cost as
    // much as the layer.
    if (s.weights_transposed) sch.prepack(packed);
  }

  if (pack_a) {
    // Row panels: A.packed[i / mr, k, i % mr], so that the micro-kernel's broadcasts of
    // tile_m rows walk one contiguous stream instead of tile_m streams 4·K bytes apart.
    const int64_t panels = ceil_div(s.m, mr);
    Shape packed_shape = s.batched ? Shape{s.b, panels, s.k, mr} : Shape{panels, s.k, mr};
    std::vector<std::string> packed_axes = s.batched
                                               ? std::vector<std::string>{"b", "ib", "k", "iv"}
                                               : std::vector<std::string>{"ib", "k", "iv"};
    Tensor packed = sch.layout_transform(
        a, "A.packed", packed_shape, packed_axes,
        [&](const std::vector<Expr>& x) -> std::vector<Expr> {
          size_t o = s.batched ? 1 : 0;
          Expr i = x[o] * Expr(mr) + x[o + 2];
          if (s.batched) return {x[0], i, x[2]};
          return {i, x[1]};
        },
        [&](const std::vector<Expr>& x) -> std::vector<Expr> {
          size_t o = s.batched ? 1 : 0;
          std::vector<Expr> r;
          if (s.batched) r.push_back(x[0]);
          r.insert(r.end(), {x[o] / Expr(mr), x[o + 1], x[o] % Expr(mr)});
          return r;
        });
    // Read rows of A contiguously; the writes stride by tile_m.
    sch.reorder(packed, {sch.axis(packed, "iv"), sch.axis(packed, "k")});
    if (parallel) sch.parallel(packed, s.batched ? sch.axis(packed, "b") : sch.axis(packed, "ib"));
  }

  if (k_block > 0) {
    schedule_k_blocked(sch, acc, s.batched, mr, nr, lanes, k_block, uk, columns_outer, parallel);
    if (has_epilogue) {
      auto [jo, ji] = sch.split(out, sch.axis(out, "j"), lanes);
      sch.vectorize(out, ji);
      if (parallel) sch.parallel(out, sch.axis(out, s.batched ? "b" : "i"));
    }
    return sch;
  }

  // Output tiles.
  std::string i = sch.axis(out, "i"), j = sch.axis(out, "j");
  auto [io, ii] = sch.split(out, i, mr);
  auto [jo, ji] = sch.split(out, j, nr);
  if (columns_outer) {
    sch.reorder(out, {jo, io, ii, ji});
  } else {
    sch.reorder(out, {io, jo, ii, ji});
  }
  auto [jio, jii] = sch.split(out, ji, lanes);
  sch.vectorize(out, jii);
  const std::string& tile_outer = columns_outer ? jo : io;
  const std::string& tile_inner = columns_outer ? io : jo;
  if (parallel) sch.parallel(out, s.batched ? sch.axis(out, "b") : tile_outer);
  sch.compute_at(acc, out, tile_inner);

  // The micro-kernel: k outermost, then rows unrolled, columns as unrolled vectors.
  std::string ai = sch.axis(acc, "i"), aj = sch.axis(acc, "j"), ak = sch.axis(acc, "k");
  auto [ko, ki] = sch.split(acc, ak, uk);
  auto [ajo, aji] = sch.split(acc, aj, lanes);
  std::vector<std::string> order;
  if (s.batched) order.push_back(sch.axis(acc, "b"));
  order.insert(order.end(), {ko, ki, ai, ajo, aji});
  sch.reorder(acc, order);
  sch.unroll(acc, ki);
  sch.unroll(acc, ai);
  sch.unroll(acc, ajo);
  sch.vectorize(acc, aji);
  return sch;
}

}  // namespace kiln::core::templates
