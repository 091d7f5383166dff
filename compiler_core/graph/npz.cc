#include "compiler_core/graph/npz.h"

#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <set>

namespace kiln::graph {
namespace {

// Conversions below copy elements with memcpy and byte-swap only big-endian data: kiln's hosts
// (x86-64, AArch64 Linux) are little-endian.
static_assert(std::endian::native == std::endian::little, "npz.cc assumes a little-endian host");

constexpr std::string_view kMagic("\x93NUMPY", 6);
// numpy itself refuses headers over 10000 bytes unless told otherwise; a header of a megabyte
// is damage, not an array.
constexpr uint64_t kMaxHeaderBytes = 1 << 20;
// Deflate cannot expand data by more than about 1032:1; a member claiming more than this many
// bytes per compressed byte is damaged (or a zip bomb) and is refused before it is read.
constexpr uint64_t kMaxDeflateRatio = 1100;

std::string in_quotes(const std::string& s) { return "'" + s + "'"; }

Status npy_error(const std::string& name, const std::string& what) {
  return invalid_argument("array " + in_quotes(name) + " " + what);
}

// --- .npy header -------------------------------------------------------------------------------

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  Shape shape;
};

// The element type a descr stands for.
struct NpyType {
  DType dtype = DType::kFloat32;  // what the tensor holds
  bool is_float = true;           // the file's element kind
  int64_t item_size = 4;          // the file's element size
  bool big_endian = false;
  bool direct() const { return !big_endian && item_size == dtype_size(dtype); }
};

// A parser of the Python dict literal in a .npy header, the subset numpy writes:
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }, with either quote, optional
// trailing commas, and the "L" suffix Python 2 wrote after long integers.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& name) : text_(text), name_(name) {}

  Result<NpyHeader> parse() {
    NpyHeader header;
    bool has_descr = false, has_order = false, has_shape = false;
    skip_space();
    if (!consume('{')) return error("expected '{'");
    while (true) {
      skip_space();
      if (consume('}')) break;
      KILN_ASSIGN_OR_RETURN(std::string key, string_literal());
      skip_space();
      if (!consume(':')) return error("expected ':' after key " + in_quotes(key));
      skip_space();
      if (key == "descr") {
        if (peek() == '[') {
          return npy_error(name_,
                           "has a structured dtype; kiln reads plain float32 and int64 "
                           "arrays");
        }
        KILN_ASSIGN_OR_RETURN(header.descr, string_literal());
        has_descr = true;
      } else if (key == "fortran_order") {
        KILN_ASSIGN_OR_RETURN(header.fortran_order, boolean());
        has_order = true;
      } else if (key == "shape") {
        KILN_ASSIGN_OR_RETURN(header.shape, tuple());
        has_shape = true;
      } else {
        return error("unknown key " + in_quotes(key) +
                     " (a .npy header has 'descr', "
                     "'fortran_order' and 'shape')");
      }
      skip_space();
      if (consume(',')) continue;
      skip_space();
      if (consume('}')) break;
      return error("expected ',' or '}' after the value of " + in_quotes(key));
    }
    skip_space();
    if (pos_ != text_.size()) return error("unexpected text after '}'");
    if (!has_descr || !has_order || !has_shape) {
      return error(std::string("missing key ") + (!has_descr   ? "'descr'"
                                                  : !has_order ? "'fortran_order'"
                                                               : "'shape'"));
    }
    return header;
  }

 private:
  Status error(const std::string& what) const {
    return npy_error(name_, "has a malformed .npy header at byte " + std::to_string(pos_) + ": " +
                                what + " in \"" + printable() + "\"");
  }

  // The header for a message: at most 200 characters, control and non-ASCII bytes as '?'.
  std::string printable() const {
    std::string s(text_.substr(0, 200));
    for (char& c : s) {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
    }
    return s;
  }

  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool consume(char c) {
    if (peek() != c || pos_ >= text_.size()) return false;
    ++pos_;
    return true;
  }
  bool consume_word(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  Result<std::string> string_literal() {
    char quote = peek();
    if (quote != '\'' && quote != '"') return error("expected a quoted string");
    ++pos_;
    size_t end = text_.find(quote, pos_);
    if (end == std::string_view::npos) return error("unterminated string");
    std::string s(text_.substr(pos_, end - pos_));
    if (s.find('\\') != std::string::npos) return error("escapes in strings are not supported");
    pos_ = end + 1;
    return s;
  }

  Result<bool> boolean() {
    if (consume_word("True")) return true;
    if (consume_word("False")) return false;
    return error("expected True or False");
  }

  Result<int64_t> integer() {
    size_t start = pos_;
    uint64_t value = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      uint64_t digit = uint64_t(text_[pos_] - '0');
      if (value > (uint64_t(std::numeric_limits<int64_t>::max()) - digit) / 10) {
        return npy_error(name_, "has a dimension too large for 64 bits in its shape");
      }
      value = value * 10 + digit;
      ++pos_;
    }
    if (pos_ == start) {
      if (peek() == '-') return npy_error(name_, "has a negative dimension in its shape");
      return error("expected a non-negative integer");
    }
    consume('L');
    return int64_t(value);
  }

  Result<Shape> tuple() {
    if (!consume('(')) return error("expected '(' to open the shape");
    Shape shape;
    while (true) {
      skip_space();
      if (consume(')')) break;
      KILN_ASSIGN_OR_RETURN(int64_t dim, integer());
      shape.push_back(dim);
      skip_space();
      if (consume(',')) continue;
      skip_space();
      if (consume(')')) break;
      return error("expected ',' or ')' in the shape");
    }
    return shape;
  }

  std::string_view text_;
  const std::string& name_;
  size_t pos_ = 0;
};

