#include "cost_model/cost_model.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <unordered_map>
#include <vector>

#include "compiler_core/schedule/templates.h"
#include "compiler_core/support/log.h"
#include "cost_model/dataset.h"
#include "cost_model/features.h"

namespace kiln::cost {
namespace {

class XgbCostModel : public CostModel {
 public:
  explicit XgbCostModel(CostModelOptions options) : options_(std::move(options)) {}

  Status set_workload(const core::Workload& workload, const core::Target& target) override {
    KILN_ASSIGN_OR_RETURN(core::ConfigSpace space, core::config_space(workload, target));
    (void)space;
    reset();
    if (!(workload_ && *workload_ == workload && target_ == target)) cache_.clear();
    workload_ = workload;
    target_ = target;
    return Status::ok();
  }

  void enqueue(const core::Config& config, double* cost) override {
    queue_.push_back({config, cost});
  }

  Status evaluate_estimated_costs() override {
    if (!workload_) {
      reset();
      return Status(StatusCode::kFailedPrecondition,
                    "no workload set: call set_workload before enqueueing candidates");
    }
    std::vector<float> row(kNumFeatures);
    for (const Queued& q : queue_) {
      *q.cost = features(q.config, row)
                    ? std::log(estimated_cycles(row, target_.vector_registers()))
                    : std::numeric_limits<double>::infinity();
    }
    reset();
    return Status::ok();
  }

  Status evaluate_costs() override {
    if (!workload_) {
      reset();
      return Status(StatusCode::kFailedPrecondition,
                    "no workload set: call set_workload before enqueueing candidates");
    }
    if (!is_trained()) {
      reset();
      return Status(StatusCode::kFailedPrecondition,
                    "the cost model is untrained: train it (or pre-train it from a tuning log) "
                    "before ranking candidates");
    }
    // Rows for the candidates that lower; the rest cost +infinity.
    batch_.resize(queue_.size() * kNumFeatures);
    std::vector<size_t> rows_of;  // queue index of each row
    rows_of.reserve(queue_.size());
    for (size_t i = 0; i < queue_.size(); ++i) {
      std::span<float> row(batch_.data() + rows_of.size() * kNumFeatures, kNumFeatures);
      if (features(queue_[i].config, row)) {
        rows_of.push_back(i);
      } else {
        *queue_[i].cost = std::numeric_limits<double>::infinity();
      }
    }
    Result<std::vector<float>> scores =
        model_->predict(std::span<const float>(batch_.data(), rows_of.size() * kNumFeatures));
    if (!scores.is_ok()) {
      reset();
      return scores.status();
    }
    for (size_t r = 0; r < rows_of.size(); ++r) *queue_[rows_of[r]].cost = -double((*scores)[r]);
    reset();
    return Status::ok();
  }

  void reset() override { queue_.clear(); }

  Status train(std::span<const core::TuningRecord> records) override {
    Dataset data = make_dataset(records);
    if (data.rows() == 0) {
      return invalid_argument("none of the " + std::to_string(records.size()) +
                              " records can train a model (all invalid configs or unreadable)");
    }
    KILN_ASSIGN_OR_RETURN(XgbModel model,
                          XgbModel::create(kNumFeatures, kFeatureVersion, options_.xgb));
    KILN_RETURN_IF_ERROR(model.train(data.view()));
    model_ = std::move(model);
    logger("cost")->debug("trained on {} records ({} skipped, {} groups), {} trees", data.rows(),
                          data.skipped, data.groups.size(), model_->rounds());
    return Status::ok();
  }

  Status update(std::span<const core::TuningRecord> records) override {
    if (!is_trained()) return train(records);
    Dataset data = make_dataset(records);
    if (data.rows() == 0) return Status::ok();  // nothing new to learn from
    return model_->update(data.view());
  }

