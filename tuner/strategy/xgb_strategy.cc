#include "tuner/strategy/xgb_strategy.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "compiler_core/schedule/templates.h"
#include "compiler_core/support/check.h"
#include "compiler_core/support/log.h"
#include "tuner/strategy/strategy_internal.h"

namespace kiln::tuner {
namespace {

/// Valid configs kept as starting points of annealing chains.
constexpr size_t kElite = 32;
/// With a pre-trained model, own samples are added as continued training until there are this
/// many; then the model is retrained on them alone (the workload's own data ranks it best).
constexpr size_t kOwnSamplesToReplacePretraining = 64;
/// Random configs of the space that put the pre-trained model's scores and the estimate's on
/// one scale (see score).
constexpr size_t kCalibrationConfigs = 256;

/// An affine map of one scorer's costs to standard units.
struct Standardize {
  double mean = 0;
  double spread = 1;
  double operator()(double cost) const { return (cost - mean) / spread; }
};

/// The mean and standard deviation of the finite `costs` (spread 1 when there are too few).
Standardize standardize_over(const std::vector<double>& costs) {
  double sum = 0, squares = 0;
  int finite = 0;
  for (double c : costs) {
    if (std::isfinite(c)) sum += c, squares += c * c, ++finite;
  }
  Standardize out;
  if (finite == 0) return out;
  out.mean = sum / finite;
  const double variance = finite > 1 ? (squares - finite * out.mean * out.mean) / (finite - 1) : 0;
  if (variance > 0) out.spread = std::sqrt(variance);
  return out;
}

bool teaches_nothing(core::MeasureError error) {
  return error == core::MeasureError::kInvalidConfig || error == core::MeasureError::kDeviceLost ||
         error == core::MeasureError::kTimeout;
}

class XgbStrategy : public Strategy {
 public:
  XgbStrategy(const SearchTask& task, uint64_t seed, const XgbStrategyOptions& options)
      : space_(*task.space), options_(options), rng_(seed) {
    options_.model.xgb.seed = seed;
    model_ = cost::make_xgb_cost_model(options_.model);
    Status set = model_->set_workload(task.workload, task.target);
    KILN_CHECK(set.is_ok()) << "the search task's workload has a space but no template: "
                            << set.to_string();
    if (task.log) pretrain(task);
  }

  void observe(const std::vector<Observation>& observations) override {
    for (const Observation& o : observations) {
      if (!o.valid && teaches_nothing(o.error)) continue;
      cost::Sample sample{o.config, o.valid ? o.gflops : 0.0};
      samples_.push_back(sample);
      unfitted_.push_back(sample);
      if (o.valid && o.gflops > 0) {
        ++valid_samples_;
        elite_.push_back(o);
      }
    }
    std::stable_sort(elite_.begin(), elite_.end(), [](const Observation& a, const Observation& b) {
      return a.gflops > b.gflops;
    });
    if (elite_.size() > kElite) elite_.resize(kElite);
  }

  std::vector<core::Config> propose(int n, const std::set<int64_t>& measured) override {
    std::set<int64_t> taken;
    if (n <= 0) return {};
    const bool learnt = learn();
    if (!learnt && !options_.estimate_until_trained) {
      return sample_unmeasured(space_, rng_, n, measured, taken);
    }
    if (learnt != ranked_by_model_) {
      // The pool was ranked by the other scorer: anneal afresh.
      ranked_by_model_ = learnt;
      pool_.clear();
    }

    // Epsilon-greedy: the random share of this batch, its fraction carried to the next.
    random_credit_ += options_.epsilon * n;
    const int n_random = std::min(n, int(random_credit_));
    random_credit_ -= n_random;
    const int n_model = n - n_random;

    for (auto it = pool_.begin(); it != pool_.end();) {
      it = measured.count(it->first) ? pool_.erase(it) : std::next(it);
    }
    if (rounds_since_anneal_ >= options_.anneal_every || int(pool_.size()) < 2 * n_model) {
      anneal(measured);
      rounds_since_anneal_ = 0;
    }
    ++rounds_since_anneal_;

    std::vector<core::Config> out = pick(n_model, measured, taken);
    std::vector<core::Config> rest =
        sample_unmeasured(space_, rng_, n - int(out.size()), measured, taken);
    out.insert(out.end(), rest.begin(), rest.end());
    return out;
  }

