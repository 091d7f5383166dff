#include "tuner/cli/flags.h"

#include <algorithm>
#include <charconv>
#include <iostream>
#include <utility>

#include "compiler_core/support/check.h"

namespace kiln::tuner {

const char* const kGlobalFlagsHelp =
    "  --log-level LEVEL  trace, debug, info, warn, error or off (default: warn); SPDLOG_LEVEL\n"
    "                     in the environment overrides it per logger\n"
    "  --help             show this help\n";

FlagSet::FlagSet(std::string command, std::string summary, std::string details)
    : command_(std::move(command)), summary_(std::move(summary)), details_(std::move(details)) {}

FlagSet::Flag& FlagSet::add(Flag flag) {
  KILN_CHECK(find(flag.name) == nullptr) << "flag --" << flag.name << " declared twice";
  flags_.push_back(std::move(flag));
  return flags_.back();
}

void FlagSet::add_string(std::string name, std::string value_name, std::string help,
                         std::string default_value) {
  Flag flag{.name = std::move(name), .value_name = std::move(value_name), .help = std::move(help)};
  flag.string_value = default_value;
  flag.default_text = std::move(default_value);
  add(std::move(flag));
}

void FlagSet::add_required_string(std::string name, std::string value_name, std::string help) {
  Flag flag{.name = std::move(name), .value_name = std::move(value_name), .help = std::move(help)};
  flag.required = true;
  add(std::move(flag));
}

void FlagSet::add_int(std::string name, std::string value_name, std::string help,
                      int64_t default_value, int64_t min_value, int64_t max_value,
                      std::string default_text) {
  KILN_CHECK(min_value <= default_value && default_value <= max_value)
      << "default of --" << name << " outside its range";
  Flag flag{.name = std::move(name), .value_name = std::move(value_name), .help = std::move(help)};
  flag.type = Type::kInt;
  flag.int_value = default_value;
  flag.min_value = min_value;
  flag.max_value = max_value;
  flag.default_text = default_text.empty() ? std::to_string(default_value) : default_text;
  add(std::move(flag));
}

void FlagSet::add_bool(std::string name, std::string help) {
  Flag flag{.name = std::move(name), .help = std::move(help)};
  flag.type = Type::kBool;
  add(std::move(flag));
}

FlagSet::Flag* FlagSet::find(std::string_view name) {
  auto it = std::find_if(flags_.begin(), flags_.end(),
                         [&](const Flag& flag) { return flag.name == name; });
  return it == flags_.end() ? nullptr : &*it;
}

const FlagSet::Flag& FlagSet::get(std::string_view name, Type type) const {
  auto it = std::find_if(flags_.begin(), flags_.end(),
                         [&](const Flag& flag) { return flag.name == name; });
  KILN_CHECK(it != flags_.end()) << "flag --" << name << " was never declared";
  KILN_CHECK(it->type == type) << "flag --" << name << " read with the wrong type";
  return *it;
}

std::string FlagSet::display_name() const { return "kiln " + command_; }

Status FlagSet::set_value(Flag& flag, std::string_view value) {
  switch (flag.type) {
    case Type::kString:
      flag.string_value = std::string(value);
      return Status::ok();
    case Type::kInt: {
      int64_t parsed = 0;
      const char* last = value.data() + value.size();
      auto [end, error] = std::from_chars(value.data(), last, parsed);
      bool out_of_range = error == std::errc::result_out_of_range;
      bool is_integer = !value.empty() && end == last && (error == std::errc() || out_of_range);
      if (!is_integer) {
        return invalid_argument("--" + flag.name + " expects an integer, got '" +
                                std::string(value) + "' (--" + flag.name + " " + flag.value_name +
                                ")");
      }
      if (out_of_range || parsed < flag.min_value || parsed > flag.max_value) {
        return invalid_argument("--" + flag.name + " must be an integer from " +
                                std::to_string(flag.min_value) + " to " +
                                std::to_string(flag.max_value) + ", got " + std::string(value));
      }
      flag.int_value = parsed;
      return Status::ok();
    }
    case Type::kBool:
      if (value == "true" || value == "1") {
        flag.bool_value = true;
        return Status::ok();
      }
      if (value == "false" || value == "0") {
        flag.bool_value = false;
        return Status::ok();
      }
      return invalid_argument("--" + flag.name + " takes no value or one of true, false, got '" +
                              std::string(value) + "'");
  }
  KILN_UNREACHABLE();
}

Status FlagSet::parse(const std::vector<std::string>& args) {
  // --help wins wherever it stands, so that it works on a half-written command line.
  if (std::ranges::any_of(args,
                          [](const std::string& arg) { return arg == "--help" || arg == "-h"; })) {
    help_requested_ = true;
    return Status::ok();
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    bool is_flag = arg.size() > 1 && arg[0] == '-';
    if (!is_flag) {
      return invalid_argument("unexpected argument '" + arg + "' for '" + display_name() +
                              "'; flags take the form --name value");
    }
    std::string_view body(arg);
    body.remove_prefix(body.starts_with("--") ? 2 : 1);
    std::optional<std::string_view> inline_value;
    if (size_t eq = body.find('='); eq != std::string_view::npos) {
      inline_value = body.substr(eq + 1);
      body = body.substr(0, eq);
    }
    Flag* flag = arg.starts_with("--") ? find(body) : nullptr;
    if (flag == nullptr) {
      std::string shown = inline_value ? arg.substr(0, arg.find('=')) : arg;
      return invalid_argument("unknown flag '" + shown + "' for '" + display_name() + "'; run '" +
                              display_name() + " --help'");
    }
    if (flag->set) return invalid_argument("--" + flag->name + " given more than once");
    flag->set = true;
    if (flag->type == Type::kBool && !inline_value) {
      flag->bool_value = true;
      continue;
    }
    if (inline_value) {
      KILN_RETURN_IF_ERROR(set_value(*flag, *inline_value));
      continue;
    }
    if (i + 1 == args.size() || args[i + 1].starts_with("--")) {
      return invalid_argument("--" + flag->name + " needs a value (--" + flag->name + " " +
                              flag->value_name + ")");
    }
    KILN_RETURN_IF_ERROR(set_value(*flag, args[++i]));
  }
  for (const Flag& flag : flags_) {
    if (flag.required && !flag.set) {
      return invalid_argument("missing required flag --" + flag.name + " for '" + display_name() +
                              "' (--" + flag.name + " " + flag.value_name + ")");
    }
  }
  return Status::ok();
}

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

}  // namespace

