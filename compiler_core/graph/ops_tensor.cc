#include "compiler_core/graph/ops_internal.h"

namespace kiln::graph::ops_internal {

void add_tensor_ops(OpTable& table) {}

}  // namespace kiln::graph::ops_internal