  Status fit(std::span<const Sample> samples, bool continue_training) override {
    if (!workload_) {
      return Status(StatusCode::kFailedPrecondition,
                    "no workload set: call set_workload before fitting samples");
    }
    std::vector<float> features(samples.size() * kNumFeatures);
    std::vector<float> labels;
    labels.reserve(samples.size());
    double best = 0;
    for (const Sample& sample : samples) {
      std::span<float> row(features.data() + labels.size() * kNumFeatures, kNumFeatures);
      if (!this->features(sample.config, row)) continue;
      labels.push_back(static_cast<float>(sample.throughput));
      best = std::max(best, sample.throughput);
    }
    if (labels.empty()) {
      return invalid_argument("none of the " + std::to_string(samples.size()) +
                              " samples lowers to a loop nest the model can learn from");
    }
    for (float& label : labels) label = best > 0 ? static_cast<float>(label / best) : 0.0f;
    const unsigned group = static_cast<unsigned>(labels.size());
    TrainingData data{std::span<const float>(features.data(), labels.size() * kNumFeatures), labels,
                      std::span<const unsigned>(&group, 1)};
    if (continue_training && is_trained()) return model_->update(data);
    KILN_ASSIGN_OR_RETURN(XgbModel model,
                          XgbModel::create(kNumFeatures, kFeatureVersion, options_.xgb));
    KILN_RETURN_IF_ERROR(model.train(data));
    model_ = std::move(model);
    return Status::ok();
  }

  Status save(const std::filesystem::path& path) const override {
    if (!is_trained()) {
      return Status(StatusCode::kFailedPrecondition, "an untrained cost model cannot be saved");
    }
    return model_->save(path);
  }

  Status load(const std::filesystem::path& path) override {
    KILN_ASSIGN_OR_RETURN(XgbModel model,
                          XgbModel::load(path, kNumFeatures, kFeatureVersion, options_.xgb));
    model_ = std::move(model);
    return Status::ok();
  }

  bool is_trained() const override { return model_ && model_->is_trained(); }

 private:
  struct Queued {
    core::Config config;
    double* cost;
  };

  /// Features of `config` of the current workload into `row`, through the cache. False when
  /// the config does not lower.
  bool features(const core::Config& config, std::span<float> row) {
    auto hit = cache_.find(config.index);
    if (hit != cache_.end() && hit->second.values == config.values) {
      if (hit->second.features.empty()) return false;
      std::copy(hit->second.features.begin(), hit->second.features.end(), row.begin());
      return true;
    }
    const bool ok = candidate_features(*workload_, target_, config, row).is_ok();
    if (options_.feature_cache_entries > 0) {
      if (cache_.size() >= options_.feature_cache_entries) cache_.clear();
      Cached& c = cache_[config.index];
      c.values = config.values;
      c.features = ok ? std::vector<float>(row.begin(), row.end()) : std::vector<float>();
    }
    return ok;
  }

  struct Cached {
    std::vector<int64_t> values;
    std::vector<float> features;  ///< empty: the config does not lower
  };

  CostModelOptions options_;
  std::optional<XgbModel> model_;
  std::optional<core::Workload> workload_;
  core::Target target_;
  std::vector<Queued> queue_;
  std::vector<float> batch_;
  std::unordered_map<int64_t, Cached> cache_;
};

}  // namespace

std::unique_ptr<CostModel> make_xgb_cost_model(const CostModelOptions& options) {
  return std::make_unique<XgbCostModel>(options);
}

Result<size_t> pretrain(CostModel& model, const core::TuningLog& log,
                        const core::Workload& workload, const core::TargetKey& target,
                        bool exclude_workload) {
  std::optional<std::string> exclude;
  if (exclude_workload) exclude = workload.canonical();
  KILN_ASSIGN_OR_RETURN(std::vector<core::TuningRecord> records,
                        records_of_operator(log, workload.op, target, exclude));
  if (records.empty()) {
    return Status(StatusCode::kFailedPrecondition,
                  std::string("the tuning log holds no ") + core::op_name(workload.op) +
                      " records on " + target.str() +
                      (exclude_workload ? " besides " + *exclude : "") + " to pre-train from");
  }
  KILN_RETURN_IF_ERROR(model.train(records));
  return records.size();
}

}  // namespace kiln::cost
