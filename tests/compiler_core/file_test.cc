// Files replaced whole or not at all (support/file.h): what `kiln db export --output`, `--plot`,
// `kiln emit -o`, the jobs file and saved cost models are written with.

#include "compiler_core/support/file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace kiln {
namespace {

namespace fs = std::filesystem;

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class AtomicFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("kiln_file_test_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  /// The names of the files in the test's folder.
  std::vector<std::string> files() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_)) names.push_back(entry.path().filename());
    return names;
  }
  fs::path dir_;
};

TEST_F(AtomicFile, WritesAndReplacesWhole) {
  const fs::path path = dir_ / "out.txt";
  ASSERT_TRUE(write_file_atomically(path, "a long first version\n").is_ok());
  EXPECT_EQ(read(path), "a long first version\n");
  ASSERT_TRUE(write_file_atomically(path, "short\n").is_ok());
  EXPECT_EQ(read(path), "short\n");
  EXPECT_EQ(files(), std::vector<std::string>{"out.txt"});  // no temporary left behind
}

// A writer that fails half-way (an export whose log turns out damaged) leaves the old file as it
// was: a truncating write would have left half an export in its place.
TEST_F(AtomicFile, AFailedWriteKeepsTheOldFile) {
  const fs::path path = dir_ / "export.jsonl";
  ASSERT_TRUE(write_file_atomically(path, "{\"old\": 1}\n").is_ok());
  Status failed = write_file_atomically(path, [](std::ostream& out) {
    out << "{\"half\": ";
    return false;
  });
  EXPECT_EQ(failed.code(), StatusCode::kInternal);
  EXPECT_EQ(read(path), "{\"old\": 1}\n");
  EXPECT_EQ(files(), std::vector<std::string>{"export.jsonl"});
}

TEST_F(AtomicFile, AFolderThatDoesNotExistIsAFailedPrecondition) {
  Status s = write_file_atomically(dir_ / "missing" / "out.txt", "x");
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("missing"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace kiln
