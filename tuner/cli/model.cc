// `kiln model eval`: how well the cost model ranks a workload's measured configs, on records of
// the tuning log it has not trained on, and how well a model pre-trained on the operator's other
// shapes does without any record of this one.

#include <cmath>
#include <iostream>
#include <string>
#include <vector>

#include <spdlog/fmt/fmt.h>
#include <nlohmann/json.hpp>

#include "compiler_core/db/record.h"
#include "compiler_core/db/tuning_log.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"
#include "cost_model/evaluate.h"
#include "cost_model/features.h"
#include "tuner/cli/commands.h"
#include "tuner/cli/flags.h"
#include "tuner/cli/tuning_log_flag.h"

namespace kiln::tuner {
namespace {

const char* const kUsage =
    "usage: kiln model <action> [flags]\n\n"
    "The XGBoost cost model that ranks candidates by features of their lowered loop IR.\n\n"
    "actions:\n"
    "  eval  rank held-out records of a workload: a model trained on the rest, and one\n"
    "        pre-trained only on the operator's other shapes\n\n"
    "Run 'kiln model <action> --help' for its flags.\n";

FlagSet eval_flags() {
  FlagSet flags(
      "model eval",
      "Splits the workload's records in the tuning log at random (seeded) into a training and a "
      "held-out part, trains the cost model on the first, and scores its ranking of the held-out "
      "records that measured OK: Spearman's rank correlation of predicted score with measured "
      "throughput, and the recall of the true top 1% inside the predicted top k. Then the same "
      "for a model pre-trained on every record of the same operator and target except this "
      "workload's.",
      "With --json: one object {workload, target, feature_version, records, held_out, top_true, "
      "k, trained: {train_records, train_workloads, train_s, spearman, recall}, pretrained: "
      "{...} or null when the log holds no other shape of the operator}.\nExit codes: 0 done, 1 "
      "a damaged tuning log or a training failure, 2 bad flags, workload or target, a --db "
      "file that does not exist, or too few records of the workload.");
  flags.add_required_string("workload", "W", "the workload, e.g. matmul:M=1024,N=1024,K=1024");
  flags.add_string("target", "T", "the target the records were measured on", "llvm");
  add_db_flag(flags, "the tuning log to read");
  flags.add_int("train-percent", "P", "share of the workload's records to train on", 50, 1, 99);
  flags.add_int("top-k", "K", "size of the predicted top in which the true top 1% is sought", 0, 0,
                1000000, "5% of the held-out records");
  flags.add_int("seed", "S", "seed of the split", 1, 0, int64_t{1} << 62);
  flags.add_int("threads", "N", "the thread count of the records to use; 0: every count", 0, 0,
                core::kMaxRecordThreads);
  flags.add_bool("json", "print one JSON object on stdout instead of a summary");
  return flags;
}

nlohmann::ordered_json score_json(const cost::ModelScore& s) {
  auto number = [](double v) {
    return std::isnan(v) ? nlohmann::ordered_json() : nlohmann::ordered_json(v);
  };
  return {{"train_records", s.train_records},
          {"train_workloads", s.train_workloads},
          {"train_s", s.train_s},
          {"spearman", number(s.spearman)},
          {"recall", number(s.recall)}};
}

int eval_action(const std::vector<std::string>& args) {
  FlagSet flags = eval_flags();
  if (auto exit_code = parse_flags_or_exit(flags, args)) return *exit_code;

  Result<core::Workload> workload = core::parse_workload(flags.get_string("workload"));
  if (!workload) return report_error(workload.status());
  Result<core::Target> target = core::parse_target(flags.get_string("target"));
  if (!target) return report_error(target.status());
  Result<core::TargetKey> key = core::make_target_key(*target, int(flags.get_int("threads")));
  if (!key) return report_error(key.status());
  Result<core::TuningLog> log = open_db_for_reading(flags);
  if (!log) return report_error(log.status());

  cost::EvalOptions options;
  options.train_fraction = static_cast<double>(flags.get_int("train-percent")) / 100;
  options.top_k = static_cast<size_t>(flags.get_int("top-k"));
  options.seed = static_cast<uint64_t>(flags.get_int("seed"));
  Result<cost::EvalReport> report = cost::evaluate_model(*log, *workload, *key, options);
  if (!report) return report_error(report.status());

  if (flags.get_bool("json")) {
    nlohmann::ordered_json object = {
        {"workload", report->workload},
        {"target", target->str()},
        {"feature_version", cost::kFeatureVersion},
        {"records", report->records},
        {"held_out", report->held_out},
        {"top_true", report->top_true},
        {"k", report->k},
        {"trained", score_json(report->trained)},
        {"pretrained",
         report->pretrained ? score_json(*report->pretrained) : nlohmann::ordered_json()},
    };
    std::cout << object.dump() << "\n";
    return 0;
  }
  std::cout << fmt::format("{} on {}: {} records, {} held out (OK)\n", report->workload, key->str(),
                           report->records, report->held_out);
  auto line = [&](const char* name, const cost::ModelScore& s) {
    std::cout << fmt::format(
        "  {:<12} trained on {} records of {} workload(s) in {:.2f} s: Spearman {:.3f}, "
        "true top {} found in predicted top {}: {:.0f}%\n",
        name, s.train_records, s.train_workloads, s.train_s, s.spearman, report->top_true,
        report->k, 100 * s.recall);
  };
  line("trained", report->trained);
  if (report->pretrained) {
    line("pre-trained", *report->pretrained);
  } else {
    std::cout << fmt::format(
        "  pre-trained  none: the log holds no other {} workload on this "
        "target\n",
        core::op_name(workload->op));
  }
  return 0;
}

}  // namespace

int model_command(const std::vector<std::string>& args) {
  return run_action("model", kUsage, {{"eval", eval_action}}, args);
}

}  // namespace kiln::tuner
