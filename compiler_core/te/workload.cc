#include "compiler_core/te/workload.h"

#include <charconv>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "compiler_core/support/check.h"

namespace kiln::core {
namespace {

constexpr std::string_view kExample = "matmul:M=1024,N=1024,K=1024";
constexpr std::string_view kKnownOps = "matmul, dense, batch_matmul, conv2d, depthwise_conv2d";

/// The keys one operator accepts, in canonical order, and which of them are required.
struct OpSpec {
  OpKind op;
  std::string_view name;
  std::vector<std::string_view> required;
  std::vector<std::string_view> optional;
};

const std::vector<OpSpec>& op_specs() {
  static const std::vector<OpSpec> specs = {
      {OpKind::kMatmul, "matmul", {"M", "N", "K"}, {"dtype"}},
      {OpKind::kDense, "dense", {"M", "N", "K"}, {"bias", "residual", "act", "dtype"}},
      {OpKind::kBatchMatmul, "batch_matmul", {"B", "M", "N", "K"}, {"dtype"}},
      {OpKind::kConv2d,
       "conv2d",
       {"N", "C", "H", "W", "K", "R", "S"},
       {"stride", "stride_h", "stride_w", "pad", "pad_h", "pad_w", "dilation", "dilation_h",
        "dilation_w", "groups", "layout", "bias", "residual", "act", "dtype"}},
      {OpKind::kDepthwiseConv2d,
       "depthwise_conv2d",
       {"N", "C", "H", "W", "R", "S"},
       {"stride", "stride_h", "stride_w", "pad", "pad_h", "pad_w", "dilation", "dilation_h",
        "dilation_w", "layout", "bias", "residual", "act", "dtype"}},
  };
  return specs;
}

std::string join(const std::vector<std::string_view>& items) {
  std::string out;
  for (std::string_view item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

bool is_conv(OpKind op) { return op == OpKind::kConv2d || op == OpKind::kDepthwiseConv2d; }

std::string_view trim(std::string_view s) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

/// The key=value pairs of one workload string, with helpers that turn values into fields.
class KeyValues {
 public:
  explicit KeyValues(std::string_view text) : text_(text) {}

  void set(std::string_view key, std::string_view value) { values_[std::string(key)] = value; }
  bool has(std::string_view key) const { return values_.count(std::string(key)) > 0; }
  std::string_view value(std::string_view key) const { return values_.at(std::string(key)); }

  /// An integer value; `min_value` is 1 for sizes, strides and dilations, 0 for padding.
  Result<int64_t> integer(std::string_view key, int64_t min_value, int64_t max_dim) const {
    std::string_view value = values_.at(std::string(key));
    int64_t parsed = 0;
    const char* first = value.data();
    const char* last = value.data() + value.size();
    auto [ptr, ec] = std::from_chars(first, last, parsed);
    if (ec == std::errc::result_out_of_range) {
      return invalid_argument("value of " + std::string(key) + "=" + std::string(value) +
                              " is far beyond the largest allowed size " + std::to_string(max_dim) +
                              " in workload '" + std::string(text_) + "'");
    }
    if (ec != std::errc() || ptr != last || value.empty()) {
      return invalid_argument("value '" + std::string(value) + "' of key " + std::string(key) +
                              " is not an integer in workload '" + std::string(text_) +
                              "'; write a whole number such as " + std::string(key) + "=" +
                              (min_value == 0 ? "1" : "64"));
    }
    if (parsed < min_value) {
      std::string need = min_value == 0 ? "a non-negative integer" : "a positive integer";
      return invalid_argument("value " + std::string(key) + "=" + std::string(value) + " must be " +
                              need + " in workload '" + std::string(text_) +
                              "'; sizes, strides, dilations and groups are >= 1, pads >= 0");
    }
    if (parsed > max_dim) {
      return invalid_argument("value " + std::string(key) + "=" + std::string(value) +
                              " exceeds the largest allowed size " + std::to_string(max_dim) +
                              " in workload '" + std::string(text_) + "'");
    }
    return parsed;
  }

  /// Fills `h` and `w` from `key` (both axes) or `key_h`/`key_w` (one axis each); `fallback`
  /// when none is given. Both forms at once is an error: which one wins would be a guess.
  Status axis_pair(std::string_view key, int64_t min_value, int64_t fallback, int64_t max_dim,
                   int64_t* h, int64_t* w) const {
    std::string key_h = std::string(key) + "_h";
    std::string key_w = std::string(key) + "_w";
    if (has(key) && (has(key_h) || has(key_w))) {
      return invalid_argument("workload '" + std::string(text_) + "' sets both " +
                              std::string(key) + " and " + (has(key_h) ? key_h : key_w) + "; use " +
                              std::string(key) + "= for both axes or " + key_h + "=/" + key_w +
                              "= for each axis");
    }
    *h = fallback;
    *w = fallback;
    if (has(key)) {
      KILN_ASSIGN_OR_RETURN(int64_t both, integer(key, min_value, max_dim));
      *h = both;
      *w = both;
    }
    if (has(key_h)) {
      KILN_ASSIGN_OR_RETURN(*h, integer(key_h, min_value, max_dim));
    }
    if (has(key_w)) {
      KILN_ASSIGN_OR_RETURN(*w, integer(key_w, min_value, max_dim));
    }
    return Status::ok();
  }

  /// One of `choices` (spelled exactly), returning its position.
  Result<int> choice(std::string_view key, const std::vector<std::string_view>& choices) const {
    std::string_view value = values_.at(std::string(key));
    for (size_t i = 0; i < choices.size(); ++i) {
      if (value == choices[i]) return static_cast<int>(i);
    }
    std::string accepted;
    for (std::string_view c : choices) {
      if (!accepted.empty()) accepted += "|";
      accepted += c;
    }
    return invalid_argument("unsupported " + std::string(key) + " '" + std::string(value) +
                            "' in workload '" + std::string(text_) +
                            "'; accepted: " + std::string(key) + "=" + accepted);
  }

  std::string_view text() const { return text_; }

 private:
  std::string_view text_;
  std::map<std::string, std::string_view> values_;
};

/// Total float32 bytes of the inputs and the output, in __int128 so that no product of sizes
/// below max_dim can overflow (four dims of 2^24 are 2^96).
__int128 total_bytes(const Workload& w) {
  __int128 elements = 0;
  auto add = [&](const Shape& shape) {
    __int128 count = 1;
    for (int64_t d : shape) count *= d;
    elements += count;
  };
  for (const Shape& s : w.input_shapes()) add(s);
  add(w.output_shape());
  return elements * static_cast<__int128>(sizeof(float));
}

std::string format_gib(__int128 bytes) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.3g GiB", static_cast<double>(bytes) / (1024.0 * 1024 * 1024));
  return buf;
}

/// Checks that the dilated kernel fits in the padded input along one axis.
Status check_kernel_fits(const KeyValues& kv, std::string_view axis, std::string_view size_key,
                         int64_t size, std::string_view kernel_key, int64_t kernel, int64_t pad,
                         int64_t dilation) {
  // Every value is below max_dim (2^24 by default, at most 2^62 in principle), so compute the
  // extents in __int128 to stay safe under any limit.
  __int128 extent = static_cast<__int128>(dilation) * (kernel - 1) + 1;
  __int128 padded = static_cast<__int128>(size) + 2 * static_cast<__int128>(pad);
  if (extent <= padded) return Status::ok();
  return invalid_argument(
      "kernel " + std::string(kernel_key) + "=" + std::to_string(kernel) + " with dilation_" +
      std::string(axis) + "=" + std::to_string(dilation) + " spans " +
      std::to_string(static_cast<int64_t>(extent)) + " but the padded input has only " +
      std::to_string(static_cast<int64_t>(padded)) + " (" + std::string(size_key) + "=" +
      std::to_string(size) + ", pad_" + std::string(axis) + "=" + std::to_string(pad) +
      ") in workload '" + std::string(kv.text()) + "'; use a smaller kernel or more padding");
}

constexpr Activation kActivations[] = {Activation::kNone, Activation::kRelu, Activation::kRelu6,
                                       Activation::kHardSwish, Activation::kSigmoid};

/// bias, residual and act of an operator with an epilogue into `w`.
Status parse_epilogue_fields(const KeyValues& kv, Workload* w) {
  if (kv.has("bias")) {
    KILN_ASSIGN_OR_RETURN(int bias, kv.choice("bias", {"0", "1"}));
    w->bias = bias == 1;
  }
  if (kv.has("residual")) {
    KILN_ASSIGN_OR_RETURN(int residual, kv.choice("residual", {"0", "1"}));
    w->residual = residual == 1;
  }
  if (kv.has("act")) {
    std::vector<std::string_view> names;
    for (Activation a : kActivations) names.push_back(activation_name(a));
    KILN_ASSIGN_OR_RETURN(int act, kv.choice("act", names));
    w->act = kActivations[act];
  }
  return Status::ok();
}

/// M, N, K (and B, the epilogue) of matmul, dense and batch_matmul into `w` (w->op is set).
Status parse_matmul_fields(const KeyValues& kv, int64_t max_dim, Workload* w) {
  auto size = [&](std::string_view key) { return kv.integer(key, 1, max_dim); };
  if (w->op == OpKind::kBatchMatmul) {
    KILN_ASSIGN_OR_RETURN(w->batch, size("B"));
  }
  KILN_ASSIGN_OR_RETURN(w->m, size("M"));
  KILN_ASSIGN_OR_RETURN(w->n, size("N"));
  KILN_ASSIGN_OR_RETURN(w->k, size("K"));
  if (w->op == OpKind::kDense) return parse_epilogue_fields(kv, w);
  return Status::ok();
}

/// The fields of conv2d and depthwise_conv2d into `w` (w->op is set), with the checks that
/// relate them: the kernel fits the padded input, groups divide the channels.
Status parse_conv_fields(const KeyValues& kv, int64_t max_dim, Workload* w) {
  auto size = [&](std::string_view key) { return kv.integer(key, 1, max_dim); };
  const std::string text(kv.text());
  KILN_ASSIGN_OR_RETURN(w->batch_n, size("N"));
  KILN_ASSIGN_OR_RETURN(w->in_channels, size("C"));
  KILN_ASSIGN_OR_RETURN(w->height, size("H"));
  KILN_ASSIGN_OR_RETURN(w->width, size("W"));
  if (w->op == OpKind::kConv2d) {
    KILN_ASSIGN_OR_RETURN(w->out_channels, size("K"));
  } else {
    w->out_channels = w->in_channels;
  }
  KILN_ASSIGN_OR_RETURN(w->kernel_h, size("R"));
  KILN_ASSIGN_OR_RETURN(w->kernel_w, size("S"));
  KILN_RETURN_IF_ERROR(kv.axis_pair("stride", 1, 1, max_dim, &w->stride_h, &w->stride_w));
  KILN_RETURN_IF_ERROR(kv.axis_pair("pad", 0, 0, max_dim, &w->pad_h, &w->pad_w));
  KILN_RETURN_IF_ERROR(kv.axis_pair("dilation", 1, 1, max_dim, &w->dilation_h, &w->dilation_w));
  if (w->op == OpKind::kDepthwiseConv2d) {
    w->groups = w->in_channels;
  } else if (kv.has("groups")) {
    KILN_ASSIGN_OR_RETURN(w->groups, size("groups"));
  }
  if (kv.has("layout")) {
    KILN_ASSIGN_OR_RETURN(int layout, kv.choice("layout", {"NCHW", "NHWC"}));
    w->layout = layout == 1 ? Layout::kNHWC : Layout::kNCHW;
  }
  KILN_RETURN_IF_ERROR(parse_epilogue_fields(kv, w));

  KILN_RETURN_IF_ERROR(
      check_kernel_fits(kv, "h", "H", w->height, "R", w->kernel_h, w->pad_h, w->dilation_h));
  KILN_RETURN_IF_ERROR(
      check_kernel_fits(kv, "w", "W", w->width, "S", w->kernel_w, w->pad_w, w->dilation_w));
  if (w->in_channels % w->groups != 0) {
    return invalid_argument("input channels C=" + std::to_string(w->in_channels) +
                            " are not divisible by groups=" + std::to_string(w->groups) +
                            " in workload '" + text + "'; groups must divide both C and K");
  }
  if (w->out_channels % w->groups != 0) {
    return invalid_argument("output channels K=" + std::to_string(w->out_channels) +
                            " are not divisible by groups=" + std::to_string(w->groups) +
                            " in workload '" + text + "'; groups must divide both C and K");
  }
  // The output extent can exceed max_dim through padding alone (H=1, pad=max_dim).
  if (w->out_height() > max_dim || w->out_width() > max_dim) {
    return invalid_argument("output size " + std::to_string(w->out_height()) + "x" +
                            std::to_string(w->out_width()) + " exceeds the largest allowed size " +
                            std::to_string(max_dim) + " in workload '" + text + "'");
  }
  return Status::ok();
}

void append_key(std::string* out, std::string_view key, int64_t value) {
  if (out->back() != ':') *out += ',';
  *out += key;
  *out += '=';
  *out += std::to_string(value);
}

void append_key(std::string* out, std::string_view key, std::string_view value) {
  if (out->back() != ':') *out += ',';
  *out += key;
  *out += '=';
  *out += value;
}

/// `key=v` when both axes agree, else `key_h=..,key_w=..`; nothing when both equal `omit`.
void append_axis_pair(std::string* out, std::string_view key, int64_t h, int64_t w,
                      std::optional<int64_t> omit) {
  if (omit && h == *omit && w == *omit) return;
  if (h == w) {
    append_key(out, key, h);
    return;
  }
  append_key(out, std::string(key) + "_h", h);
  append_key(out, std::string(key) + "_w", w);
}

/// The epilogue's keys, defaults left out: bias, residual, act.
void append_epilogue(std::string* out, const Workload& w) {
  if (w.bias) append_key(out, "bias", int64_t{1});
  if (w.residual) append_key(out, "residual", int64_t{1});
  if (w.act != Activation::kNone) append_key(out, "act", activation_name(w.act));
}

}  // namespace

int64_t num_elements(const Shape& shape) {
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  return count;
}

const char* op_name(OpKind op) {
  switch (op) {
    case OpKind::kMatmul:
      return "matmul";
    case OpKind::kDense:
      return "dense";
    case OpKind::kBatchMatmul:
      return "batch_matmul";
    case OpKind::kConv2d:
      return "conv2d";
    case OpKind::kDepthwiseConv2d:
      return "depthwise_conv2d";
  }
  KILN_UNREACHABLE() << "unknown op " << static_cast<int>(op);
}

const char* activation_name(Activation act) {
  switch (act) {
    case Activation::kNone:
      return "none";
    case Activation::kRelu:
      return "relu";
    case Activation::kRelu6:
      return "relu6";
    case Activation::kHardSwish:
      return "hardswish";
    case Activation::kSigmoid:
      return "sigmoid";
  }
  KILN_UNREACHABLE() << "unknown activation " << static_cast<int>(act);
}

int64_t Workload::out_height() const {
  if (!is_conv(op)) return 0;
  return (height + 2 * pad_h - dilation_h * (kernel_h - 1) - 1) / stride_h + 1;
}

int64_t Workload::out_width() const {
  if (!is_conv(op)) return 0;
  return (width + 2 * pad_w - dilation_w * (kernel_w - 1) - 1) / stride_w + 1;
}

std::vector<Shape> Workload::input_shapes() const {
  std::vector<Shape> shapes = operator_input_shapes();
  if (bias) shapes.push_back({op == OpKind::kDense ? n : out_channels});
  if (residual) shapes.push_back(output_shape());
  return shapes;
}

std::vector<Shape> Workload::operator_input_shapes() const {
  switch (op) {
    case OpKind::kMatmul:
      return {{m, k}, {k, n}};
    case OpKind::kDense:
      return {{m, k}, {n, k}};
    case OpKind::kBatchMatmul:
      return {{batch, m, k}, {batch, k, n}};
    case OpKind::kConv2d:
    case OpKind::kDepthwiseConv2d: {
      // Depthwise is a grouped conv with groups = C, so C / groups = 1 gives its weight shapes
      // [C,1,R,S] (NCHW) and [R,S,1,C] (NHWC; the same memory order as [R,S,C,1]).
      const int64_t cpg = in_channels / groups;
      if (layout == Layout::kNCHW) {
        return {{batch_n, in_channels, height, width}, {out_channels, cpg, kernel_h, kernel_w}};
      }
      if (op == OpKind::kDepthwiseConv2d) {
        return {{batch_n, height, width, in_channels}, {kernel_h, kernel_w, in_channels, 1}};
      }
      return {{batch_n, height, width, in_channels}, {kernel_h, kernel_w, cpg, out_channels}};
    }
  }
  KILN_UNREACHABLE() << "unknown op " << static_cast<int>(op);
}

Shape Workload::output_shape() const {
  switch (op) {
    case OpKind::kMatmul:
    case OpKind::kDense:
      return {m, n};
    case OpKind::kBatchMatmul:
      return {batch, m, n};
    case OpKind::kConv2d:
    case OpKind::kDepthwiseConv2d:
      if (layout == Layout::kNCHW) return {batch_n, out_channels, out_height(), out_width()};
      return {batch_n, out_height(), out_width(), out_channels};
  }
  KILN_UNREACHABLE() << "unknown op " << static_cast<int>(op);
}

double Workload::flops() const {
  switch (op) {
    case OpKind::kMatmul:
    case OpKind::kDense:
      return 2.0 * m * n * k;
    case OpKind::kBatchMatmul:
      return 2.0 * batch * m * n * k;
    case OpKind::kConv2d:
    case OpKind::kDepthwiseConv2d:
      return 2.0 * batch_n * out_channels * out_height() * out_width() * (in_channels / groups) *
             kernel_h * kernel_w;
  }
  KILN_UNREACHABLE() << "unknown op " << static_cast<int>(op);
}

std::string Workload::canonical() const {
  std::string out = std::string(op_name(op)) + ":";
  switch (op) {
    case OpKind::kMatmul:
      append_key(&out, "M", m);
      append_key(&out, "N", n);
      append_key(&out, "K", k);
      return out;
    case OpKind::kDense:
      append_key(&out, "M", m);
      append_key(&out, "N", n);
      append_key(&out, "K", k);
      append_epilogue(&out, *this);
      return out;
    case OpKind::kBatchMatmul:
      append_key(&out, "B", batch);
      append_key(&out, "M", m);
      append_key(&out, "N", n);
      append_key(&out, "K", k);
      return out;
    case OpKind::kConv2d:
    case OpKind::kDepthwiseConv2d:
      append_key(&out, "N", batch_n);
      append_key(&out, "C", in_channels);
      append_key(&out, "H", height);
      append_key(&out, "W", width);
      if (op == OpKind::kConv2d) append_key(&out, "K", out_channels);
      append_key(&out, "R", kernel_h);
      append_key(&out, "S", kernel_w);
      // stride and pad are always written so that DESIGN.md's spellings are canonical.
      append_axis_pair(&out, "stride", stride_h, stride_w, std::nullopt);
      append_axis_pair(&out, "pad", pad_h, pad_w, std::nullopt);
      append_axis_pair(&out, "dilation", dilation_h, dilation_w, int64_t{1});
      if (op == OpKind::kConv2d && groups != 1) append_key(&out, "groups", groups);
      if (layout == Layout::kNHWC) append_key(&out, "layout", "NHWC");
      append_epilogue(&out, *this);
      return out;
  }
  KILN_UNREACHABLE() << "unknown op " << static_cast<int>(op);
}

Result<Workload> parse_workload(std::string_view text, const WorkloadLimits& limits) {
  text = trim(text);
  if (text.empty()) {
    return invalid_argument("empty workload string; expected OP:KEY=VALUE,... such as " +
                            std::string(kExample));
  }
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    return invalid_argument("workload '" + std::string(text) +
                            "' has no ':'; expected OP:KEY=VALUE,... such as " +
                            std::string(kExample));
  }
  const std::string_view op_text = text.substr(0, colon);
  const OpSpec* spec = nullptr;
  for (const OpSpec& s : op_specs()) {
    if (s.name == op_text) spec = &s;
  }
  if (spec == nullptr) {
    return invalid_argument("unknown operator '" + std::string(op_text) + "' in workload '" +
                            std::string(text) + "'; known operators: " + std::string(kKnownOps));
  }
  std::vector<std::string_view> accepted = spec->required;
  accepted.insert(accepted.end(), spec->optional.begin(), spec->optional.end());

