// Convolutions in a channel-blocked layout (NCHW[x]c, as TVM's x86 conv2d_NCHWc):
//
//   data.packed[n, g, cb, h, w, ci]        = padded input, channel cb·CB + ci of group g
//   kernel.packed[g, kb, cb, r, s, ci, ko] = weights, zero-padded to whole blocks
//   out.blocked[n, g, kb, oh, ow, ko]      = sum over cb, r, s, ci of data · kernel
//   O                                      = out.blocked unpacked to NCHW or NHWC
//
// The weights are constant in inference: kernel.packed is computed ahead of time
// (Schedule::prepack), once per set of weights, as libraries reorder weights once.
// The output block is computed in a local accumulator of tile_ow × KB values (register
// blocking over output width and output channels, KB a multiple of the vector width), with
// the reduction outermost inside the tile. Depthwise convolution blocks channels the same way
// but has no input-channel reduction: its accumulator is tile_ow × CB.

#include "compiler_core/schedule/templates_internal.h"

namespace kiln::core::templates {
namespace {

using ir::Expr;

Expr clamp(const Expr& x, int64_t hi) { return ir::max(Expr(0), ir::min(x, Expr(hi))); }

Expr in_range(const Expr& x, int64_t extent) {
  return ir::LE::make(Expr(0), x) && ir::LT::make(x, Expr(extent));
}

/// Reads input element (n, channel, h, w) of the padded input, zero outside.
Expr read_padded_input(const Workload& w, const Tensor& input, const Expr& n, const Expr& channel,
                       const Expr& channel_valid, const Expr& h, const Expr& x) {
  Expr ih = h - Expr(w.pad_h), iw = x - Expr(w.pad_w);
  Expr valid = channel_valid && in_range(ih, w.height) && in_range(iw, w.width);
  Expr c = clamp(channel, w.in_channels - 1);
  Expr v = w.layout == Layout::kNCHW
               ? input({n, c, clamp(ih, w.height - 1), clamp(iw, w.width - 1)})
               : input({n, clamp(ih, w.height - 1), clamp(iw, w.width - 1), c});
  return ir::select(valid, v, ir::f32(0));
}

int64_t padded_height(const Workload& w) {
  return (w.out_height() - 1) * w.stride_h + (w.kernel_h - 1) * w.dilation_h + 1;
}
int64_t padded_width(const Workload& w) {
  return (w.out_width() - 1) * w.stride_w + (w.kernel_w - 1) * w.dilation_w + 1;
}

/// The unpacking stage from a blocked output `blocked(n, group, block, oh, ow, lane)`, given a
/// channel's (group, block, lane) decomposition.
Tensor unpack_output(
    Schedule& sch, const Workload& w,
    const std::function<Expr(const Expr& n, const Expr& k, const Expr& oh, const Expr& ow)>& read) {
  Shape shape = w.output_shape();
  if (w.layout == Layout::kNCHW) {
    return sch.compute("O", shape, {"n", "k", "oh", "ow"},
                       [&](const std::vector<Expr>& x) { return read(x[0], x[1], x[2], x[3]); });
  }
  return sch.compute("O", shape, {"n", "oh", "ow", "k"},
                     [&](const std::vector<Expr>& x) { return read(x[0], x[3], x[1], x[2]); });
}

void schedule_unpack(Schedule& sch, const Workload& w, const Tensor& out, int64_t block,
                     int64_t lanes, bool parallel) {
  std::string k = sch.axis(out, "k");
  if (w.layout == Layout::kNCHW) {
    std::string ow = sch.axis(out, "ow");
    auto [owo, owi] = sch.split(out, ow, lanes);
    sch.vectorize(out, owi);
    if (parallel) sch.parallel(out, k);
    return;
  }
  auto [kbo, kbi] = sch.split(out, k, block);
  auto [kvo, kvi] = sch.split(out, kbi, lanes);
  sch.vectorize(out, kvi);
  if (parallel) sch.parallel(out, sch.axis(out, "oh"));
}

/// Tiles the blocked output `blocked` (axes n, ..., `block`, oh, ow, `lane`) into tiles of
/// tile_ow columns × one channel block, each accumulated in a local stage (returned) computed
/// at the tile; the channel lanes are vectorized and (block, oh) run in parallel.
Tensor tile_blocked_output(Schedule& sch, const Tensor& blocked, const std::string& block,
                           const std::string& lane, int64_t tile_ow, int64_t lanes, bool parallel) {
  Tensor acc = sch.cache_write(blocked);
  auto [owo, owi] = sch.split(blocked, sch.axis(blocked, "ow"), tile_ow);
  auto [vo, vi] = sch.split(blocked, sch.axis(blocked, lane), lanes);
  sch.vectorize(blocked, vi);
  if (parallel) {
    sch.parallel(blocked, sch.fuse(blocked, sch.axis(blocked, block), sch.axis(blocked, "oh")));
  }
  sch.compute_at(acc, blocked, owo);
  return acc;
}

}  // namespace

ConfigSpace conv2d_space(const Workload& w, const Target& t) {
  (void)w;
  (void)t;
  std::vector<Knob> knobs = {
      {"block_k_vectors", {1, 2, 4}},                   // output channels per block
      {"block_c", {16, 8, 4, 1, 32, 64}},               // input channels per block
      {"tile_ow", {7, 14, 8, 4, 2, 1, 6, 12, 16, 28}},  // output columns per register tile
      {"unroll_c", {1, 2, 4, 8}},                       // unroll of the in-block channel loop
      {"parallel", {1, 0}},
  };
  ConfigSpace space("conv2d", knobs);
  // Default: one vector of output channels × 28 output columns (28 accumulators), input
  // channels in blocks of 16 unrolled by 4: the fastest of a hand-picked set on AVX-512.
  space.set_default(*space.from_values({1, 16, 28, 4, 1}));
  return space;
}

Schedule conv2d_schedule(const Workload& w, const Target& t, const ConfigSpace& space,
                         const Config& c) {
  const int64_t lanes = t.vector_lanes;
  const int64_t kb = space.value(c, "block_k_vectors") * lanes;
  const int64_t cb = space.value(c, "block_c");
  const int64_t tile_ow = space.value(c, "tile_ow");
  const int64_t unroll_c = space.value(c, "unroll_c");
  const bool parallel = space.value(c, "parallel") == 1;
  const int64_t groups = w.groups;
  const int64_t cg = w.in_channels / groups, kg = w.out_channels / groups;
  const int64_t c_blocks = ceil_div(cg, cb), k_blocks = ceil_div(kg, kb);
  const int64_t oh = w.out_height(), ow = w.out_width();

  Schedule sch;
  std::vector<Shape> in_shapes = w.input_shapes();
  Tensor input = sch.placeholder("I", in_shapes[0]);
  Tensor weight = sch.placeholder("W", in_shapes[1]);

  Tensor data = sch.compute("data.packed",
                            {w.batch_n, groups, c_blocks, padded_height(w), padded_width(w), cb},
                            {"n", "g", "cb", "h", "w", "ci"}, [&](const std::vector<Expr>& x) {
                              Expr local = x[2] * Expr(cb) + x[5];
                              Expr channel = x[1] * Expr(cg) + ir::min(local, Expr(cg - 1));
                              return read_padded_input(w, input, x[0], channel,
                                                       ir::LT::make(local, Expr(cg)), x[3], x[4]);
                            });
  Tensor kernel =
      sch.compute("kernel.packed", {groups, k_blocks, c_blocks, w.kernel_h, w.kernel_w, cb, kb},
                  {"g", "kb", "cb", "r", "s", "ci", "ko"}, [&](const std::vector<Expr>& x) {
                    Expr kl = x[1] * Expr(kb) + x[6], cl = x[2] * Expr(cb) + x[5];
                    Expr valid = ir::LT::make(kl, Expr(kg)) && ir::LT::make(cl, Expr(cg));
                    Expr k = x[0] * Expr(kg) + ir::min(kl, Expr(kg - 1));
                    Expr ch = ir::min(cl, Expr(cg - 1));
                    Expr v = w.layout == Layout::kNCHW ? weight({k, ch, x[3], x[4]})
                                                       : weight({x[3], x[4], ch, k});
                    return ir::select(valid, v, ir::f32(0));
                  });
  Tensor blocked = sch.compute_sum("out.blocked", {w.batch_n, groups, k_blocks, oh, ow, kb},
                                   {"n", "g", "kb", "oh", "ow", "ko"},
                                   {c_blocks, w.kernel_h, w.kernel_w, cb}, {"cb", "r", "s", "ci"},
                                   [&](const std::vector<Expr>& x, const std::vector<Expr>& r) {
                                     Expr h = x[3] * Expr(w.stride_h) + r[1] * Expr(w.dilation_h);
                                     Expr col = x[4] * Expr(w.stride_w) + r[2] * Expr(w.dilation_w);
                                     return data({x[0], x[1], r[0], h, col, r[3]}) *
                                            kernel({x[1], x[2], r[0], r[1], r[2], r[3], x[5]});
                                   });
  Tensor out =
      unpack_output(sch, w, [&](const Expr& n, const Expr& k, const Expr& y, const Expr& x) {
        Expr g = k / Expr(kg), kl = k % Expr(kg);
        return blocked({n, g, kl / Expr(kb), y, x, kl % Expr(kb)});
      });

  // Packing stages.
  {
    std::string ci = sch.axis(data, "ci");
    sch.vectorize(data, ci);
    if (parallel) sch.parallel(data, sch.fuse(data, sch.axis(data, "cb"), sch.axis(data, "h")));
    auto [kvo, kvi] = sch.split(kernel, sch.axis(kernel, "ko"), lanes);
    sch.vectorize(kernel, kvi);
    sch.prepack(kernel);  // weights are constant: packed once, as libraries reorder them once
  }
  // The blocked output: tiles of tile_ow × kb, accumulated locally.
  Tensor acc = tile_blocked_output(sch, blocked, "kb", "ko", tile_ow, lanes, parallel);
  {
    auto [cio, cii] = sch.split(acc, sch.axis(acc, "ci"), unroll_c);
    auto [kvo, kvi] = sch.split(acc, sch.axis(acc, "ko"), lanes);
    std::string aow = sch.axis(acc, "ow");
    sch.reorder(acc, {sch.axis(acc, "n"), sch.axis(acc, "g"), sch.axis(acc, "kb"),
                      sch.axis(acc, "oh"), sch.axis(acc, "cb"), sch.axis(acc, "r"),
                      sch.axis(acc, "s"), cio, cii, aow, kvo, kvi});
    sch.unroll(acc, cii);
    sch.unroll(acc, aow);
    sch.unroll(acc, kvo);
    sch.vectorize(acc, kvi);
  }
  schedule_unpack(sch, w, out, kb, lanes, parallel);
  return sch;
}

ConfigSpace depthwise_space(const Workload& w, const Target& t) {
  (void)w;
  (void)t;
  std::vector<Knob> knobs = {
      {"block_c_vectors", {1, 2, 4}},                   // channels per block
      {"tile_ow", {7, 14, 8, 4, 2, 1, 6, 12, 16, 28}},  // output columns per register tile
      {"unroll_rs", {1, 0}},                            // unroll the kernel window
      {"parallel", {1, 0}},
  };
  return ConfigSpace("depthwise_conv2d", knobs);
}

Schedule depthwise_schedule(const Workload& w, const Target& t, const ConfigSpace& space,
                            const Config& c) {
  const int64_t lanes = t.vector_lanes;
  const int64_t cb = space.value(c, "block_c_vectors") * lanes;
  const int64_t tile_ow = space.value(c, "tile_ow");
  const bool unroll_rs = space.value(c, "unroll_rs") == 1;
  const bool parallel = space.value(c, "parallel") == 1;
  const int64_t channels = w.in_channels, c_blocks = ceil_div(channels, cb);
  const int64_t oh = w.out_height(), ow = w.out_width();

  Schedule sch;
  std::vector<Shape> in_shapes = w.input_shapes();
  Tensor input = sch.placeholder("I", in_shapes[0]);
  Tensor weight = sch.placeholder("W", in_shapes[1]);
  Tensor data = sch.compute(
      "data.packed", {w.batch_n, c_blocks, padded_height(w), padded_width(w), cb},
      {"n", "cb", "h", "w", "ci"}, [&](const std::vector<Expr>& x) {
        Expr ch = x[1] * Expr(cb) + x[4];
        return read_padded_input(w, input, x[0], ch, ir::LT::make(ch, Expr(channels)), x[2], x[3]);
      });
  Tensor kernel = sch.compute("kernel.packed", {c_blocks, w.kernel_h, w.kernel_w, cb},
                              {"cb", "r", "s", "ci"}, [&](const std::vector<Expr>& x) {
                                Expr ch = x[0] * Expr(cb) + x[3];
                                Expr cc = ir::min(ch, Expr(channels - 1));
                                Expr v = w.layout == Layout::kNCHW
                                             ? weight({cc, Expr(0), x[1], x[2]})
                                             : weight({x[1], x[2], cc, Expr(0)});
                                return ir::select(ir::LT::make(ch, Expr(channels)), v, ir::f32(0));
                              });
  Tensor blocked =
      sch.compute_sum("out.blocked", {w.batch_n, c_blocks, oh, ow, cb},
                      {"n", "cb", "oh", "ow", "ci"}, {w.kernel_h, w.kernel_w}, {"r", "s"},
                      [&](const std::vector<Expr>& x, const std::vector<Expr>& r) {
                        Expr h = x[2] * Expr(w.stride_h) + r[0] * Expr(w.dilation_h);
                        Expr col = x[3] * Expr(w.stride_w) + r[1] * Expr(w.dilation_w);
                        return data({x[0], x[1], h, col, x[4]}) * kernel({x[1], r[0], r[1], x[4]});
                      });
  Tensor out =
      unpack_output(sch, w, [&](const Expr& n, const Expr& k, const Expr& y, const Expr& x) {
        return blocked({n, k / Expr(cb), y, x, k % Expr(cb)});
      });

  {
    auto [cvo, cvi] = sch.split(data, sch.axis(data, "ci"), lanes);
    sch.vectorize(data, cvi);
    if (parallel) sch.parallel(data, sch.fuse(data, sch.axis(data, "cb"), sch.axis(data, "h")));
    auto [kvo, kvi] = sch.split(kernel, sch.axis(kernel, "ci"), lanes);
    sch.vectorize(kernel, kvi);
    sch.prepack(kernel);
  }
  Tensor acc = tile_blocked_output(sch, blocked, "cb", "ci", tile_ow, lanes, parallel);
  {
    auto [cvo, cvi] = sch.split(acc, sch.axis(acc, "ci"), lanes);
    std::string aow = sch.axis(acc, "ow"), r = sch.axis(acc, "r"), s = sch.axis(acc, "s");
    sch.reorder(
        acc, {sch.axis(acc, "n"), sch.axis(acc, "cb"), sch.axis(acc, "oh"), r, s, aow, cvo, cvi});
    if (unroll_rs) {
      sch.unroll(acc, r);
      sch.unroll(acc, s);
    }
    sch.unroll(acc, aow);
    sch.unroll(acc, cvo);
    sch.vectorize(acc, cvi);
  }
  schedule_unpack(sch, w, out, cb, lanes, parallel);
  return sch;
}

}  // namespace kiln::core::templates
