#include "compiler_core/graph/npz.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <zip.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kiln::graph {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// ---------------------------------------------------------------------------------------------
// Hand-made .npy files. The .npy format: "\x93NUMPY", major and minor version bytes, the header
// length (2 bytes little-endian in 1.0, 4 in 2.0 and 3.0), the header (a Python dict literal
// padded with spaces to a 64-byte boundary, ending in '\n'), then the raw elements.

// The bytes numpy 1.24's np.save writes for np.array([[1, 2, 3], [4, 5, 6]], '<f4'), spelled
// out byte by byte (checked once against numpy by hand).
std::string numpy_f32_2x3() {
  std::string bytes("\x93NUMPY\x01\x00\x76\x00", 10);
  bytes += "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  bytes += std::string(58, ' ') + "\n";
  const float values[] = {1, 2, 3, 4, 5, 6};
  bytes.append(reinterpret_cast<const char*>(values), sizeof(values));
  return bytes;
}

// A .npy file of format `major`.0 with header text `dict` (padded as numpy pads) and `data`.
std::string npy(int major, const std::string& dict, const std::string& data) {
  size_t field = major == 1 ? 2 : 4;
  size_t text = dict.size() + 1;
  size_t pad = 64 - (8 + field + text) % 64;
  uint32_t length = uint32_t(text + pad);
  std::string bytes("\x93NUMPY", 6);
  bytes += char(major);
  bytes += char(0);
  for (size_t i = 0; i < field; ++i) bytes += char((length >> (8 * i)) & 0xff);
  return bytes + dict + std::string(pad, ' ') + "\n" + data;
}

template <typename T>
std::string raw(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

std::string header(const std::string& descr, const std::string& shape, bool fortran = false) {
  return "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") +
         ", 'shape': " + shape + ", }";
}

// ---------------------------------------------------------------------------------------------
// parse_npy and encode_npy

TEST(Npy, ParsesNumpysBytes) {
  Result<Tensor> t = parse_npy(numpy_f32_2x3(), "x");
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->info, (TensorInfo{DType::kFloat32, {2, 3}}));
  EXPECT_EQ(t->f32, (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

TEST(Npy, EncodesExactlyAsNumpy) {
  Result<std::string> bytes = encode_npy(Tensor::from_floats({2, 3}, {1, 2, 3, 4, 5, 6}), "x");
  ASSERT_TRUE(bytes.is_ok()) << bytes.status().to_string();
  EXPECT_EQ(*bytes, numpy_f32_2x3());
}

TEST(Npy, EncodesScalarsAndVectorsAsNumpy) {
  Result<std::string> scalar = encode_npy(Tensor::from_ints({}, {7}), "s");
  ASSERT_TRUE(scalar.is_ok());
  EXPECT_EQ(*scalar, npy(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (), }",
                         raw(std::vector<int64_t>{7})));
  EXPECT_EQ(scalar->size(), 136u);  // as np.save(np.array(7, '<i8'))
  Result<std::string> vector = encode_npy(Tensor::from_floats({1}, {1.5f}), "v");
  ASSERT_TRUE(vector.is_ok());
  EXPECT_EQ(*vector, npy(1, header("<f4", "(1,)"), raw(std::vector<float>{1.5f})));
}

TEST(Npy, ReadsInt64AndConvertsInt32AndFloat64) {
  Result<Tensor> i8 =
      parse_npy(npy(1, header("<i8", "(3,)"), raw<int64_t>({1, -2, 1LL << 40})), "i8");
  ASSERT_TRUE(i8.is_ok()) << i8.status().to_string();
  EXPECT_EQ(i8->info, (TensorInfo{DType::kInt64, {3}}));
  EXPECT_EQ(i8->i64, (std::vector<int64_t>{1, -2, 1LL << 40}));

  Result<Tensor> i4 = parse_npy(npy(1, header("<i4", "(2,)"), raw<int32_t>({-5, 9})), "i4");
  ASSERT_TRUE(i4.is_ok()) << i4.status().to_string();
  EXPECT_EQ(i4->info, (TensorInfo{DType::kInt64, {2}}));
  EXPECT_EQ(i4->i64, (std::vector<int64_t>{-5, 9}));

  Result<Tensor> f8 = parse_npy(npy(1, header("<f8", "(2,)"), raw<double>({0.25, -3.5})), "f8");
  ASSERT_TRUE(f8.is_ok()) << f8.status().to_string();
  EXPECT_EQ(f8->info, (TensorInfo{DType::kFloat32, {2}}));
  EXPECT_EQ(f8->f32, (std::vector<float>{0.25f, -3.5f}));
}

TEST(Npy, SwapsBigEndianData) {
  std::string data = raw<float>({1.0f, -2.0f});
  for (size_t i = 0; i < data.size(); i += 4) std::reverse(data.begin() + i, data.begin() + i + 4);
  Result<Tensor> t = parse_npy(npy(1, header(">f4", "(2,)"), data), "be");
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->f32, (std::vector<float>{1.0f, -2.0f}));
}

