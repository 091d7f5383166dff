// The one file of kiln that includes XGBoost's C API (STYLE.md §1, §4).

#include "cost_model/xgb_model.h"

#include <xgboost/c_api.h>

#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <mutex>

#include "compiler_core/support/file.h"
#include "compiler_core/support/log.h"

namespace kiln::cost {
namespace {

/// The one conversion of an XGBoost return code: failures become a Status carrying
/// XGBGetLastError(), read before any other XGBoost call can overwrite it.
Status check_xgb(int rc, const char* call) {
  if (rc == 0) return Status::ok();
  std::string message = XGBGetLastError();
  // XGBoost appends its stack trace; the first line says what failed.
  message = message.substr(0, message.find('\n'));
  return internal_error(std::string("xgboost ") + call + " failed: " + message);
}

#define KILN_XGB(call, ...) KILN_RETURN_IF_ERROR(check_xgb(call(__VA_ARGS__), #call))

struct DMatrixFree {
  void operator()(void* handle) const { XGDMatrixFree(handle); }
};
struct BoosterFree {
  void operator()(void* handle) const { XGBoosterFree(handle); }
};
using DMatrix = std::unique_ptr<void, DMatrixFree>;
using Booster = std::unique_ptr<void, BoosterFree>;

constexpr const char* kVersionAttr = "kiln_feature_version";
constexpr const char* kCountAttr = "kiln_num_features";

/// XGBoost's messages go to the `cost` logger instead of stdout.
void route_xgboost_logs() {
  static std::once_flag once;
  std::call_once(once, [] {
    XGBRegisterLogCallback(
        [](const char* message) { logger("cost")->debug("xgboost: {}", message); });
  });
}

std::string number(double v) {
  char text[64];
  std::snprintf(text, sizeof text, "%.17g", v);
  return text;
}

/// A booster; `cache` (optional) is the training matrix, from which XGBoost learns the number
/// of features.
Result<Booster> new_booster(void* cache = nullptr) {
  route_xgboost_logs();
  BoosterHandle handle = nullptr;
  DMatrixHandle matrices[1] = {cache};
  KILN_XGB(XGBoosterCreate, matrices, cache ? 1 : 0, &handle);
  return Booster(handle);
}

Status set_param(void* booster, const char* name, const std::string& value) {
  return check_xgb(XGBoosterSetParam(booster, name, value.c_str()), "XGBoosterSetParam");
}

/// Sets every training parameter; the objective only when `with_objective` (a loaded model
/// keeps the objective it was trained with).
Status set_params(void* booster, const XgbOptions& o, bool with_objective) {
  if (with_objective) KILN_RETURN_IF_ERROR(set_param(booster, "objective", o.objective));
  KILN_RETURN_IF_ERROR(set_param(booster, "tree_method", "hist"));
  KILN_RETURN_IF_ERROR(set_param(booster, "max_depth", std::to_string(o.max_depth)));
  KILN_RETURN_IF_ERROR(set_param(booster, "eta", number(o.eta)));
  KILN_RETURN_IF_ERROR(set_param(booster, "min_child_weight", number(o.min_child_weight)));
  KILN_RETURN_IF_ERROR(set_param(booster, "gamma", number(o.gamma)));
  KILN_RETURN_IF_ERROR(set_param(booster, "subsample", number(o.subsample)));
  KILN_RETURN_IF_ERROR(set_param(booster, "colsample_bytree", number(o.colsample_bytree)));
  KILN_RETURN_IF_ERROR(set_param(booster, "nthread", std::to_string(o.threads)));
  KILN_RETURN_IF_ERROR(set_param(booster, "seed", std::to_string(o.seed)));
  return set_param(booster, "verbosity", "1");
}

Status check_options(int num_features, const XgbOptions& o) {
  if (num_features < 1) {
    return invalid_argument("a model needs at least one feature, got " +
                            std::to_string(num_features));
  }
  if (o.rounds < 1 || o.update_rounds < 1 || o.max_depth < 1 || o.threads < 1 || !(o.eta > 0)) {
    return invalid_argument(
        "xgboost options need rounds, update_rounds, max_depth and threads >= 1 and eta > 0");
  }
  return Status::ok();
}

}  // namespace

struct XgbModel::Impl {
  Booster booster;
  int num_features = 0;
  int feature_version = 0;
  XgbOptions options;
  int rounds = 0;

