#include "cost_model/evaluate.h"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "compiler_core/schedule/templates.h"
#include "cost_model/dataset.h"
#include "cost_model/metrics.h"

namespace kiln::cost {
namespace {

using Clock = std::chrono::steady_clock;

/// Scores `model` on the held-out records: predicted score against measured throughput.
Status score(CostModel& model, const core::Workload& workload, const core::Target& target,
             const core::ConfigSpace& space, const std::vector<const core::TuningRecord*>& test,
             double fraction, const EvalReport& report, ModelScore& out) {
  KILN_RETURN_IF_ERROR(model.set_workload(workload, target));
  std::vector<double> costs(test.size());
  for (size_t i = 0; i < test.size(); ++i) {
    auto config = space.at(test[i]->config_index);
    if (!config.is_ok()) return config.status();
    model.enqueue(*config, &costs[i]);
  }
  KILN_RETURN_IF_ERROR(model.evaluate_costs());
  std::vector<double> truth(test.size()), predicted(test.size());
  for (size_t i = 0; i < test.size(); ++i) {
    truth[i] = throughput(*test[i]);
    predicted[i] = -costs[i];
  }
  out.spearman = spearman(truth, predicted);
  out.recall = top_recall(truth, predicted, fraction, report.k);
  return Status::ok();
}

size_t count_workloads(std::span<const core::TuningRecord> records) {
  std::set<std::string> names;
  for (const core::TuningRecord& r : records) names.insert(r.workload);
  return names.size();
}

}  // namespace

Result<EvalReport> evaluate_model(const core::TuningLog& log, const core::Workload& workload,
                                  const core::TargetKey& target, const EvalOptions& options) {
  if (!(options.train_fraction > 0 && options.train_fraction < 1)) {
    return invalid_argument("the training share must lie strictly between 0 and 1, got " +
                            std::to_string(options.train_fraction));
  }
  KILN_ASSIGN_OR_RETURN(core::Target parsed_target, core::parse_target(target.target));
  KILN_ASSIGN_OR_RETURN(core::ConfigSpace space, core::config_space(workload, parsed_target));
  KILN_ASSIGN_OR_RETURN(std::vector<core::TuningRecord> records, log.history(workload, target));

  EvalReport report;
  report.workload = workload.canonical();
  report.target = target.str();
  report.records = records.size();

  // The split: a seeded shuffle, the first train_fraction to train on.
  std::vector<size_t> order(records.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::mt19937_64 rng(options.seed);
  std::shuffle(order.begin(), order.end(), rng);
  const size_t train_count =
      static_cast<size_t>(options.train_fraction * static_cast<double>(records.size()));
  std::vector<core::TuningRecord> train;
  std::vector<const core::TuningRecord*> test;
  for (size_t i = 0; i < order.size(); ++i) {
    const core::TuningRecord& r = records[order[i]];
    if (i < train_count) {
      train.push_back(r);
    } else if (r.error == core::MeasureError::kOk && space.at(r.config_index).is_ok()) {
      test.push_back(&r);
    }
  }
  size_t ok_train = 0;
  for (const core::TuningRecord& r : train) ok_train += r.error == core::MeasureError::kOk ? 1 : 0;
  if (test.size() < 2 || ok_train < 2) {
    return Status(StatusCode::kNotFound, "too few OK records of " + report.workload + " on " +
                                             report.target + " to evaluate (" +
                                             std::to_string(records.size()) +
                                             " records); measure more, e.g. with kiln tune");
  }
  report.held_out = test.size();
  report.top_true = top_count(test.size(), options.top_fraction);
  report.k =
      options.top_k > 0 ? std::min(options.top_k, test.size()) : top_count(test.size(), 0.05);

  {
    auto model = make_xgb_cost_model(options.model);
    const auto start = Clock::now();
    KILN_RETURN_IF_ERROR(model->train(train));
    report.trained.train_s = std::chrono::duration<double>(Clock::now() - start).count();
    report.trained.train_records = train.size();
    report.trained.train_workloads = 1;
    KILN_RETURN_IF_ERROR(score(*model, workload, parsed_target, space, test, options.top_fraction,
                               report, report.trained));
  }

  KILN_ASSIGN_OR_RETURN(std::vector<core::TuningRecord> others,
                        records_of_operator(log, workload.op, target, report.workload));
  if (!others.empty()) {
    ModelScore pre;
    auto model = make_xgb_cost_model(options.model);
    const auto start = Clock::now();
    KILN_RETURN_IF_ERROR(model->train(others));
    pre.train_s = std::chrono::duration<double>(Clock::now() - start).count();
    pre.train_records = others.size();
    pre.train_workloads = count_workloads(others);
    KILN_RETURN_IF_ERROR(
        score(*model, workload, parsed_target, space, test, options.top_fraction, report, pre));
    report.pretrained = pre;
  }
  return report;
}

}  // namespace kiln::cost