std::string FlagSet::help() const {
  auto synopsis = [](const Flag& flag) {
    std::string text = "--" + flag.name;
    if (flag.type != Type::kBool) text += " " + flag.value_name;
    return text;
  };
  std::string usage = "usage: " + display_name();
  for (const Flag& flag : flags_) {
    usage += ' ';
    if (flag.required) {
      usage += synopsis(flag);
    } else {
      usage += "[" + synopsis(flag) + "]";
    }
  }
  std::string out;
  append_wrapped(out, usage, display_name().size() + 8);
  out += "\n\n";
  append_wrapped(out, summary_, 0);
  out += "\n\nflags:\n";
  size_t width = 0;
  for (const Flag& flag : flags_) width = std::max(width, synopsis(flag).size());
  for (const Flag& flag : flags_) {
    std::string name = synopsis(flag);
    std::string text = flag.help;
    if (flag.required) {
      text += " (required)";
    } else if (!flag.default_text.empty()) {
      text += " (default: " + flag.default_text + ")";
    }
    out += "  " + name + std::string(width - name.size() + 2, ' ');
    append_wrapped(out, text, width + 4);
    out += '\n';
  }
  out += "\nglobal flags:\n";
  out += kGlobalFlagsHelp;
  if (!details_.empty()) {
    out += '\n';
    append_wrapped(out, details_, 0);
    out += '\n';
  }
  return out;
}

const std::string& FlagSet::get_string(std::string_view name) const {
  return get(name, Type::kString).string_value;
}

int64_t FlagSet::get_int(std::string_view name) const { return get(name, Type::kInt).int_value; }

bool FlagSet::get_bool(std::string_view name) const { return get(name, Type::kBool).bool_value; }

bool FlagSet::is_set(std::string_view name) const {
  auto it = std::find_if(flags_.begin(), flags_.end(),
                         [&](const Flag& flag) { return flag.name == name; });
  KILN_CHECK(it != flags_.end()) << "flag --" << name << " was never declared";
  return it->set;
}

std::optional<int> parse_flags_or_exit(FlagSet& flags, const std::vector<std::string>& args) {
  Status status = flags.parse(args);
  if (!status.is_ok()) return report_error(status);
  if (flags.help_requested()) {
    std::cout << flags.help();
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
