// The `kiln` binary: global flags (parsed with CLI11), subcommand dispatch, and the boundary
// where internal errors become a report request (STYLE.md §4). Each command parses its own
// arguments (tuner/cli/flags.h).

#include <algorithm>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "compiler_core/support/check.h"
#include "compiler_core/support/log.h"
#include "proto/kiln/grpc_process.h"
#include "tuner/cli/commands.h"
#include "tuner/cli/flags.h"

namespace kiln::tuner {
namespace {

struct Command {
  std::string_view name;
  std::string_view summary;
  int (*run)(const std::vector<std::string>& args);
};

// Every subcommand, in the order `kiln --help` lists them.
constexpr Command kCommands[] = {
    {"run", "build a kernel for this machine, check it against the reference, time it",
     run_command},
    {"emit", "write a kernel's assembly, object file or LLVM IR for any target", emit_command},
    {"compile", "compile an ONNX model into a module file for a target", compile_command},
    {"tune", "search a workload's configs on this machine, storing every result", tune_command},
    {"bench", "time the best stored kernel against OpenBLAS and oneDNN", bench_command},
    {"best", "list the fastest stored records of a workload on a target", best_command},
    {"db", "export, import or count the records of a tuning log", db_command},
    {"tracker", "run the device fleet's tracker", tracker_command},
    {"serve", "serve best schedules and tuning jobs over gRPC, with the tracker on the same port",
     serve_command},
    {"jobs", "list, watch, cancel or resume the tuning jobs of a kiln serve", jobs_command},
    {"agent", "join the device fleet as a board", agent_command},
    {"status", "show a tracker's agents and queues", status_command},
    {"agent-worker", "the worker process kiln agent measures in (internal)", agent_worker_command},
    {"model", "evaluate the cost model on a workload's records in a tuning log", model_command},
};

const Command* find_command(std::string_view name) {
  for (const Command& command : kCommands) {
    if (command.name == name) return &command;
  }
  return nullptr;
}

void print_usage(std::ostream& out) {
  out << "usage: kiln [--log-level LEVEL] [--check-flags] <command> [flags]\n"
         "       kiln help <command> | --help | --version\n\n"
         "kiln is an autotuning compiler for tensor programs.\n\ncommands:\n";
  size_t width = 0;
  for (const Command& command : kCommands) width = std::max(width, command.name.size());
  for (const Command& command : kCommands) {
    out << "  " << command.name << std::string(width - command.name.size() + 2, ' ')
        << command.summary << "\n";
  }
  out << "\nglobal flags:\n"
      << kGlobalFlagsHelp
      << "  --version          print kiln's version\n\n"
         "Run 'kiln help <command>' or 'kiln <command> --help' for a command's flags.\n";
}

int unknown_command(std::string_view name) {
  std::cerr << "error: unknown command '" << name << "'; run 'kiln --help'\n";
  return 2;
}

// Takes the global flags out of `args`, wherever they stand before a `--`, so that they work
// before and after the command name: `--log-level LEVEL` / `--log-level=LEVEL` (the last one
// given counts; "warn" when absent) and `--check-flags`. CLI11 parses them and leaves every
// other argument, in order, for the command. Sets them and returns the other arguments, or
// nullopt after printing an error.
std::optional<std::vector<std::string>> take_global_flags(const std::vector<std::string>& args) {
  CLI::App globals("kiln's global flags", "kiln");
  globals.set_help_flag();  // --help belongs to kiln's usage and to each command
  globals.allow_extras();
  std::string level = "warn";
  globals.add_option("--log-level", level)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  bool check_flags = false;
  globals.add_flag("--check-flags", check_flags)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 reads last first
  try {
    globals.parse(reversed);
  } catch (const CLI::ArgumentMismatch&) {
    // The one way this parse fails: --log-level last, without its value.
    std::cerr << "error: --log-level needs a value (--log-level LEVEL)\n";
    return std::nullopt;
  } catch (const CLI::ParseError& error) {
    std::cerr << "error: " << error.what() << "; run 'kiln --help'\n";
    return std::nullopt;
  }
  if (!set_log_level(level)) {
    std::cerr << "error: unknown log level '" << level
              << "' for --log-level; use trace, debug, info, warn, error or off\n";
    return std::nullopt;
  }
  set_check_flags_only(check_flags);
  return globals.remaining();
}

int dispatch(const std::vector<std::string>& argv) {
  std::optional<std::vector<std::string>> rest = take_global_flags(argv);
  if (!rest) return 2;
  const std::vector<std::string>& args = *rest;
  if (args.empty()) {
    print_usage(std::cerr);
    return 2;
  }
  const std::string& first = args.front();
  if (first == "--help" || first == "-h") {
    print_usage(std::cout);
    return 0;
  }
  if (first == "--version") {
    std::cout << "kiln " << KILN_VERSION << "\n";
    return 0;
  }
  if (first.starts_with("-")) {
    std::cerr << "error: unknown flag '" << first << "' for 'kiln'; run 'kiln --help'\n";
    return 2;
  }
  if (first == "help") {
    if (args.size() == 1) {
      print_usage(std::cout);
      return 0;
    }
    if (args.size() > 2) {
      std::cerr << "error: 'kiln help' takes one command name; run 'kiln --help'\n";
      return 2;
    }
    const Command* command = find_command(args[1]);
    if (command == nullptr) return unknown_command(args[1]);
    return command->run({"--help"});
  }
  const Command* command = find_command(first);
  if (command == nullptr) return unknown_command(first);
  return command->run(std::vector<std::string>(args.begin() + 1, args.end()));
}

}  // namespace
}  // namespace kiln::tuner

int main(int argc, char** argv) {
  kiln::disable_mutex_deadlock_detection();
  try {
    return kiln::tuner::dispatch(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const kiln::InternalError& error) {
    // KILN_CHECK messages read "internal error at FILE:LINE: ...".
    std::string_view what = error.what();
    if (what.starts_with("internal error ")) what.remove_prefix(15);
    std::cerr << "internal error: " << what << "; please report this\n";
    return 1;
  } catch (const std::exception& error) {
    // Anything else that escapes is a bug too: commands report user errors as Status.
    std::cerr << "internal error: unexpected exception: " << error.what()
              << "; please report this\n";
    return 1;
  }
}
