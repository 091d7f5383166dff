/// \file
/// NumPy's array files: `.npy` (one array) and `.npz` (a zip archive of `.npy` files, as
/// `numpy.savez` writes it stored and `numpy.savez_compressed` deflated). The model path reads
/// inputs and reference outputs from them and writes outputs to them.
///
/// Reading accepts `.npy` format versions 1.0, 2.0 and 3.0 with a descr of '<f4' or '<i8', which
/// map to float32 and int64 unchanged, and '<f8' and '<i4', which are converted to float32 and
/// int64 ('<f8' loses precision the way a float32 cast does). Big-endian ('>f4', ...) data is
/// byte-swapped; '=' and '|' mean this host's order, little-endian on every host kiln supports.
/// A Fortran-order array is transposed to C order. Every size a file claims is checked against
/// the bytes that are really there before anything is allocated.
///
/// Writing produces `.npy` version 1.0 (2.0 only when the header needs it), '<f4' or '<i8', C
/// order, which every numpy since 1.0 reads.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "compiler_core/graph/graph.h"
#include "compiler_core/support/status.h"

namespace kiln::graph {

/// Parses one `.npy` file's bytes. `name` only names the array in messages. InvalidArgument
/// (naming `name` and the offending value) for a bad magic string or version, a malformed
/// header, an unsupported dtype (bool, other integer or float widths, structured, ...), a
/// negative or overflowing shape, and data shorter or longer than the shape says.
Result<Tensor> parse_npy(std::string_view bytes, const std::string& name);

/// The `.npy` (version 1.0; 2.0 when the header exceeds 65535 bytes) bytes of `tensor`.
/// InvalidArgument when the tensor holds fewer or more elements than its shape says.
Result<std::string> encode_npy(const Tensor& tensor, const std::string& name);

/// Reads every array of the `.npz` archive at `path`, keyed by member name without its ".npy"
/// suffix. NotFound when the file does not exist; InvalidArgument (naming the path and, where
/// there is one, the member) when it is not a zip archive or a damaged one, when a member's name
/// does not end in ".npy" or repeats, and for every error of parse_npy. A member whose claimed
/// size is beyond what its compressed bytes could hold is refused before it is read.
Result<std::map<std::string, Tensor>> read_npz(const std::string& path);

/// How write_npz stores its members.
enum class NpzCompression {
  kStored,    ///< as numpy.savez: uncompressed, fastest to read
  kDeflated,  ///< as numpy.savez_compressed
};

/// Writes `arrays` (in this order) to a `.npz` archive at `path`, member "<name>.npy" each.
/// Atomic: the archive is written to a temporary file in the same folder and renamed over
/// `path`, so readers see the old file or the whole new one, never a partial one; the temporary
/// file is removed on failure. InvalidArgument for no arrays at all (libzip writes no empty
/// archive), an empty or repeated name and a tensor whose element count differs from its
/// shape's; FailedPrecondition when the file cannot be written (the message names the path and
/// the reason).
Status write_npz(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& arrays,
                 NpzCompression compression = NpzCompression::kStored);

}  // namespace kiln::graph
