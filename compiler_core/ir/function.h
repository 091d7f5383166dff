/// \file
/// A lowered function: what code generation receives.
#pragma once

#include <string>
#include <vector>

#include "compiler_core/ir/ir.h"

namespace kiln::core::ir {

/// `void name(float* args[0], float* args[1], ...)`: the body reads and writes the argument
/// buffers by name through Load and Store. Arguments never alias each other.
///
/// By the time a LoweredFunc reaches code generation its body holds no TensorLoad,
/// TensorStore or Realize (storage is flattened), no Vectorized or Unrolled For (both are
/// expanded), and every Allocate has a constant size.
struct LoweredFunc {
  std::string name;
  std::vector<std::string> args;
  Stmt body;
};

}  // namespace kiln::core::ir
