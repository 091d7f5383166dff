// ONNX's own node tests (libonnx-testdata: data/node/test_*/model.onnx with
// test_data_set_*/input_*.pb and output_*.pb), run through the importer and compute_outputs.
//
// Every test whose operators kiln supports (graph::supported_ops()) is imported and run on each
// of its data sets; its outputs must match ONNX's within rtol 1e-4, atol 1e-5. A test is
// skipped, and reported with its reason, when
//   - it uses an operator outside supported_ops() ("operator"),
//   - a tensor of it has an element type other than float32 and int64 ("dtype": test_add_uint8),
//   - the importer refuses it as not supported: an attribute or attribute value, an extra
//     output, a rank that kiln does not run ("unsupported").
// The test fails when a test that ran does not match, when running it fails, or when the import
// of a test with supported operators fails for any other reason.
//
// Inputs: kiln needs the operands that decide a shape (Reshape's shape, Slice's starts, Clip's
// bounds) to be constants, which node tests pass as graph inputs. int64 inputs and rank-0
// inputs are therefore bound as constants (OnnxImportOptions::constant_inputs); every other
// input stays a graph input.
//
// Opsets: kiln imports opsets 11 to 17. A test written for an older opset whose operators did
// not change between it and opset 11 (test_globalaveragepool: opset 1; test_hardsigmoid: 6) is
// raised to opset 11, as onnx.version_converter would, and run; ONNX's schema registry says
// whether an operator changed. Any other older test is a failure of the import.
//
// KILN_ONNX_NODE_DIR overrides the data folder; without it the whole test skips when the folder
// is absent, unless KILN_REQUIRE_MODEL is set.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "compiler_core/frontend/onnx/onnx_import.h"
#include "compiler_core/graph/ops.h"
#include "onnx/defs/schema.h"
#include "onnx/onnx_pb.h"
#include "tests/model/model_runner.h"

