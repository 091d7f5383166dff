/// \file
/// XGBoost behind a small, typed surface: train a ranking model on feature rows grouped by
/// workload, add trees for new rows, predict, save and load. This header names no XGBoost type;
/// xgb_model.cc is the one file of kiln that includes xgboost/c_api.h (XGBoost 1.7 C API).
///
/// Every XGBoost call goes through one check that turns a failure into a Status carrying
/// XGBGetLastError(); outputs XGBoost owns are copied before the next call; every handle is
/// freed on every path (dmlc/xgboost demo/c-api/inference/inference.c).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "compiler_core/support/status.h"

namespace kiln::cost {

/// Booster parameters and round counts: TVM's XGBTuner settings, with a fixed number of rounds
/// instead of early stopping, a smaller learning rate and shallower trees. On the cost-model
/// benchmark's matmul data, 100 trees of depth 5 ranked held-out configs as well as 300 of
/// depth 6 did (and other shapes better), and train and predict three times faster.
struct XgbOptions {
  /// XGBoost objective. "rank:pairwise" learns the order of candidates within a group (a
  /// workload), which is all a search needs; labels are relevance, larger is better.
  std::string objective = "rank:pairwise";
  int rounds = 100;        ///< trees that train() grows
  int update_rounds = 20;  ///< trees that each update() adds
  int max_depth = 5;
  double eta = 0.2;  ///< learning rate
  double min_child_weight = 1;
  double gamma = 1e-4;  ///< minimum loss reduction of a split
  double subsample = 1.0;
  double colsample_bytree = 1.0;
  /// Threads XGBoost uses to train and predict; 1 keeps results reproducible bit for bit.
  int threads = 1;
  uint64_t seed = 0;
};

/// Rows for training: `features` holds rows × num_features floats, row-major; `labels` one
/// relevance per row; `groups` the sizes of consecutive runs of rows that are ranked against
/// each other (they sum to the number of rows).
struct TrainingData {
  std::span<const float> features;
  std::span<const float> labels;
  std::span<const unsigned> groups;
};

/// A gradient-boosted tree model of a fixed feature count.
class XgbModel {
 public:
  /// An untrained model of `num_features` features, tagged with `feature_version` (stored in
  /// saved files and checked on load). InvalidArgument for num_features < 1 or bad options.
  static Result<XgbModel> create(int num_features, int feature_version, XgbOptions options = {});

  /// Loads a file written by save(). NotFound for a missing file; InvalidArgument for a file
  /// XGBoost cannot read or one without kiln's tags; FailedPrecondition when its feature
  /// version or count differs from `num_features`/`feature_version` (retrain the model).
  static Result<XgbModel> load(const std::filesystem::path& path, int num_features,
                               int feature_version, XgbOptions options = {});
  /// As load, from the bytes save_to_buffer() returned.
  static Result<XgbModel> load_from_buffer(std::span<const uint8_t> bytes, int num_features,
                                           int feature_version, XgbOptions options = {});

  XgbModel(XgbModel&&) noexcept;
  XgbModel& operator=(XgbModel&&) noexcept;
  ~XgbModel();

  /// Drops any trees and grows options.rounds new ones on `data`. InvalidArgument when the
  /// sizes disagree or there are no rows.
  Status train(const TrainingData& data);

  /// Continues training: adds options.update_rounds trees fitted to `data` on top of the
  /// current model (its predictions are the starting point), without revisiting older rows.
  /// On an untrained model this is train().
  Status update(const TrainingData& data);

  /// One score per row of `features` (rows × num_features floats): higher means predicted
  /// faster; only the order within a group means anything. FailedPrecondition when the model
  /// is untrained, InvalidArgument when the size is not a multiple of num_features.
  Result<std::vector<float>> predict(std::span<const float> features) const;

  bool is_trained() const;
  /// Trees grown so far (boosting rounds).
  int rounds() const;
  int num_features() const;

  /// Writes the model (XGBoost's UBJSON model format with kiln's tags: feature version and
  /// count). Predictions of the loaded model equal this one's bit for bit. FailedPrecondition
  /// for an untrained model; Internal when writing fails.
  Status save(const std::filesystem::path& path) const;
  Result<std::vector<uint8_t>> save_to_buffer() const;

 private:
  struct Impl;
  explicit XgbModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// The XGBoost library version, "1.7.4".
std::string xgboost_version();

}  // namespace kiln::cost
