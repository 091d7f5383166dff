/// \file
/// The convergence plots of `kiln tune --plot FILE.svg`: the best GFLOP/s found so far against
/// the trial count (a workload), or the estimated latency against the trial count (a model), as
/// self-contained SVG documents with axes, ticks, labels and a title.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "compiler_core/support/status.h"

namespace kiln::tuner {

/// The SVG text of a step plot of `best_so_far` (GFLOP/s after trial 1, 2, ...). Trials without
/// a valid result yet (0 GFLOP/s) are drawn on the x axis. `resumed` trials at the start (from
/// an earlier run) are shaded. An empty series gives a plot with axes and no line.
std::string convergence_svg(const std::vector<double>& best_so_far, const std::string& title,
                            size_t resumed = 0);

/// Writes convergence_svg(...) to `path`. InvalidArgument when the file cannot be written
/// (the message names the path and the system's reason).
Status write_convergence_svg(const std::filesystem::path& path,
                             const std::vector<double>& best_so_far, const std::string& title,
                             size_t resumed = 0);

/// The SVG text of a step plot of a model job's estimated latency (seconds, drawn in ms) after
/// each batch: (trials so far, latency) pairs. `resumed` trials from an earlier run are shaded.
std::string latency_svg(const std::vector<std::pair<int64_t, double>>& curve,
                        const std::string& title, int64_t resumed = 0);

/// Writes latency_svg(...) to `path`; errors as write_convergence_svg.
Status write_latency_svg(const std::filesystem::path& path,
                         const std::vector<std::pair<int64_t, double>>& curve,
                         const std::string& title, int64_t resumed = 0);

}  // namespace kiln::tuner
