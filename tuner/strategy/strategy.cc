#include "tuner/strategy/strategy.h"

#include <algorithm>
#include <random>

#include "compiler_core/support/check.h"
#include "tuner/strategy/strategy_internal.h"
#include "tuner/strategy/xgb_strategy.h"

namespace kiln::tuner {

std::vector<core::Config> sample_unmeasured(const core::ConfigSpace& space, std::mt19937_64& rng,
                                            int n, const std::set<int64_t>& measured,
                                            std::set<int64_t>& taken) {
  std::vector<core::Config> out;
  std::uniform_int_distribution<int64_t> pick(0, space.size() - 1);
  int misses = 0;
  while (int(out.size()) < n && misses < 64 * n + 64) {
    int64_t index = pick(rng);
    if (measured.count(index) || taken.count(index)) {
      ++misses;
      continue;
    }
    taken.insert(index);
    out.push_back(*space.at(index));
  }
  for (int64_t index = 0; index < space.size() && int(out.size()) < n; ++index) {
    if (measured.count(index) || taken.count(index)) continue;
    taken.insert(index);
    out.push_back(*space.at(index));
  }
  return out;
}

namespace {

class RandomStrategy : public Strategy {
 public:
  RandomStrategy(const core::ConfigSpace& space, uint64_t seed) : space_(space), rng_(seed) {}

  std::vector<core::Config> propose(int n, const std::set<int64_t>& measured) override {
    std::set<int64_t> taken;
    return sample_unmeasured(space_, rng_, n, measured, taken);
  }

 private:
  const core::ConfigSpace& space_;
  std::mt19937_64 rng_;
};

/// Every index in order, skipping the measured ones.
class GridStrategy : public Strategy {
 public:
  explicit GridStrategy(const core::ConfigSpace& space) : space_(space) {}

  std::vector<core::Config> propose(int n, const std::set<int64_t>& measured) override {
    std::vector<core::Config> out;
    for (; next_ < space_.size() && int(out.size()) < n; ++next_) {
      if (!measured.count(next_)) out.push_back(*space_.at(next_));
    }
    return out;
  }

 private:
  const core::ConfigSpace& space_;
  int64_t next_ = 0;
};

/// A genetic search: children of two parents chosen by tournament among the fastest configs
/// seen, each knob taken from either parent and mutated with probability 1/knobs; random
/// configs until enough valid ones are known.
class GeneticStrategy : public Strategy {
 public:
  GeneticStrategy(const core::ConfigSpace& space, uint64_t seed) : space_(space), rng_(seed) {}

  void observe(const std::vector<Observation>& observations) override {
    for (const Observation& o : observations) {
      if (o.valid && o.gflops > 0) elite_.push_back(o);
    }
    std::stable_sort(elite_.begin(), elite_.end(), [](const Observation& a, const Observation& b) {
      return a.gflops > b.gflops;
    });
    if (elite_.size() > kElite) elite_.resize(kElite);
  }

  std::vector<core::Config> propose(int n, const std::set<int64_t>& measured) override {
    std::set<int64_t> taken;
    std::vector<core::Config> out;
    if (elite_.size() < kMinParents) return sample_unmeasured(space_, rng_, n, measured, taken);
    const auto& knobs = space_.knobs();
    std::uniform_real_distribution<double> coin(0, 1);
    for (int attempt = 0; int(out.size()) < n && attempt < 32 * n; ++attempt) {
      const core::Config& a = tournament();
      const core::Config& b = tournament();
      std::vector<int64_t> values(knobs.size());
      for (size_t k = 0; k < knobs.size(); ++k) {
        values[k] = coin(rng_) < 0.5 ? a.values[k] : b.values[k];
        if (coin(rng_) < 1.0 / double(knobs.size())) {
          std::uniform_int_distribution<size_t> choice(0, knobs[k].choices.size() - 1);
          values[k] = knobs[k].choices[choice(rng_)];
        }
      }
      // A restricted space (register budget) may not hold the child.
      Result<core::Config> fitting = space_.from_values(values);
      if (!fitting) continue;
      core::Config child = *std::move(fitting);
      if (measured.count(child.index) || taken.count(child.index)) continue;
      taken.insert(child.index);
      out.push_back(child);
    }
    std::vector<core::Config> rest =
        sample_unmeasured(space_, rng_, n - int(out.size()), measured, taken);
    out.insert(out.end(), rest.begin(), rest.end());
    return out;
  }

 private:
  static constexpr size_t kElite = 32;
  static constexpr size_t kMinParents = 8;

  const core::Config& tournament() {
    std::uniform_int_distribution<size_t> pick(0, elite_.size() - 1);
    size_t x = pick(rng_), y = pick(rng_);
    return elite_[std::min(x, y)].config;  // the elite are sorted fastest first
  }

  const core::ConfigSpace& space_;
  std::mt19937_64 rng_;
  std::vector<Observation> elite_;
};

}  // namespace

const char* strategy_names() { return "xgb, ga, random, grid"; }

Status check_strategy_name(const std::string& name) {
  if (name == "xgb" || name == "random" || name == "grid" || name == "ga") return Status::ok();
  return invalid_argument("unknown tuner '" + name + "'; accepted: " + strategy_names());
}

Result<std::unique_ptr<Strategy>> make_strategy(const std::string& name, const SearchTask& task,
                                                uint64_t seed) {
  KILN_CHECK(task.space != nullptr) << "a search task needs its config space";
  const core::ConfigSpace& space = *task.space;
  KILN_RETURN_IF_ERROR(check_strategy_name(name));
  if (name == "xgb") return make_xgb_strategy(task, seed);
  std::unique_ptr<Strategy> s;
  if (name == "random") s = std::make_unique<RandomStrategy>(space, seed);
  if (name == "grid") s = std::make_unique<GridStrategy>(space);
  if (name == "ga") s = std::make_unique<GeneticStrategy>(space, seed);
  return s;
}

}  // namespace kiln::tuner
