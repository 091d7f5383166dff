#include "tuner/cli/flags.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <iostream>
#include <thread>
#include <utility>

#include <CLI/CLI.hpp>

#include "compiler_core/support/check.h"

namespace kiln::tuner {

const char* const kGlobalFlagsHelp =
    "  --log-level LEVEL  trace, debug, info, warn, error or off (default: warn); SPDLOG_LEVEL\n"
    "                     in the environment overrides it per logger\n"
    "  --check-flags      parse the command line, say whether it is valid, start nothing\n"
    "  --help             show this help\n";

namespace {

constexpr size_t kHelpColumns = 100;

// Appends `text` to `out` wrapped at kHelpColumns; lines after the first start with `indent`
// spaces. The first line continues whatever `out` already holds on its last line. A '\n' in
// `text` starts a new line.
void append_wrapped(std::string& out, std::string_view text, size_t indent) {
  size_t line_start = out.rfind('\n');
  size_t column = line_start == std::string::npos ? out.size() : out.size() - line_start - 1;
  bool line_has_word = false;
  while (!text.empty()) {
    if (text.front() == '\n') {
      out += "\n" + std::string(indent, ' ');
      column = indent;
      line_has_word = false;
      text.remove_prefix(1);
      continue;
    }
    size_t end = text.find_first_of(" \n");
    std::string_view word = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end);
    if (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    if (word.empty()) continue;
    if (line_has_word && column + 1 + word.size() > kHelpColumns) {
      out += "\n" + std::string(indent, ' ');
      column = indent;
      line_has_word = false;
    }
    if (line_has_word) {
      out += ' ';
      ++column;
    }
    out += word;
    column += word.size();
    line_has_word = true;
  }
}

bool is_bool_flag(const CLI::Option& option) { return option.get_expected_max() == 0; }

// How a flag is spelled in the usage line: `--name VALUE`, or `--name` for a boolean.
std::string usage_synopsis(const CLI::Option& option) {
  std::string text = "--" + option.get_lnames().front();
  if (!is_bool_flag(option)) text += " " + option.get_type_name();
  return text;
}

// How a flag or argument is spelled in the list of --help: `-o, --output FILE` with its short
// alias, `MODEL.onnx` for a positional argument.
std::string list_synopsis(const CLI::Option& option) {
  if (option.get_positional()) return option.get_type_name();
  std::string text;
  for (const std::string& short_name : option.get_snames()) text += "-" + short_name + ", ";
  return text + usage_synopsis(option);
}

// kiln's --help layout: usage, summary, arguments, flags with their defaults, the global flags
// and the details (the App's footer), wrapped to kHelpColumns. The help flag itself is listed
// with the global flags.
class HelpFormatter final : public CLI::FormatterBase {
 public:
  std::string make_help(const CLI::App* app, std::string, CLI::AppFormatMode) const override {
    const std::string display_name = app->get_name();
    std::vector<const CLI::Option*> positionals;
    std::vector<const CLI::Option*> flags;
    for (const CLI::Option* option : app->get_options()) {
      if (option == app->get_help_ptr()) continue;
      (option->get_positional() ? positionals : flags).push_back(option);
    }
    std::string usage = "usage: " + display_name;
    for (const CLI::Option* option : positionals) {
      const std::string name = option->get_type_name();
      usage += option->get_required() ? " " + name : " [" + name + "]";
    }
    for (const CLI::Option* option : flags) {
      const std::string synopsis = usage_synopsis(*option);
      usage += option->get_required() ? " " + synopsis : " [" + synopsis + "]";
    }
    std::string out;
    append_wrapped(out, usage, display_name.size() + 8);
    out += "\n\n";
    append_wrapped(out, app->get_description(), 0);
    out += "\n";
    size_t width = 0;
    for (const CLI::Option* option : positionals) {
      width = std::max(width, list_synopsis(*option).size());
    }
    for (const CLI::Option* option : flags) width = std::max(width, list_synopsis(*option).size());
    auto append_entry = [&](const CLI::Option& option, std::string text) {
      const std::string name = list_synopsis(option);
      out += "  " + name + std::string(width - name.size() + 2, ' ');
      append_wrapped(out, text, width + 4);
      out += '\n';
    };
    if (!positionals.empty()) {
      out += "\narguments:\n";
      for (const CLI::Option* option : positionals) {
        append_entry(*option,
                     option->get_description() + (option->get_required() ? "" : " (optional)"));
      }
    }
    out += "\nflags:\n";
    for (const CLI::Option* option : flags) {
      std::string text = option->get_description();
      if (option->get_required()) {
        text += " (required)";
      } else if (!option->get_default_str().empty()) {
        text += " (default: " + option->get_default_str() + ")";
      }
      append_entry(*option, std::move(text));
    }
    out += "\nglobal flags:\n";
    out += kGlobalFlagsHelp;
    if (const std::string details = app->get_footer(); !details.empty()) {
      out += '\n';
      append_wrapped(out, details, 0);
      out += '\n';
    }
    return out;
  }
};

// CLI11 names of a flag: `--name`, or `-o,--name` with a short alias.
std::string option_names(const std::string& name, char short_name) {
  if (short_name == '\0') return "--" + name;
  KILN_CHECK(std::isalpha(static_cast<unsigned char>(short_name)) && short_name != 'h')
      << "short alias '" << short_name << "' of --" << name << " is not a letter other than h";
  return std::string("-") + short_name + ",--" + name;
}

// CLI11 hands a flag the argument after it even when that looks like a flag (`--workload
// --target llvm`); kiln reads that as a missing value, as users mean it.
CLI::Validator value_given(const std::string& name, const std::string& value_name) {
  const std::string message = "--" + name + " needs a value (--" + name + " " + value_name + ")";
  return CLI::Validator(
      [message](std::string& value) { return value.starts_with("--") ? message : std::string(); },
      "");
}

// A value given as `-o=FILE` reaches CLI11 as `=FILE` (it reads `-oFILE`); kiln has always
// taken `-o=FILE` to mean FILE.
CLI::Validator strip_short_equals() {
  return CLI::Validator(
      [](std::string& value) {
        if (value.starts_with("=")) value.erase(0, 1);
        return std::string();
      },
      "");
}

// Decimal digits with an optional sign, all of `text`. CLI11's own integer conversion is not
// used: it reads 010 as octal.
std::optional<int64_t> parse_decimal(std::string_view text, bool* out_of_range) {
  int64_t parsed = 0;
  const char* last = text.data() + text.size();
  auto [end, error] = std::from_chars(text.data(), last, parsed);
  *out_of_range = error == std::errc::result_out_of_range;
  if (text.empty() || end != last || (error != std::errc() && !*out_of_range)) return std::nullopt;
  return parsed;
}

// The range check of an integer flag, in kiln's words.
CLI::Validator integer_in_range(const std::string& name, const std::string& value_name,
                                int64_t min_value, int64_t max_value) {
  return CLI::Validator(
      [=](std::string& value) -> std::string {
        bool out_of_range = false;
        std::optional<int64_t> parsed = parse_decimal(value, &out_of_range);
        if (!parsed && !out_of_range) {
          return "--" + name + " expects an integer, got '" + value + "' (--" + name + " " +
                 value_name + ")";
        }
        if (out_of_range || *parsed < min_value || *parsed > max_value) {
          return "--" + name + " must be an integer from " + std::to_string(min_value) + " to " +
                 std::to_string(max_value) + ", got " + value;
        }
        return "";
      },
      "");
}

// The values a boolean flag takes after `=`; CLI11 alone would also take yes, on, enable, ...
CLI::Validator boolean_value(const std::string& name) {
  return CLI::Validator(
      [name](std::string& value) -> std::string {
        if (value == "true" || value == "1" || value == "false" || value == "0") return "";
        return "--" + name + " takes no value or one of true, false, got '" + value + "'";
      },
      "");
}

bool is_help_argument(const std::string& arg) { return arg == "--help" || arg == "-h"; }

}  // namespace

FlagSet::FlagSet(std::string command, std::string summary, std::string details)
    : command_(std::move(command)),
      app_(std::make_unique<CLI::App>(std::move(summary), "kiln " + command_)) {
  app_->footer(std::move(details));
  app_->formatter(std::make_shared<HelpFormatter>());
  app_->set_help_flag("-h,--help", "show this help");
  // Unknown flags and surplus arguments stay in remaining(), reported in kiln's words.
  app_->allow_extras();
}

FlagSet::FlagSet(FlagSet&&) noexcept = default;
FlagSet& FlagSet::operator=(FlagSet&&) noexcept = default;
FlagSet::~FlagSet() = default;

FlagSet::Flag& FlagSet::add(std::string name, Type type) {
  KILN_CHECK(find(name) == nullptr) << "flag --" << name << " declared twice";
  auto flag = std::make_unique<Flag>();
  flag->name = std::move(name);
  flag->type = type;
  flags_.push_back(std::move(flag));
  return *flags_.back();
}

void FlagSet::add_string(std::string name, std::string value_name, std::string help,
                         std::string default_value, char short_name) {
  Flag& flag = add(std::move(name), Type::kString);
  flag.value_name = std::move(value_name);
  flag.string_value = default_value;
  // Flags live on the heap (flags_), so the reference the callback keeps stays valid.
  flag.option = app_->add_option(
      option_names(flag.name, short_name),
      [&flag](const CLI::results_t& results) {
        flag.string_value = results.back();
        return true;
      },
      std::move(help));
  if (short_name != '\0') flag.option->transform(strip_short_equals());
  flag.option->type_name(flag.value_name)
      ->default_str(std::move(default_value))
      ->multi_option_policy(CLI::MultiOptionPolicy::Throw)
      ->check(value_given(flag.name, flag.value_name));
}

void FlagSet::add_required_string(std::string name, std::string value_name, std::string help,
                                  char short_name) {
  add_string(std::move(name), std::move(value_name), std::move(help), "", short_name);
  Flag& flag = *flags_.back();
  flag.required = true;
  flag.option->required();
}

void FlagSet::add_int(std::string name, std::string value_name, std::string help,
                      int64_t default_value, int64_t min_value, int64_t max_value,
                      std::string default_text) {
  KILN_CHECK(min_value <= default_value && default_value <= max_value)
      << "default of --" << name << " outside its range";
  Flag& flag = add(std::move(name), Type::kInt);
  flag.value_name = std::move(value_name);
  flag.int_value = default_value;
  flag.option = app_->add_option(
      option_names(flag.name, '\0'),
      [&flag](const CLI::results_t& results) {
        bool out_of_range = false;
        std::optional<int64_t> parsed = parse_decimal(results.back(), &out_of_range);
        if (parsed) flag.int_value = *parsed;
        return parsed.has_value();
      },
      std::move(help));
  flag.option->type_name(flag.value_name)
      ->default_str(default_text.empty() ? std::to_string(default_value) : default_text)
      ->multi_option_policy(CLI::MultiOptionPolicy::Throw)
      ->check(value_given(flag.name, flag.value_name))
      ->check(integer_in_range(flag.name, flag.value_name, min_value, max_value));
}

void FlagSet::add_bool(std::string name, std::string help, char short_name) {
  Flag& flag = add(std::move(name), Type::kBool);
  flag.option =
      app_->add_flag(option_names(flag.name, short_name), flag.bool_value, std::move(help));
  flag.option->multi_option_policy(CLI::MultiOptionPolicy::Throw)->check(boolean_value(flag.name));
}

void FlagSet::add_positional(std::string name, std::string value_name, std::string help,
                             bool required) {
  Flag& flag = add(std::move(name), Type::kPositional);
  flag.value_name = std::move(value_name);
  flag.required = required;
  flag.option = app_->add_option(
      flag.name,
      [&flag](const CLI::results_t& results) {
        flag.string_value = results.back();
        return true;
      },
      std::move(help));
  flag.option->type_name(flag.value_name)->multi_option_policy(CLI::MultiOptionPolicy::Throw);
  if (required) flag.option->required();
}

const FlagSet::Flag* FlagSet::find(std::string_view name) const {
  auto it = std::find_if(flags_.begin(), flags_.end(),
                         [&](const std::unique_ptr<Flag>& flag) { return flag->name == name; });
  return it == flags_.end() ? nullptr : it->get();
}

const FlagSet::Flag& FlagSet::get(std::string_view name, Type type) const {
  const Flag* flag = find(name);
  KILN_CHECK(flag != nullptr) << "flag --" << name << " was never declared";
  KILN_CHECK(flag->type == type) << "flag --" << name << " read with the wrong type";
  return *flag;
}

std::string FlagSet::display_name() const { return "kiln " + command_; }

Status FlagSet::parse(const std::vector<std::string>& args) {
  const auto mark = std::find(args.begin(), args.end(), "--");
  // CLI11 takes the arguments last first. It also reads `--name=` as `--name` waiting for the
  // next argument; kiln reads it as the empty value it spells, so it is passed as `--name ""`.
  std::vector<std::string> reversed;
  for (auto it = args.rbegin(); it != args.rend(); ++it) {
    const bool before_mark = it.base() <= mark;
    const std::string& arg = *it;
    if (before_mark && arg.starts_with("--") && arg.ends_with("=")) {
      const Flag* flag = find(std::string_view(arg).substr(2, arg.size() - 3));
      if (flag != nullptr && (flag->type == Type::kString || flag->type == Type::kInt)) {
        reversed.push_back("");
        reversed.push_back(arg.substr(0, arg.size() - 1));
        continue;
      }
    }
    reversed.push_back(arg);
  }
  Status status = Status::ok();
  bool missing_required = false;
  try {
    app_->parse(reversed);
  } catch (const CLI::CallForHelp&) {
    // Seen below through the help flag's count.
  } catch (const CLI::RequiredError&) {
    missing_required = true;
    status = parse_error_status(args);
  } catch (const CLI::ParseError&) {
    status = parse_error_status(args);
  }
  // --help wins over every mistake, so that it works on a half-written command line; also
  // where CLI11 took it for another flag's value (`--config --help`). After `--` it is an
  // argument like any other.
  if (app_->get_help_ptr()->count() > 0 || std::any_of(args.begin(), mark, is_help_argument)) {
    help_requested_ = true;
    return Status::ok();
  }
  // What CLI11 left over is reported first: an unknown flag is the likeliest cause of any other
  // mistake (a misspelt required flag). An unexpected argument is too, unless a flag lacked its
  // value and CLI11 read the next flag as it (`--workload --target llvm` leaves `llvm`).
  bool unknown_flag = false;
  Status unexpected = check_remaining(&unknown_flag);
  if (!unexpected.is_ok() && (status.is_ok() || unknown_flag || missing_required)) {
    return unexpected;
  }
  return status;
}

// Called inside a catch block (a Lippincott function): rethrows the CLI11 error being handled
// and says it in kiln's words.
Status FlagSet::parse_error_status(const std::vector<std::string>& args) const {
  auto unreadable = [&](const CLI::ParseError& error) {
    return invalid_argument("cannot read the arguments of '" + display_name() +
                            "': " + error.what() + "; run '" + display_name() + " --help'");
  };
  try {
    throw;
  } catch (const CLI::RequiredError& error) {
    // CLI11 checks required options in the order they were declared; so does this.
    for (const std::unique_ptr<Flag>& flag : flags_) {
      if (!flag->required || flag->option->count() > 0) continue;
      if (flag->type == Type::kPositional) {
        return invalid_argument("missing " + flag->value_name + " for '" + display_name() +
                                "'; run '" + display_name() + " --help'");
      }
      return invalid_argument("missing required flag --" + flag->name + " for '" + display_name() +
                              "' (--" + flag->name + " " + flag->value_name + ")");
    }
    return unreadable(error);
  } catch (const CLI::ArgumentMismatch& error) {
    for (const std::unique_ptr<Flag>& flag : flags_) {
      if (flag->option->results().size() > 1) {
        return invalid_argument("--" + flag->name + " given more than once");
      }
    }
    // Otherwise CLI11 ran out of arguments: the last one is a flag without its value.
    const CLI::Option* option = args.empty() ? nullptr : app_->get_option_no_throw(args.back());
    for (const std::unique_ptr<Flag>& flag : flags_) {
      if (flag->option == option) {
        return invalid_argument("--" + flag->name + " needs a value (--" + flag->name + " " +
                                flag->value_name + ")");
      }
    }
    return unreadable(error);
  } catch (const CLI::ValidationError& error) {
    // The validators' messages are kiln's own; CLI11 puts "NAME: " before them.
    std::string_view message = error.what();
    if (size_t colon = message.find(": "); colon != std::string_view::npos) {
      message.remove_prefix(colon + 2);
    }
    return invalid_argument(std::string(message));
  } catch (const CLI::ParseError& error) {
    return unreadable(error);
  }
}

Status FlagSet::check_remaining(bool* unknown_flag) const {
  const bool has_positionals = std::any_of(flags_.begin(), flags_.end(), [](const auto& flag) {
    return flag->type == Type::kPositional;
  });
  bool after_mark = false;
  for (const std::string& arg : app_->remaining()) {
    // With positional arguments, `--` marks where they start (CLI11 keeps it among the rest).
    if (arg == "--" && has_positionals && !after_mark) {
      after_mark = true;
      continue;
    }
    if (!after_mark && arg.size() > 1 && arg[0] == '-') {
      *unknown_flag = true;
      return invalid_argument("unknown flag '" + arg.substr(0, arg.find('=')) + "' for '" +
                              display_name() + "'; run '" + display_name() + " --help'");
    }
    if (!has_positionals) {
      return invalid_argument("unexpected argument '" + arg + "' for '" + display_name() +
                              "'; flags take the form --name value");
    }
    return invalid_argument("unexpected argument '" + arg + "' for '" + display_name() +
                            "'; run '" + display_name() + " --help'");
  }
  return Status::ok();
}

std::string FlagSet::help() const { return app_->help(); }

const std::string& FlagSet::get_string(std::string_view name) const {
  return get(name, Type::kString).string_value;
}

int64_t FlagSet::get_int(std::string_view name) const { return get(name, Type::kInt).int_value; }

bool FlagSet::get_bool(std::string_view name) const { return get(name, Type::kBool).bool_value; }

const std::string& FlagSet::get_positional(std::string_view name) const {
  return get(name, Type::kPositional).string_value;
}

bool FlagSet::is_set(std::string_view name) const {
  const Flag* flag = find(name);
  KILN_CHECK(flag != nullptr) << "flag --" << name << " was never declared";
  return flag->option->count() > 0;
}

void add_threads_flag(FlagSet& flags, const std::string& help) {
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  flags.add_int("threads", "N", help, cores, 1, 1024,
                "this machine's cores, " + std::to_string(cores));
}

namespace {
bool check_flags_only_ = false;
}  // namespace

void set_check_flags_only(bool on) { check_flags_only_ = on; }
bool check_flags_only() { return check_flags_only_; }

std::optional<int> parse_flags_or_exit(FlagSet& flags, const std::vector<std::string>& args) {
  Status status = flags.parse(args);
  if (!status.is_ok()) return report_error(status);
  if (flags.help_requested()) {
    std::cout << flags.help();
    return 0;
  }
  if (check_flags_only()) {
    std::cout << "kiln " << flags.command() << ": the command line is valid\n";
    return 0;
  }
  return std::nullopt;
}

int report_error(const Status& status) {
  std::cerr << "error: " << status.message() << "\n";
  return status.is_user_error() ? 2 : 1;
}

int run_action(const std::string& command, std::string_view usage,
               const std::vector<Action>& actions, const std::vector<std::string>& args) {
  std::string names;
  for (size_t i = 0; i < actions.size(); ++i) {
    names += (i == 0 ? "" : i + 1 == actions.size() ? " or " : ", ") + actions[i].name;
  }
  if (args.empty()) {
    std::cerr << "error: 'kiln " << command << "' needs an action: " << names << "; run 'kiln "
              << command << " --help'\n";
    return 2;
  }
  const std::string& name = args.front();
  if (name == "--help" || name == "-h" || name == "help") {
    std::cout << usage;
    return 0;
  }
  for (const Action& action : actions) {
    if (action.name == name) return action.run({args.begin() + 1, args.end()});
  }
  std::cerr << "error: unknown action '" << name << "' for 'kiln " << command << "'; use " << names
            << "\n";
  return 2;
}

}  // namespace kiln::tuner
