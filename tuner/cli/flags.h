/// \file
/// A small flag parser for the subcommands of `kiln`. Each subcommand declares its flags on a
/// FlagSet, parses the arguments that follow the command name, and reads the values back.
///
/// Accepted forms: `--name value`, `--name=value`, boolean flags given alone (`--json`, or
/// `--json=true|false`), and `--help` / `-h`. Every flag may appear once. Positional arguments
/// are not accepted. Errors are InvalidArgument Statuses whose messages name the flag and the
/// command (`unknown flag '--x' for 'kiln run'`); the caller prints them and exits with 2.
///
/// The global `--log-level` flag is taken out of the arguments by `main` before a subcommand
/// parses them; `FlagSet::help` lists it under "global flags".
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "compiler_core/support/status.h"

namespace kiln::tuner {

/// The help lines of the flags every command accepts (handled in main).
extern const char* const kGlobalFlagsHelp;

class FlagSet {
 public:
  /// `command` is the subcommand as typed ("run"); `summary` says in one line what it does;
  /// `details` (may be empty) is printed after the flag list in --help.
  FlagSet(std::string command, std::string summary, std::string details = "");

  /// A string flag `--name VALUE`. An empty default is shown as no default in --help.
  void add_string(std::string name, std::string value_name, std::string help,
                  std::string default_value = "");
  /// A string flag that must be given.
  void add_required_string(std::string name, std::string value_name, std::string help);
  /// An integer flag whose value must lie in [min_value, max_value]. `default_text`, when not
  /// empty, is shown in --help instead of the number (for defaults that depend on the machine).
  void add_int(std::string name, std::string value_name, std::string help, int64_t default_value,
               int64_t min_value, int64_t max_value, std::string default_text = "");
  /// A boolean flag, false unless given.
  void add_bool(std::string name, std::string help);

  /// Parses `args`, the arguments after the command name. Stops at `--help`/`-h` (then
  /// help_requested() is true and nothing else is checked). InvalidArgument for an unknown flag,
  /// a positional argument, a flag given twice, a missing value, a malformed or out-of-range
  /// integer or boolean, and a missing required flag.
  Status parse(const std::vector<std::string>& args);

  bool help_requested() const { return help_requested_; }

  /// The usage line, summary, every flag with its default, the global flags and the details,
  /// wrapped to 100 columns.
  std::string help() const;

  /// The value of a flag (its default when not given). Asking for a flag that was not declared
  /// with that type is a bug (InternalError).
  const std::string& get_string(std::string_view name) const;
  int64_t get_int(std::string_view name) const;
  bool get_bool(std::string_view name) const;

  /// True when the flag was given on the command line.
  bool is_set(std::string_view name) const;

 private:
  enum class Type { kString, kInt, kBool };
  struct Flag {
    std::string name;
    std::string value_name;
    std::string help;
    Type type = Type::kString;
    bool required = false;
    bool set = false;
    std::string string_value;
    int64_t int_value = 0;
    bool bool_value = false;
    int64_t min_value = 0;
    int64_t max_value = 0;
    std::string default_text;
  };

  Flag& add(Flag flag);
  Flag* find(std::string_view name);
  const Flag& get(std::string_view name, Type type) const;
  Status set_value(Flag& flag, std::string_view value);
  std::string display_name() const;

  std::string command_;
  std::string summary_;
  std::string details_;
  std::vector<Flag> flags_;
  bool help_requested_ = false;
};

/// Parses `args` into `flags` and handles what every subcommand treats alike: on --help it
/// prints the help on stdout and returns 0; on a parse error it prints `error: <message>` on
/// stderr and returns 2. Returns nullopt when the command should go on.
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
