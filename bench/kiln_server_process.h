/// \file
/// A `kiln` server process for the load benchmarks: started with its stdout in a file, its
/// port read from the "listening on 127.0.0.1:PORT" line, and its peak memory read from /proc.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace kiln::bench {

struct ServerProcess {
  pid_t pid = -1;
  int port = 0;

  /// Peak resident memory (VmHWM), KiB.
  int64_t peak_rss_kb() const {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6));
    }
    return 0;
  }

  /// CPU time the process has used so far (user + system), seconds.
  double cpu_s() const {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Fields after the command name, which is in parentheses and may hold spaces.
    std::istringstream fields(text.substr(text.rfind(')') + 2));
    std::string field;
    double ticks = 0;
    for (int i = 3; fields >> field && i <= 15; ++i) {
      if (i == 14 || i == 15) ticks += std::stod(field);  // utime, stime
    }
    return ticks / double(sysconf(_SC_CLK_TCK));
  }

  /// SIGTERM, then waits for the exit.
  void stop() {
    if (pid <= 0) return;
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    pid = -1;
  }
};

/// Starts `binary args...` with stdout in `out_path` and waits up to 30 s for its port; exits
/// the benchmark with an error when it does not start.
inline ServerProcess start_server(const std::string& binary, std::vector<std::string> args,
                                  const std::string& out_path) {
  args.insert(args.begin(), binary);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  ServerProcess server;
  const int spawned = posix_spawn(&server.pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    std::cerr << "error: cannot start " << binary << " " << args[1] << "\n";
    std::exit(1);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(out_path);
    std::string line;
    while (std::getline(in, line)) {  // after a "metrics on" line, with --metrics-listen
      if (line.rfind("listening on 127.0.0.1:", 0) == 0) {
        server.port = std::stoi(line.substr(23));
        return server;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::cerr << "error: kiln " << args[1] << " did not start\n";
  server.stop();
  std::exit(1);
}

}  // namespace kiln::bench
