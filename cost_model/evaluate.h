/// \file
/// Held-out evaluation of the cost model on one workload's records in a tuning log: what
/// `kiln model eval` prints and the cost-model benchmark checks.
///
/// The workload's records are split at random (seeded) into a training and a held-out part.
/// Two models are scored on the held-out records that measured OK:
/// - *trained*: trained on the training part only;
/// - *pre-trained*: trained on every record of the same operator and target except this
///   workload's, so it has seen no sample of it (what a new shape starts with).
/// Scores: Spearman's rank correlation of predicted score with measured throughput (dataset.h's
/// throughput(): 1 / the fastest sample), and the recall of the true top 1% inside the
/// predicted top k.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "compiler_core/db/record.h"
#include "compiler_core/db/tuning_log.h"
#include "compiler_core/support/status.h"
#include "compiler_core/te/workload.h"
#include "cost_model/cost_model.h"

namespace kiln::cost {

struct EvalOptions {
  double train_fraction = 0.5;  ///< share of the workload's records to train on, in (0, 1)
  uint64_t seed = 1;            ///< of the split
  double top_fraction = 0.01;   ///< the "true top" whose recall is measured
  /// The predicted top k; 0 means 5% of the held-out records (at least 1).
  size_t top_k = 0;
  CostModelOptions model;
};

/// One model's scores on the held-out records.
struct ModelScore {
  size_t train_records = 0;  ///< records it was trained on
  size_t train_workloads = 0;
  double train_s = 0;  ///< seconds to featurise and train
  double spearman = 0;
  double recall = 0;
};

struct EvalReport {
  std::string workload;  ///< canonical
  std::string target;    ///< TargetKey::str()
  size_t records = 0;    ///< the workload's records on the target
  size_t held_out = 0;   ///< held-out records that measured OK (the ones scored)
  size_t top_true = 0;   ///< size of the true top
  size_t k = 0;
  ModelScore trained;
  /// Absent when the log holds no other workload of the operator on the target.
  std::optional<ModelScore> pretrained;
};

/// Evaluates as described in the file comment. InvalidArgument for a bad train_fraction;
/// NotFound when the log holds fewer than 4 OK records of `workload` on `target`; errors of
/// reading the log and of training.
Result<EvalReport> evaluate_model(const core::TuningLog& log, const core::Workload& workload,
                                  const core::TargetKey& target, const EvalOptions& options = {});

}  // namespace kiln::cost
