/// \file
/// Interval analysis of integer expressions: constant bounds (for the simplifier) and
/// symbolic bounds (for bound inference of compute_at stages).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "compiler_core/ir/ir.h"

namespace kiln::core::lower {

/// A closed integer interval; a missing end is unbounded.
struct ConstInterval {
  std::optional<int64_t> lo, hi;
  static ConstInterval point(int64_t v) { return {v, v}; }
  static ConstInterval everything() { return {}; }
  bool is_point() const { return lo && hi && *lo == *hi; }
};

/// Known ranges of variables (loop variables inside their loops).
using ConstScope = std::map<std::string, ConstInterval>;

/// Bounds of the scalar integer expression `e` when its variables lie in `scope`; variables
/// absent from `scope` are unbounded. Sound, not always tight.
ConstInterval constant_bounds(const ir::Expr& e, const ConstScope& scope);

/// A closed interval with symbolic ends; undefined ends mean "unknown".
struct SymInterval {
  ir::Expr lo, hi;
  bool defined() const { return lo.defined() && hi.defined(); }
};

/// Variables whose ranges are known symbolically (inner loop variables); any other variable
/// is taken as a fixed symbol.
using SymScope = std::map<std::string, SymInterval>;

/// Symbolic bounds of `e` over `scope`: exact for sums, constant multiples, floor division and
/// modulo by positive constants, min and max of such. Undefined ends for anything else.
SymInterval symbolic_bounds(const ir::Expr& e, const SymScope& scope);

}  // namespace kiln::core::lower
