#include "cost_model/cost_model.h"

#include <gtest/gtest.h>

#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "compiler_core/schedule/templates.h"
#include "cost_model/dataset.h"
#include "cost_model/features.h"
#include "cost_model/metrics.h"
#include "cost_model/xgb_model.h"

namespace kiln::cost {
namespace {

namespace core = kiln::core;

constexpr const char* kTarget = "llvm -mcpu=znver4 -mattr=+avx512f";

class CostModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kiln_cost_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    target_ = *core::parse_target(kTarget);
    key_ = core::TargetKey{target_.str(), "test cpu"};
    options_.xgb.rounds = 60;
    options_.xgb.update_rounds = 10;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  core::Workload workload(const std::string& text) const { return *core::parse_workload(text); }
  core::ConfigSpace space(const core::Workload& w) const { return *core::config_space(w, target_); }

  /// A made-up but learnable cost: larger register tiles, packing and unrolling are faster.
  static double synthetic_cost(const core::ConfigSpace& s, const core::Config& c) {
    double speed =
        1.0 + std::log2(double(s.value(c, "tile_m")) * double(s.value(c, "tile_n_vectors")));
    speed += s.value(c, "pack_b") ? 1.0 : 0.0;
    speed += 0.25 * std::log2(double(s.value(c, "unroll_k")));
    return 1e-3 / speed;
  }

  /// Records of `count` configs of `text` (every `step`-th index from `first`).
  std::vector<core::TuningRecord> records(const std::string& text, int count, int64_t first = 0,
                                          int64_t step = 7) const {
    core::Workload w = workload(text);
    core::ConfigSpace s = space(w);
    std::vector<core::TuningRecord> out;
    for (int i = 0; i < count; ++i) {
      core::Config c = *s.at((first + i * step) % s.size());
      core::TuningRecord r;
      r.workload = w.canonical();
      r.target = key_;
      r.config_index = c.index;
      std::string json = s.to_json(c);
      r.config_knobs =
          json.substr(json.find("\"knobs\":") + 8, json.size() - json.find("\"knobs\":") - 9);
      r.costs = {synthetic_cost(s, c)};
      r.agent = "test";
      out.push_back(r);
    }
    return out;
  }

  /// Costs the model gives to configs `indices` of `text`.
  std::vector<double> costs(CostModel& model, const std::string& text,
                            const std::vector<int64_t>& indices) const {
    core::Workload w = workload(text);
    core::ConfigSpace s = space(w);
    EXPECT_TRUE(model.set_workload(w, target_).is_ok());
    std::vector<double> out(indices.size(), std::nan(""));
    for (size_t i = 0; i < indices.size(); ++i) model.enqueue(*s.at(indices[i]), &out[i]);
    Status status = model.evaluate_costs();
    EXPECT_TRUE(status.is_ok()) << status.to_string();
    return out;
  }

  std::filesystem::path dir_;
  core::Target target_;
  core::TargetKey key_;
  CostModelOptions options_;
};

constexpr const char* kSmall = "matmul:M=128,N=128,K=128";
constexpr const char* kOther = "matmul:M=96,N=160,K=64";

TEST_F(CostModelTest, UntrainedModelSaysSoInsteadOfRanking) {
  auto model = make_xgb_cost_model(options_);
  EXPECT_FALSE(model->is_trained());
  core::Workload w = workload(kSmall);
  ASSERT_TRUE(model->set_workload(w, target_).is_ok());
  double cost = 42;
  model->enqueue(space(w).default_config(), &cost);
  Status status = model->evaluate_costs();
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("untrained"), std::string::npos) << status.message();
  EXPECT_EQ(cost, 42);  // untouched, not a made-up rank

