/// \file
/// CPU architectures by name, as the first part of an LLVM triple names them: what the tracker
/// routes tasks on and what a board reports about itself. Pure string functions.
#pragma once

#include <string>
#include <string_view>

namespace kiln {

/// The architecture an LLVM triple names, normalised: its first component, with arm64 as
/// "aarch64" and amd64 as "x86_64" ("aarch64-linux-gnu" -> "aarch64"). Empty for "".
std::string triple_architecture(std::string_view triple);

/// The architecture this process runs: "x86_64", "aarch64", "i386", or "unknown".
std::string host_architecture();

}  // namespace kiln
