/// \file
/// SHA-256 (FIPS 180-4) of a byte string, for naming stored content by what it holds: the model
/// files a `kiln serve` keeps for its jobs. Not constant-time; not for secrets.
#pragma once

#include <string>
#include <string_view>

namespace kiln {

/// The SHA-256 digest of `bytes` as 64 lower-case hex digits.
std::string sha256_hex(std::string_view bytes);

}  // namespace kiln