  KeyValues kv(text);
  std::string_view rest = text.substr(colon + 1);
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (comma != std::string_view::npos && rest.empty()) {
      return invalid_argument("workload '" + std::string(text) +
                              "' ends with ','; expected OP:KEY=VALUE,... such as " +
                              std::string(kExample));
    }
    const size_t eq = item.find('=');
    if (item.empty() || eq == std::string_view::npos || eq == 0) {
      return invalid_argument("malformed item '" + std::string(item) + "' in workload '" +
                              std::string(text) + "'; expected KEY=VALUE, e.g. " +
                              std::string(spec->required.front()) + "=64");
    }
    const std::string_view key = item.substr(0, eq);
    const std::string_view value = item.substr(eq + 1);
    bool known = false;
    for (std::string_view a : accepted) known = known || a == key;
    if (!known) {
      return invalid_argument("unknown key '" + std::string(key) + "' for " +
                              std::string(spec->name) + " in workload '" + std::string(text) +
                              "'; accepted keys: " + join(accepted));
    }
    if (kv.has(key)) {
      return invalid_argument("repeated key '" + std::string(key) + "' in workload '" +
                              std::string(text) + "'; give each key once");
    }
    kv.set(key, value);
  }
  for (std::string_view key : spec->required) {
    if (!kv.has(key)) {
      return invalid_argument("missing required key '" + std::string(key) + "' for " +
                              std::string(spec->name) + " in workload '" + std::string(text) +
                              "'; required keys: " + join(spec->required));
    }
  }

  if (kv.has("dtype") && kv.value("dtype") != "float32") {
    return invalid_argument("unsupported dtype '" + std::string(kv.value("dtype")) +
                            "'; only float32 is supported");
  }
  Workload w;
  w.op = spec->op;
  if (is_conv(w.op)) {
    KILN_RETURN_IF_ERROR(parse_conv_fields(kv, limits.max_dim, &w));
  } else {
    KILN_RETURN_IF_ERROR(parse_matmul_fields(kv, limits.max_dim, &w));
  }

  const __int128 bytes = total_bytes(w);
  if (bytes > static_cast<__int128>(limits.max_total_bytes)) {
    return invalid_argument("workload '" + std::string(text) + "' needs " + format_gib(bytes) +
                            " for its inputs and output, more than the limit of " +
                            format_gib(limits.max_total_bytes) + "; use smaller sizes");
  }
  return w;
}

}  // namespace kiln::core
