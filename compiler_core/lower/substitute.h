/// \file
/// Replacing variables by expressions.
#pragma once

#include <map>
#include <string>

#include "compiler_core/ir/ir.h"

namespace kiln::core::lower {

/// `e` with every Var named `name` replaced by `value`.
ir::Expr substitute(const ir::Expr& e, const std::string& name, const ir::Expr& value);
ir::Stmt substitute(const ir::Stmt& s, const std::string& name, const ir::Expr& value);

/// `e` with every Var named in `values` replaced.
ir::Expr substitute(const ir::Expr& e, const std::map<std::string, ir::Expr>& values);
ir::Stmt substitute(const ir::Stmt& s, const std::map<std::string, ir::Expr>& values);

/// True when `e` or `s` mentions a Var named `name`.
bool uses_var(const ir::Expr& e, const std::string& name);
bool uses_var(const ir::Stmt& s, const std::string& name);

}  // namespace kiln::core::lower
