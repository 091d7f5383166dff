/// \file
/// The fixture of the tests that run kiln as real processes: a folder of its own per test
/// (kept when the test fails), `kiln` children with stdout and stderr in it, all stopped at the
/// end. The including test target defines KILN_BINARY, the kiln executable.
#pragma once

#include <unistd.h>

#include <chrono>
#include <deque>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/process.h"

namespace kiln::test {

class KilnProcessTest : public ::testing::Test {
 protected:
  /// Makes the test's folder, `prefix`_PID_TESTNAME under the temporary folder, empty.
  void make_dir(const std::string& prefix) {
    dir_ = std::filesystem::temp_directory_path() /
           (prefix + "_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }

  void TearDown() override {
    for (Process& p : processes_) p.stop();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  /// Starts `kiln args...` with its output in NAME.out and NAME.err.
  Process& run(const std::string& name, std::vector<std::string> args) {
    args.insert(args.begin(), KILN_BINARY);
    processes_.push_back(Process::spawn(args, dir_ / (name + ".out"), dir_ / (name + ".err")));
    EXPECT_GT(processes_.back().pid, 0) << name;
    return processes_.back();
  }

  /// Runs `kiln args...` to its end; returns the exit code, stdout in `out`.
  int run_to_end(const std::string& name, std::vector<std::string> args, std::string* out) {
    Process& p = run(name, std::move(args));
    int code = p.wait();
    *out = read_file(p.out);
    return code;
  }

  /// The port of a server that prints "listening on 127.0.0.1:PORT" (0 after 30 s, a failure).
  int wait_for_port(const Process& server) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      std::string line = read_file(server.out);
      size_t at = line.find("listening on 127.0.0.1:");
      if (at != std::string::npos && line.find('\n', at) != std::string::npos) {
        return std::stoi(line.substr(at + 23));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "the server did not start: " << read_file(server.err);
    return 0;
  }

  std::filesystem::path dir_;
  std::deque<Process> processes_;  ///< a deque: references stay valid as children are added
};

}  // namespace kiln::test
