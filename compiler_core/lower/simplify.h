/// \file
/// The simplifier: constant folding and canonical affine forms for index arithmetic, with
/// range knowledge from enclosing loops.
///
/// Integer expressions are rewritten as sums of terms with constant coefficients (terms in a
/// stable order), and floor division or modulo by a positive constant drops the parts that
/// the known ranges prove cannot change the result: with 0 <= ji < 16,
/// `(jo*16 + ji) / 16` becomes `jo` and `(jo*16 + ji) % 16` becomes `ji`. Min, max,
/// comparisons and selects whose outcome the ranges decide are folded. Float arithmetic is
/// only constant-folded (no reassociation).
///
/// Loops with a constant extent of 1 are replaced by their body, loops that run zero times
/// disappear, and ifs with a decided condition keep only the taken branch.
#pragma once

#include "compiler_core/ir/ir.h"
#include "compiler_core/lower/bounds.h"

namespace kiln::core::lower {

/// Simplifies `e` with the variable ranges of `scope`.
ir::Expr simplify(const ir::Expr& e, const ConstScope& scope = {});

/// Simplifies every expression of `s`, learning loop-variable ranges from its For nodes on
/// top of `scope`.
ir::Stmt simplify(const ir::Stmt& s, const ConstScope& scope = {});

/// True when `cond` is provably true within `scope`.
bool can_prove(const ir::Expr& cond, const ConstScope& scope = {});

}  // namespace kiln::core::lower
