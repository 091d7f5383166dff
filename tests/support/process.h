/// \file
/// Child processes for the tests that run kiln as users do: spawned with stdout and stderr in
/// files, in a process group of their own (their workers die with them), stopped with SIGTERM
/// and, past a deadline, SIGKILL.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace kiln::test {

/// A child process with stdout and stderr in files.
struct Process {
  pid_t pid = -1;
  std::filesystem::path out, err;

  static Process spawn(const std::vector<std::string>& args, const std::filesystem::path& out,
                       const std::filesystem::path& err) {
    Process p;
    p.out = out;
    p.err = err;
    std::vector<std::string> copy = args;
    std::vector<char*> argv;
    for (std::string& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);  // its workers die with it
    posix_spawnattr_setpgroup(&attr, 0);
    if (posix_spawn(&p.pid, argv[0], &actions, &attr, argv.data(), environ) != 0) p.pid = -1;
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    return p;
  }

  void signal(int sig) const {
    if (pid > 0) ::kill(-pid, sig);
  }
  /// Waits for the exit; -1 when it did not exit by the deadline.
  int wait(std::chrono::seconds timeout = std::chrono::seconds(300)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (pid > 0 && std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      pid_t done = waitpid(pid, &status, WNOHANG);
      if (done == pid) {
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  void stop() {
    if (pid <= 0) return;
    signal(SIGTERM);
    if (wait(std::chrono::seconds(10)) == -1) {
      signal(SIGKILL);
      wait(std::chrono::seconds(10));
    }
  }
};

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// A child process that ran to its end: its exit code (-1 when it outlived the deadline) and
/// what it wrote.
struct Finished {
  int code = -1;
  std::string out, err;
};

/// Runs `args` with stdout and stderr in `dir`/`tag`.out and .err, and waits for it.
inline Finished run_to_end(const std::vector<std::string>& args, const std::filesystem::path& dir,
                           const std::string& tag,
                           std::chrono::seconds timeout = std::chrono::seconds(900)) {
  Process p = Process::spawn(args, dir / (tag + ".out"), dir / (tag + ".err"));
  Finished f;
  f.code = p.wait(timeout);
  if (f.code == -1) p.stop();
  f.out = read_file(dir / (tag + ".out"));
  f.err = read_file(dir / (tag + ".err"));
  return f;
}

}  // namespace kiln::test
