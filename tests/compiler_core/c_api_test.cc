#include "compiler_core/graph/c_api/kiln_runtime.h"

#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

extern "C" int kiln_c_api_load_and_describe(const char* path);

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string last_error() { return kiln_last_error(); }

// ---------------------------------------------------------------------------------------------
// Without a module

TEST(CApi, LoadOfAMissingFileNamesThePath) {
  kiln_module* module = reinterpret_cast<kiln_module*>(0x1);  // must be reset to NULL
  const char* path = "/nonexistent/kiln/model.kmod";
  EXPECT_EQ(kiln_module_load(path, &module), KILN_ERROR_NOT_FOUND);
  EXPECT_EQ(module, nullptr);
  EXPECT_THAT(last_error(), HasSubstr("kiln_module_load"));
  EXPECT_THAT(last_error(), HasSubstr(path));
  EXPECT_EQ(kiln_c_api_load_and_describe(path), KILN_ERROR_NOT_FOUND);
}

TEST(CApi, LoadOfAFileThatIsNotAModule) {
  std::string pattern = (fs::temp_directory_path() / "kiln_c_api_XXXXXX").string();
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  std::string path = pattern + "/not_a_module.kmod";
  std::ofstream(path) << "hello\n";
  kiln_module* module = nullptr;
  EXPECT_EQ(kiln_module_load(path.c_str(), &module), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(module, nullptr);
  EXPECT_THAT(last_error(), HasSubstr(path));
  fs::remove_all(pattern);
}

TEST(CApi, NullArgumentsAreErrorsNotCrashes) {
  kiln_module* module = nullptr;
  int n = 0;
  const char* name = nullptr;
  const int64_t* dims = nullptr;
  int rank = 0;
  int64_t shape[1] = {1};
  float data[1] = {0};

  EXPECT_EQ(kiln_module_load(nullptr, &module), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(last_error(), "kiln_module_load: path is NULL");
  EXPECT_EQ(kiln_module_load("/nonexistent", nullptr), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(last_error(), "kiln_module_load: out is NULL");

  EXPECT_EQ(kiln_module_free(nullptr), KILN_OK);
  EXPECT_EQ(kiln_module_target(nullptr, &name), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_module_num_inputs(nullptr, &n), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(last_error(), "kiln_module_num_inputs: module is NULL");
  EXPECT_EQ(kiln_module_num_outputs(nullptr, &n), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_module_input_name(nullptr, 0, &name), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_module_output_name(nullptr, 0, &name), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_module_input_dtype(nullptr, 0, &n), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_module_output_dtype(nullptr, 0, &n), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_module_input_shape(nullptr, 0, &dims, &rank), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_module_output_shape(nullptr, 0, &dims, &rank), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_module_set_input(nullptr, "x", data, shape, 1, KILN_DTYPE_FLOAT32),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_module_run(nullptr), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(last_error(), "kiln_module_run: module is NULL");
  EXPECT_EQ(kiln_module_get_output(nullptr, "y", data, sizeof(data)), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_module_set_threads(nullptr, 2), KILN_ERROR_INVALID_ARGUMENT);
}

TEST(CApi, StatusNames) {
  EXPECT_STREQ(kiln_status_name(KILN_OK), "ok");
  EXPECT_STREQ(kiln_status_name(KILN_ERROR_NOT_FOUND), "not_found");
  EXPECT_STREQ(kiln_status_name(KILN_ERROR_INTERNAL), "internal");
  EXPECT_STREQ(kiln_status_name(-7), "unknown");
}

TEST(CApi, LastErrorIsPerThread) {
  EXPECT_EQ(kiln_module_run(nullptr), KILN_ERROR_INVALID_ARGUMENT);
  std::string other;
  std::thread thread([&] {
    other = kiln_last_error();  // nothing failed on this thread yet
    kiln_module* module = nullptr;
    EXPECT_EQ(kiln_module_load("/nonexistent/other", &module), KILN_ERROR_NOT_FOUND);
  });
  thread.join();
  EXPECT_EQ(other, "");
  EXPECT_EQ(last_error(), "kiln_module_run: module is NULL");
}

// ---------------------------------------------------------------------------------------------
// On a module (kiln_c_api_module_writer's: x float32[2,8], y = Relu(x·W + B) float32[2,4],
// z = y·V float32[2,3])

class CApiModule : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string pattern = (fs::temp_directory_path() / "kiln_c_api_module_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/small.kmod";
    std::string command = std::string("'") + KILN_C_API_MODULE_WRITER + "' '" + path_ + "' > '" +
                          dir_ + "/writer.log' 2>&1";
    ASSERT_EQ(std::system(command.c_str()), 0) << "kiln_c_api_module_writer failed";
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  void SetUp() override {
    ASSERT_EQ(kiln_module_load(path_.c_str(), &module_), KILN_OK) << last_error();
  }
  void TearDown() override { EXPECT_EQ(kiln_module_free(module_), KILN_OK); }

  static std::vector<float> input() {
    std::vector<float> x(16);
    for (int i = 0; i < 16; ++i) x[size_t(i)] = float(i % 5) - 1.5f;
    return x;
  }
  // y and z computed here, as the writer's comment defines them.
  static void reference(const std::vector<float>& x, std::vector<float>* y, std::vector<float>* z) {
    y->assign(8, 0);
    z->assign(6, 0);
    for (int r = 0; r < 2; ++r) {
      for (int j = 0; j < 4; ++j) {
        float sum = float(j) / 4 - 0.5f;
        for (int i = 0; i < 8; ++i) sum += x[size_t(r * 8 + i)] * float(i - j) / 8;
        (*y)[size_t(r * 4 + j)] = std::max(sum, 0.0f);
      }
      for (int k = 0; k < 3; ++k) {
        for (int j = 0; j < 4; ++j) {
          (*z)[size_t(r * 3 + k)] += (*y)[size_t(r * 4 + j)] * float((j + 1) * (k - 1)) / 4;
        }
      }
    }
  }

  static std::string dir_;
  static std::string path_;
  kiln_module* module_ = nullptr;
};

std::string CApiModule::dir_;
std::string CApiModule::path_;

TEST_F(CApiModule, DescribesInputsAndOutputs) {
  int inputs = 0, outputs = 0;
  ASSERT_EQ(kiln_module_num_inputs(module_, &inputs), KILN_OK);
  ASSERT_EQ(kiln_module_num_outputs(module_, &outputs), KILN_OK);
  EXPECT_EQ(inputs, 1);
  EXPECT_EQ(outputs, 2);
  const char* name = nullptr;
  ASSERT_EQ(kiln_module_input_name(module_, 0, &name), KILN_OK);
  EXPECT_STREQ(name, "x");
  ASSERT_EQ(kiln_module_output_name(module_, 1, &name), KILN_OK);
  EXPECT_STREQ(name, "z");
  const int64_t* dims = nullptr;
  int rank = 0, dtype = -1;
  ASSERT_EQ(kiln_module_input_shape(module_, 0, &dims, &rank), KILN_OK);
  ASSERT_EQ(rank, 2);
  EXPECT_EQ(dims[0], 2);
  EXPECT_EQ(dims[1], 8);
  ASSERT_EQ(kiln_module_output_shape(module_, 1, &dims, &rank), KILN_OK);
  ASSERT_EQ(rank, 2);
  EXPECT_EQ(dims[0], 2);
  EXPECT_EQ(dims[1], 3);
  ASSERT_EQ(kiln_module_output_dtype(module_, 0, &dtype), KILN_OK);
  EXPECT_EQ(dtype, KILN_DTYPE_FLOAT32);
  const char* target = nullptr;
  ASSERT_EQ(kiln_module_target(module_, &target), KILN_OK);
  EXPECT_THAT(target, HasSubstr("llvm"));
  EXPECT_EQ(kiln_c_api_load_and_describe(path_.c_str()), KILN_OK);

  EXPECT_EQ(kiln_module_input_name(module_, 1, &name), KILN_ERROR_OUT_OF_RANGE);
  EXPECT_EQ(last_error(),
            "kiln_module_input_name: input index 1 is out of range: the module has 1 inputs");
  EXPECT_EQ(kiln_module_output_shape(module_, -1, &dims, &rank), KILN_ERROR_OUT_OF_RANGE);
  EXPECT_EQ(kiln_module_input_shape(module_, 0, nullptr, &rank), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_module_num_inputs(module_, nullptr), KILN_ERROR_INVALID_ARGUMENT);
}

TEST_F(CApiModule, RunsAndMatchesTheReference) {
  std::vector<float> x = input(), y_ref, z_ref;
  reference(x, &y_ref, &z_ref);
  const int64_t shape[] = {2, 8};
  ASSERT_EQ(kiln_module_set_input(module_, "x", x.data(), shape, 2, KILN_DTYPE_FLOAT32), KILN_OK)
      << last_error();
  for (int threads : {1, 3}) {
    ASSERT_EQ(kiln_module_set_threads(module_, threads), KILN_OK) << last_error();
    ASSERT_EQ(kiln_module_run(module_), KILN_OK) << last_error();
    std::vector<float> y(8), z(6);
    ASSERT_EQ(kiln_module_get_output(module_, "y", y.data(), y.size() * 4), KILN_OK)
        << last_error();
    ASSERT_EQ(kiln_module_get_output(module_, "z", z.data(), z.size() * 4), KILN_OK)
        << last_error();
    for (size_t i = 0; i < y.size(); ++i) {
      EXPECT_NEAR(y[i], y_ref[i], 1e-5) << "y[" << i << "] threads=" << threads;
    }
    for (size_t i = 0; i < z.size(); ++i) {
      EXPECT_NEAR(z[i], z_ref[i], 1e-5) << "z[" << i << "] threads=" << threads;
    }
  }
  ASSERT_EQ(kiln_module_set_threads(module_, 1), KILN_OK);
}

TEST_F(CApiModule, StateErrors) {
  std::vector<float> y(8);
  EXPECT_EQ(kiln_module_run(module_), KILN_ERROR_FAILED_PRECONDITION);
  EXPECT_THAT(last_error(), HasSubstr("input 'x' has not been set"));
  EXPECT_EQ(kiln_module_get_output(module_, "y", y.data(), 32), KILN_ERROR_FAILED_PRECONDITION);
  EXPECT_THAT(last_error(), HasSubstr("has not run"));
  EXPECT_EQ(kiln_module_set_threads(module_, 0), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_THAT(last_error(), HasSubstr("threads 0"));
}

TEST_F(CApiModule, InputAndOutputMistakesNameTheValues) {
  std::vector<float> x = input();
  const int64_t shape[] = {2, 8};
  const int64_t wrong[] = {8, 2};
  EXPECT_EQ(kiln_module_set_input(module_, "nope", x.data(), shape, 2, KILN_DTYPE_FLOAT32),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_THAT(last_error(), HasSubstr("no input 'nope'"));
  EXPECT_EQ(kiln_module_set_input(module_, "x", x.data(), wrong, 2, KILN_DTYPE_FLOAT32),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_THAT(last_error(), HasSubstr("float32[2,8]"));
  EXPECT_THAT(last_error(), HasSubstr("float32[8,2]"));
  EXPECT_EQ(kiln_module_set_input(module_, "x", x.data(), shape, 2, KILN_DTYPE_INT64),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_THAT(last_error(), HasSubstr("int64[2,8]"));
  EXPECT_EQ(kiln_module_set_input(module_, "x", x.data(), shape, 2, 9),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_THAT(last_error(), HasSubstr("dtype 9"));
  EXPECT_EQ(kiln_module_set_input(module_, "x", x.data(), nullptr, 2, KILN_DTYPE_FLOAT32),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_module_set_input(module_, "x", nullptr, shape, 2, KILN_DTYPE_FLOAT32),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(last_error(), "kiln_module_set_input: data is NULL");
  EXPECT_EQ(kiln_module_set_input(module_, "x", x.data(), shape, -1, KILN_DTYPE_FLOAT32),
            KILN_ERROR_INVALID_ARGUMENT);
  const int64_t negative[] = {-2, 8};
  EXPECT_EQ(kiln_module_set_input(module_, "x", x.data(), negative, 2, KILN_DTYPE_FLOAT32),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_THAT(last_error(), HasSubstr("negative dimension -2"));

  ASSERT_EQ(kiln_module_set_input(module_, "x", x.data(), shape, 2, KILN_DTYPE_FLOAT32), KILN_OK);
  ASSERT_EQ(kiln_module_run(module_), KILN_OK) << last_error();
  std::vector<double> too_big(8);
  EXPECT_EQ(kiln_module_get_output(module_, "y", too_big.data(), too_big.size() * 8),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_THAT(last_error(), HasSubstr("output 'y' is float32[2,4], 32 bytes; the buffer holds 64"));
  EXPECT_EQ(kiln_module_get_output(module_, "w", too_big.data(), 32), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_THAT(last_error(), HasSubstr("'w'"));
  EXPECT_EQ(kiln_module_get_output(module_, "y", nullptr, 32), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_module_get_output(module_, nullptr, too_big.data(), 32),
            KILN_ERROR_INVALID_ARGUMENT);
}

}  // namespace
