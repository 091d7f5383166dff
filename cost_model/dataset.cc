#include "cost_model/dataset.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <sstream>

#include "compiler_core/schedule/templates.h"
#include "compiler_core/support/log.h"
#include "cost_model/features.h"

namespace kiln::cost {
namespace {

/// What every record of one (workload, target) shares: parsed once per group.
struct Group {
  bool usable = false;
  core::Workload workload;
  core::Target target;
  core::ConfigSpace space;
  std::vector<size_t> records;  ///< indices of its records
};

/// INVALID_CONFIG is no kernel at all; DEVICE_LOST and TIMEOUT may be the fleet's fault (a board
/// that crashed, a lease that ran out) rather than the config's, so they teach nothing about it.
bool featurisable(core::MeasureError error) {
  return error != core::MeasureError::kInvalidConfig && error != core::MeasureError::kDeviceLost &&
         error != core::MeasureError::kTimeout;
}

}  // namespace

double throughput(const core::TuningRecord& record) {
  if (record.error != core::MeasureError::kOk) return 0;
  double cost = record.costs.empty() ? std::numeric_limits<double>::infinity()
                                     : *std::min_element(record.costs.begin(), record.costs.end());
  return (std::isfinite(cost) && cost > 0) ? 1.0 / cost : 0;
}

Dataset make_dataset(std::span<const core::TuningRecord> records) {
  Dataset data;
  std::vector<std::unique_ptr<Group>> groups;
  std::map<std::string, Group*> by_key;
  for (size_t i = 0; i < records.size(); ++i) {
    const core::TuningRecord& r = records[i];
    std::string key = r.workload + '\n' + r.target.target;
    auto it = by_key.find(key);
    if (it == by_key.end()) {
      auto g = std::make_unique<Group>();
      auto workload = core::parse_workload(r.workload);
      auto target = core::parse_target(r.target.target);
      if (workload.is_ok() && target.is_ok()) {
        auto space = core::config_space(*workload, *target);
        if (space.is_ok()) {
          g->usable = true;
          g->workload = *workload;
          g->target = *target;
          g->space = std::move(*space);
        }
      }
      if (!g->usable)
        logger("cost")->debug("skipping records of workload={} target={}", r.workload,
                              r.target.target);
      it = by_key.emplace(key, g.get()).first;
      groups.push_back(std::move(g));
    }
    it->second->records.push_back(i);
  }

  std::vector<float> row(kNumFeatures);
  for (const auto& g : groups) {
    const size_t first_row = data.rows();
    double best = 0;
    for (size_t i : g->records) {
      const core::TuningRecord& r = records[i];
      if (!g->usable || !featurisable(r.error)) {
        ++data.skipped;
        continue;
      }
      auto config = g->space.parse(r.config_json());
      if (!config.is_ok() || config->index != r.config_index ||
          !candidate_features(g->workload, g->target, *config, row).is_ok()) {
        ++data.skipped;
        continue;
      }
      data.features.insert(data.features.end(), row.begin(), row.end());
      const double t = throughput(r);
      best = std::max(best, t);
      data.labels.push_back(static_cast<float>(t));
      data.source.push_back(i);
    }
    const size_t count = data.rows() - first_row;
    if (count == 0) continue;
    for (size_t k = first_row; k < data.rows(); ++k) {
      data.labels[k] = best > 0 ? static_cast<float>(data.labels[k] / best) : 0.0f;
    }
    data.groups.push_back(static_cast<unsigned>(count));
  }
  return data;
}

Result<std::vector<core::TuningRecord>> records_of_operator(
    const core::TuningLog& log, core::OpKind op, const core::TargetKey& target,
    const std::optional<std::string>& exclude) {
  std::stringstream lines;
  KILN_ASSIGN_OR_RETURN(int64_t count, log.export_jsonl(lines));
  std::vector<core::TuningRecord> out;
  out.reserve(static_cast<size_t>(count));
  std::map<std::string, bool> same_op;  // workload string -> is it `op`
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    KILN_ASSIGN_OR_RETURN(core::TuningRecord r, core::record_from_json_line(line));
    // A key with no model (a fleet target) takes every board of its target, as the log's best
    // queries do; emulation must match, so emulated boards never train for real ones.
    const bool same_target = r.target.target == target.target &&
                             r.target.emulated == target.emulated &&
                             (target.model.empty() || r.target.model == target.model);
    if (!same_target || (exclude && r.workload == *exclude)) continue;
    auto it = same_op.find(r.workload);
    if (it == same_op.end()) {
      auto w = core::parse_workload(r.workload);
      it = same_op.emplace(r.workload, w.is_ok() && w->op == op).first;
    }
    if (it->second) out.push_back(std::move(r));
  }
  return out;
}

}  // namespace kiln::cost