  /// Tags the booster with the feature layout it was trained on; saved with the model.
  Status tag() {
    KILN_XGB(XGBoosterSetAttr, booster.get(), kVersionAttr,
             std::to_string(feature_version).c_str());
    KILN_XGB(XGBoosterSetAttr, booster.get(), kCountAttr, std::to_string(num_features).c_str());
    return Status::ok();
  }

  Result<DMatrix> matrix(const TrainingData& data) const {
    const size_t cols = static_cast<size_t>(num_features);
    if (data.labels.empty()) return invalid_argument("no training rows");
    if (data.features.size() != data.labels.size() * cols) {
      return invalid_argument("training data of " + std::to_string(data.features.size()) +
                              " floats for " + std::to_string(data.labels.size()) + " rows of " +
                              std::to_string(cols) + " features");
    }
    uint64_t grouped = 0;
    for (unsigned g : data.groups) grouped += g;
    if (grouped != data.labels.size()) {
      return invalid_argument("groups cover " + std::to_string(grouped) + " rows of " +
                              std::to_string(data.labels.size()));
    }
    DMatrixHandle handle = nullptr;
    KILN_XGB(XGDMatrixCreateFromMat, data.features.data(), data.labels.size(), cols, NAN, &handle);
    DMatrix m(handle);
    KILN_XGB(XGDMatrixSetFloatInfo, m.get(), "label", data.labels.data(), data.labels.size());
    KILN_XGB(XGDMatrixSetUIntInfo, m.get(), "group", data.groups.data(), data.groups.size());
    return m;
  }

  Status boost(const DMatrix& m, int count) {
    for (int i = 0; i < count; ++i) {
      KILN_XGB(XGBoosterUpdateOneIter, booster.get(), rounds, m.get());
      ++rounds;
    }
    return Status::ok();
  }
};

XgbModel::XgbModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
XgbModel::XgbModel(XgbModel&&) noexcept = default;
XgbModel& XgbModel::operator=(XgbModel&&) noexcept = default;
XgbModel::~XgbModel() = default;

Result<XgbModel> XgbModel::create(int num_features, int feature_version, XgbOptions options) {
  KILN_RETURN_IF_ERROR(check_options(num_features, options));
  auto impl = std::make_unique<Impl>();
  KILN_ASSIGN_OR_RETURN(impl->booster, new_booster());
  impl->num_features = num_features;
  impl->feature_version = feature_version;
  impl->options = std::move(options);
  KILN_RETURN_IF_ERROR(set_params(impl->booster.get(), impl->options, true));
  KILN_RETURN_IF_ERROR(impl->tag());
  return XgbModel(std::move(impl));
}

Result<XgbModel> XgbModel::load(const std::filesystem::path& path, int num_features,
                                int feature_version, XgbOptions options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      return Status(StatusCode::kNotFound, "no model file '" + path.string() + "'");
    }
    return Status(StatusCode::kFailedPrecondition,
                  "cannot read model file '" + path.string() + "'");
  }
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  Result<XgbModel> model =
      load_from_buffer(bytes, num_features, feature_version, std::move(options));
  if (!model.is_ok()) {
    return Status(model.status().code(),
                  "model file '" + path.string() + "': " + model.status().message());
  }
  return model;
}

Result<XgbModel> XgbModel::load_from_buffer(std::span<const uint8_t> bytes, int num_features,
                                            int feature_version, XgbOptions options) {
  KILN_RETURN_IF_ERROR(check_options(num_features, options));
  auto impl = std::make_unique<Impl>();
  KILN_ASSIGN_OR_RETURN(impl->booster, new_booster());
  if (bytes.empty() ||
      XGBoosterLoadModelFromBuffer(impl->booster.get(), bytes.data(), bytes.size()) != 0) {
    return invalid_argument(std::string("not an XGBoost model: ") +
                            (bytes.empty() ? "the file is empty" : XGBGetLastError()));
  }
  auto attr = [&](const char* key) -> Result<std::string> {
    const char* value = nullptr;
    int found = 0;
    KILN_XGB(XGBoosterGetAttr, impl->booster.get(), key, &value, &found);
    if (!found) {
      return invalid_argument(std::string("an XGBoost model without kiln's '") + key +
                              "' tag: not a kiln cost model");
    }
    return std::string(value);
  };
  KILN_ASSIGN_OR_RETURN(std::string version, attr(kVersionAttr));
  KILN_ASSIGN_OR_RETURN(std::string count, attr(kCountAttr));
  if (version != std::to_string(feature_version) || count != std::to_string(num_features)) {
    return Status(StatusCode::kFailedPrecondition,
                  "the model was trained on feature version " + version + " (" + count +
                      " features); this kiln makes version " + std::to_string(feature_version) +
                      " (" + std::to_string(num_features) + " features): train a new model");
  }
  int rounds = 0;
  KILN_XGB(XGBoosterBoostedRounds, impl->booster.get(), &rounds);
  impl->num_features = num_features;
  impl->feature_version = feature_version;
  impl->options = std::move(options);
  impl->rounds = rounds;
  KILN_RETURN_IF_ERROR(set_params(impl->booster.get(), impl->options, false));
  return XgbModel(std::move(impl));
}

