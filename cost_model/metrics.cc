#include "cost_model/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "compiler_core/support/check.h"

namespace kiln::cost {
namespace {

/// Ranks from 1, ties sharing the mean of their positions.
std::vector<double> ranks(std::span<const double> v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double mean = (static_cast<double>(i) + static_cast<double>(j)) / 2 + 1;
    for (size_t k = i; k <= j; ++k) r[order[k]] = mean;
    i = j + 1;
  }
  return r;
}

/// Indices of `v` from the largest value down (ties by position).
std::vector<size_t> descending(std::span<const double> v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] > v[b]; });
  return order;
}

}  // namespace

double spearman(std::span<const double> x, std::span<const double> y) {
  KILN_CHECK(x.size() == y.size())
      << "spearman of " << x.size() << " and " << y.size() << " values";
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (x.size() < 2) return nan;
  std::vector<double> rx = ranks(x), ry = ranks(y);
  const double mean = (static_cast<double>(x.size()) + 1) / 2;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double dx = rx[i] - mean, dy = ry[i] - mean;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx == 0 || syy == 0) return nan;
  return sxy / std::sqrt(sxx * syy);
}

size_t top_count(size_t n, double fraction) {
  return std::max<size_t>(1, static_cast<size_t>(std::ceil(fraction * static_cast<double>(n))));
}

double top_recall(std::span<const double> truth, std::span<const double> predicted, double fraction,
                  size_t k) {
  KILN_CHECK(truth.size() == predicted.size()) << "top_recall of unequal sizes";
  if (truth.empty()) return std::numeric_limits<double>::quiet_NaN();
  const size_t top = std::min(top_count(truth.size(), fraction), truth.size());
  k = std::min(k, truth.size());
  std::vector<size_t> best = descending(truth), picked = descending(predicted);
  std::vector<bool> in_pick(truth.size(), false);
  for (size_t i = 0; i < k; ++i) in_pick[picked[i]] = true;
  size_t found = 0;
  for (size_t i = 0; i < top; ++i) found += in_pick[best[i]] ? 1 : 0;
  return static_cast<double>(found) / static_cast<double>(top);
}

}  // namespace kiln::cost