Result<NpyType> npy_type(const std::string& descr, const std::string& name) {
  NpyType type;
  std::string_view d = descr;
  if (!d.empty() && (d[0] == '<' || d[0] == '>' || d[0] == '=' || d[0] == '|')) {
    type.big_endian = d[0] == '>';
    d.remove_prefix(1);
  }
  if (d == "f4" || d == "f8") {
    type.dtype = DType::kFloat32;
    type.is_float = true;
    type.item_size = d == "f4" ? 4 : 8;
    return type;
  }
  if (d == "i8" || d == "i4") {
    type.dtype = DType::kInt64;
    type.is_float = false;
    type.item_size = d == "i8" ? 8 : 4;
    return type;
  }
  return npy_error(name, "has dtype " + in_quotes(descr) +
                             ", which kiln does not read; kiln reads float32 ('<f4', or '<f8' "
                             "converted) and int64 ('<i8', or '<i4' converted): save it with "
                             ".astype(numpy.float32) or .astype(numpy.int64)");
}

// The number of elements of `shape` and their bytes in the file; InvalidArgument when either
// overflows 64 bits.
Status checked_sizes(const Shape& shape, int64_t item_size, const std::string& name,
                     int64_t* elements, int64_t* bytes) {
  int64_t n = 1;
  for (int64_t dim : shape) {
    if (__builtin_mul_overflow(n, dim, &n)) {
      return npy_error(name, "has a shape whose element count overflows 64 bits");
    }
  }
  if (__builtin_mul_overflow(n, item_size, bytes)) {
    return npy_error(name, "has a shape whose byte size overflows 64 bits");
  }
  *elements = n;
  return Status::ok();
}

uint32_t read_le(std::string_view bytes) {
  uint32_t value = 0;
  for (size_t i = bytes.size(); i-- > 0;) value = (value << 8) | uint8_t(bytes[i]);
  return value;
}

// The size of the length field after the 8-byte magic and version, from those 8 bytes.
Result<size_t> length_field_size(std::string_view preamble, const std::string& name) {
  if (preamble.size() < 8 || preamble.substr(0, 6) != kMagic) {
    return npy_error(name, "is not a .npy file (it does not start with \"\\x93NUMPY\")");
  }
  int major = uint8_t(preamble[6]), minor = uint8_t(preamble[7]);
  if (major == 1) return size_t(2);
  if (major == 2 || major == 3) return size_t(4);
  return npy_error(name, "has .npy format version " + std::to_string(major) + "." +
                             std::to_string(minor) + "; kiln reads versions 1.0, 2.0 and 3.0");
}

