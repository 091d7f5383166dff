#include "compiler_core/support/file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

namespace kiln {
namespace {

/// fsync of the file or folder at `path`; false when it cannot be opened or synced.
bool sync_path(const std::filesystem::path& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return false;
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  return synced;
}

}  // namespace

Status write_file_atomically(const std::filesystem::path& path,
                             const std::function<bool(std::ostream&)>& write) {
  std::filesystem::path temporary = path;
  temporary += ".tmp." + std::to_string(::getpid());
  std::error_code ignored;
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) {
      return Status(StatusCode::kFailedPrecondition,
                    "cannot create '" + temporary.string() + "': " + std::strerror(errno));
    }
    const bool written = write(out);
    out.flush();
    if (!written || !out) {
      const std::string reason = written ? std::strerror(errno) : "the content could not be made";
      out.close();
      std::filesystem::remove(temporary, ignored);
      return internal_error("cannot write '" + temporary.string() + "': " + reason);
    }
  }
  if (!sync_path(temporary, O_RDONLY)) {
    const std::string reason = std::strerror(errno);
    std::filesystem::remove(temporary, ignored);
    return internal_error("cannot flush '" + temporary.string() + "' to disk: " + reason);
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) {
    std::filesystem::remove(temporary, ignored);
    return internal_error("cannot rename '" + temporary.string() + "' to '" + path.string() +
                          "': " + error.message());
  }
  // The rename itself is durable once the folder's entry is on disk.
  const std::filesystem::path folder = path.has_parent_path() ? path.parent_path() : ".";
  sync_path(folder, O_RDONLY | O_DIRECTORY);
  return Status::ok();
}

Status write_file_atomically(const std::filesystem::path& path, std::string_view bytes) {
  return write_file_atomically(path, [&](std::ostream& out) {
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return bool(out);
  });
}

}  // namespace kiln
