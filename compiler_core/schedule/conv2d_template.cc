// Convolutions in a channel-blocked layout (NCHW[x]c, as TVM's x86 conv2d_NCHWc):
//
//   data.packed[n, g, cb, h, w, ci]        = padded input, channel cb·CB + ci of group g
//   kernel.packed[g, kb, cb, r, s, ci, ko] = weights, zero-padded to whole blocks
//   out.blocked[n, g, kb, oh, ow, ko]      = sum over cb, r, s, ci of data · kernel
//   O                                      = out.blocked unpacked to NCHW or NHWC, through
//                                            the workload's epilogue (bias, residual, act)
//
// The weights are constant in inference: kernel.packed is computed ahead of time
// (Schedule::prepack), once per set of weights, as libraries reorder weights once.
// The output block is computed in a local accumulator of tile_ow × KB values (register
// blocking over output width and output channels, KB a multiple of the vector width), with
// the reduction outermost inside the tile. Depthwise convolution blocks channels the same way
// but has no input-channel reduction: its accumulator is tile_ow × CB.

#include <cmath>
#include <functional>

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

/// The unpacking stage from a blocked output, `read(n, k, oh, ow)` reading element (n, k, oh,
/// ow) of it, with the workload's epilogue applied to what it reads.
Tensor unpack_output(
    Schedule& sch, const Workload& w, const EpilogueInputs& epilogue,
    const std::function<Expr(const Expr& n, const Expr& k, const Expr& oh, const Expr& ow)>& read) {
  Shape shape = w.output_shape();
  if (w.layout == Layout::kNCHW) {
    return sch.compute("O", shape, {"n", "k", "oh", "ow"}, [&](const std::vector<Expr>& x) {
      return apply_epilogue(w, epilogue, read(x[0], x[1], x[2], x[3]), x[1], x);
    });
  }
  return sch.compute("O", shape, {"n", "oh", "ow", "k"}, [&](const std::vector<Expr>& x) {
    return apply_epilogue(w, epilogue, read(x[0], x[3], x[1], x[2]), x[3], x);
  });
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
/// tile_oh rows × tile_ow columns × one channel block, each accumulated in a local stage
/// (returned) computed at the tile; the channel lanes are vectorized and (block, row tiles) run
/// in parallel.
Tensor tile_blocked_output(Schedule& sch, const Tensor& blocked, const std::string& block,
                           const std::string& lane, int64_t tile_oh, int64_t tile_ow, int64_t lanes,
                           bool parallel, std::string* row_loop = nullptr) {
  Tensor acc = sch.cache_write(blocked);
  auto [oho, ohi] = sch.split(blocked, sch.axis(blocked, "oh"), tile_oh);
  auto [owo, owi] = sch.split(blocked, sch.axis(blocked, "ow"), tile_ow);
  sch.reorder(blocked, {owo, ohi});  // (oh.o, ow.o, oh.i, ow.i): the tile inside ow.o
  auto [vo, vi] = sch.split(blocked, sch.axis(blocked, lane), lanes);
  sch.vectorize(blocked, vi);
  std::string rows = oho;
  if (parallel) {
    rows = sch.fuse(blocked, sch.axis(blocked, block), oho);
    sch.parallel(blocked, rows);
  }
  sch.compute_at(acc, blocked, owo);
  if (row_loop) *row_loop = rows;
  return acc;
}

/// Taps that read the input's zero padding add nothing: the blocked output's reduction skips
/// them, as libraries do. Kernel rows that read a padding row are skipped whole, for output rows
/// at the top and bottom edges. Kernel columns that read a padding column are skipped when a
/// register tile spans the whole output row (`whole_rows`), where unrolling the kernel columns
/// decides for each accumulator which taps it takes; in narrower tiles the test would be made at
/// run time, once per FMA. `oh_axis` is the output row's axis, the column's the next one (the
/// kernel row and column are reduction axes 1 and 2). Null when nothing is skipped.
std::function<Expr(const std::vector<Expr>&, const std::vector<Expr>&)> padding_skip(
    const Workload& w, bool whole_rows, size_t oh_axis = 3) {
  const bool rows = w.pad_h > 0, columns = w.pad_w > 0 && whole_rows;
  if (!rows && !columns) return nullptr;
  return [&w, rows, columns, oh_axis](const std::vector<Expr>& x, const std::vector<Expr>& r) {
    Expr row = x[oh_axis] * Expr(w.stride_h) + r[1] * Expr(w.dilation_h) - Expr(w.pad_h);
    Expr column = x[oh_axis + 1] * Expr(w.stride_w) + r[2] * Expr(w.dilation_w) - Expr(w.pad_w);
    if (!columns) return in_range(row, w.height);
    if (!rows) return in_range(column, w.width);
    return in_range(row, w.height) && in_range(column, w.width);
  };
}

/// A 1×1 convolution with stride 1 and no padding: a matrix product over the flattened plane.
bool is_flat(const Workload& w) {
  return w.kernel_h == 1 && w.kernel_w == 1 && w.stride_h == 1 && w.stride_w == 1 && w.pad_h == 0 &&
         w.pad_w == 0;
}

/// The columns the direct variant vectorizes: the flattened output plane of a flat
/// convolution, else an output row. Zero when
/// the variant does not apply (NHWC, groups, dilation, or columns that are not whole vectors:
/// a partial vector costs LLVM's type legalization more than the layout transposes save).
int64_t direct_columns(const Workload& w, int64_t lanes) {
  if (w.layout != Layout::kNCHW || w.groups != 1 || w.dilation_h != 1 || w.dilation_w != 1) {
    return 0;
  }
  const int64_t columns = is_flat(w) ? w.out_height() * w.out_width() : w.out_width();
  return columns % lanes == 0 ? columns : 0;
}

/// The largest divisor of `n` that is at most `limit` (at least 1).
int64_t divisor_at_most(int64_t n, int64_t limit) {
  for (int64_t d = std::min(n, limit); d > 1; --d) {
    if (n % d == 0) return d;
  }
  return 1;
}

/// A convolution computed directly on NCHW, vectorized along output columns: no channel
/// blocking, so no layout transposes of the input or the output. A tile is `tk` output
/// channels × `tw` columns of one output row, accumulated in registers over (c, r, s) from
/// contiguous loads of the input row times the weight of each output channel broadcast (the
/// weights are packed ahead of time as [k / tk, c, r, s, k % tk], so the broadcasts of a tap
/// are adjacent). Strided convolutions split the padded columns into `stride` phases, so a
/// tap still reads contiguous columns. The knobs of the blocked variant are read as: tile_ow
/// the output channels of a tile (rounded down to a divisor of K), block_k_vectors the vectors
/// of columns (rounded down to a divisor of the row's vectors), unroll_c the unroll of the
/// input-channel loop (a divisor of C), tile_oh a factor on the rows the vectors left over
/// make (rounded down to a divisor of the output rows); block_c does not apply. With an
/// epilogue, the sum is a stage of its own (O.sum) computed at the tile where the plain
/// workload's cache_write puts its accumulator, and O applies the epilogue to it.
Schedule conv2d_direct_schedule(const Workload& w, const Target& t, const ConfigSpace& space,
                                const Config& c) {
  const int64_t lanes = t.vector_lanes;
  const int64_t columns = direct_columns(w, lanes);
  KILN_CHECK(columns > 0) << "the direct variant does not apply to " << w.canonical();
  const int64_t tk = divisor_at_most(w.out_channels, space.value(c, "tile_ow"));
  // block_k_vectors vectors a tile: along the row as far as they divide it, the rest as rows.
  const int64_t vectors = space.value(c, "block_k_vectors");
  const int64_t row_vectors = divisor_at_most(columns / lanes, vectors);
  const int64_t tw = lanes * row_vectors;
  const int64_t uc = divisor_at_most(w.in_channels, space.value(c, "unroll_c"));
  const bool parallel = space.value(c, "parallel") == 1;
  const bool flat = is_flat(w);
  const int64_t rows = flat ? 1 : w.out_height();
  const int64_t th = divisor_at_most(rows, vectors / row_vectors * space.value(c, "tile_oh"));
  const int64_t channels = w.in_channels, stride = w.stride_w;

  Schedule sch;
  std::vector<Shape> in_shapes = w.input_shapes();
  // A flat convolution reads its input and writes its output as [N, C, 1, H·W] views.
  Tensor input =
      sch.placeholder("I", flat ? Shape{w.batch_n, channels, 1, w.height * w.width} : in_shapes[0]);
  Tensor weight = sch.placeholder("W", in_shapes[1]);
  const Shape out_shape = {w.batch_n, w.out_channels, rows, columns};
  const EpilogueInputs epilogue = add_epilogue_inputs(sch, w, out_shape);
  std::function<Expr(const Expr&, const Expr&, const Expr&, const Expr&)> read_input;
  if (flat) {
    read_input = [&](const Expr& n, const Expr& ch, const Expr&, const Expr& col) {
      return input({n, ch, Expr(0), col});
    };
  } else {
    const int64_t phase_width = w.out_width() + (w.kernel_w - 1) / stride;
    Tensor data = sch.compute(
        "data.padded", {w.batch_n, channels, padded_height(w), stride, phase_width},
        {"n", "c", "h", "ph", "wq"}, [&](const std::vector<Expr>& x) {
          return read_padded_input(w, input, x[0], x[1], ir::LT::make(x[1], Expr(channels)), x[2],
                                   x[4] * Expr(stride) + x[3]);
        });
    sch.vectorize(data, sch.axis(data, "wq"));
    if (parallel) sch.parallel(data, sch.axis(data, "c"));
    read_input = [&, data](const Expr& n, const Expr& ch, const Expr& h, const Expr& col) {
      return data({n, ch, h, col % Expr(stride), col / Expr(stride)});
    };
  }
  Tensor kernel =
      sch.compute("kernel.packed", {w.out_channels / tk, channels, w.kernel_h, w.kernel_w, tk},
                  {"kb", "c", "r", "s", "ki"}, [&](const std::vector<Expr>& x) {
                    return weight({x[0] * Expr(tk) + x[4], x[1], x[2], x[3]});
                  });
  const std::vector<std::string> out_axes = {"n", "k", "oh", "ow"};
  Tensor sum = sch.compute_sum(
      w.has_epilogue() ? "O.sum" : "O", out_shape, out_axes, {channels, w.kernel_h, w.kernel_w},
      {"c", "r", "s"}, [&](const std::vector<Expr>& x, const std::vector<Expr>& r) {
        Expr h = x[2] * Expr(w.stride_h) + r[1];
        // Padded column of the tap: ow·stride + s, split into phase and column
        // below.
        Expr col = x[3] * Expr(stride) + r[2];
        return read_input(x[0], r[0], h, col) *
               kernel({x[1] / Expr(tk), r[0], r[1], r[2], x[1] % Expr(tk)});
      });
  sch.prepack(kernel);  // weights are constant: packed once
  Tensor out = sum, acc = sum;
  if (w.has_epilogue()) {
    out = sch.compute("O", out_shape, out_axes, [&](const std::vector<Expr>& x) {
      return apply_epilogue(w, epilogue, sum(x), x[1], x);
    });
  } else {
    acc = sch.cache_write(out);
  }
  auto [ko, ki] = sch.split(out, sch.axis(out, "k"), tk);
  auto [wo, wi] = sch.split(out, sch.axis(out, "ow"), tw);
  auto [ho, hi] = sch.split(out, sch.axis(out, "oh"), th);
  // Column tiles outside channel tiles: a tile's input rows stay in L1 across the channels.
  sch.reorder(out, {sch.axis(out, "n"), ho, wo, ko, hi, ki, wi});
  auto [wvo, wvi] = sch.split(out, wi, lanes);
  sch.vectorize(out, wvi);
  if (parallel) sch.parallel(out, sch.fuse(out, ho, wo));
  sch.compute_at(acc, out, ko);

  auto [co, cii] = sch.split(acc, sch.axis(acc, "c"), uc);
  auto [awo, awi] = sch.split(acc, sch.axis(acc, "ow"), lanes);
  std::string ak = sch.axis(acc, "k"), ah = sch.axis(acc, "oh");
  std::string r = sch.axis(acc, "r"), s = sch.axis(acc, "s");
  sch.reorder(acc, {sch.axis(acc, "n"), co, r, s, cii, ah, ak, awo, awi});
  sch.unroll(acc, s);
  sch.unroll(acc, cii);
  sch.unroll(acc, ah);
  sch.unroll(acc, ak);
  sch.unroll(acc, awo);
  sch.vectorize(acc, awi);
  return sch;
}

/// Whether the direct NHWC variant applies: NHWC without groups.
bool nhwc_direct_applies(const Workload& w) { return w.layout == Layout::kNHWC && w.groups == 1; }

/// A convolution computed directly on NHWC, as oneDNN's brgconv does: the input's channels are
/// already contiguous, so the input is neither transposed nor blocked (only copied with its zero
/// border, when there is padding) and the output is written in place, with no blocked output to
/// unpack. A tile of tile_oh × tile_ow output pixels × block_k_vectors vectors of output
/// channels accumulates in registers over (c / block_c, r, s, c % block_c), each step
/// broadcasting one input value against block_k_vectors weight vectors (packed ahead of time as
/// [k / kb, c / cb, r, s, c % cb, k % kb], in the order the steps read them). The knobs mean
/// what they mean in the blocked variant; block_c and unroll_c are rounded down to divisors of
/// the input channels. Taps on the zero border are skipped as there (padding_skip): on ResNet-50's
/// 3x3 512 at 14x14 of stride 2 (a 7x7 output, a tenth of its taps on the border), 115-120
/// GFLOP/s against 110-113 at 1 thread, 230-238 against 217-221 at 2 (a tile of a row of 7).
/// With an epilogue, the sum is a stage of its own (O.sum) computed at the
/// tile, and O applies the epilogue to it.
Schedule conv2d_nhwc_direct_schedule(const Workload& w, const Target& t, const ConfigSpace& space,
                                     const Config& c) {
  KILN_CHECK(nhwc_direct_applies(w))
      << "the direct NHWC variant does not apply to " << w.canonical();
  const int64_t lanes = t.vector_lanes;
  const int64_t kb = space.value(c, "block_k_vectors") * lanes;
  const int64_t channels = w.in_channels, k_blocks = ceil_div(w.out_channels, kb);
  const int64_t cb = divisor_at_most(channels, space.value(c, "block_c"));
  const int64_t uc = divisor_at_most(cb, space.value(c, "unroll_c"));
  const int64_t tile_ow = std::min(space.value(c, "tile_ow"), w.out_width());
  const int64_t tile_oh = std::min(space.value(c, "tile_oh"), w.out_height());
  const bool parallel = space.value(c, "parallel") == 1;
  const bool whole_rows = tile_ow >= w.out_width();
  // Where the padding skip tests every tap that reads the zero border (kernel rows at tiles of
  // one output row, kernel columns at tiles of whole rows), the taps read the input itself;
  // elsewhere some of them read a copy of it with its border. ResNet-50's 3x3 512 at 14x14 of
  // stride 2 (tiles of a row of 7, kiln run): 241-250 GFLOP/s without the copy against 236-239
  // with it at 2 threads; 1 thread gains less than its noise.
  const bool bordered = (w.pad_h > 0 && tile_oh > 1) || (w.pad_w > 0 && !whole_rows);

  // Where the channels are not whole vectors (a network's first layer, 3 channels), the copy
  // is made of rows of width × channels values, in vectors along a row: dense stores, and
  // masked loads where a vector meets the border. `I` is read as that view of its memory.
  // MobileNetV2's first 3x3 (3->32 at 224, stride 2, tiles of 2 rows of 7), kiln run, medians
  // of 12: 105.5 GFLOP/s against 98 with a copy of scalar elements at 1 thread, 190 against
  // 178.5 at 2; on an input padded ahead of time (no copy) 113.5 and 220. Making the copy a
  // band of rows or a tile at a time, in the tiles' loop, read 99 and 94 at 1 thread.
  const bool row_copy = bordered && channels % lanes != 0;

  Schedule sch;
  std::vector<Shape> in_shapes = w.input_shapes();
  Tensor input = sch.placeholder(
      "I", row_copy ? Shape{w.batch_n, w.height, w.width * channels} : in_shapes[0]);
  Tensor weight = sch.placeholder("W", in_shapes[1]);
  const EpilogueInputs epilogue = add_epilogue_inputs(sch, w, w.output_shape());
  Tensor data = input;
  if (row_copy) {
    data = sch.compute("data.padded", {w.batch_n, padded_height(w), padded_width(w) * channels},
                       {"n", "h", "wc"}, [&](const std::vector<Expr>& x) {
                         Expr ih = x[1] - Expr(w.pad_h), j = x[2] - Expr(w.pad_w * channels);
                         return ir::guarded_select(
                             in_range(ih, w.height) && in_range(j, w.width * channels),
                             input({x[0], ih, j}), ir::f32(0));
                       });
  } else if (bordered) {
    data = sch.compute("data.padded", {w.batch_n, padded_height(w), padded_width(w), channels},
                       {"n", "h", "w", "c"}, [&](const std::vector<Expr>& x) {
                         Expr ih = x[1] - Expr(w.pad_h), iw = x[2] - Expr(w.pad_w);
                         return ir::guarded_select(in_range(ih, w.height) && in_range(iw, w.width),
                                                   input({x[0], ih, iw, x[3]}), ir::f32(0));
                       });
  }
  Tensor kernel = sch.compute(
      "kernel.packed", {k_blocks, channels / cb, w.kernel_h, w.kernel_w, cb, kb},
      {"kb", "cb", "r", "s", "ci", "ko"}, [&](const std::vector<Expr>& x) {
        Expr k = x[0] * Expr(kb) + x[5];
        Expr v = weight({x[2], x[3], x[1] * Expr(cb) + x[4], ir::min(k, Expr(w.out_channels - 1))});
        return ir::select(ir::LT::make(k, Expr(w.out_channels)), v, ir::f32(0));
      });
  const std::vector<std::string> out_axes = {"n", "oh", "ow", "k"};
  Tensor sum = sch.compute_sum(
      w.has_epilogue() ? "O.sum" : "O", w.output_shape(), out_axes,
      {channels / cb, w.kernel_h, w.kernel_w, cb}, {"cb", "r", "s", "ci"},
      [&](const std::vector<Expr>& x, const std::vector<Expr>& r) {
        Expr h = x[1] * Expr(w.stride_h) + r[1] * Expr(w.dilation_h);
        Expr col = x[2] * Expr(w.stride_w) + r[2] * Expr(w.dilation_w);
        if (!bordered) h = h - Expr(w.pad_h), col = col - Expr(w.pad_w);
        Expr c = r[0] * Expr(cb) + r[3];
        return (row_copy ? data({x[0], h, col * Expr(channels) + c}) : data({x[0], h, col, c})) *
               kernel({x[3] / Expr(kb), r[0], r[1], r[2], r[3], x[3] % Expr(kb)});
      },
      padding_skip(w, whole_rows, 1));
  Tensor out = sum, acc = sum;
  if (w.has_epilogue()) {
    out = sch.compute("O", w.output_shape(), out_axes, [&](const std::vector<Expr>& x) {
      return apply_epilogue(w, epilogue, sum(x), x[3], x);
    });
  } else {
    acc = sch.cache_write(out);
  }

  if (bordered) {
    auto [cvo, cvi] = sch.split(data, sch.axis(data, row_copy ? "wc" : "c"), lanes);
    sch.vectorize(data, cvi);
    if (parallel) sch.parallel(data, sch.axis(data, "h"));
  }
  {
    auto [kvo, kvi] = sch.split(kernel, sch.axis(kernel, "ko"), lanes);
    sch.vectorize(kernel, kvi);
    sch.prepack(kernel);  // weights are constant: packed once
  }
  auto [ko, ki] = sch.split(out, sch.axis(out, "k"), kb);
  auto [kvo, kvi] = sch.split(out, ki, lanes);
  auto [wo, wi] = sch.split(out, sch.axis(out, "ow"), tile_ow);
  auto [ho, hi] = sch.split(out, sch.axis(out, "oh"), tile_oh);
  // Pixel tiles outside channel tiles: a tile's input pixels stay in cache across the blocks
  // of output channels. Channels outside: a block's weights stay in cache across the pixels
  // (layers whose weights outgrow the cache, and few pixels: a network's late 1x1 layers).
  const bool channels_outer = space.value(c, "channels_outer") == 1;
  const std::string n = sch.axis(out, "n");
  sch.reorder(out, channels_outer ? std::vector<std::string>{n, ko, ho, wo, hi, wi, kvo, kvi}
                                  : std::vector<std::string>{n, ho, wo, ko, hi, wi, kvo, kvi});
  sch.vectorize(out, kvi);
  std::string tile = channels_outer ? wo : ko;
  if (parallel) {
    tile = channels_outer ? sch.fuse(out, sch.fuse(out, ko, ho), wo)
                          : sch.fuse(out, sch.fuse(out, ho, wo), ko);
    sch.parallel(out, tile);
  }
  sch.compute_at(acc, out, tile);

  auto [co, cii] = sch.split(acc, sch.axis(acc, "ci"), uc);
  auto [akvo, akvi] = sch.split(acc, sch.axis(acc, "k"), lanes);
  const std::string ah = sch.axis(acc, "oh"), aw = sch.axis(acc, "ow");
  sch.reorder(acc, {sch.axis(acc, "n"), sch.axis(acc, "cb"), sch.axis(acc, "r"), sch.axis(acc, "s"),
                    co, cii, ah, aw, akvo, akvi});
  sch.unroll(acc, cii);
  sch.unroll(acc, ah);
  sch.unroll(acc, aw);
  sch.unroll(acc, akvo);
  sch.vectorize(acc, akvi);
  if (whole_rows && w.pad_w > 0) sch.unroll(acc, sch.axis(acc, "s"));  // see padding_skip
  return sch;
}

/// Whether the Winograd variant applies: NHWC, 3x3, stride 1, no dilation or groups, and
/// input channels in whole vectors (its input transform is vectorized along them).
bool winograd_applies(const Workload& w, int64_t lanes) {
  return nhwc_direct_applies(w) && w.kernel_h == 3 && w.kernel_w == 3 && w.stride_h == 1 &&
         w.stride_w == 1 && w.dilation_h == 1 && w.dilation_w == 1 && w.in_channels % lanes == 0;
}

// Winograd's minimal filtering F(m x m, 3x3) (Lavin and Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2016): an m x m output tile is A^T [(G g G^T) ⊙ (B^T d B)] A
// for the 3x3 filter g and the (m+2) x (m+2) input tile d: (m+2)^2 multiplications instead of
// 9·m^2. F(2x2, 3x3) takes 16 for 36 (2.25x fewer), F(4x4, 3x3) 36 for 144 (4x fewer), with
// larger transforms and rounding errors (its interpolation points are 0, ±1, ±2 and ∞).
struct WinogradTransforms {
  int64_t m = 0;                       ///< output tile side
  int64_t alpha = 0;                   ///< input tile side, m + 2
  std::vector<std::vector<float>> g;   ///< alpha × 3
  std::vector<std::vector<float>> bt;  ///< alpha × alpha
  std::vector<std::vector<float>> at;  ///< m × alpha
};

/// The transforms of the knob `winograd`'s value: 1 F(2x2, 3x3), 2 F(4x4, 3x3).
const WinogradTransforms& winograd_transforms(int64_t variant) {
  static const WinogradTransforms f2{
      2,
      4,
      {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}},
      {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}},
      {{1, 1, 1, 0}, {0, 1, -1, -1}}};
  static const WinogradTransforms f4{
      4,
      6,
      {{1.0f / 4, 0, 0},
       {-1.0f / 6, -1.0f / 6, -1.0f / 6},
       {-1.0f / 6, 1.0f / 6, -1.0f / 6},
       {1.0f / 24, 1.0f / 12, 1.0f / 6},
       {1.0f / 24, -1.0f / 12, 1.0f / 6},
       {0, 0, 1}},
      {{4, 0, -5, 0, 1, 0},
       {0, -4, -4, 1, 1, 0},
       {0, 4, -4, -1, 1, 0},
       {0, -2, -1, 2, 1, 0},
       {0, 2, -1, -2, 1, 0},
       {0, 4, 0, -5, 0, 1}},
      {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}}};
  KILN_CHECK(variant == 1 || variant == 2) << "no Winograd variant " << variant;
  return variant == 1 ? f2 : f4;
}