TEST(Npy, TransposesFortranOrder) {
  // np.asfortranarray(np.arange(6).reshape(2, 3)) holds the columns one after another.
  Result<Tensor> t =
      parse_npy(npy(1, header("<i8", "(2, 3)", true), raw<int64_t>({0, 3, 1, 4, 2, 5})), "f");
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->i64, (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));

  // Shape (2, 2, 2): element (i, j, k) sits at i + 2j + 4k in Fortran order.
  std::vector<float> fortran(8);
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 2; ++j) {
      for (int k = 0; k < 2; ++k) fortran[i + 2 * j + 4 * k] = float(100 * i + 10 * j + k);
    }
  }
  Result<Tensor> t3 = parse_npy(npy(1, header("<f4", "(2, 2, 2)", true), raw(fortran)), "f3");
  ASSERT_TRUE(t3.is_ok()) << t3.status().to_string();
  EXPECT_EQ(t3->f32, (std::vector<float>{0, 1, 10, 11, 100, 101, 110, 111}));
}

TEST(Npy, ReadsVersions2And3AndPython2Headers) {
  for (int major : {2, 3}) {
    Result<Tensor> t = parse_npy(npy(major, header("<f4", "(1,)"), raw<float>({4})), "v");
    ASSERT_TRUE(t.is_ok()) << major << ": " << t.status().to_string();
    EXPECT_EQ(t->f32, (std::vector<float>{4}));
  }
  // Python 2's numpy wrote longs with an L and keys in any order.
  Result<Tensor> py2 = parse_npy(
      npy(1, "{'shape': (2L,), \"fortran_order\": False, 'descr': '<i8'}", raw<int64_t>({1, 2})),
      "py2");
  ASSERT_TRUE(py2.is_ok()) << py2.status().to_string();
  EXPECT_EQ(py2->info.shape, (Shape{2}));
}

TEST(Npy, EmptyArrays) {
  Result<Tensor> t = parse_npy(npy(1, header("<f4", "(0, 3)"), ""), "e");
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->info.shape, (Shape{0, 3}));
  EXPECT_TRUE(t->f32.empty());
}

