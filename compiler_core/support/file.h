/// \file
/// Files that are replaced whole or not at all: written beside their final place, flushed to
/// the disk (fsync), then renamed over it, so that a crash or a failed write leaves the old
/// file or the new one, never a truncated one.
#pragma once

#include <filesystem>
#include <functional>
#include <ostream>
#include <string_view>

#include "compiler_core/support/status.h"

namespace kiln {

/// Writes what `write` puts on its stream to `path`, atomically: a temporary file in the same
/// folder, fsync, rename over `path`, fsync of the folder. When `write` returns false or any
/// step fails, `path` keeps what it held and the temporary file is removed.
/// FailedPrecondition when the temporary file cannot be created (a folder that does not exist
/// or cannot be written; the message names the path and the OS's reason), Internal when a write
/// or `write` itself fails, or the rename does.
Status write_file_atomically(const std::filesystem::path& path,
                             const std::function<bool(std::ostream&)>& write);

/// write_file_atomically of `bytes`.
Status write_file_atomically(const std::filesystem::path& path, std::string_view bytes);

}  // namespace kiln
