/// \file
/// From tuning records to training rows: features of each record's config, its label (the
/// record's throughput normalised within its workload) and the ranking groups.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "compiler_core/db/record.h"
#include "compiler_core/db/tuning_log.h"
#include "compiler_core/support/status.h"
#include "compiler_core/te/workload.h"
#include "cost_model/xgb_model.h"

namespace kiln::cost {

/// Training rows, grouped: the rows of one (workload, target) are consecutive, in the order
/// the groups first appear in the records.
struct Dataset {
  std::vector<float> features;   ///< rows × kNumFeatures, row-major
  std::vector<float> labels;     ///< throughput() / the group's best; 0 for failed measurements
  std::vector<unsigned> groups;  ///< sizes of consecutive groups
  std::vector<size_t> source;    ///< the index in the input records of each row
  size_t skipped = 0;            ///< records left out (see make_dataset)

  size_t rows() const { return labels.size(); }
  TrainingData view() const { return {features, labels, groups}; }
};

/// Featurises `records`. Measurements that failed for the config's sake (COMPILE_ERROR,
/// RUNTIME_ERROR, WRONG_ANSWER) get label 0; INVALID_CONFIG records, DEVICE_LOST and TIMEOUT
/// records (which an infrastructure fault can cause, so they say nothing of the config),
/// records whose workload or target no longer parses, and configs that are no longer points
/// of their space are skipped and counted. Never fails.
Dataset make_dataset(std::span<const core::TuningRecord> records);

/// Throughput of a record: 1 / its fastest sample (seconds per run), 0 for a failed one. The
/// fastest sample, not the median: on a shared machine interference only ever slows a run down,
/// so the fastest of a record's samples is the one closest to the kernel's own speed (with
/// three samples per config, the median still carries one disturbed sample in ten by 20% or
/// more on the benchmark's 2-core machine).
double throughput(const core::TuningRecord& record);

/// Every record in `log` of operator `op` measured on `target`, in the order appended, without
/// those of `exclude` (a canonical workload string) when given. TuningLog has no query by
/// operator yet, so this reads the whole log.
Result<std::vector<core::TuningRecord>> records_of_operator(
    const core::TuningLog& log, core::OpKind op, const core::TargetKey& target,
    const std::optional<std::string>& exclude = std::nullopt);

}  // namespace kiln::cost