TEST(Npy, RefusesUnsupportedDtypesNamingThem) {
  for (const char* descr : {"|u1", "|b1", "<f2", "<u8", "<c8", "<U3", "|O"}) {
    Result<Tensor> t = parse_npy(npy(1, header(descr, "(1,)"), std::string(8, '\0')), "mask");
    ASSERT_FALSE(t.is_ok()) << descr;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(t.status().message(), HasSubstr("array 'mask'"));
    EXPECT_THAT(t.status().message(), HasSubstr(std::string("'") + descr + "'"));
  }
  Result<Tensor> structured = parse_npy(
      npy(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", raw<float>({1})),
      "rec");
  ASSERT_FALSE(structured.is_ok());
  EXPECT_THAT(structured.status().message(), HasSubstr("structured dtype"));
}

TEST(Npy, RefusesDamage) {
  struct Case {
    std::string bytes;
    std::string message;
  };
  std::string good = numpy_f32_2x3();
  std::vector<Case> cases = {
      {"", "not a .npy file"},
      {"PK\x03\x04garbage", "not a .npy file"},
      {good.substr(0, 9), "truncated inside its preamble"},
      {std::string("\x93NUMPY\x04\x00", 8) + good.substr(8), "version 4.0"},
      {good.substr(0, 60), "truncated: its header claims 118 bytes"},
      {good.substr(0, good.size() - 1),
       "23 bytes of data where its shape (2, 3) and dtype '<f4' "
       "need 24 (truncated)"},
      {good + "x", "25 bytes of data"},
      {npy(1, "{'descr': '<f4', 'shape': (1,)}", raw<float>({1})), "missing key 'fortran_order'"},
      {npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", raw<float>({1})),
       "unknown key 'x'"},
      {npy(1, "{'descr': '<f4', 'fortran_order': false, 'shape': (1,)}", raw<float>({1})),
       "expected True or False"},
      {npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} trailing", ""),
       "unexpected text after '}'"},
      {npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", ""), "negative"},
      {npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,", ""), "malformed"},
      {npy(1, "{'descr: '<f4', 'fortran_order': False, 'shape': (1,)}", ""), "malformed"},
      {npy(1, header("<f4", "(99999999999999999999,)"), ""), "too large for 64 bits"},
      {npy(1, header("<f4", "(4294967296, 4294967296)"), ""), "overflows 64 bits"},
      {npy(1, header("<f4", "(3037000499,)"), ""), "overflows"},
  };
  // (3037000499,) does not overflow; its 12 GB are simply not there.
  cases.back().message = "0 bytes of data where its shape (3037000499,)";
  for (const Case& c : cases) {
    Result<Tensor> t = parse_npy(c.bytes, "x");
    ASSERT_FALSE(t.is_ok()) << c.message;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(t.status().message(), HasSubstr(c.message));
    EXPECT_THAT(t.status().message(), HasSubstr("array 'x'"));
  }
}

TEST(Npy, EncodeRefusesATensorWhoseDataDisagreesWithItsShape) {
  Tensor t = Tensor::from_floats({2, 2}, {1, 2, 3});
  Result<std::string> bytes = encode_npy(t, "w");
  ASSERT_FALSE(bytes.is_ok());
  EXPECT_THAT(bytes.status().message(), HasSubstr("array 'w' holds 3 elements"));
}

// ---------------------------------------------------------------------------------------------
// read_npz and write_npz

class Npz : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "kiln_npz_test_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // A zip archive at `name` with `members` (name, bytes), made with libzip.
  std::string make_zip(const std::string& name,
                       const std::vector<std::pair<std::string, std::string>>& members,
                       bool deflate = false) {
    std::string p = path(name);
    int code = 0;
    zip_t* archive = zip_open(p.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code);
    EXPECT_NE(archive, nullptr);
    for (const auto& [member, bytes] : members) {
      zip_source_t* source = zip_source_buffer(archive, bytes.data(), bytes.size(), 0);
      zip_int64_t index = zip_file_add(archive, member.c_str(), source, 0);
      EXPECT_GE(index, 0);
      zip_set_file_compression(archive, zip_uint64_t(index),
                               deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
    }
    EXPECT_EQ(zip_close(archive), 0);
    return p;
  }

  std::string contents(const std::string& p) const {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  // Removes the old file first: ext4 flushes a file truncated and rewritten in place to disk
  // on close, which makes hundreds of rewrites slow.
  void overwrite(const std::string& p, const std::string& bytes) const {
    fs::remove(p);
    std::ofstream(p, std::ios::binary) << bytes;
  }
  std::vector<std::string> files() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  fs::path dir_;
};

TEST_F(Npz, RoundTripsStoredAndDeflated) {
  std::vector<std::pair<std::string, Tensor>> arrays = {
      {"input", Tensor::from_floats({2, 3}, {1, 2, 3, 4, 5, 6.5f})},
      {"ids", Tensor::from_ints({4}, {0, -1, 1LL << 50, 7})},
      {"scalar", Tensor::from_floats({}, {3})},
      {"empty", Tensor::from_floats({0, 5}, {})},
  };
  for (NpzCompression compression : {NpzCompression::kStored, NpzCompression::kDeflated}) {
    std::string p = path("round.npz");
    Status written = write_npz(p, arrays, compression);
    ASSERT_TRUE(written.is_ok()) << written.to_string();
    EXPECT_EQ(files(), std::vector<std::string>{"round.npz"});  // no temporary file is left
    Result<std::map<std::string, Tensor>> read = read_npz(p);
    ASSERT_TRUE(read.is_ok()) << read.status().to_string();
    ASSERT_EQ(read->size(), arrays.size());
    for (const auto& [name, tensor] : arrays) {
      ASSERT_TRUE(read->count(name)) << name;
      const Tensor& back = read->at(name);
      EXPECT_EQ(back.info, tensor.info) << name;
      EXPECT_EQ(back.f32, tensor.f32) << name;
      EXPECT_EQ(back.i64, tensor.i64) << name;
    }
    // Stored members hold numpy's bytes as they are.
    bool stored_bytes_present =
        contents(p).find(numpy_f32_2x3().substr(0, 70)) != std::string::npos;
    EXPECT_EQ(stored_bytes_present, compression == NpzCompression::kStored);
  }
}

TEST_F(Npz, ReadsHandMadeArchives) {
  std::string p = make_zip(
      "hand.npz",
      {{"x.npy", numpy_f32_2x3()}, {"n.npy", npy(1, header("<i4", "(2,)"), raw<int32_t>({3, 4}))}},
      /*deflate=*/true);
  Result<std::map<std::string, Tensor>> read = read_npz(p);
  ASSERT_TRUE(read.is_ok()) << read.status().to_string();
  EXPECT_EQ(read->at("x").f32, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(read->at("n").i64, (std::vector<int64_t>{3, 4}));
}

TEST_F(Npz, ReplacesAnExistingFileWhole) {
  std::string p = path("out.npz");
  overwrite(p, "old");
  ASSERT_TRUE(write_npz(p, {{"a", Tensor::from_floats({1}, {1})}}).is_ok());
  Result<std::map<std::string, Tensor>> read = read_npz(p);
  ASSERT_TRUE(read.is_ok()) << read.status().to_string();
  EXPECT_EQ(read->at("a").f32, (std::vector<float>{1}));
  EXPECT_EQ(files(), std::vector<std::string>{"out.npz"});
}

TEST_F(Npz, WriteRefusesBadArraysAndUnwritablePaths) {
  Status empty_name = write_npz(path("a.npz"), {{"", Tensor::from_floats({1}, {1})}});
  EXPECT_EQ(empty_name.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(empty_name.message(), HasSubstr("empty name"));

  Status twice = write_npz(
      path("a.npz"), {{"a", Tensor::from_floats({1}, {1})}, {"a", Tensor::from_floats({1}, {2})}});
  EXPECT_THAT(twice.message(), HasSubstr("array 'a' is written twice"));

  Status mismatched = write_npz(path("a.npz"), {{"m", Tensor::from_floats({3}, {1})}});
  EXPECT_THAT(mismatched.message(), HasSubstr("array 'm' holds 1 elements"));

  Status none = write_npz(path("a.npz"), {});
  EXPECT_THAT(none.message(), HasSubstr("no arrays"));

  std::string missing_folder = path("no/such/folder/a.npz");
  Status unwritable = write_npz(missing_folder, {{"a", Tensor::from_floats({1}, {1})}});
  EXPECT_EQ(unwritable.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(unwritable.message(), HasSubstr("cannot write npz file '" + missing_folder + "'"));
  EXPECT_TRUE(files().empty());
}

TEST_F(Npz, MissingFileIsNotFound) {
  Result<std::map<std::string, Tensor>> read = read_npz(path("missing.npz"));
  ASSERT_FALSE(read.is_ok());
  EXPECT_EQ(read.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(read.status().message(), HasSubstr(path("missing.npz")));
}

TEST_F(Npz, RefusesWhatIsNotAZip) {
  std::string p = path("text.npz");
  overwrite(p, "this is not a zip archive at all, just some text\n");
  Result<std::map<std::string, Tensor>> read = read_npz(p);
  ASSERT_FALSE(read.is_ok());
  EXPECT_EQ(read.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("'" + p + "' is not a zip archive"));

  // A bare .npy file is not an .npz either.
  overwrite(p, numpy_f32_2x3());
  EXPECT_FALSE(read_npz(p).is_ok());
  EXPECT_FALSE(read_npz(dir_.string()).is_ok());
}

TEST_F(Npz, RefusesDamagedArchivesWithoutCrashing) {
  std::vector<std::pair<std::string, Tensor>> arrays = {
      {"big", Tensor::from_floats({16, 16}, std::vector<float>(256, 0.5f))},
      {"ids", Tensor::from_ints({20}, std::vector<int64_t>(20, 3))}};
  for (NpzCompression compression : {NpzCompression::kStored, NpzCompression::kDeflated}) {
    std::string p = path("good.npz");
    ASSERT_TRUE(write_npz(p, arrays, compression).is_ok());
    std::string good = contents(p);
    std::string damaged = path("damaged.npz");
    // Truncations and flipped bytes at about a hundred offsets each: an error or (for a byte
    // that no check covers, such as a timestamp) a result, never a crash.
    size_t step = good.size() / 100 + 1;
    for (size_t cut = 0; cut < good.size(); cut += step) {
      overwrite(damaged, good.substr(0, cut));
      EXPECT_FALSE(read_npz(damaged).is_ok()) << "cut at " << cut;
    }
    for (size_t at = 0; at < good.size(); at += step) {
      std::string bytes = good;
      bytes[at] = char(bytes[at] ^ 0x5a);
      overwrite(damaged, bytes);
      Result<std::map<std::string, Tensor>> read = read_npz(damaged);
      if (!read.is_ok()) {
        EXPECT_FALSE(read.status().message().empty());
      }
    }
  }
}

TEST_F(Npz, DetectsCorruptedData) {
  std::string p = path("crc.npz");
  ASSERT_TRUE(
      write_npz(p, {{"x", Tensor::from_floats({256}, std::vector<float>(256, 1))}}).is_ok());
  std::string bytes = contents(p);
  // The last float of the stored data, just before the central directory.
  size_t data_end = bytes.find(std::string("PK\x01\x02", 4));
  ASSERT_NE(data_end, std::string::npos);
  bytes[data_end - 2] = char(bytes[data_end - 2] ^ 0x01);
  overwrite(p, bytes);
  Result<std::map<std::string, Tensor>> read = read_npz(p);
  ASSERT_FALSE(read.is_ok());
  EXPECT_THAT(read.status().message(), HasSubstr("member 'x.npy' of '" + p + "' is damaged"));
}

TEST_F(Npz, RefusesTruncatedArraysAndUnsupportedDtypes) {
  std::string good = numpy_f32_2x3();
  std::string p = make_zip("t.npz", {{"x.npy", good.substr(0, good.size() - 4)}});
  Result<std::map<std::string, Tensor>> read = read_npz(p);
  ASSERT_FALSE(read.is_ok());
  EXPECT_THAT(read.status().message(), HasSubstr("array 'x'"));
  EXPECT_THAT(read.status().message(), HasSubstr("(truncated)"));

  p = make_zip("u.npz", {{"ok.npy", good}, {"mask.npy", npy(1, header("|b1", "(3,)"), "\1\0\1")}});
  read = read_npz(p);
  ASSERT_FALSE(read.is_ok());
  EXPECT_THAT(read.status().message(), HasSubstr("array 'mask' has dtype '|b1'"));
}

TEST_F(Npz, RefusesAHugeClaimedShapeBeforeAllocating) {
  // 2^40 floats (4 TiB) claimed by a member of a few hundred bytes, stored and deflated: refused
  // from the sizes alone (allocating would abort the test).
  for (bool deflate : {false, true}) {
    std::string p = make_zip(
        "huge.npz", {{"h.npy", npy(1, header("<f4", "(1099511627776,)"), raw<float>({1, 2}))}},
        deflate);
    Result<std::map<std::string, Tensor>> read = read_npz(p);
    ASSERT_FALSE(read.is_ok());
    EXPECT_THAT(read.status().message(), HasSubstr("array 'h'"));
    EXPECT_THAT(read.status().message(), HasSubstr("need 4398046511104 (truncated)"));
  }
}

TEST_F(Npz, RefusesMembersThatAreNotArrays) {
  std::string p = make_zip("m.npz", {{"readme.txt", "hello"}});
  Result<std::map<std::string, Tensor>> read = read_npz(p);
  ASSERT_FALSE(read.is_ok());
  EXPECT_THAT(read.status().message(), HasSubstr("member 'readme.txt'"));
  EXPECT_THAT(read.status().message(), HasSubstr("not a .npy file"));

  p = make_zip("n.npz", {{"x.npy", "not an array"}});
  read = read_npz(p);
  ASSERT_FALSE(read.is_ok());
  EXPECT_THAT(read.status().message(), HasSubstr("array 'x' is not a .npy file"));
}

}  // namespace
}  // namespace kiln::graph