namespace kiln::model_test {
namespace {

namespace fs = std::filesystem;

constexpr double kRtol = 1e-4;
constexpr double kAtol = 1e-5;

// The operators the model path promises; the report has a row for each.
const std::vector<std::string> kListedOps = {"Conv",
                                             "Gemm",
                                             "MatMul",
                                             "Add",
                                             "Sub",
                                             "Mul",
                                             "Div",
                                             "Relu",
                                             "Clip",
                                             "Sigmoid",
                                             "HardSigmoid",
                                             "HardSwish",
                                             "Tanh",
                                             "BatchNormalization",
                                             "MaxPool",
                                             "AveragePool",
                                             "GlobalAveragePool",
                                             "ReduceMean",
                                             "Flatten",
                                             "Reshape",
                                             "Transpose",
                                             "Concat",
                                             "Split",
                                             "Slice",
                                             "Pad",
                                             "Squeeze",
                                             "Unsqueeze",
                                             "Softmax",
                                             "Identity",
                                             "Dropout",
                                             "Constant",
                                             "Shape",
                                             "Gather",
                                             "Cast"};

enum class Outcome { kPassed, kFailed, kSkippedOperator, kSkippedDtype, kSkippedUnsupported };

struct Row {
  int tests = 0, ran = 0, passed = 0, failed = 0, skip_dtype = 0, skip_unsupported = 0,
      skip_operator = 0;
  void add(Outcome o) {
    ++tests;
    switch (o) {
      case Outcome::kPassed:
        ++ran, ++passed;
        break;
      case Outcome::kFailed:
        ++ran, ++failed;
        break;
      case Outcome::kSkippedOperator:
        ++skip_operator;
        break;
      case Outcome::kSkippedDtype:
        ++skip_dtype;
        break;
      case Outcome::kSkippedUnsupported:
        ++skip_unsupported;
        break;
    }
  }
};

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool is_dtype_message(const std::string& message) {
  return message.find("element type") != std::string::npos;
}

bool is_unsupported_message(const std::string& message) {
  return message.find("not supported") != std::string::npos ||
         message.find("unsupported") != std::string::npos;
}

std::string shape_text(const graph::TensorInfo& info) { return graph::to_string(info); }

// "" when `got` matches `want`, else what differs.
std::string compare(const graph::Tensor& got, const graph::Tensor& want) {
  if (got.info != want.info) {
    return "got " + shape_text(got.info) + ", expected " + shape_text(want.info);
  }
  int64_t bad = 0;
  std::string first;
  double worst = 0;
  for (int64_t i = 0; i < want.num_elements(); ++i) {
    const double g = got.at(i), w = want.at(i);
    if (std::isnan(w) && std::isnan(g)) continue;
    if (g == w) continue;
    const double err = std::abs(g - w);
    if (err <= kAtol + kRtol * std::abs(w)) continue;
    if (bad++ == 0) {
      first = "element " + std::to_string(i) + ": got " + std::to_string(g) + ", expected " +
              std::to_string(w);
    }
    worst = std::max(worst, err);
  }
  if (bad == 0) return "";
  return std::to_string(bad) + " of " + std::to_string(want.num_elements()) +
         " elements differ (first " + first + "; worst error " + std::to_string(worst) + ")";
}

struct TestCase {
  std::string name;
  std::set<std::string> ops;
  int64_t raised_from = 0;           ///< the model's opset when it was raised to 11
  std::vector<std::string> missing;  ///< the operators kiln does not support
  Outcome outcome = Outcome::kPassed;
  std::string reason;
};

// Raises `model` to opset 11 when its opset is older and none of its operators changed since.
void raise_unchanged_opset(onnx::ModelProto& model, TestCase* tc) {
  constexpr int kOldest = 11;
  for (auto& opset : *model.mutable_opset_import()) {
    if (!opset.domain().empty() && opset.domain() != "ai.onnx") continue;
    if (opset.version() >= kOldest) return;
    for (const auto& node : model.graph().node()) {
      const onnx::OpSchema* schema = onnx::OpSchemaRegistry::Schema(node.op_type(), kOldest, "");
      if (schema == nullptr || schema->since_version() > opset.version()) return;
    }
    tc->raised_from = opset.version();
    opset.set_version(kOldest);
  }
}

// Runs one node test folder.
TestCase run_node_test(const fs::path& dir) {
  TestCase tc;
  tc.name = dir.filename().string();
  onnx::ModelProto model;
  if (!model.ParseFromString(read_bytes(dir / "model.onnx"))) {
    tc.outcome = Outcome::kFailed;
    tc.reason = "model.onnx does not parse";
    return tc;
  }
  std::vector<std::string> unsupported;
  for (const auto& node : model.graph().node()) {
    const bool default_domain = node.domain().empty() || node.domain() == "ai.onnx";
    const std::string op = default_domain ? node.op_type() : node.domain() + ":" + node.op_type();
    tc.ops.insert(op);
    if (!default_domain || (op != "Constant" && !graph::is_supported_op(op))) {
      unsupported.push_back(op);
    }
  }
  if (!unsupported.empty()) {
    tc.outcome = Outcome::kSkippedOperator;
    tc.reason = "operator " + unsupported.front();
    tc.missing = unsupported;
    return tc;
  }

  for (const auto* values : {&model.graph().input(), &model.graph().output()}) {
    for (const auto& value : *values) {
      if (!value.type().has_tensor_type()) {
        tc.outcome = Outcome::kSkippedDtype;
        tc.reason = "'" + value.name() + "' is not a tensor (a sequence or optional type)";
        return tc;
      }
    }
  }
  raise_unchanged_opset(model, &tc);

  std::set<std::string> initializers;
  for (const auto& init : model.graph().initializer()) initializers.insert(init.name());
  std::vector<std::string> input_names, output_names;
  for (const auto& input : model.graph().input()) {
    if (!initializers.count(input.name())) input_names.push_back(input.name());
  }
  for (const auto& output : model.graph().output()) output_names.push_back(output.name());

  std::vector<fs::path> data_sets;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_directory() && entry.path().filename().string().rfind("test_data_set_", 0) == 0) {
      data_sets.push_back(entry.path());
    }
  }
  std::sort(data_sets.begin(), data_sets.end());
  if (data_sets.empty()) {
    tc.outcome = Outcome::kFailed;
    tc.reason = "no test_data_set_* folder";
    return tc;
  }

