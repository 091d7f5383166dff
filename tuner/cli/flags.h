/// \file
/// The command line of `kiln`'s subcommands, on CLI11. Each subcommand declares its flags and
/// positional arguments on a FlagSet, parses the arguments that follow the command name, and
/// reads the values back. A FlagSet is one CLI::App: CLI11 does the parsing, the integer ranges,
/// the required flags and arguments, and the --help text (through a formatter that prints kiln's
/// layout); FlagSet turns CLI11's errors into kiln's messages.
///
/// Accepted forms: `--name value`, `--name=value` (`--name=` is the empty value), boolean flags
/// given alone (`--json`, or `--json=true|false|1|0`), a declared short alias for `--name` (`-o
/// FILE`, `-oFILE`, `-o=FILE`), positional arguments where a command declares them (in their order,
/// anywhere among the flags; after `--` an argument is positional even when it starts with `-`),
/// and `--help` /
/// `-h`. Every flag may appear once. A flag's value may not start with `--` (`--workload
/// --target llvm` is a missing value, not the workload "--target"). Errors are InvalidArgument
/// Statuses whose messages name the flag and the command (`unknown flag '--x' for 'kiln run'`);
/// the caller prints them and exits with 2. Where a command line holds several mistakes, an
/// unknown flag is reported first, since it is the likeliest cause of the others (a misspelt
/// required flag); then a missing value or a bad one, an unexpected argument, a missing
/// required flag or argument.
///
/// The global `--log-level` flag is taken out of the arguments by `main` before a subcommand
/// parses them; `FlagSet::help` lists it under "global flags".
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "compiler_core/support/status.h"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace kiln::tuner {

/// The help lines of the flags every command accepts (handled in main).
extern const char* const kGlobalFlagsHelp;

class FlagSet {
 public:
  /// `command` is the subcommand as typed ("run"); `summary` says in one line what it does;
  /// `details` (may be empty) is printed after the flag list in --help.
  FlagSet(std::string command, std::string summary, std::string details = "");
  FlagSet(FlagSet&&) noexcept;
  FlagSet& operator=(FlagSet&&) noexcept;
  ~FlagSet();

  /// A string flag `--name VALUE`. An empty default is shown as no default in --help.
  /// `short_name`, when not '\0', declares `-<short_name>` as another spelling (`-o FILE` for
  /// `--output FILE`); --help shows it beside the long name.
  void add_string(std::string name, std::string value_name, std::string help,
                  std::string default_value = "", char short_name = '\0');
  /// A string flag that must be given.
  void add_required_string(std::string name, std::string value_name, std::string help,
                           char short_name = '\0');
  /// An integer flag whose value must lie in [min_value, max_value]. `default_text`, when not
  /// empty, is shown in --help instead of the number (for defaults that depend on the machine).
  void add_int(std::string name, std::string value_name, std::string help, int64_t default_value,
               int64_t min_value, int64_t max_value, std::string default_text = "");
  /// A boolean flag, false unless given.
  void add_bool(std::string name, std::string help, char short_name = '\0');
  /// A positional argument, e.g. add_positional("model", "MODEL.onnx", "the model to compile",
  /// true). Positional arguments take the command line's free arguments in the order they are
  /// declared; declare the required ones first. `name` is what get_positional and is_set take
  /// and must differ from every flag's; `value_name` is how usage and --help show it.
  void add_positional(std::string name, std::string value_name, std::string help, bool required);

  /// Parses `args`, the arguments after the command name. A `--help`/`-h` anywhere wins over
  /// every mistake (then help_requested() is true and nothing else is checked). InvalidArgument
  /// for an unknown flag, an unexpected positional argument, a flag given twice, a missing
  /// value, a malformed or out-of-range integer or boolean, and a missing required flag or
  /// argument. Call it once per FlagSet.
  Status parse(const std::vector<std::string>& args);

  bool help_requested() const { return help_requested_; }

  /// The usage line, summary, every positional argument and flag with its default, the global
  /// flags and the details, wrapped to 100 columns.
  std::string help() const;

  /// The value of a flag (its default when not given). Asking for a flag that was not declared
  /// with that type is a bug (InternalError).
  const std::string& get_string(std::string_view name) const;
  int64_t get_int(std::string_view name) const;
  bool get_bool(std::string_view name) const;
  /// The value of a positional argument, empty when it was not given.
  const std::string& get_positional(std::string_view name) const;

  /// The subcommand as typed ("run", "db export").
  const std::string& command() const { return command_; }
  /// True when the flag or positional argument was given on the command line.
  bool is_set(std::string_view name) const;

 private:
  enum class Type { kString, kInt, kBool, kPositional };
  /// A declared flag or positional argument and where CLI11 stores its value.
  struct Flag {
    std::string name;
    std::string value_name;
    Type type = Type::kString;
    bool required = false;
    std::string string_value;
    int64_t int_value = 0;
    bool bool_value = false;
    CLI::Option* option = nullptr;
  };

  Flag& add(std::string name, Type type);
  const Flag* find(std::string_view name) const;
  const Flag& get(std::string_view name, Type type) const;
  Status parse_error_status(const std::vector<std::string>& args) const;
  /// The error for what CLI11 left over: an unknown flag (`*unknown_flag` set) or an
  /// unexpected argument.
  Status check_remaining(bool* unknown_flag) const;
  std::string display_name() const;

  std::string command_;
  std::unique_ptr<CLI::App> app_;
  // Heap-held so that the pointers CLI11's callbacks keep stay valid when a FlagSet moves.
  std::vector<std::unique_ptr<Flag>> flags_;
  bool help_requested_ = false;
};

/// Declares `--threads N` (threads for kernels' parallel loops, 1 to 1024) with this machine's
/// cores as the default; `help` says what the threads run.
void add_threads_flag(FlagSet& flags, const std::string& help);

/// The global `--check-flags` (main sets it): every command parses its command line, says
/// whether it is valid, and starts nothing. For deployment files (units, manifests) to be
/// checked against the kiln that will run them.
void set_check_flags_only(bool on);
bool check_flags_only();

/// Parses `args` into `flags` and handles what every subcommand treats alike: on --help it
/// prints the help on stdout and returns 0; on a parse error it prints `error: <message>` on
/// stderr and returns 2; under --check-flags it prints "kiln COMMAND: the command line is
/// valid" on stdout and returns 0. Returns nullopt when the command should go on.
std::optional<int> parse_flags_or_exit(FlagSet& flags, const std::vector<std::string>& args);

/// Prints `error: <message>` on stderr and returns the exit code for `status`: 2 when the
/// caller's input is wrong (Status::is_user_error), 1 otherwise.
int report_error(const Status& status);

/// An action of a command with actions (`kiln db export`): its name and what runs it with the
/// arguments after the name.
struct Action {
  std::string name;
  std::function<int(const std::vector<std::string>&)> run;
};
/// Runs the action `args[0]` names with the rest of `args`; prints `usage` for --help, -h or
/// help; exit code 2 with a message naming the actions for a missing or unknown one.
int run_action(const std::string& command, std::string_view usage,
               const std::vector<Action>& actions, const std::vector<std::string>& args);

}  // namespace kiln::tuner
