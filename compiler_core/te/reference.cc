#include "compiler_core/te/reference.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <thread>
#include <vector>

#include "compiler_core/support/check.h"

namespace kiln::core {
namespace {

/// Runs `body(begin, end)` over [0, rows) split into `threads` contiguous ranges, one
/// std::thread each (this thread takes the first). The reference must not depend on the
/// runtime thread pool, which is one of the things it checks.
void parallel_rows(int64_t rows, int threads, const std::function<void(int64_t, int64_t)>& body) {
  const int64_t parts = std::clamp<int64_t>(threads, 1, std::max<int64_t>(rows, 1));
  if (parts <= 1) {
    body(0, rows);
    return;
  }
  std::vector<std::thread> workers;
  workers.reserve(parts - 1);
  for (int64_t p = 1; p < parts; ++p) {
    workers.emplace_back(body, rows * p / parts, rows * (p + 1) / parts);
  }
  body(0, rows / parts);
  for (std::thread& t : workers) t.join();
}

/// The epilogue of dense and the convolutions: act(sum + bias[channel] + residual[index]).
struct Epilogue {
  Activation act = Activation::kNone;
  const float* bias = nullptr;      ///< one per output channel, or none
  const float* residual = nullptr;  ///< one per output element, or none

  double apply(double sum, int64_t channel, int64_t index) const {
    double x = sum;
    if (bias != nullptr) x += bias[channel];
    if (residual != nullptr) x += residual[index];
    switch (act) {
      case Activation::kNone:
        return x;
      case Activation::kRelu:
        return std::max(x, 0.0);
      case Activation::kRelu6:
        return std::min(std::max(x, 0.0), 6.0);
      case Activation::kHardSwish:
        return x * std::min(std::max(x + 3.0, 0.0), 6.0) / 6.0;
      case Activation::kSigmoid:
        return 1.0 / (1.0 + std::exp(-x));
    }
    KILN_UNREACHABLE() << "unknown activation " << static_cast<int>(act);
  }
};

/// The epilogue's inputs, which follow the operator's own (see workload.h).
Epilogue epilogue_of(const Workload& w, std::span<const float* const> inputs) {
  Epilogue e;
  e.act = w.act;
  size_t next = w.operator_input_shapes().size();
  if (w.bias) e.bias = inputs[next++];
  if (w.residual) e.residual = inputs[next++];
  return e;
}

// Each operator below computes whole rows of its output: a row is every output dimension but
// the innermost one, flattened. Splitting rows rather than only the outermost dimension keeps
// every thread busy when that dimension is 1 (N=1 convolutions, M=1 dense layers).

void matmul_rows(const Workload& w, const float* a, const float* b, float* c, int64_t begin,
                 int64_t end) {
  // Rows are (batch, m); batch is 1 outside batch_matmul.
  for (int64_t row = begin; row < end; ++row) {
    const int64_t bi = row / w.m;
    const float* a_row = a + row * w.k;
    const float* b_mat = b + bi * w.k * w.n;
    float* c_row = c + row * w.n;
    for (int64_t j = 0; j < w.n; ++j) {
      double acc = 0;
      for (int64_t kk = 0; kk < w.k; ++kk) {
        acc += static_cast<double>(a_row[kk]) * b_mat[kk * w.n + j];
      }
      c_row[j] = static_cast<float>(acc);
    }
  }
}

void dense_rows(const Workload& w, const float* x, const float* weight, const Epilogue& epilogue,
                float* y, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    for (int64_t j = 0; j < w.n; ++j) {
      double acc = 0;
      for (int64_t kk = 0; kk < w.k; ++kk) {
        acc += static_cast<double>(x[i * w.k + kk]) * weight[j * w.k + kk];
      }
      y[i * w.n + j] = static_cast<float>(epilogue.apply(acc, j, i * w.n + j));
    }
  }
}

/// Grouped convolution in either layout; depthwise is the case groups = C = K, whose weight
/// shapes ([C,1,R,S] and [R,S,C,1]) have the memory order of the grouped ones ([K,1,R,S] and
/// [R,S,1,K]).
void conv_rows(const Workload& w, const float* in, const float* weight, const Epilogue& epilogue,
               float* out, int64_t begin, int64_t end) {
  const int64_t oh_count = w.out_height();
  const int64_t ow_count = w.out_width();
  const int64_t cpg = w.in_channels / w.groups;   // input channels per group
  const int64_t kpg = w.out_channels / w.groups;  // output channels per group
  const bool nchw = w.layout == Layout::kNCHW;

  auto input_at = [&](int64_t n, int64_t c, int64_t y, int64_t x) -> double {
    if (y < 0 || y >= w.height || x < 0 || x >= w.width) return 0.0;
    if (nchw) return in[((n * w.in_channels + c) * w.height + y) * w.width + x];
    return in[((n * w.height + y) * w.width + x) * w.in_channels + c];
  };
  auto weight_at = [&](int64_t k, int64_t c_in_group, int64_t r, int64_t s) -> double {
    if (nchw) return weight[((k * cpg + c_in_group) * w.kernel_h + r) * w.kernel_w + s];
    return weight[((r * w.kernel_w + s) * cpg + c_in_group) * w.out_channels + k];
  };
  auto compute = [&](int64_t n, int64_t k, int64_t oy, int64_t ox) -> double {
    const int64_t group = k / kpg;
    double acc = 0;
    for (int64_t cg = 0; cg < cpg; ++cg) {
      const int64_t c = group * cpg + cg;
      for (int64_t r = 0; r < w.kernel_h; ++r) {
        const int64_t y = oy * w.stride_h - w.pad_h + r * w.dilation_h;
        for (int64_t s = 0; s < w.kernel_w; ++s) {
          const int64_t x = ox * w.stride_w - w.pad_w + s * w.dilation_w;
          acc += input_at(n, c, y, x) * weight_at(k, cg, r, s);
        }
      }
    }
    return acc;
  };

  for (int64_t row = begin; row < end; ++row) {
    if (nchw) {
      // Rows are (n, k, oy); the row holds ox.
      const int64_t oy = row % oh_count;
      const int64_t k = (row / oh_count) % w.out_channels;
      const int64_t n = row / (oh_count * w.out_channels);
      for (int64_t ox = 0; ox < ow_count; ++ox) {
        const int64_t index = row * ow_count + ox;
        out[index] = static_cast<float>(epilogue.apply(compute(n, k, oy, ox), k, index));
      }
    } else {
      // Rows are (n, oy, ox); the row holds k.
      const int64_t ox = row % ow_count;
      const int64_t oy = (row / ow_count) % oh_count;
      const int64_t n = row / (ow_count * oh_count);
      for (int64_t k = 0; k < w.out_channels; ++k) {
        const int64_t index = row * w.out_channels + k;
        out[index] = static_cast<float>(epilogue.apply(compute(n, k, oy, ox), k, index));
      }
    }
  }
}

}  // namespace

