/// \file
/// The cost model a search consults: a batched interface in the manner of Halide's adams2019
/// CostModel (enqueue candidates, evaluate their costs in one batch), plus training on
/// measured records, continued training, save, load and pre-training from a tuning log.
///
/// Costs are unitless ranks, not times: lower means predicted faster, and only the order of
/// candidates of one workload means anything. An untrained model refuses to rank
/// (FailedPrecondition) instead of returning arbitrary numbers; a search without a trained
/// model must fall back to something else (random sampling) knowingly.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <span>

#include "compiler_core/db/record.h"
#include "compiler_core/db/tuning_log.h"
#include "compiler_core/schedule/config_space.h"
#include "compiler_core/support/status.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"
#include "cost_model/xgb_model.h"

namespace kiln::cost {

/// One measured candidate of the current workload, for CostModel::fit.
struct Sample {
  core::Config config;
  /// Runs per second (1 / seconds per run); 0 for a config that failed to build, crashed or
  /// computed a wrong answer. Only the order of samples matters.
  double throughput = 0;
};

class CostModel {
 public:
  virtual ~CostModel() = default;

  /// The workload and target of the candidates enqueued next (the target decides vector
  /// widths, hence the lowered loops). Drops queued candidates. InvalidArgument when the
  /// workload has no schedule template on that target.
  virtual Status set_workload(const core::Workload& workload, const core::Target& target) = 0;

  /// Queues `config` of the current workload; evaluate_costs() writes its cost to `*cost`,
  /// which must stay valid until then. A config that is not a point of the space, or whose
  /// schedule cannot be lowered, gets +infinity.
  virtual void enqueue(const core::Config& config, double* cost) = 0;

  /// Scores every queued candidate in one batch and empties the queue. FailedPrecondition
  /// (costs untouched) when the model is untrained or no workload is set.
  virtual Status evaluate_costs() = 0;

  /// Scores every queued candidate with features.h's estimated_cycles instead of the learnt
  /// model, and empties the queue: a ranking for a search that has measured nothing yet. Works
  /// untrained; FailedPrecondition when no workload is set.
  virtual Status evaluate_estimated_costs() = 0;

  /// Empties the queue without scoring.
  virtual void reset() = 0;

  /// Trains from scratch on `records` (any workloads and targets; each workload is one group
  /// of the ranking, its throughput normalised to its fastest record). Failed measurements
  /// count as the slowest; records that cannot be featurised (INVALID_CONFIG, DEVICE_LOST, a
  /// config no longer in its space) are left out. InvalidArgument when nothing is left.
  virtual Status train(std::span<const core::TuningRecord> records) = 0;

  /// Continues training on new `records` alone, adding trees to the current model instead of
  /// starting over; train() when the model is untrained.
  virtual Status update(std::span<const core::TuningRecord> records) = 0;

  /// Trains on `samples` of the current workload (one ranking group), through the feature
  /// cache: a search that scored a config already pays nothing to learn from it. With
  /// `continue_training` and a trained model, adds trees fitted to these samples alone (as
  /// update()); else trains from scratch. Samples whose config does not lower are left out.
  /// FailedPrecondition when no workload is set; InvalidArgument when nothing is left.
  virtual Status fit(std::span<const Sample> samples, bool continue_training) = 0;

  /// Writes the model to `path` (see XgbModel::save). FailedPrecondition when untrained.
  virtual Status save(const std::filesystem::path& path) const = 0;

  /// Replaces the model with the one in `path` (see XgbModel::load for the errors).
  virtual Status load(const std::filesystem::path& path) = 0;

  virtual bool is_trained() const = 0;
};

struct CostModelOptions {
  XgbOptions xgb;
  /// Features of this many configs of the current workload are kept, so that a search that
  /// revisits a config pays for its lowering once. 0 turns the cache off.
  size_t feature_cache_entries = size_t{1} << 16;
};

/// The XGBoost ranking model over the features of features.h.
std::unique_ptr<CostModel> make_xgb_cost_model(const CostModelOptions& options = {});

/// Pre-trains `model` from scratch on every record in `log` of `workload`'s operator measured
/// on `target`, leaving out `workload` itself when `exclude_workload` is set, so that a new
/// shape starts with what other shapes taught. Returns the number of records used;
/// FailedPrecondition when the log holds none (the model stays as it was).
Result<size_t> pretrain(CostModel& model, const core::TuningLog& log,
                        const core::Workload& workload, const core::TargetKey& target,
                        bool exclude_workload);

}  // namespace kiln::cost