/// sum over i, j of a[i]·b[j]·term(i, j), its zero terms left out and unit coefficients as adds
/// and subtractions.
Expr bilinear(const std::vector<float>& a, const std::vector<float>& b,
              const std::function<Expr(size_t, size_t)>& term) {
  Expr sum;
  for (size_t i = 0; i < a.size(); ++i) {
    for (size_t j = 0; j < b.size(); ++j) {
      const float coefficient = a[i] * b[j];
      if (coefficient == 0) continue;
      Expr t = term(i, j);
      if (coefficient != 1 && coefficient != -1) t = ir::f32(std::fabs(coefficient)) * t;
      if (!sum.defined()) {
        sum = coefficient < 0 ? ir::f32(0) - t : t;
      } else {
        sum = coefficient < 0 ? sum - t : sum + t;
      }
    }
  }
  return sum;
}

/// cases[index]: a chain of selects that folds to one case once `index` is a constant (an
/// unrolled loop).
Expr select_case(const Expr& index, const std::vector<Expr>& cases) {
  Expr chosen = cases.back();
  for (size_t i = cases.size() - 1; i-- > 0;) {
    chosen = ir::select(ir::EQ::make(index, Expr(int64_t(i))), cases[i], chosen);
  }
  return chosen;
}

/// The first pass of a Winograd transform (`pass`, axes i and b over a tile's rows and points,
/// and `channels`), computed at loop `at` of `consumer` for one vector of channels: both axes
/// unrolled, so that the transform's coefficients fold to adds, channels vectorized.
void schedule_transform_pass(Schedule& sch, const Tensor& pass, const std::string& channels,
                             int64_t lanes, const Tensor& consumer, const std::string& at) {
  auto [vo, vi] = sch.split(pass, sch.axis(pass, channels), lanes);
  const std::string i = sch.axis(pass, "i"), b = sch.axis(pass, "b");
  sch.reorder(pass, {vo, i, b, vi});
  sch.unroll(pass, i);
  sch.unroll(pass, b);
  sch.vectorize(pass, vi);
  sch.compute_at(pass, consumer, at);
}