  auto read_set = [&](const fs::path& set, const char* prefix, size_t count,
                      std::vector<graph::Tensor>* out) -> Status {
    for (size_t i = 0; i < count; ++i) {
      const fs::path file = set / (prefix + std::to_string(i) + ".pb");
      KILN_ASSIGN_OR_RETURN(graph::Tensor t, frontend::read_onnx_tensor_file(file.string()));
      out->push_back(std::move(t));
    }
    return Status::ok();
  };
  auto skip_or_fail = [&](const Status& status, const std::string& during) {
    if (status.code() == StatusCode::kInvalidArgument && is_dtype_message(status.message())) {
      tc.outcome = Outcome::kSkippedDtype;
    } else if (status.code() == StatusCode::kInvalidArgument &&
               is_unsupported_message(status.message())) {
      tc.outcome = Outcome::kSkippedUnsupported;
    } else {
      tc.outcome = Outcome::kFailed;
    }
    tc.reason = during + ": " + status.message();
  };

  for (const fs::path& set : data_sets) {
    std::vector<graph::Tensor> inputs, expected;
    if (Status s = read_set(set, "input_", input_names.size(), &inputs); !s.is_ok()) {
      skip_or_fail(s, "reading inputs");
      return tc;
    }
    if (Status s = read_set(set, "output_", output_names.size(), &expected); !s.is_ok()) {
      skip_or_fail(s, "reading outputs");
      return tc;
    }
    frontend::OnnxImportOptions options;
    std::map<std::string, graph::Tensor> feeds;
    for (size_t i = 0; i < input_names.size(); ++i) {
      const bool operand =
          inputs[i].info.dtype == graph::DType::kInt64 || inputs[i].info.shape.empty();
      if (operand) {
        options.constant_inputs[input_names[i]] = inputs[i];
      } else {
        feeds[input_names[i]] = inputs[i];
        options.input_shapes[input_names[i]] = inputs[i].info.shape;
      }
    }
    auto g = frontend::import_onnx(model.SerializeAsString(), options);
    if (!g.is_ok()) {
      skip_or_fail(g.status(), "import");
      return tc;
    }
    auto outputs = compute_outputs(*g, feeds);
    if (!outputs.is_ok()) {
      tc.outcome = Outcome::kFailed;
      tc.reason = set.filename().string() + ": running failed: " + outputs.status().to_string();
      return tc;
    }
    for (size_t i = 0; i < output_names.size(); ++i) {
      auto it = outputs->find(output_names[i]);
      if (it == outputs->end()) {
        tc.outcome = Outcome::kFailed;
        tc.reason = "output '" + output_names[i] + "' missing";
        return tc;
      }
      const std::string diff = compare(it->second, expected[i]);
      if (!diff.empty()) {
        tc.outcome = Outcome::kFailed;
        tc.reason = set.filename().string() + ": output '" + output_names[i] + "': " + diff;
        return tc;
      }
    }
  }
  tc.outcome = Outcome::kPassed;
  return tc;
}

fs::path node_test_dir() {
  const char* env = std::getenv("KILN_ONNX_NODE_DIR");
  return env != nullptr ? fs::path(env) : fs::path("/usr/share/libonnx-testdata/data/node");
}

