#include "tuner/cli/worker_flags.h"

#include <unistd.h>

#include <cstdlib>
#include <sstream>

namespace kiln::tuner {
namespace {

/// `name` as execv runs it: as it is when it holds a '/', else the first executable of that
/// name in PATH. InvalidArgument when there is none.
Result<std::string> find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::istringstream folders(path != nullptr ? path : "/usr/bin:/bin");
  for (std::string folder; std::getline(folders, folder, ':');) {
    const std::string candidate = (folder.empty() ? "." : folder) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return invalid_argument("--worker program '" + name +
                          "' is not in PATH; give its path or install it");
}

}  // namespace

void add_worker_flags(FlagSet& flags, const std::string& worker_help) {
  flags.add_int("task-timeout-s", "S", "wall time of a task whose options give none", 120, 1,
                86400);
  // A kernel that allocates without bound meets its worker's limit, not the host's OOM killer.
  const int64_t half_of_memory_mb =
      int64_t(sysconf(_SC_PHYS_PAGES)) * int64_t(sysconf(_SC_PAGE_SIZE)) / 2 >> 20;
  flags.add_int("worker-memory-mb", "MB", "address-space limit of each worker; 0: none",
                half_of_memory_mb, 0, int64_t{1} << 30,
                "half of this machine's memory, " + std::to_string(half_of_memory_mb));
  flags.add_string("worker", "COMMAND", worker_help);
}

Result<WorkerSetup> worker_from_flags(const FlagSet& flags) {
  WorkerSetup setup;
  setup.limits.default_timeout = std::chrono::seconds(flags.get_int("task-timeout-s"));
  setup.limits.memory_bytes = flags.get_int("worker-memory-mb") << 20;
  if (!flags.is_set("worker")) {
    setup.command = {"/proc/self/exe", "agent-worker"};
    return setup;
  }
  std::istringstream words(flags.get_string("worker"));
  for (std::string word; words >> word;) setup.command.push_back(word);
  if (setup.command.empty()) {
    return invalid_argument("--worker is empty; give the worker's command line");
  }
  // Workers are started with execv, which does not search PATH: look the program up here.
  KILN_ASSIGN_OR_RETURN(setup.command[0], find_program(setup.command[0]));
  return setup;
}

}  // namespace kiln::tuner