/// A 3x3 convolution on NHWC by Winograd's F(m x m, 3x3) (m = 2 as oneDNN's jit_fp32_wino_2x3,
/// or 4; knob `winograd` 1 or 2), over the m x m output tiles numbered row by row (tile p at tile
/// row p / TW, column p % TW), with a = m + 2:
///
///   kernel.wino[e, kb, c, ko]  = G g G^T of the filter of (c, output channel kb·KB + ko), at
///                                point e = aξ + ν of the a x a transformed tile (ahead of time)
///   data.wino[n, p, e, c]      = B^T d B of tile p's a x a input window
///   wino.gemm[n, p, e, k]      = sum over c of data.wino · kernel.wino: a² matrix products
///   O[n, oh, ow, k]            = A^T M A of tile (oh / m, ow / m)'s products M, its element
///                                (oh % m, ow % m)
///
/// 2.25x (m = 2) or 4x (m = 4) fewer multiplications than the direct convolution, for three
/// passes over the tiles. They stay in cache: tile_oh rows of tiles are transformed, multiplied and
/// transformed back at a time, steps in parallel. The products accumulate tile_ow consecutive tiles
/// (across rows) × block_k_vectors vectors of output channels in registers, input channels unrolled
/// by unroll_c (rows and unroll_c rounded down to divisors). With channels_outer, one block of
/// output channels at a time across all steps, so that its kernel.wino block stays in cache (late
/// layers, whose weights outgrow it: a² values a weight where the direct convolution has 9), the
/// whole input transformed first.
Schedule conv2d_winograd_schedule(const Workload& w, const Target& t, const ConfigSpace& space,
                                  const Config& c) {
  KILN_CHECK(winograd_applies(w, t.vector_lanes))
      << "the Winograd variant does not apply to " << w.canonical();
  const int64_t lanes = t.vector_lanes;
  const int64_t kb = space.value(c, "block_k_vectors") * lanes;
  const int64_t channels = w.in_channels, k_blocks = ceil_div(w.out_channels, kb);
  const WinogradTransforms& f = winograd_transforms(space.value(c, "winograd"));
  const int64_t m = f.m, alpha = f.alpha, points = alpha * alpha;
  const int64_t tiles_h = ceil_div(w.out_height(), m), tiles_w = ceil_div(w.out_width(), m);
  // Rows of tiles a step, rounded down to a divisor of the rows of tiles: with a last step of
  // fewer rows, the products' loops take bounds known only at run time and test every
  // accumulator (256@14, 4 rows a step of 7: a third of the speed).
  const int64_t rows = divisor_at_most(tiles_h, space.value(c, "tile_oh"));
  const int64_t tile = std::min(space.value(c, "tile_ow"), rows * tiles_w);
  const int64_t uc = divisor_at_most(channels, space.value(c, "unroll_c"));
  const bool parallel = space.value(c, "parallel") == 1;
  const bool channels_outer = space.value(c, "channels_outer") == 1;
  // Parts of the output channels' blocks a step of rows of tiles is split into (a divisor of
  // the blocks; with channels_outer each block is a step already).
  const int64_t k_parts = channels_outer ? 1 : divisor_at_most(k_blocks, space.value(c, "k_steps"));

  Schedule sch;
  std::vector<Shape> in_shapes = w.input_shapes();
  Tensor input = sch.placeholder("I", in_shapes[0]);
  Tensor weight = sch.placeholder("W", in_shapes[1]);
  const EpilogueInputs epilogue = add_epilogue_inputs(sch, w, w.output_shape());

  Tensor kernel = sch.compute(
      "kernel.wino", {points, k_blocks, channels, kb}, {"e", "kb", "c", "ko"},
      [&](const std::vector<Expr>& x) {
        Expr k = x[1] * Expr(kb) + x[3];
        Expr kc = ir::min(k, Expr(w.out_channels - 1));
        std::vector<Expr> cases;
        for (int64_t e = 0; e < points; ++e) {
          cases.push_back(bilinear(f.g[e / alpha], f.g[e % alpha], [&](size_t i, size_t j) {
            return weight({Expr(int64_t(i)), Expr(int64_t(j)), x[2], kc});
          }));
        }
        return ir::select(ir::LT::make(k, Expr(w.out_channels)), select_case(x[0], cases),
                          ir::f32(0));
      });
  // B^T d B in two passes, d B (rows) then B^T of that: 2·a·a rows of B^T summed instead of
  // a² pairs of them.
  Tensor data_rows = sch.compute(
      "data.rows", {w.batch_n, tiles_h * tiles_w, alpha, alpha, channels},
      {"n", "p", "i", "b", "c"}, [&](const std::vector<Expr>& x) {
        Expr ty = x[1] / Expr(tiles_w), tx = x[1] % Expr(tiles_w);
        Expr h = ty * Expr(m) + x[2] - Expr(w.pad_h);
        auto tap = [&](size_t, size_t j) {
          Expr col = tx * Expr(m) + Expr(int64_t(j)) - Expr(w.pad_w);
          Expr v = input({x[0], clamp(h, w.height - 1), clamp(col, w.width - 1), x[4]});
          return ir::select(in_range(h, w.height) && in_range(col, w.width), v, ir::f32(0));
        };
        std::vector<Expr> cases;
        for (int64_t b = 0; b < alpha; ++b) cases.push_back(bilinear({1}, f.bt[b], tap));
        return select_case(x[3], cases);
      });
  Tensor data =
      sch.compute("data.wino", {w.batch_n, tiles_h * tiles_w, points, channels},
                  {"n", "p", "e", "c"}, [&](const std::vector<Expr>& x) {
                    std::vector<Expr> cases;
                    for (int64_t e = 0; e < points; ++e) {
                      cases.push_back(bilinear(f.bt[e / alpha], {1}, [&](size_t i, size_t) {
                        return data_rows({x[0], x[1], Expr(int64_t(i)), Expr(e % alpha), x[3]});
                      }));
                    }
                    return select_case(x[2], cases);
                  });
  Tensor gemm = sch.compute_sum("wino.gemm", {w.batch_n, tiles_h * tiles_w, points, w.out_channels},
                                {"n", "p", "e", "k"}, {channels}, {"c"},
                                [&](const std::vector<Expr>& x, const std::vector<Expr>& r) {
                                  return data({x[0], x[1], x[2], r[0]}) *
                                         kernel({x[2], x[3] / Expr(kb), r[0], x[3] % Expr(kb)});
                                });
  Tensor acc = sch.cache_write(gemm);
  // A^T M A in two passes as well: M A (cols), then A^T of that.
  Tensor cols =
      sch.compute("wino.cols", {w.batch_n, tiles_h * tiles_w, alpha, m, w.out_channels},
                  {"n", "p", "i", "b", "k"}, [&](const std::vector<Expr>& x) {
                    std::vector<Expr> cases;
                    for (int64_t b = 0; b < m; ++b) {
                      cases.push_back(bilinear({1}, f.at[b], [&](size_t, size_t j) {
                        return gemm({x[0], x[1], x[2] * Expr(alpha) + Expr(int64_t(j)), x[4]});
                      }));
                    }
                    return select_case(x[3], cases);
                  });
  Tensor out =
      sch.compute("O", w.output_shape(), {"n", "oh", "ow", "k"}, [&](const std::vector<Expr>& x) {
        Expr p = x[1] / Expr(m) * Expr(tiles_w) + x[2] / Expr(m);
        std::vector<Expr> cases;
        for (int64_t a = 0; a < m; ++a) {
          cases.push_back(bilinear(f.at[a], {1}, [&](size_t i, size_t) {
            return cols({x[0], p, Expr(int64_t(i)), x[2] % Expr(m), x[3]});
          }));
        }
        Expr sum = select_case(x[1] % Expr(m), cases);
        return apply_epilogue(w, epilogue, sum, x[3], x);
      });

  {
    auto [kvo, kvi] = sch.split(kernel, sch.axis(kernel, "ko"), lanes);
    sch.vectorize(kernel, kvi);
    sch.prepack(kernel);  // weights are constant: transformed once
  }
  // O: a step of tile_oh rows of tiles (m·tile_oh output rows), each tile's m x m outputs
  // unrolled so that the transform folds to adds, output channels vectorized; the step's
  // products are computed at it.
  auto [ohs, ohr] = sch.split(out, sch.axis(out, "oh"), m * rows);
  auto [ohm, ohi] = sch.split(out, ohr, m);
  auto [owo, owi] = sch.split(out, sch.axis(out, "ow"), m);
  auto [oko, oki] = sch.split(out, sch.axis(out, "k"), kb);
  auto [okvo, okvi] = sch.split(out, oki, lanes);
  const std::string n = sch.axis(out, "n");
  std::string steps;
  if (channels_outer) {
    sch.reorder(out, {n, oko, ohs, ohm, owo, okvo, ohi, owi, okvi});
    steps = sch.fuse(out, sch.fuse(out, n, oko), ohs);
  } else if (k_parts > 1) {
    // Each step's rows of tiles once for each part of the output channels, all parts' steps
    // parallel: a step transforms its input again for each part, and 7 rows of tiles (28x28
    // by F(4x4)) split evenly over 2 threads.
    auto [okp, okb] = sch.split(out, oko, k_blocks / k_parts);
    sch.reorder(out, {n, ohs, okp, ohm, owo, okb, okvo, ohi, owi, okvi});
    steps = sch.fuse(out, sch.fuse(out, n, ohs), okp);
  } else {
    sch.reorder(out, {n, ohs, ohm, owo, oko, okvo, ohi, owi, okvi});
    steps = sch.fuse(out, n, ohs);
  }
  sch.unroll(out, ohi);
  sch.unroll(out, owi);
  sch.vectorize(out, okvi);
  if (parallel) sch.parallel(out, steps);
  sch.compute_at(gemm, out, steps);
  schedule_transform_pass(sch, cols, "k", lanes, out, okvo);

  // The products: for each point e and block of output channels (its kernel.wino block stays
  // in cache), register tiles of `tile` tiles × KB channels.
  auto [ko, ki] = sch.split(gemm, sch.axis(gemm, "k"), kb);
  auto [kvo, kvi] = sch.split(gemm, ki, lanes);
  auto [po, pi] = sch.split(gemm, sch.axis(gemm, "p"), tile);
  const std::string gn = sch.axis(gemm, "n");
  sch.reorder(gemm, {gn, sch.axis(gemm, "e"), ko, po, pi, kvo, kvi});
  sch.vectorize(gemm, kvi);
  sch.compute_at(acc, gemm, po);
  auto [co, cii] = sch.split(acc, sch.axis(acc, "c"), uc);
  auto [akvo, akvi] = sch.split(acc, sch.axis(acc, "k"), lanes);
  const std::string ap = sch.axis(acc, "p");
  sch.reorder(acc, {co, cii, ap, akvo, akvi});
  sch.unroll(acc, cii);
  sch.unroll(acc, ap);
  sch.unroll(acc, akvo);
  sch.vectorize(acc, akvi);

  // The input transform of the step, before its products; with channels_outer, of all steps
  // first.
  auto [dco, dci] = sch.split(data, sch.axis(data, "c"), lanes);
  const std::string de = sch.axis(data, "e");
  sch.reorder(data, {dco, de, dci});
  sch.unroll(data, de);
  sch.vectorize(data, dci);
  schedule_transform_pass(sch, data_rows, "c", lanes, data, dco);
  if (!channels_outer) {
    sch.compute_at(data, gemm, gn);
  } else if (parallel) {
    sch.parallel(data, sch.fuse(data, sch.axis(data, "n"), sch.axis(data, "p")));
  }
  return sch;
}

}  // namespace

