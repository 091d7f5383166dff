/// \file
/// How well a ranking matches the truth: Spearman's rank correlation and the recall of the true
/// best candidates among the predicted best.
#pragma once

#include <cstddef>
#include <span>

namespace kiln::cost {

/// Spearman's rank correlation of `x` and `y` (equal sizes; ties get their average rank), in
/// [-1, 1]. NaN when there are fewer than two points or either side is constant.
double spearman(std::span<const double> x, std::span<const double> y);

/// The number of "true top" items `top_recall` uses: ceil(fraction · n), at least 1.
size_t top_count(size_t n, double fraction);

/// Of the top_count(n, fraction) items with the largest `truth`, the share that are among the
/// `k` items with the largest `predicted` (ties broken by position). In [0, 1]; NaN for no
/// items. k is clamped to n.
double top_recall(std::span<const double> truth, std::span<const double> predicted, double fraction,
                  size_t k);

}  // namespace kiln::cost