Status XgbModel::train(const TrainingData& data) {
  KILN_ASSIGN_OR_RETURN(DMatrix m, impl_->matrix(data));
  // A fresh booster: no tree of an earlier training survives.
  KILN_ASSIGN_OR_RETURN(Booster booster, new_booster(m.get()));
  KILN_RETURN_IF_ERROR(set_params(booster.get(), impl_->options, true));
  Booster old = std::move(impl_->booster);
  const int old_rounds = impl_->rounds;
  impl_->booster = std::move(booster);
  impl_->rounds = 0;
  Status status = impl_->tag();
  if (status.is_ok()) status = impl_->boost(m, impl_->options.rounds);
  if (!status.is_ok()) {
    impl_->booster = std::move(old);
    impl_->rounds = old_rounds;
  }
  return status;
}

Status XgbModel::update(const TrainingData& data) {
  if (!is_trained()) return train(data);
  KILN_ASSIGN_OR_RETURN(DMatrix m, impl_->matrix(data));
  return impl_->boost(m, impl_->options.update_rounds);
}

Result<std::vector<float>> XgbModel::predict(std::span<const float> features) const {
  if (!is_trained()) {
    return Status(StatusCode::kFailedPrecondition,
                  "the cost model is untrained: train it on measured records first");
  }
  const size_t cols = static_cast<size_t>(impl_->num_features);
  if (features.size() % cols != 0) {
    return invalid_argument(std::to_string(features.size()) + " floats are not rows of " +
                            std::to_string(cols) + " features");
  }
  const size_t rows = features.size() / cols;
  if (rows == 0) return std::vector<float>();
  char array[256];
  std::snprintf(array, sizeof array,
                "{\"data\": [%" PRIuPTR
                ", true], \"shape\": [%zu, %zu], \"typestr\": \"<f4\", "
                "\"version\": 3}",
                reinterpret_cast<uintptr_t>(features.data()), rows, cols);
  static constexpr const char* kConfig =
      "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0, "
      "\"strict_shape\": false, \"cache_id\": 0, \"missing\": NaN}";
  const bst_ulong* shape = nullptr;
  bst_ulong dim = 0;
  const float* result = nullptr;
  KILN_XGB(XGBoosterPredictFromDense, impl_->booster.get(), array, kConfig, nullptr, &shape, &dim,
           &result);
  bst_ulong count = 1;
  for (bst_ulong d = 0; d < dim; ++d) count *= shape[d];
  if (count != rows) {
    return internal_error("xgboost returned " + std::to_string(count) + " predictions for " +
                          std::to_string(rows) + " rows");
  }
  return std::vector<float>(result, result + rows);  // copied before the next XGBoost call
}

bool XgbModel::is_trained() const { return impl_->rounds > 0; }
int XgbModel::rounds() const { return impl_->rounds; }
int XgbModel::num_features() const { return impl_->num_features; }

Result<std::vector<uint8_t>> XgbModel::save_to_buffer() const {
  if (!is_trained()) {
    return Status(StatusCode::kFailedPrecondition, "an untrained cost model cannot be saved");
  }
  bst_ulong length = 0;
  const char* data = nullptr;
  KILN_XGB(XGBoosterSaveModelToBuffer, impl_->booster.get(), "{\"format\": \"ubj\"}", &length,
           &data);
  return std::vector<uint8_t>(data, data + length);
}

Status XgbModel::save(const std::filesystem::path& path) const {
  KILN_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, save_to_buffer());
  // Replaced whole, so that a crash never leaves half a model behind.
  Status written = write_file_atomically(
      path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  if (!written.is_ok()) return internal_error("cannot write model file: " + written.message());
  return Status::ok();
}

std::string xgboost_version() {
  int major = 0, minor = 0, patch = 0;
  XGBoostVersion(&major, &minor, &patch);
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

}  // namespace kiln::cost
