/// \file
/// Helpers the strategies share.
#pragma once

#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "compiler_core/schedule/config_space.h"

namespace kiln::tuner {

/// Up to `n` uniform samples of indices in neither `measured` nor `taken`, each added to
/// `taken`; falls back to a scan once sampling stops finding new points, so that a nearly
/// exhausted space still yields all it has.
std::vector<core::Config> sample_unmeasured(const core::ConfigSpace& space, std::mt19937_64& rng,
                                            int n, const std::set<int64_t>& measured,
                                            std::set<int64_t>& taken);

}  // namespace kiln::tuner