ConfigSpace conv2d_space(const Workload& w, const Target& t) {
  std::vector<Knob> knobs = {
      {"block_k_vectors", {1, 2, 4}},                   // output channels per block
      {"block_c", {16, 8, 4, 1, 32, 64}},               // input channels per block
      {"tile_ow", {7, 14, 8, 4, 2, 1, 6, 12, 16, 28}},  // output columns per register tile
      {"unroll_c", {1, 2, 4, 8}},                       // unroll of the in-block channel loop
      {"parallel", {1, 0}},
  };
  // 0: channel-blocked (above); 1: direct on NCHW (conv2d_direct_schedule), where it applies.
  const bool direct = direct_columns(w, t.vector_lanes) > 0;
  if (direct) knobs.push_back({"variant", {0, 1}});
  // Output rows per register tile (a tile is tile_oh × tile_ow × block_k_vectors vectors); in
  // the direct variant, a multiple of the rows block_k_vectors leaves. Appended last, with 1
  // first, so the indices of records stored before it keep their meaning.
  knobs.push_back({"tile_oh", {1, 2, 4}});
  const size_t tile_oh_knob = knobs.size() - 1;
  const bool nhwc_direct = nhwc_direct_applies(w);
  if (nhwc_direct) {
    // On NHWC, 1: direct (conv2d_nhwc_direct_schedule), where it applies; appended after tile_oh
    // for the same reason.
    knobs.push_back({"variant", {0, 1}});
    // The direct NHWC variant's loop order: 0 pixel tiles outside blocks of output channels,
    // 1 the other way round (see conv2d_nhwc_direct_schedule).
    knobs.push_back({"channels_outer", {0, 1}});
  }
  // 1: Winograd's F(2x2, 3x3), 2: F(4x4, 3x3) (conv2d_winograd_schedule), where it applies;
  // appended last (2 after the others, so stored indices keep their meaning). It reads
  // block_k_vectors, tile_ow (tiles per register tile), unroll_c, parallel, tile_oh (rows of
  // tiles per step) and channels_outer.
  const bool winograd = winograd_applies(w, t.vector_lanes);
  if (winograd) knobs.push_back({"winograd", {0, 1, 2}});
  // Winograd without channels_outer: each step's rows of tiles split into this many parts of
  // the output channels, each a parallel step (conv2d_winograd_schedule); appended last.
  if (winograd) knobs.push_back({"k_steps", {1, 2, 4}});
  ConfigSpace space("conv2d", knobs);
  // A tile keeps tile_oh × tile_ow × block_k_vectors accumulators, a step's block_k_vectors
  // weight vectors and one broadcast input live (in the direct variant tile_ow counts output
  // channels and block_k_vectors column vectors: the same bound).
  templates::fit_register_budget(space, t, [tile_oh_knob](const std::vector<int64_t>& v) {
    return v[tile_oh_knob] * v[2] * v[0] + v[0] + 1;
  });
  // Default on x86: one vector of output channels × 28 output columns (28 accumulators), input
  // channels in blocks of 16 unrolled by 4: the fastest of a hand-picked set on AVX-512.
  // On AArch64 (NEON, 4 lanes): 4 vectors of output channels × 6 columns (24 accumulators), so
  // a step loads 10 operands for 24 FMAs instead of 29 for 28; input channels unrolled by 2, as
  // by 4 LLVM keeps more input values live than the 8 registers left and spills (llvm-mca:
  // 0.81 of the FMA peak by 4, 0.99 by 2; bench/arm_mca_bench.cc).
  std::vector<int64_t> defaults =
      t.is_aarch64() ? std::vector<int64_t>{4, 16, 6, 2, 1} : std::vector<int64_t>{1, 16, 28, 4, 1};
  if (!t.is_aarch64() && w.out_width() <= 14) {
    // Output rows of at most 14 (a network's late layers): a register tile spanning the whole
    // row, so padding columns are skipped too (padding_skip), of two vectors of output channels,
    // input channels in blocks of 64: 1.1-1.6x the default above on ResNet-50's and
    // MobileNetV2's 7x7 and 14x14 layers on AVX-512 (kiln bench, 1 thread).
    int64_t tile = 14;
    for (int64_t choice : knobs[2].choices) {
      if (choice >= w.out_width() && choice < tile) tile = choice;
    }
    defaults = {w.out_channels >= 32 ? 2 : 1, w.in_channels >= 64 ? 64 : 16, tile, 4, 1};
  }
  if (direct) defaults.push_back(0);
  defaults.push_back(1);
  if (nhwc_direct) {
    // 1x1 kernels and inputs of fewer channels than a vector (a network's stem) on NHWC: the
    // direct variant, two vectors of output channels × 7 pixels, input channels in blocks of 64.
    // The blocked one spends more in its copies than these few FMAs a pixel: 2.2x its speed on
    // ResNet-50's 1x1 256->64 at 56x56, 6.2x on its 7x7 stem (kiln bench, 1 thread).
    const bool direct_default =
        (w.kernel_h == 1 && w.kernel_w == 1) || w.in_channels < t.vector_lanes;
    if (direct_default && !t.is_aarch64()) defaults = {2, 64, 7, 4, 1, 1};
    defaults.push_back(direct_default && !t.is_aarch64() ? 1 : 0);
    // Output channels outside where the weights outgrow the input (K·R·S > H·W): ResNet-50's
    // 1x1 1024->512 at 14x14 at 0.99 of oneDNN, against 0.73 with pixels outside.
    defaults.push_back(w.out_channels * w.kernel_h * w.kernel_w > w.height * w.width ? 1 : 0);
  }
  if (winograd) defaults.push_back(0);
  if (winograd && !t.is_aarch64()) {
    // Winograd wherever it applies on x86 (the tuner chose it on all four 3x3 layers of
    // ResNet-50, 300 trials): 4 vectors of output channels × 4 tiles, two rows of tiles a
    // step. Where the transformed weights (16 values a weight) outgrow half an L2 (1 MiB), 2
    // vectors × 7-12 tiles, and a block of output channels across all steps (256@14: 181.5
    // GFLOP/s, 1.5x oneDNN, kiln bench, 1 thread); on a 7x7 output (16 tiles) all rows of tiles
    // in each block's step (512@7: 78.3 against 53.2 with a row a step). The blocks are the
    // parallel steps there: with all 16 tiles in one step outside them, a second thread had
    // nothing to do (512@7, 2 threads: 80 GFLOP/s, against 128-167 with the blocks outside).
    const bool large_weights = 16 * w.in_channels * w.out_channels * 4 > (int64_t{1} << 20);
    const bool few_tiles = ceil_div(w.out_height(), 2) * ceil_div(w.out_width(), 2) <= 16;
    // Where the weights are small, F(4x4, 3x3) (64@56: 291.5 GFLOP/s against 205.0 by F(2x2,
    // 3x3), 128@28: 362.6 against 228.5; kiln run, 1 thread, AMD EPYC). Where they are large,
    // F(4x4)'s 36 values a weight cost more than its fewer products save (512@7: 69.3 against
    // 79.6).
    defaults = {4, 16, 4, 4, 1, 2, 0, 0, 2};
    if (large_weights) defaults = {2, 16, 12, 8, 1, few_tiles ? 4 : 1, 0, 1, 1};
  }
  if (winograd) defaults.push_back(1);
  templates::set_default_if_in_space(space, defaults);
  return space;
}