TEST(OnnxNodeTests, EveryTestOfSupportedOperatorsMatches) {
  const fs::path root = node_test_dir();
  if (!fs::is_directory(root)) {
    if (std::getenv("KILN_REQUIRE_MODEL") != nullptr) {
      FAIL() << "ONNX's node tests are not at " << root
             << " (install libonnx-testdata or set KILN_ONNX_NODE_DIR)";
    }
    GTEST_SKIP() << "ONNX's node tests are not at " << root
                 << " (install libonnx-testdata; KILN_REQUIRE_MODEL makes this a failure)";
  }
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (entry.is_directory() && entry.path().filename().string().rfind("test_", 0) == 0 &&
        fs::exists(entry.path() / "model.onnx")) {
      dirs.push_back(entry.path());
    }
  }
  std::sort(dirs.begin(), dirs.end());
  ASSERT_FALSE(dirs.empty()) << "no node tests in " << root;

  std::map<std::string, Row> rows;
  Row total, other;
  std::vector<TestCase> cases;
  for (const fs::path& dir : dirs) {
    TestCase tc = run_node_test(dir);
    total.add(tc.outcome);
    bool listed = false;
    for (const std::string& op : tc.ops) {
      if (std::find(kListedOps.begin(), kListedOps.end(), op) != kListedOps.end()) {
        rows[op].add(tc.outcome);
        listed = true;
      }
    }
    if (!listed) other.add(tc.outcome);
    cases.push_back(std::move(tc));
  }

  std::printf("\nONNX node tests in %s (a test counts under each listed operator it uses)\n",
              root.c_str());
  std::printf("%-20s %6s %6s %6s %6s %10s %12s %10s\n", "operator", "tests", "ran", "passed",
              "failed", "skip:dtype", "skip:unsupp", "skip:op");
  auto print_row = [](const std::string& name, const Row& r) {
    std::printf("%-20s %6d %6d %6d %6d %10d %12d %10d\n", name.c_str(), r.tests, r.ran, r.passed,
                r.failed, r.skip_dtype, r.skip_unsupported, r.skip_operator);
  };
  for (const std::string& op : kListedOps) print_row(op, rows[op]);
  print_row("(unlisted only)", other);
  print_row("total", total);

  // What keeps the tests of listed operators from running (mostly the *_expanded tests, whose
  // function bodies use other operators).
  std::map<std::string, int> blockers;
  for (const TestCase& tc : cases) {
    bool listed = false;
    for (const std::string& op : tc.ops) {
      listed = listed || std::find(kListedOps.begin(), kListedOps.end(), op) != kListedOps.end();
    }
    if (!listed) continue;
    for (const std::string& op : std::set<std::string>(tc.missing.begin(), tc.missing.end())) {
      ++blockers[op];
    }
  }
  std::vector<std::pair<int, std::string>> ranked;
  for (const auto& [op, count] : blockers) ranked.emplace_back(-count, op);
  std::sort(ranked.begin(), ranked.end());
  std::printf("\nunsupported operators in tests of listed operators (tests):");
  for (size_t i = 0; i < ranked.size(); ++i) {
    std::printf("%s %s %d", i % 6 == 0 ? "\n " : "", ranked[i].second.c_str(), -ranked[i].first);
  }
  std::printf("\n");
  for (const std::string& op : kListedOps) {
    if (op != "Constant" && !graph::is_supported_op(op)) {
      std::printf("listed operator %s is not in supported_ops()\n", op.c_str());
    }
  }
  for (const std::string& op : graph::supported_ops()) {
    if (std::find(kListedOps.begin(), kListedOps.end(), op) == kListedOps.end()) {
      std::printf("supported operator %s is not listed\n", op.c_str());
    }
  }

  std::printf("\nskipped as unsupported (import refused):\n");
  for (const TestCase& tc : cases) {
    if (tc.outcome == Outcome::kSkippedUnsupported) {
      std::printf("  %s: %s\n", tc.name.c_str(), tc.reason.c_str());
    }
  }
  std::printf("raised to opset 11 (their operators are unchanged since their opset):\n");
  for (const TestCase& tc : cases) {
    if (tc.raised_from != 0) {
      std::printf("  %s: opset %lld\n", tc.name.c_str(), static_cast<long long>(tc.raised_from));
    }
  }
  std::printf("skipped for an unsupported dtype (tests of supported operators):\n");
  for (const TestCase& tc : cases) {
    if (tc.outcome == Outcome::kSkippedDtype) {
      std::printf("  %s: %s\n", tc.name.c_str(), tc.reason.c_str());
    }
  }
  std::printf("\n");
  int ran = 0;
  for (const TestCase& tc : cases) {
    if (tc.outcome == Outcome::kFailed) ADD_FAILURE() << tc.name << ": " << tc.reason;
    ran += tc.outcome == Outcome::kPassed || tc.outcome == Outcome::kFailed;
  }
  EXPECT_GT(ran, 0) << "no node test ran";
}

}  // namespace
}  // namespace kiln::model_test
