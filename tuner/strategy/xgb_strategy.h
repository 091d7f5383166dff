/// \file
/// The model-guided strategy, `xgb`: simulated annealing over the XGBoost cost model's
/// predictions (TVM's XGBTuner, with Halide's batched cost-model interface).
///
/// Each round it
/// 1. teaches the model what the last batch measured: a full retrain whenever the samples have
///    doubled since the last one, else a few trees fitted to the new samples on top of the
///    current model, so the cost of learning stays small next to the cost of measuring;
/// 2. every few rounds (or when its pool runs low), anneals: chains start from the fastest
///    measured configs and from random ones, step to neighbours that change one knob, accept
///    by the Metropolis rule at a temperature falling to zero, and the best unmeasured points
///    they visit form the pool;
/// 3. re-scores the pool with the updated model and picks the batch from its best candidates,
///    preferring ones that bring knob values the batch does not have yet (a greedy, diversity-
///    aware pick), with `epsilon` of the batch drawn uniformly at random.
///
/// Until the model has learnt from enough valid measurements (or been pre-trained on other
/// workloads of the same operator in the tuning log), the same annealing and pick run on the
/// cost model's estimate that needs no training (features.h's estimated_cycles), so that a
/// cold search starts where register blocking looks right instead of at random. A model
/// pre-trained on other workloads is weighed with that estimate until the workload's own
/// samples replace its training. Failures that may be the infrastructure's (DEVICE_LOST,
/// TIMEOUT) and invalid configs are not learnt from; builds that fail, crash or compute wrong
/// answers count as the slowest.
#pragma once

#include <cstdint>
#include <memory>

#include "cost_model/cost_model.h"
#include "tuner/strategy/strategy.h"

namespace kiln::tuner {

struct XgbStrategyOptions {
  /// Share of each batch drawn uniformly at random; the fraction carries over from batch to
  /// batch, so it holds on average for any batch size.
  double epsilon = 0.05;
  /// Simulated-annealing chains and steps of one annealing run.
  int chains = 64;
  int steps = 40;
  /// Best unmeasured candidates an annealing run keeps.
  int pool = 256;
  /// Rounds between annealing runs (the pool is re-scored in between).
  int anneal_every = 4;
  /// Samples (measurements the model may learn from) before the model's own training starts.
  int min_samples = 16;
  /// Until then, rank by the untrained estimate (true) or propose uniformly at random (false);
  /// true also weighs a pre-trained model with the estimate, false lets it rank alone.
  bool estimate_until_trained = true;
  /// Weight of a candidate's new knob values against its predicted rank in the batch pick:
  /// 0 takes the predicted best in order.
  double diversity = 0.5;
  cost::CostModelOptions model;
};

/// The xgb strategy over `task` (its space must outlive the strategy). Pre-trains its model
/// from `task.log` when that holds records of other workloads of the same operator on the
/// same target. Never fails for a valid task: an unusable tuning log only means no
/// pre-training (logged at debug level).
Result<std::unique_ptr<Strategy>> make_xgb_strategy(const SearchTask& task, uint64_t seed,
                                                    const XgbStrategyOptions& options = {});

}  // namespace kiln::tuner
