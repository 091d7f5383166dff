/// \file
/// Configuration spaces: the knobs of a schedule template and a stable index for every point.
///
/// A space is a list of knobs, each with an ordered list of integer choices. A point picks one
/// choice per knob; its index is the mixed-radix number whose first knob is the least
/// significant digit. A space may be restricted to the points a predicate accepts (register
/// tiles that fit a target's vector registers); its indices then number the accepted points in
/// the same mixed-radix order. Knob names, choice lists and their order are part of a template's
/// contract: a record stored today must mean the same kernel tomorrow.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "compiler_core/support/status.h"

namespace kiln::core {

struct Knob {
  std::string name;
  std::vector<int64_t> choices;
};

/// One point of a space: the chosen value of every knob, in the space's knob order.
struct Config {
  int64_t index = 0;
  std::vector<int64_t> values;
};

class ConfigSpace {
 public:
  ConfigSpace() = default;
  ConfigSpace(std::string template_name, std::vector<Knob> knobs);

  const std::string& template_name() const { return template_name_; }
  const std::vector<Knob>& knobs() const { return knobs_; }
  /// Number of points (the product of the choice counts).
  int64_t size() const { return size_; }

  /// The point with `index`. OutOfRange when index is negative or >= size().
  Result<Config> at(int64_t index) const;

  /// The point whose knob values are `values` (one per knob). InvalidConfig names the first
  /// knob whose value is not among its choices.
  Result<Config> from_values(const std::vector<int64_t>& values) const;

  /// Parses `{"index": N}` or `{"knobs": {"name": value, ...}}` (every knob named once). A
  /// config that gives its index too may leave out the last knobs, which take their first
  /// choice: a record stored before knobs were appended to its template.
  /// InvalidConfig for malformed JSON, unknown or missing knobs and values not in the space;
  /// OutOfRange for an index past the space.
  Result<Config> parse(std::string_view json) const;

  /// `{"index":N,"knobs":{...}}`, the form `parse` reads and tuning records store.
  std::string to_json(const Config& config) const;

  /// The position of knob `name` in knobs(), or -1 when the space has no such knob.
  int knob_index(std::string_view name) const;
  /// The value of knob `name` in `config`; an internal error if the knob does not exist.
  int64_t value(const Config& config, std::string_view name) const;

  /// Keeps only the points `fits` accepts (it gets the knob values in knob order), renumbered
  /// 0, 1, ... in mixed-radix order. from_values and parse refuse a point outside with
  /// InvalidConfig saying `why`. Call before set_default; the default becomes the first point
  /// when the old one does not fit. An internal error when no point fits.
  void restrict_to(const std::function<bool(const std::vector<int64_t>&)>& fits, std::string why);
  /// True when restrict_to removed points.
  bool restricted() const { return !points_.empty(); }

  /// The point used when nothing is tuned.
  const Config& default_config() const { return default_; }
  void set_default(Config config) { default_ = std::move(config); }

 private:
  std::string template_name_;
  std::vector<Knob> knobs_;
  /// The point at mixed-radix number `raw` of the unrestricted space, with index `index`.
  Config decode(int64_t raw, int64_t index) const;

  int64_t size_ = 1;
  /// The mixed-radix numbers of the accepted points, ascending; empty when unrestricted.
  std::vector<int64_t> points_;
  std::string restriction_;
  Config default_;
};

}  // namespace kiln::core