// Reads `n` bytes of the array's data into `dst`.
using ReadFn = std::function<Status(void* dst, size_t n)>;

template <typename T>
void transpose_fortran(const Shape& shape, std::vector<T>& values) {
  if (shape.size() < 2 || values.empty()) return;
  std::vector<T> c_order(values.size());
  // Fortran strides: the first dimension varies fastest.
  std::vector<int64_t> strides(shape.size());
  int64_t stride = 1;
  for (size_t k = 0; k < shape.size(); ++k) {
    strides[k] = stride;
    stride *= shape[k];
  }
  std::vector<int64_t> index(shape.size(), 0);
  int64_t offset = 0;  // the Fortran offset of `index`
  for (size_t i = 0; i < c_order.size(); ++i) {
    c_order[i] = values[size_t(offset)];
    for (size_t k = shape.size(); k-- > 0;) {
      if (++index[k] < shape[k]) {
        offset += strides[k];
        break;
      }
      offset -= strides[k] * (shape[k] - 1);
      index[k] = 0;
    }
  }
  values = std::move(c_order);
}

template <typename From, typename To>
void convert(const std::string& raw, bool big_endian, To* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    char bytes[sizeof(From)];
    std::memcpy(bytes, raw.data() + size_t(i) * sizeof(From), sizeof(From));
    if (big_endian) std::reverse(bytes, bytes + sizeof(From));
    From value;
    std::memcpy(&value, bytes, sizeof(From));
    out[i] = static_cast<To>(value);
  }
}

// The tensor of `header`, whose data (exactly `data_bytes` bytes, checked by the caller
// against what is really there) `read` delivers.
Result<Tensor> read_npy_data(const NpyHeader& header, const NpyType& type, int64_t elements,
                             const ReadFn& read, const std::string& name) {
  Tensor tensor = Tensor::zeros({type.dtype, header.shape});
  void* out = tensor.data();
  if (type.direct()) {
    KILN_RETURN_IF_ERROR(read(out, size_t(elements * type.item_size)));
  } else {
    std::string raw(size_t(elements * type.item_size), '\0');
    KILN_RETURN_IF_ERROR(read(raw.data(), raw.size()));
    if (type.is_float && type.item_size == 4) {
      convert<float>(raw, type.big_endian, tensor.f32.data(), elements);
    } else if (type.is_float) {
      convert<double>(raw, type.big_endian, tensor.f32.data(), elements);
    } else if (type.item_size == 8) {
      convert<int64_t>(raw, type.big_endian, tensor.i64.data(), elements);
    } else {
      convert<int32_t>(raw, type.big_endian, tensor.i64.data(), elements);
    }
  }
  if (header.fortran_order) {
    if (type.dtype == DType::kFloat32) {
      transpose_fortran(header.shape, tensor.f32);
    } else {
      transpose_fortran(header.shape, tensor.i64);
    }
  }
  return tensor;
}