 private:
  void pretrain(const SearchTask& task) {
    Result<core::TargetKey> key = core::make_target_key(task.target, task.threads);
    if (!key) return;
    Result<size_t> used = cost::pretrain(*model_, *task.log, task.workload, *key, true);
    if (!used) {
      logger("tuner")->debug("no pre-training: {}", used.status().message());
      return;
    }
    pretrained_ = true;
    logger("tuner")->info("cost model pre-trained on {} records of other {} workloads", *used,
                          core::op_name(task.workload.op));
  }

  /// Teaches the model the samples it has not seen. False while it cannot rank yet.
  bool learn() {
    const bool own_data = samples_.size() >= size_t(options_.min_samples) && valid_samples_ > 0;
    if (!own_data) return pretrained_ && model_->is_trained();
    if (unfitted_.empty()) return model_->is_trained();
    Status fitted;
    const bool replace_pretraining =
        pretrained_ && samples_.size() >= kOwnSamplesToReplacePretraining;
    if (pretrained_ && !replace_pretraining) {
      fitted = model_->fit(unfitted_, true);
    } else if (!model_->is_trained() || replace_pretraining ||
               samples_.size() >= 2 * samples_at_full_fit_) {
      fitted = model_->fit(samples_, false);
      samples_at_full_fit_ = samples_.size();
      pretrained_ = false;
    } else {
      fitted = model_->fit(unfitted_, true);
    }
    unfitted_.clear();
    calibrated_ = false;  // the model's scores moved
    if (!fitted.is_ok()) {
      logger("tuner")->debug("cost model not trained: {}", fitted.message());
      return model_->is_trained();
    }
    return true;
  }

  /// Costs of `configs` by the model or by the untrained estimate; empty when it cannot rank.
  std::vector<double> costs_of(const std::vector<core::Config>& configs, bool by_model) {
    std::vector<double> costs(configs.size());
    for (size_t i = 0; i < configs.size(); ++i) model_->enqueue(configs[i], &costs[i]);
    Status s = by_model ? model_->evaluate_costs() : model_->evaluate_estimated_costs();
    if (!s.is_ok()) return {};
    return costs;
  }

  /// Predicted scores (higher is faster) of `configs`, by the model once it has learnt, by the
  /// untrained estimate before; empty when the model cannot rank.
  ///
  /// While the model knows other workloads more than this one (pre-trained, not yet retrained
  /// on its own samples), a score is the sum of the model's and the estimate's, each in standard
  /// units over random configs of this space (so that scores compare across batches, as
  /// annealing needs): other shapes teach what a schedule's knobs do, the estimate what this
  /// shape's register blocking and cache footprint make of them. On a strided 1x1 convolution
  /// a model pre-trained on 3x3 ones took 13, 12 and 7 trials to 95% of the best alone, and
  /// 3, 2 and 10 weighed so (the estimate alone: 1-3; kiln_search_bench, seeds 1-3).
  std::vector<double> score(const std::vector<core::Config>& configs) {
    std::vector<double> costs = costs_of(configs, ranked_by_model_);
    if (costs.empty()) return {};
    if (ranked_by_model_ && pretrained_ && options_.estimate_until_trained) {
      if (!calibrated_) calibrate();
      std::vector<double> estimated = costs_of(configs, false);
      if (calibrated_ && !estimated.empty()) {
        for (size_t i = 0; i < costs.size(); ++i) {
          costs[i] = model_scale_(costs[i]) + estimate_scale_(estimated[i]);
        }
      }
    }
    for (double& c : costs) c = -c;
    return costs;
  }