  Status saved = model->save(dir_ / "model.ubj");
  EXPECT_EQ(saved.code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "model.ubj"));

  auto xgb = XgbModel::create(kNumFeatures, kFeatureVersion);
  ASSERT_TRUE(xgb.is_ok());
  EXPECT_FALSE(xgb->is_trained());
  std::vector<float> row(kNumFeatures, 0.0f);
  EXPECT_EQ(xgb->predict(row).status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(CostModelTest, UntrainedModelRanksByTheEstimateWhenAskedTo) {
  auto model = make_xgb_cost_model(options_);
  core::Workload w = workload(kSmall);
  core::ConfigSpace s = space(w);
  double cost = 42;
  model->enqueue(s.default_config(), &cost);
  EXPECT_EQ(model->evaluate_estimated_costs().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(cost, 42);  // no workload set: untouched

  ASSERT_TRUE(model->set_workload(w, target_).is_ok());
  std::vector<double> costs(s.size(), std::nan(""));
  for (int64_t i = 0; i < s.size(); ++i) model->enqueue(*s.at(i), &costs[size_t(i)]);
  ASSERT_TRUE(model->evaluate_estimated_costs().is_ok());
  EXPECT_FALSE(model->is_trained());
  std::vector<float> row(kNumFeatures);
  for (int64_t i : {int64_t{0}, s.size() / 2, s.size() - 1}) {
    ASSERT_TRUE(candidate_features(w, target_, *s.at(i), row).is_ok());
    EXPECT_DOUBLE_EQ(costs[size_t(i)], std::log(estimated_cycles(row, 32))) << "config " << i;
  }
  // The estimate's best tenth keeps register tiles that hide the FMA latency and fit in
  // AVX-512's registers (8 to 28 accumulators), far more often than the space at large.
  std::vector<int64_t> order(costs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = int64_t(i);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return costs[a] < costs[b]; });
  auto fits = [&](int64_t i) {
    const core::Config c = *s.at(i);
    const int64_t accumulators = s.value(c, "tile_m") * s.value(c, "tile_n_vectors");
    return accumulators >= 8 && accumulators <= 28;
  };
  const size_t tenth = order.size() / 10;
  size_t best_tenth = 0, all = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    all += fits(order[i]);
    if (i < tenth) best_tenth += fits(order[i]);
  }
  EXPECT_GE(double(best_tenth), 0.9 * double(tenth));
  EXPECT_GT(double(best_tenth) / double(tenth), 1.5 * double(all) / double(order.size()));
}

TEST_F(CostModelTest, RanksHeldOutConfigsAfterTraining) {
  auto model = make_xgb_cost_model(options_);
  std::vector<core::TuningRecord> train = records(kSmall, 150, 0, 7);
  ASSERT_TRUE(model->train(train).is_ok());
  EXPECT_TRUE(model->is_trained());
  core::ConfigSpace s = space(workload(kSmall));
  std::vector<int64_t> held_out;
  std::vector<double> truth;
  for (int i = 0; i < 100; ++i) {
    int64_t index = (3 + i * 11) % s.size();
    held_out.push_back(index);
    truth.push_back(1.0 / synthetic_cost(s, *s.at(index)));
  }
  std::vector<double> c = costs(*model, kSmall, held_out);
  std::vector<double> score;
  for (double x : c) score.push_back(-x);
  EXPECT_GT(spearman(truth, score), 0.8);
}

TEST_F(CostModelTest, SaveAndLoadRoundTripPredictionsExactly) {
  auto model = make_xgb_cost_model(options_);
  ASSERT_TRUE(model->train(records(kSmall, 120)).is_ok());
  std::vector<int64_t> indices;
  for (int64_t i = 0; i < 200; ++i) indices.push_back(i * 13);
  std::vector<double> before = costs(*model, kSmall, indices);
  ASSERT_TRUE(model->save(dir_ / "model.ubj").is_ok());

  auto loaded = make_xgb_cost_model(options_);
  Status status = loaded->load(dir_ / "model.ubj");
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  EXPECT_TRUE(loaded->is_trained());
  std::vector<double> after = costs(*loaded, kSmall, indices);
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < before.size(); ++i) EXPECT_EQ(before[i], after[i]) << "candidate " << i;
}