void run_reference(const Workload& workload, std::span<const float* const> inputs, float* output,
                   int threads) {
  const size_t expected_inputs = workload.input_shapes().size();
  KILN_CHECK(inputs.size() == expected_inputs)
      << "reference for " << workload.canonical() << " takes " << expected_inputs << " inputs, got "
      << inputs.size();
  const Shape out_shape = workload.output_shape();
  const int64_t rows = num_elements(out_shape) / std::max<int64_t>(out_shape.back(), 1);

  switch (workload.op) {
    case OpKind::kMatmul:
    case OpKind::kBatchMatmul:
      parallel_rows(rows, threads, [&](int64_t begin, int64_t end) {
        matmul_rows(workload, inputs[0], inputs[1], output, begin, end);
      });
      return;
    case OpKind::kDense: {
      const Epilogue epilogue = epilogue_of(workload, inputs);
      parallel_rows(rows, threads, [&](int64_t begin, int64_t end) {
        dense_rows(workload, inputs[0], inputs[1], epilogue, output, begin, end);
      });
      return;
    }
    case OpKind::kConv2d:
    case OpKind::kDepthwiseConv2d: {
      const Epilogue epilogue = epilogue_of(workload, inputs);
      parallel_rows(rows, threads, [&](int64_t begin, int64_t end) {
        conv_rows(workload, inputs[0], inputs[1], epilogue, output, begin, end);
      });
      return;
    }
  }
  KILN_UNREACHABLE() << "unknown op " << static_cast<int>(workload.op);
}

double max_relative_error(const float* actual, const float* expected, int64_t count) {
  // Relative to the largest expected magnitude, so that outputs near zero (cancellation in
  // long sums) do not blow the error up.
  constexpr double kTiny = 1e-30;
  double max_diff = 0;
  double max_expected = 0;
  for (int64_t i = 0; i < count; ++i) {
    const double a = actual[i];
    const double e = expected[i];
    if (a == e) {
      if (std::isfinite(e)) max_expected = std::max(max_expected, std::fabs(e));
      continue;
    }
    const double diff = std::fabs(a - e);
    // NaN or an infinity on one side only: no finite error describes it.
    if (!std::isfinite(diff)) return std::numeric_limits<double>::infinity();
    max_diff = std::max(max_diff, diff);
    max_expected = std::max(max_expected, std::fabs(e));
  }
  return max_diff / std::max(max_expected, kTiny);
}

}  // namespace kiln::core