  /// Measures both scorers' costs over random configs (from a generator of their own, so that
  /// the search's draws stay what they were).
  void calibrate() {
    std::mt19937_64 rng(options_.model.xgb.seed ^ 0x9e3779b97f4a7c15ULL);
    std::uniform_int_distribution<int64_t> any(0, space_.size() - 1);
    std::vector<core::Config> sample;
    for (size_t i = 0; i < std::min<size_t>(kCalibrationConfigs, size_t(space_.size())); ++i) {
      sample.push_back(*space_.at(any(rng)));
    }
    std::vector<double> by_model = costs_of(sample, true);
    std::vector<double> by_estimate = costs_of(sample, false);
    if (by_model.empty() || by_estimate.empty()) return;
    model_scale_ = standardize_over(by_model);
    estimate_scale_ = standardize_over(by_estimate);
    calibrated_ = true;
  }

  /// A neighbour of `c`: one knob moved to another of its choices. In a restricted space
  /// (register budget) a few moves are tried; `c` itself when none lands in the space.
  core::Config neighbour(const core::Config& c) {
    const auto& knobs = space_.knobs();
    std::vector<size_t> movable;
    for (size_t k = 0; k < knobs.size(); ++k) {
      if (knobs[k].choices.size() > 1) movable.push_back(k);
    }
    if (movable.empty()) return c;
    for (int attempt = 0; attempt < 8; ++attempt) {
      size_t k = movable[std::uniform_int_distribution<size_t>(0, movable.size() - 1)(rng_)];
      const auto& choices = knobs[k].choices;
      auto current = std::find(choices.begin(), choices.end(), c.values[k]) - choices.begin();
      size_t other = std::uniform_int_distribution<size_t>(0, choices.size() - 2)(rng_);
      if (int64_t(other) >= current) ++other;
      std::vector<int64_t> values = c.values;
      values[k] = choices[other];
      Result<core::Config> moved = space_.from_values(values);
      if (moved) return *std::move(moved);
    }
    return c;
  }