TEST_F(CostModelTest, LoadReportsMissingForeignAndOutdatedFiles) {
  auto model = make_xgb_cost_model(options_);
  Status missing = model->load(dir_ / "absent.ubj");
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_NE(missing.message().find("absent.ubj"), std::string::npos);

  std::ofstream(dir_ / "garbage.ubj") << "this is not a model";
  Status garbage = model->load(dir_ / "garbage.ubj");
  EXPECT_EQ(garbage.code(), StatusCode::kInvalidArgument) << garbage.to_string();

  // A model trained on another feature version must be retrained, not misread.
  auto old = XgbModel::create(kNumFeatures, kFeatureVersion + 1, options_.xgb);
  ASSERT_TRUE(old.is_ok());
  Dataset data = make_dataset(records(kSmall, 40));
  ASSERT_TRUE(old->train(data.view()).is_ok());
  ASSERT_TRUE(old->save(dir_ / "old.ubj").is_ok());
  Status outdated = model->load(dir_ / "old.ubj");
  EXPECT_EQ(outdated.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(outdated.message().find("feature version"), std::string::npos) << outdated.message();
  EXPECT_FALSE(model->is_trained());
}

TEST_F(CostModelTest, UpdateAddsTreesToTheModelInsteadOfStartingOver) {
  auto xgb = XgbModel::create(kNumFeatures, kFeatureVersion, options_.xgb);
  ASSERT_TRUE(xgb.is_ok());
  Dataset first = make_dataset(records(kSmall, 80, 0));
  Dataset second = make_dataset(records(kSmall, 40, 5));
  ASSERT_TRUE(xgb->train(first.view()).is_ok());
  EXPECT_EQ(xgb->rounds(), options_.xgb.rounds);
  auto before = xgb->predict(second.features);
  ASSERT_TRUE(before.is_ok());
  ASSERT_TRUE(xgb->update(second.view()).is_ok());
  EXPECT_EQ(xgb->rounds(), options_.xgb.rounds + options_.xgb.update_rounds);
  auto after = xgb->predict(second.features);
  ASSERT_TRUE(after.is_ok());
  EXPECT_NE(*before, *after);

  // A loaded model continues from where it was saved.
  ASSERT_TRUE(xgb->save(dir_ / "m.ubj").is_ok());
  auto loaded = XgbModel::load(dir_ / "m.ubj", kNumFeatures, kFeatureVersion, options_.xgb);
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  EXPECT_EQ(loaded->rounds(), xgb->rounds());
  ASSERT_TRUE(loaded->update(first.view()).is_ok());
  EXPECT_EQ(loaded->rounds(), options_.xgb.rounds + 2 * options_.xgb.update_rounds);

  // Through the interface: update() of an untrained model trains it.
  auto model = make_xgb_cost_model(options_);
  ASSERT_TRUE(model->update(records(kSmall, 30)).is_ok());
  EXPECT_TRUE(model->is_trained());
}

TEST_F(CostModelTest, ConfigsThatDoNotLowerCostInfinity) {
  auto model = make_xgb_cost_model(options_);
  ASSERT_TRUE(model->train(records(kSmall, 50)).is_ok());
  core::Workload w = workload(kSmall);
  ASSERT_TRUE(model->set_workload(w, target_).is_ok());
  double good = 0, bad = 0;
  model->enqueue(space(w).default_config(), &good);
  model->enqueue(core::Config{.index = 1, .values = {99}}, &bad);
  ASSERT_TRUE(model->evaluate_costs().is_ok());
  EXPECT_TRUE(std::isfinite(good));
  EXPECT_EQ(bad, std::numeric_limits<double>::infinity());
}

TEST_F(CostModelTest, DatasetNormalisesThroughputPerWorkload) {
  std::vector<core::TuningRecord> rs = records(kSmall, 5);
  std::vector<core::TuningRecord> other = records(kOther, 3);
  other[0].costs = {};
  other[0].error = core::MeasureError::kWrongAnswer;    // counts as slowest
  other[1].error = core::MeasureError::kInvalidConfig;  // cannot be featurised
  other[1].costs = {};
  rs.insert(rs.end(), other.begin(), other.end());
  Dataset d = make_dataset(rs);
  EXPECT_EQ(d.rows(), 7u);
  EXPECT_EQ(d.skipped, 1u);
  EXPECT_EQ(d.groups, (std::vector<unsigned>{5, 2}));
  EXPECT_EQ(d.features.size(), d.rows() * kNumFeatures);
  float best = 0;
  for (int i = 0; i < 5; ++i) best = std::max(best, d.labels[i]);
  EXPECT_EQ(best, 1.0f);
  EXPECT_EQ(d.labels[5], 0.0f);  // the wrong answer
  EXPECT_EQ(d.labels[6], 1.0f);  // the only OK record of its workload
  EXPECT_EQ(d.source[6], 7u);
}

TEST_F(CostModelTest, PretrainsFromOtherShapesOfTheOperatorOnly) {
  auto log = core::TuningLog::open(dir_ / "tuning.db");
  ASSERT_TRUE(log.is_ok()) << log.status().to_string();
  std::vector<core::TuningRecord> mine = records(kSmall, 20);
  std::vector<core::TuningRecord> other = records(kOther, 30);
  ASSERT_TRUE(log->append(mine).is_ok());
  ASSERT_TRUE(log->append(other).is_ok());

  auto model = make_xgb_cost_model(options_);
  auto used = pretrain(*model, *log, workload(kSmall), key_, /*exclude_workload=*/true);
  ASSERT_TRUE(used.is_ok()) << used.status().to_string();
  EXPECT_EQ(*used, 30u);
  EXPECT_TRUE(model->is_trained());

  auto all = pretrain(*model, *log, workload(kSmall), key_, /*exclude_workload=*/false);
  ASSERT_TRUE(all.is_ok());
  EXPECT_EQ(*all, 50u);

  // Records of another target or operator never count.
  core::TargetKey elsewhere{core::parse_target("llvm -mcpu=znver4 -mattr=+avx2")->str(), "x"};
  auto none = pretrain(*model, *log, workload(kSmall), elsewhere, false);
  EXPECT_EQ(none.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(none.status().message().find("no matmul records"), std::string::npos)
      << none.status().message();
}

}  // namespace
}  // namespace kiln::cost