std::string shape_repr(const Shape& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    s += (i ? ", " : "") + std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

// --- zip ---------------------------------------------------------------------------------------

std::string zip_code_message(int code) {
  zip_error_t error;
  zip_error_init_with_code(&error, code);
  std::string message = zip_error_strerror(&error);
  zip_error_fini(&error);
  return message;
}

struct ZipCloser {
  void operator()(zip_t* archive) const { zip_discard(archive); }
};
struct ZipFileCloser {
  void operator()(zip_file_t* file) const { zip_fclose(file); }
};

// Reads `n` bytes of `file` into `dst`; InvalidArgument naming the member when the member ends
// early or libzip reports damage (a CRC mismatch, bad deflate data).
Status read_exactly(zip_file_t* file, void* dst, size_t n, const std::string& where) {
  char* out = static_cast<char*>(dst);
  while (n > 0) {
    zip_int64_t got = zip_fread(file, out, n);
    if (got < 0) return invalid_argument(where + " is damaged: " + zip_file_strerror(file));
    if (got == 0) return invalid_argument(where + " is truncated: its data ends early");
    out += got;
    n -= size_t(got);
  }
  return Status::ok();
}

Result<Tensor> read_member(zip_t* archive, zip_uint64_t index, const zip_stat_t& stat,
                           uint64_t archive_bytes, const std::string& path,
                           const std::string& key) {
  std::string where = "member " + in_quotes(stat.name) + " of " + in_quotes(path);
  if ((stat.valid & ZIP_STAT_ENCRYPTION_METHOD) && stat.encryption_method != ZIP_EM_NONE) {
    return invalid_argument(where + " is encrypted; kiln reads unencrypted archives");
  }
  // The claimed uncompressed size must be something the compressed bytes can hold.
  uint64_t limit =
      stat.comp_method == ZIP_CM_STORE ? stat.comp_size : stat.comp_size * kMaxDeflateRatio + 1024;
  if (stat.comp_size > archive_bytes || stat.size > limit) {
    return invalid_argument(where + " is damaged: it claims " + std::to_string(stat.size) +
                            " bytes from " + std::to_string(stat.comp_size) +
                            " compressed bytes in a file of " + std::to_string(archive_bytes));
  }
  std::unique_ptr<zip_file_t, ZipFileCloser> file(zip_fopen_index(archive, index, 0));
  if (!file) return invalid_argument("cannot read " + where + ": " + zip_strerror(archive));

  uint64_t left = stat.size;
  auto read = [&](void* dst, size_t n) -> Status {
    if (n > left) {
      return npy_error(key, "in " + in_quotes(path) + " is truncated: it needs " +
                                std::to_string(n) + " more bytes, the member has " +
                                std::to_string(left));
    }
    left -= n;
    return read_exactly(file.get(), dst, n, where);
  };

  std::string preamble(8, '\0');
  KILN_RETURN_IF_ERROR(read(preamble.data(), preamble.size()));
  KILN_ASSIGN_OR_RETURN(size_t field, length_field_size(preamble, key));
  std::string length_bytes(field, '\0');
  KILN_RETURN_IF_ERROR(read(length_bytes.data(), field));
  uint64_t header_bytes = read_le(length_bytes);
  if (header_bytes > kMaxHeaderBytes || header_bytes > left) {
    return npy_error(key, "has a header of " + std::to_string(header_bytes) +
                              " bytes, longer than its member (" + std::to_string(left) +
                              " bytes left) or than kiln accepts (1 MiB)");
  }
  std::string text(header_bytes, '\0');
  KILN_RETURN_IF_ERROR(read(text.data(), text.size()));
  KILN_ASSIGN_OR_RETURN(NpyHeader header, HeaderParser(text, key).parse());
  KILN_ASSIGN_OR_RETURN(NpyType type, npy_type(header.descr, key));
  int64_t elements = 0, data_bytes = 0;
  KILN_RETURN_IF_ERROR(checked_sizes(header.shape, type.item_size, key, &elements, &data_bytes));
  if (uint64_t(data_bytes) != left) {
    return npy_error(key, "in " + in_quotes(path) + " has " + std::to_string(left) +
                              " bytes of data where its shape " + shape_repr(header.shape) +
                              " and dtype " + in_quotes(header.descr) + " need " +
                              std::to_string(data_bytes) +
                              (uint64_t(data_bytes) > left ? " (truncated)" : ""));
  }
  KILN_ASSIGN_OR_RETURN(Tensor tensor, read_npy_data(header, type, elements, read, key));
  // One more read reaches the end of the member, where libzip checks its CRC.
  char extra;
  zip_int64_t got = zip_fread(file.get(), &extra, 1);
  if (got < 0) return invalid_argument(where + " is damaged: " + zip_file_strerror(file.get()));
  if (got > 0) return invalid_argument(where + " is damaged: it is longer than its stated size");
  return tensor;
}

std::atomic<uint64_t> temp_counter{0};

}  // namespace