Schedule conv2d_schedule(const Workload& w, const Target& t, const ConfigSpace& space,
                         const Config& c) {
  if (space.knob_index("winograd") >= 0 && space.value(c, "winograd") != 0) {
    return conv2d_winograd_schedule(w, t, space, c);
  }
  if (space.knob_index("variant") >= 0 && space.value(c, "variant") == 1) {
    return w.layout == Layout::kNCHW ? conv2d_direct_schedule(w, t, space, c)
                                     : conv2d_nhwc_direct_schedule(w, t, space, c);
  }
  const int64_t lanes = t.vector_lanes;
  const int64_t kb = space.value(c, "block_k_vectors") * lanes;
  const int64_t cb = space.value(c, "block_c");
  const int64_t tile_ow = space.value(c, "tile_ow");
  const int64_t tile_oh = space.value(c, "tile_oh");
  const int64_t unroll_c = space.value(c, "unroll_c");
  const bool parallel = space.value(c, "parallel") == 1;
  const int64_t groups = w.groups;
  const int64_t cg = w.in_channels / groups, kg = w.out_channels / groups;
  const int64_t c_blocks = ceil_div(cg, cb), k_blocks = ceil_div(kg, kb);
  const int64_t oh = w.out_height(), ow = w.out_width();
  const bool whole_rows = tile_ow >= ow;

  Schedule sch;
  std::vector<Shape> in_shapes = w.input_shapes();
  Tensor input = sch.placeholder("I", in_shapes[0]);
  Tensor weight = sch.placeholder("W", in_shapes[1]);
  const EpilogueInputs epilogue = add_epilogue_inputs(sch, w, w.output_shape());

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
  Tensor blocked = sch.compute_sum(
      "out.blocked", {w.batch_n, groups, k_blocks, oh, ow, kb}, {"n", "g", "kb", "oh", "ow", "ko"},
      {c_blocks, w.kernel_h, w.kernel_w, cb}, {"cb", "r", "s", "ci"},
      [&](const std::vector<Expr>& x, const std::vector<Expr>& r) {
        Expr h = x[3] * Expr(w.stride_h) + r[1] * Expr(w.dilation_h);
        Expr col = x[4] * Expr(w.stride_w) + r[2] * Expr(w.dilation_w);
        return data({x[0], x[1], r[0], h, col, r[3]}) *
               kernel({x[1], x[2], r[0], r[1], r[2], r[3], x[5]});
      },
      padding_skip(w, whole_rows));
  Tensor out = unpack_output(sch, w, epilogue,
                             [&](const Expr& n, const Expr& k, const Expr& y, const Expr& x) {
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
  // The blocked output: tiles of tile_oh × tile_ow × kb, accumulated locally.
  Tensor acc = tile_blocked_output(sch, blocked, "kb", "ko", tile_oh, tile_ow, lanes, parallel);
  {
    auto [cio, cii] = sch.split(acc, sch.axis(acc, "ci"), unroll_c);
    auto [kvo, kvi] = sch.split(acc, sch.axis(acc, "ko"), lanes);
    std::string aoh = sch.axis(acc, "oh"), aow = sch.axis(acc, "ow");
    sch.reorder(acc,
                {sch.axis(acc, "n"), sch.axis(acc, "g"), sch.axis(acc, "kb"), sch.axis(acc, "cb"),
                 sch.axis(acc, "r"), sch.axis(acc, "s"), cio, cii, aoh, aow, kvo, kvi});
    sch.unroll(acc, cii);
    sch.unroll(acc, aoh);
    sch.unroll(acc, aow);
    sch.unroll(acc, kvo);
    sch.vectorize(acc, kvi);
    if (whole_rows && w.pad_w > 0) sch.unroll(acc, sch.axis(acc, "s"));  // see padding_skip
  }
  schedule_unpack(sch, w, out, kb, lanes, parallel);
  return sch;
}

namespace {

/// Whether the direct variant of depthwise convolution applies: NCHW, column stride 1 or 2, unit
/// dilation, and output rows of at least one vector.
/// The vector width of the direct variant: the target's, or for output rows narrower than
/// that the widest power of two that fits in one (8 for 14 columns, 4 for 7), so that the small
/// late layers of a network need no channel blocking either.
int64_t depthwise_direct_lanes(const Workload& w, int64_t lanes) {
  int64_t fit = lanes;
  while (fit > 4 && fit > w.out_width()) fit /= 2;
  return fit;
}

bool depthwise_direct_applies(const Workload& w, int64_t lanes) {
  return w.layout == Layout::kNCHW && (w.stride_w == 1 || w.stride_w == 2) && w.dilation_h == 1 &&
         w.dilation_w == 1 && w.out_width() >= depthwise_direct_lanes(w, lanes);
}

/// Depthwise convolution computed directly on NCHW, vectorized along output columns: no
/// channel blocking, so no layout transposes (which cost a depthwise convolution, with its
/// few taps a point, more than its arithmetic). Each channel's input is copied into a
/// zero-bordered plane (data.padded, computed a channel at a time, so it stays in L1) through
/// masked loads; an output row is covered by whole vectors, the last shifted inwards to end at
/// the row's end (overlapping the one before), so no vector is partial. A tile of th rows × one
/// vector accumulates over the R×S window in registers, each tap's weight broadcast. With column
/// stride 2 a tap's vector reads every other column of the padded row, which code generation
/// loads as two dense vectors and a shuffle of their even lanes. The knobs
/// of the blocked variant are read as: tile_ow the rows of a tile (rounded down to a divisor of
/// the output height); block_c_vectors does not apply. With an epilogue, the sum is a stage of
/// its own (O.sum) computed at the output's vector tile, and O applies the epilogue to it.
Schedule depthwise_direct_schedule(const Workload& w, const Target& t, const ConfigSpace& space,
                                   const Config& c) {
  const int64_t lanes = depthwise_direct_lanes(w, t.vector_lanes);
  KILN_CHECK(depthwise_direct_applies(w, t.vector_lanes))
      << "the direct variant does not apply to " << w.canonical();
  const int64_t th = divisor_at_most(w.out_height(), space.value(c, "tile_ow"));
  const bool unroll_rs = space.value(c, "unroll_rs") == 1;
  const bool parallel = space.value(c, "parallel") == 1;

  Schedule sch;
  std::vector<Shape> in_shapes = w.input_shapes();
  Tensor input = sch.placeholder("I", in_shapes[0]);
  Tensor weight = sch.placeholder("W", in_shapes[1]);
  const EpilogueInputs epilogue = add_epilogue_inputs(sch, w, w.output_shape());
  Tensor data =
      sch.compute("data.padded", {w.batch_n, w.in_channels, padded_height(w), padded_width(w)},
                  {"n", "c", "h", "w"}, [&](const std::vector<Expr>& x) {
                    Expr ih = x[2] - Expr(w.pad_h), iw = x[3] - Expr(w.pad_w);
                    return ir::guarded_select(in_range(ih, w.height) && in_range(iw, w.width),
                                              input({x[0], x[1], ih, iw}), ir::f32(0));
                  });
  const std::vector<std::string> out_axes = {"n", "c", "oh", "ow"};
  Tensor out = sch.compute_sum(
      w.has_epilogue() ? "O.sum" : "O", w.output_shape(), out_axes, {w.kernel_h, w.kernel_w},
      {"r", "s"}, [&](const std::vector<Expr>& x, const std::vector<Expr>& r) {
        Expr col = w.stride_w == 1 ? x[3] + r[1] : x[3] * Expr(w.stride_w) + r[1];
        return data({x[0], x[1], x[2] * Expr(w.stride_h) + r[0], col}) *
               weight({x[1], Expr(0), r[0], r[1]});
      });
  Tensor sum = out;
  if (w.has_epilogue()) {
    out = sch.compute("O", w.output_shape(), out_axes, [&](const std::vector<Expr>& x) {
      return apply_epilogue(w, epilogue, sum(x), x[1], x);
    });
  }
  // The accumulators stay in the output tile (or in O.sum's, computed at it): LLVM keeps them
  // in registers across the unrolled window, as nothing else the tile reads can alias them.
  auto [wo, wi] = sch.split_shift_inwards(out, sch.axis(out, "ow"), lanes);
  auto [ho, hi] = sch.split(out, sch.axis(out, "oh"), th);
  const std::string n = sch.axis(out, "n"), ch = sch.axis(out, "c");
  if (w.has_epilogue()) {
    sch.reorder(out, {n, ch, ho, wo, hi, wi});
    sch.compute_at(sum, out, wo);
    auto [swo, swi] = sch.split(sum, sch.axis(sum, "ow"), lanes);
    const std::string r = sch.axis(sum, "r"), s = sch.axis(sum, "s"), sh = sch.axis(sum, "oh");
    sch.reorder(sum, {sch.axis(sum, "n"), sch.axis(sum, "c"), r, s, sh, swo, swi});
    if (unroll_rs) {
      sch.unroll(sum, r);
      sch.unroll(sum, s);
    }
    sch.unroll(sum, sh);
    sch.vectorize(sum, swi);
  } else {
    const std::string r = sch.axis(out, "r"), s = sch.axis(out, "s");
    sch.reorder(out, {n, ch, ho, wo, r, s, hi, wi});
    if (unroll_rs) {
      sch.unroll(out, r);
      sch.unroll(out, s);
    }
  }
  sch.unroll(out, hi);
  sch.vectorize(out, wi);
  const std::string plane = sch.fuse(out, n, ch);
  if (parallel) sch.parallel(out, plane);
  sch.compute_at(data, out, plane);
  {
    auto [dwo, dwi] = sch.split_shift_inwards(data, sch.axis(data, "w"), lanes);
    sch.vectorize(data, dwi);
  }
  return sch;
}

/// Whether the direct NHWC variant applies: channels in whole vectors.
bool depthwise_nhwc_direct_applies(const Workload& w, int64_t lanes) {
  return w.layout == Layout::kNHWC && w.in_channels % lanes == 0;
}

/// Depthwise convolution computed directly on NHWC, vectorized along channels: no padded copy
/// of the input and no blocked output to unpack (a depthwise convolution does too few FMAs per
/// element for either copy to pay), as oneDNN's brdgmm kernel reads NHWC. A tap off the input
/// (padding) reads a clamped element and selects zero, one scalar test per tap and column that
/// the channel vectors share. A tile of tile_ow output columns × block_c_vectors channel
/// vectors (rounded down to a divisor of the channel vectors) accumulates over the R×S window
/// in registers. (n, row, channel block) run in parallel; with an epilogue the sum is a stage
/// of its own (O.sum) computed at the output's tile, as in the direct NCHW variant.
Schedule depthwise_nhwc_direct_schedule(const Workload& w, const Target& t,
                                        const ConfigSpace& space, const Config& c) {
  const int64_t lanes = t.vector_lanes;
  KILN_CHECK(depthwise_nhwc_direct_applies(w, lanes))
      << "the direct NHWC variant does not apply to " << w.canonical();
  const int64_t block = divisor_at_most(w.in_channels / lanes, space.value(c, "block_c_vectors"));
  const int64_t tile_ow = std::min(space.value(c, "tile_ow"), w.out_width());
  const bool unroll_rs = space.value(c, "unroll_rs") == 1;
  const bool parallel = space.value(c, "parallel") == 1;

  Schedule sch;
  std::vector<Shape> in_shapes = w.input_shapes();
  Tensor input = sch.placeholder("I", in_shapes[0]);
  Tensor weight = sch.placeholder("W", in_shapes[1]);
  const EpilogueInputs epilogue = add_epilogue_inputs(sch, w, w.output_shape());
  const std::vector<std::string> out_axes = {"n", "oh", "ow", "c"};
  Tensor out = sch.compute_sum(
      w.has_epilogue() ? "O.sum" : "O", w.output_shape(), out_axes, {w.kernel_h, w.kernel_w},
      {"r", "s"}, [&](const std::vector<Expr>& x, const std::vector<Expr>& r) {
        Expr ih = x[1] * Expr(w.stride_h) + r[0] * Expr(w.dilation_h) - Expr(w.pad_h);
        Expr iw = x[2] * Expr(w.stride_w) + r[1] * Expr(w.dilation_w) - Expr(w.pad_w);
        Expr v = input({x[0], clamp(ih, w.height - 1), clamp(iw, w.width - 1), x[3]});
        Expr tap = ir::select(in_range(ih, w.height) && in_range(iw, w.width), v, ir::f32(0));
        return tap * weight({r[0], r[1], x[3], Expr(0)});
      });
  Tensor sum = out;
  if (w.has_epilogue()) {
    out = sch.compute("O", w.output_shape(), out_axes, [&](const std::vector<Expr>& x) {
      return apply_epilogue(w, epilogue, sum(x), x[3], x);
    });
  }
  auto [cbo, cbi] = sch.split(out, sch.axis(out, "c"), block * lanes);
  auto [cvo, cvi] = sch.split(out, cbi, lanes);
  auto [owo, owi] = sch.split(out, sch.axis(out, "ow"), tile_ow);
  const std::string n = sch.axis(out, "n"), oh = sch.axis(out, "oh");
  if (w.has_epilogue()) {
    sch.reorder(out, {n, oh, cbo, owo, owi, cvo, cvi});
    sch.compute_at(sum, out, owo);
    auto [scvo, scvi] = sch.split(sum, sch.axis(sum, "c"), lanes);
    const std::string r = sch.axis(sum, "r"), s = sch.axis(sum, "s"), sow = sch.axis(sum, "ow");
    sch.reorder(sum, {sch.axis(sum, "n"), sch.axis(sum, "oh"), r, s, sow, scvo, scvi});
    if (unroll_rs) {
      sch.unroll(sum, r);
      sch.unroll(sum, s);
    }
    sch.unroll(sum, sow);
    sch.unroll(sum, scvo);
    sch.vectorize(sum, scvi);
  } else {
    const std::string r = sch.axis(out, "r"), s = sch.axis(out, "s");
    sch.reorder(out, {n, oh, cbo, owo, r, s, owi, cvo, cvi});
    if (unroll_rs) {
      sch.unroll(out, r);
      sch.unroll(out, s);
    }
  }
  sch.unroll(out, owi);
  sch.unroll(out, cvo);
  sch.vectorize(out, cvi);
  if (parallel) sch.parallel(out, sch.fuse(out, sch.fuse(out, n, oh), cbo));
  return sch;
}

}  // namespace

ConfigSpace depthwise_space(const Workload& w, const Target& t) {
  std::vector<Knob> knobs = {
      {"block_c_vectors", {1, 2, 4}},                   // channels per block
      {"tile_ow", {7, 14, 8, 4, 2, 1, 6, 12, 16, 28}},  // output columns per register tile
      {"unroll_rs", {1, 0}},                            // unroll the kernel window
      {"parallel", {1, 0}},
  };
  // 0: channel-blocked (below); 1: direct on NCHW (depthwise_direct_schedule), where it applies.
  const bool direct = depthwise_direct_applies(w, t.vector_lanes);
  if (direct) knobs.push_back({"variant", {0, 1}});
  // The channel-blocked variant's padded input: 0 packed whole before the output loop, 1 the
  // rows an output row reads packed inside that loop, where they stay in cache (a row is packed
  // again for each output row that reads it: R / stride times). Appended last, with 0 first, so
  // the indices of records stored before it keep their meaning.
  knobs.push_back({"pack_per_row", {0, 1}});
  // On NHWC, 1: direct (depthwise_nhwc_direct_schedule), where it applies; appended after
  // pack_per_row for the same reason.
  if (depthwise_nhwc_direct_applies(w, t.vector_lanes)) knobs.push_back({"variant", {0, 1}});
  ConfigSpace space("depthwise_conv2d", knobs);
  // Blocked and direct NHWC: tile_ow × block_c_vectors accumulators, the weights of a tap and
  // an input vector; direct NCHW: tile_ow rows of one vector, a broadcast weight and an input
  // vector.
  templates::fit_register_budget(space, t, [direct](const std::vector<int64_t>& v) {
    if (direct && v[4] == 1) return v[1] + 2;
    return v[1] * v[0] + v[0] + 1;
  });
  return space;
}

Schedule depthwise_schedule(const Workload& w, const Target& t, const ConfigSpace& space,
                            const Config& c) {
  if (space.knob_index("variant") >= 0 && space.value(c, "variant") == 1) {
    return w.layout == Layout::kNCHW ? depthwise_direct_schedule(w, t, space, c)
                                     : depthwise_nhwc_direct_schedule(w, t, space, c);
  }
  const int64_t lanes = t.vector_lanes;
  const int64_t cb = space.value(c, "block_c_vectors") * lanes;
  const int64_t tile_ow = space.value(c, "tile_ow");
  const bool unroll_rs = space.value(c, "unroll_rs") == 1;
  const bool parallel = space.value(c, "parallel") == 1;
  const bool pack_per_row = space.value(c, "pack_per_row") == 1;
  const int64_t channels = w.in_channels, c_blocks = ceil_div(channels, cb);
  const int64_t oh = w.out_height(), ow = w.out_width();

  Schedule sch;
  std::vector<Shape> in_shapes = w.input_shapes();
  Tensor input = sch.placeholder("I", in_shapes[0]);
  Tensor weight = sch.placeholder("W", in_shapes[1]);
  const EpilogueInputs epilogue = add_epilogue_inputs(sch, w, w.output_shape());
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
  Tensor out = unpack_output(sch, w, epilogue,
                             [&](const Expr& n, const Expr& k, const Expr& y, const Expr& x) {
                               return blocked({n, k / Expr(cb), y, x, k % Expr(cb)});
                             });

  {
    auto [cvo, cvi] = sch.split(data, sch.axis(data, "ci"), lanes);
    sch.vectorize(data, cvi);
    if (parallel && !pack_per_row) {
      sch.parallel(data, sch.fuse(data, sch.axis(data, "cb"), sch.axis(data, "h")));
    }
    auto [kvo, kvi] = sch.split(kernel, sch.axis(kernel, "ci"), lanes);
    sch.vectorize(kernel, kvi);
    sch.prepack(kernel);
  }
  std::string rows;
  Tensor acc = tile_blocked_output(sch, blocked, "cb", "ci", 1, tile_ow, lanes, parallel, &rows);
  if (pack_per_row) sch.compute_at(data, blocked, rows);
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
