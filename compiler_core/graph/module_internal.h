// What the module writer (module.cc) and the runtime (runtime.cc) agree on beyond module.h.
#pragma once

namespace kiln::graph::module_internal {

/// module.json's "format" field.
inline constexpr const char* kFormatName = "kiln-module";

}  // namespace kiln::graph::module_internal