Result<Tensor> parse_npy(std::string_view bytes, const std::string& name) {
  KILN_ASSIGN_OR_RETURN(size_t field, length_field_size(bytes, name));
  if (bytes.size() < 8 + field) return npy_error(name, "is truncated inside its preamble");
  uint64_t header_bytes = read_le(bytes.substr(8, field));
  std::string_view rest = bytes.substr(8 + field);
  if (header_bytes > rest.size()) {
    return npy_error(name, "is truncated: its header claims " + std::to_string(header_bytes) +
                               " bytes, " + std::to_string(rest.size()) + " follow");
  }
  KILN_ASSIGN_OR_RETURN(NpyHeader header, HeaderParser(rest.substr(0, header_bytes), name).parse());
  KILN_ASSIGN_OR_RETURN(NpyType type, npy_type(header.descr, name));
  int64_t elements = 0, data_bytes = 0;
  KILN_RETURN_IF_ERROR(checked_sizes(header.shape, type.item_size, name, &elements, &data_bytes));
  std::string_view data = rest.substr(header_bytes);
  if (uint64_t(data_bytes) != data.size()) {
    return npy_error(name, "has " + std::to_string(data.size()) +
                               " bytes of data where its shape " + shape_repr(header.shape) +
                               " and dtype " + in_quotes(header.descr) + " need " +
                               std::to_string(data_bytes) +
                               (uint64_t(data_bytes) > data.size() ? " (truncated)" : ""));
  }
  auto read = [&](void* dst, size_t n) -> Status {
    if (n == 0) return Status::ok();  // dst is null for an empty tensor
    std::memcpy(dst, data.data(), n);
    data.remove_prefix(n);
    return Status::ok();
  };
  return read_npy_data(header, type, elements, read, name);
}

Result<std::string> encode_npy(const Tensor& tensor, const std::string& name) {
  const TensorInfo& info = tensor.info;
  int64_t elements = 0, bytes = 0;
  KILN_RETURN_IF_ERROR(checked_sizes(info.shape, dtype_size(info.dtype), name, &elements, &bytes));
  size_t held = info.dtype == DType::kFloat32 ? tensor.f32.size() : tensor.i64.size();
  if (held != size_t(elements)) {
    return npy_error(name, "holds " + std::to_string(held) + " elements where its type " +
                               to_string(info) + " has " + std::to_string(elements));
  }
  std::string dict = std::string("{'descr': '") + (info.dtype == DType::kFloat32 ? "<f4" : "<i8") +
                     "', 'fortran_order': False, 'shape': " + shape_repr(info.shape) + ", }";
  // As numpy: the header ends in '\n' and is padded with spaces so that the data starts at a
  // multiple of 64 bytes.
  size_t text_bytes = dict.size() + 1;
  bool version2 = 10 + text_bytes + 64 > 0xffff;
  size_t preamble = version2 ? 12 : 10;
  size_t pad = 64 - (text_bytes + preamble) % 64;
  uint32_t header_bytes = uint32_t(text_bytes + pad);
  std::string out(kMagic);
  out += char(version2 ? 2 : 1);
  out += char(0);
  for (size_t i = 0; i < preamble - 8; ++i) out += char((header_bytes >> (8 * i)) & 0xff);
  out += dict;
  out.append(pad, ' ');
  out += '\n';
  if (bytes > 0) out.append(static_cast<const char*>(tensor.data()), size_t(bytes));
  return out;
}