  /// Simulated annealing over the model; refills the pool with the best unmeasured points the
  /// chains visit.
  void anneal(const std::set<int64_t>& measured) {
    std::vector<core::Config> chains;
    std::set<int64_t> starts;
    for (const Observation& o : elite_) {
      if (int(chains.size()) >= options_.chains / 2) break;
      if (starts.insert(o.config.index).second) chains.push_back(o.config);
    }
    std::uniform_int_distribution<int64_t> any(0, space_.size() - 1);
    for (int tries = 0; int(chains.size()) < options_.chains && tries < 4 * options_.chains;
         ++tries) {
      int64_t index = any(rng_);
      if (starts.insert(index).second) chains.push_back(*space_.at(index));
    }
    std::vector<double> scores = score(chains);
    if (scores.empty()) return;

    std::map<int64_t, std::pair<double, core::Config>> visited;  // unmeasured points seen
    auto visit = [&](const core::Config& c, double s) {
      if (!std::isfinite(s) || measured.count(c.index)) return;
      visited.insert_or_assign(c.index, std::make_pair(s, c));
    };
    for (size_t i = 0; i < chains.size(); ++i) visit(chains[i], scores[i]);

    // The temperature is in units of the spread of the starting scores, so it means the same
    // whatever scale the ranking model's raw scores have.
    double mean = 0, spread = 0;
    int finite = 0;
    for (double s : scores) {
      if (std::isfinite(s)) mean += s, ++finite;
    }
    mean = finite ? mean / finite : 0;
    for (double s : scores) {
      if (std::isfinite(s)) spread += (s - mean) * (s - mean);
    }
    spread = finite > 1 ? std::sqrt(spread / (finite - 1)) : 1;
    if (!(spread > 0)) spread = 1;

    std::uniform_real_distribution<double> unit(0, 1);
    for (int step = 0; step < options_.steps; ++step) {
      const double temperature = spread * (1.0 - double(step) / options_.steps);
      std::vector<core::Config> next(chains.size());
      for (size_t i = 0; i < chains.size(); ++i) next[i] = neighbour(chains[i]);
      std::vector<double> next_scores = score(next);
      if (next_scores.empty()) break;
      for (size_t i = 0; i < chains.size(); ++i) {
        visit(next[i], next_scores[i]);
        const double gain = next_scores[i] - scores[i];
        const bool accept = std::isfinite(next_scores[i]) &&
                            (!std::isfinite(scores[i]) || gain >= 0 ||
                             (temperature > 0 && unit(rng_) < std::exp(gain / temperature)));
        if (accept) {
          chains[i] = next[i];
          scores[i] = next_scores[i];
        }
      }
    }

    std::vector<std::pair<double, core::Config>> best;
    best.reserve(visited.size() + pool_.size());
    for (auto& [index, entry] : visited) best.push_back(std::move(entry));
    for (auto& [index, config] : pool_) {
      if (!visited.count(index)) best.emplace_back(-INFINITY, config);
    }
    std::stable_sort(best.begin(), best.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    if (best.size() > size_t(options_.pool)) best.resize(size_t(options_.pool));
    pool_.clear();
    for (auto& [s, config] : best) pool_.emplace(config.index, std::move(config));
  }

  /// Up to `n` configs from the pool, re-scored by the current model: greedily the candidate
  /// with the best predicted rank plus `diversity` times the share of its knob values the
  /// batch does not have yet, among the 3·n best predicted.
  std::vector<core::Config> pick(int n, const std::set<int64_t>& measured,
                                 std::set<int64_t>& taken) {
    std::vector<core::Config> candidates;
    for (const auto& [index, config] : pool_) {
      if (!measured.count(index) && !taken.count(index)) candidates.push_back(config);
    }
    std::vector<double> scores = score(candidates);
    if (scores.empty() || n <= 0) return {};
    std::vector<size_t> order(candidates.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return scores[a] > scores[b]; });
    while (!order.empty() && !std::isfinite(scores[order.back()])) order.pop_back();
    order.resize(std::min(order.size(), size_t(3 * n)));

    const size_t num_knobs = space_.knobs().size();
    std::vector<std::set<int64_t>> present(num_knobs);
    std::vector<bool> used(order.size(), false);
    std::vector<core::Config> out;
    while (int(out.size()) < n) {
      double best_value = -INFINITY;
      size_t best = order.size();
      for (size_t r = 0; r < order.size(); ++r) {
        if (used[r]) continue;
        const core::Config& c = candidates[order[r]];
        int fresh = 0;
        for (size_t k = 0; k < num_knobs; ++k) fresh += present[k].count(c.values[k]) ? 0 : 1;
        double value = 1.0 - double(r) / double(order.size()) +
                       options_.diversity * double(fresh) / double(std::max<size_t>(1, num_knobs));
        if (value > best_value) {
          best_value = value;
          best = r;
        }
      }
      if (best == order.size()) break;
      used[best] = true;
      const core::Config& c = candidates[order[best]];
      for (size_t k = 0; k < num_knobs; ++k) present[k].insert(c.values[k]);
      taken.insert(c.index);
      pool_.erase(c.index);
      out.push_back(c);
    }
    return out;
  }

  const core::ConfigSpace& space_;
  XgbStrategyOptions options_;
  std::mt19937_64 rng_;
  std::unique_ptr<cost::CostModel> model_;
  bool pretrained_ = false;
  bool calibrated_ = false;  ///< model_scale_ and estimate_scale_ are set
  Standardize model_scale_;
  Standardize estimate_scale_;
  bool ranked_by_model_ = false;  ///< the pool and scores come from the model, not the estimate
  std::vector<cost::Sample> samples_;   ///< everything learnable observed so far
  std::vector<cost::Sample> unfitted_;  ///< observed since the model last learnt
  size_t samples_at_full_fit_ = 0;
  int64_t valid_samples_ = 0;
  std::vector<Observation> elite_;  ///< fastest valid observations, fastest first
  std::map<int64_t, core::Config> pool_;
  int rounds_since_anneal_ = 0;
  double random_credit_ = 0;
};

}  // namespace

Result<std::unique_ptr<Strategy>> make_xgb_strategy(const SearchTask& task, uint64_t seed,
                                                    const XgbStrategyOptions& options) {
  KILN_CHECK(task.space != nullptr) << "a search task needs its config space";
  if (Status s = core::config_space(task.workload, task.target).status(); !s.is_ok()) return s;
  return std::unique_ptr<Strategy>(new XgbStrategy(task, seed, options));
}

}  // namespace kiln::tuner
