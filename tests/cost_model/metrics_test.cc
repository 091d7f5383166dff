#include "cost_model/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace kiln::cost {
namespace {

TEST(Spearman, IsOneForTheSameOrderAndMinusOneForTheReverse) {
  std::vector<double> x = {1, 2, 3, 4, 5};
  std::vector<double> same = {10, 20, 30, 40, 1000};  // monotone, not linear
  std::vector<double> reverse = {5, 4, 3, 2, 1};
  EXPECT_DOUBLE_EQ(spearman(x, same), 1.0);
  EXPECT_DOUBLE_EQ(spearman(x, reverse), -1.0);
}

TEST(Spearman, GivesTiesTheirAverageRank) {
  // Ranks of y: 1.5, 1.5, 3, 4 -> Pearson of (1,2,3,4) and (1.5,1.5,3,4).
  std::vector<double> x = {1, 2, 3, 4};
  std::vector<double> y = {7, 7, 8, 9};
  EXPECT_NEAR(spearman(x, y), 0.9486832980505138, 1e-12);
}

TEST(Spearman, IsNanWithoutVariation) {
  EXPECT_TRUE(std::isnan(spearman(std::vector<double>{1}, std::vector<double>{2})));
  EXPECT_TRUE(std::isnan(spearman(std::vector<double>{1, 2, 3}, std::vector<double>{4, 4, 4})));
}

TEST(TopRecall, CountsTrueBestFoundAmongPredictedBest) {
  // 200 items: the true top 1% is items 198 and 199.
  std::vector<double> truth(200), predicted(200);
  for (int i = 0; i < 200; ++i) {
    truth[i] = i;
    predicted[i] = i;
  }
  EXPECT_EQ(top_count(200, 0.01), 2u);
  EXPECT_DOUBLE_EQ(top_recall(truth, predicted, 0.01, 2), 1.0);
  predicted[199] = -1;  // the best is now predicted worst
  EXPECT_DOUBLE_EQ(top_recall(truth, predicted, 0.01, 10), 0.5);
  EXPECT_DOUBLE_EQ(top_recall(truth, predicted, 0.01, 200), 1.0);
}

TEST(TopRecall, TakesAtLeastOneItem) {
  std::vector<double> truth = {1, 3, 2}, predicted = {3, 2, 1};
  EXPECT_EQ(top_count(3, 0.01), 1u);
  EXPECT_DOUBLE_EQ(top_recall(truth, predicted, 0.01, 1), 0.0);
  EXPECT_DOUBLE_EQ(top_recall(truth, predicted, 0.01, 2), 1.0);
}

}  // namespace
}  // namespace kiln::cost