Result<std::map<std::string, Tensor>> read_npz(const std::string& path) {
  std::error_code ec;
  auto file_status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(file_status)) {
    return Status(StatusCode::kNotFound, "npz file " + in_quotes(path) + " does not exist");
  }
  if (!std::filesystem::is_regular_file(file_status)) {
    return invalid_argument("npz path " + in_quotes(path) + " is not a regular file");
  }
  uint64_t archive_bytes = std::filesystem::file_size(path, ec);
  if (ec) return invalid_argument("cannot read npz file " + in_quotes(path) + ": " + ec.message());
  // libzip opens an empty file as an empty archive; numpy never writes one.
  if (archive_bytes == 0) return invalid_argument("npz file " + in_quotes(path) + " is empty");

  int code = 0;
  std::unique_ptr<zip_t, ZipCloser> archive(
      zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code));
  if (!archive) {
    if (code == ZIP_ER_NOZIP || code == ZIP_ER_INCONS) {
      return invalid_argument("npz file " + in_quotes(path) +
                              " is not a zip archive or a damaged "
                              "one (" +
                              zip_code_message(code) +
                              "); numpy.savez writes .npz "
                              "files");
    }
    return invalid_argument("cannot open npz file " + in_quotes(path) + ": " +
                            zip_code_message(code));
  }
  std::map<std::string, Tensor> arrays;
  zip_int64_t count = zip_get_num_entries(archive.get(), 0);
  for (zip_int64_t i = 0; i < count; ++i) {
    zip_stat_t stat;
    zip_stat_init(&stat);
    if (zip_stat_index(archive.get(), zip_uint64_t(i), 0, &stat) != 0) {
      return invalid_argument("npz file " + in_quotes(path) + " is damaged: entry " +
                              std::to_string(i) + ": " + zip_strerror(archive.get()));
    }
    constexpr zip_uint64_t kNeeded =
        ZIP_STAT_NAME | ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD;
    if ((stat.valid & kNeeded) != kNeeded) {
      return invalid_argument("npz file " + in_quotes(path) + " is damaged: entry " +
                              std::to_string(i) + " has no name, size or compression method");
    }
    std::string member = stat.name;
    constexpr std::string_view kSuffix = ".npy";
    if (member.size() <= kSuffix.size() ||
        member.compare(member.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
      return invalid_argument("member " + in_quotes(member) + " of npz file " + in_quotes(path) +
                              " is not a .npy file (its name does not end in \".npy\")");
    }
    std::string key = member.substr(0, member.size() - kSuffix.size());
    if (arrays.count(key)) {
      return invalid_argument("npz file " + in_quotes(path) + " holds array " + in_quotes(key) +
                              " twice");
    }
    KILN_ASSIGN_OR_RETURN(
        Tensor tensor, read_member(archive.get(), zip_uint64_t(i), stat, archive_bytes, path, key));
    arrays.emplace(std::move(key), std::move(tensor));
  }
  return arrays;
}

Status write_npz(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& arrays,
                 NpzCompression compression) {
  if (arrays.empty()) {
    // libzip removes an archive without members instead of writing an empty one.
    return invalid_argument("no arrays to write to npz file " + in_quotes(path));
  }
  std::set<std::string> names;
  // libzip reads each member's bytes when the archive is closed: they live until then.
  std::vector<std::string> encoded;
  encoded.reserve(arrays.size());
  for (const auto& [name, tensor] : arrays) {
    if (name.empty())
      return invalid_argument("an array to write to " + in_quotes(path) +
                              " has an "
                              "empty name");
    if (!names.insert(name).second) {
      return invalid_argument("array " + in_quotes(name) + " is written twice to " +
                              in_quotes(path));
    }
    KILN_ASSIGN_OR_RETURN(std::string bytes, encode_npy(tensor, name));
    encoded.push_back(std::move(bytes));
  }

  std::string temp =
      path + ".tmp." + std::to_string(getpid()) + "." + std::to_string(temp_counter.fetch_add(1));
  auto fail = [&](const std::string& why) {
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    return Status(StatusCode::kFailedPrecondition,
                  "cannot write npz file " + in_quotes(path) + ": " + why);
  };
  int code = 0;
  std::unique_ptr<zip_t, ZipCloser> archive(
      zip_open(temp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code));
  if (!archive) return fail(zip_code_message(code));
  for (size_t i = 0; i < arrays.size(); ++i) {
    zip_source_t* source =
        zip_source_buffer(archive.get(), encoded[i].data(), encoded[i].size(), 0);
    if (!source) return fail(zip_strerror(archive.get()));
    std::string member = arrays[i].first + ".npy";
    zip_int64_t index = zip_file_add(archive.get(), member.c_str(), source, ZIP_FL_ENC_UTF_8);
    if (index < 0) {
      zip_source_free(source);
      return fail("cannot add " + in_quotes(member) + ": " + zip_strerror(archive.get()));
    }
    zip_int32_t method = compression == NpzCompression::kStored ? ZIP_CM_STORE : ZIP_CM_DEFLATE;
    if (zip_set_file_compression(archive.get(), zip_uint64_t(index), method, 0) != 0) {
      return fail(zip_strerror(archive.get()));
    }
  }
  if (zip_close(archive.get()) != 0) return fail(zip_strerror(archive.get()));
  archive.release();  // zip_close freed it
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  if (ec) return fail(ec.message());
  return Status::ok();
}

}  // namespace kiln::graph
