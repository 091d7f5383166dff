/// \file
/// A stable, readable printer for the IR. Its output is part of golden tests: change it only
/// in a reviewed commit.
#pragma once

#include <ostream>
#include <string>

#include "compiler_core/ir/ir.h"

namespace kiln::core::ir {

std::string to_string(const Expr& e);
std::string to_string(const Stmt& s);
std::ostream& operator<<(std::ostream& os, const Expr& e);
std::ostream& operator<<(std::ostream& os, const Stmt& s);

/// Structural equality (same kinds, fields and children).
bool equal(const Expr& a, const Expr& b);
bool equal(const Stmt& a, const Stmt& b);

}  // namespace kiln::core::ir
