// `kiln emit`: the code of one kernel for any target, as text assembly, an object file or the
// optimized LLVM IR, without running it; the way to read what a config of an ARM board's space
// compiles to from this machine.

#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "compiler_core/build.h"
#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/schedule/config_space.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/support/file.h"
#include "compiler_core/support/log.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"
#include "tuner/cli/commands.h"
#include "tuner/cli/flags.h"

namespace kiln::tuner {
namespace {

constexpr std::string_view kFormats[] = {"asm", "obj", "llvm"};

FlagSet make_flags() {
  FlagSet flags(
      "emit",
      "Compiles the kernel of a workload for a target, this machine's or any other LLVM knows, "
      "with the given config, else the schedule template's default, and writes its text "
      "assembly, an ELF object file or its optimized LLVM IR. Nothing is run.",
      "Assembly and LLVM IR go to stdout unless -o FILE names a file. An object file is binary "
      "and is written only to the file -o names (-o /dev/stdout to pipe it). The code is the "
      "one kernel function the workload computes (kiln_<op>(float** args), inputs then "
      "output); weights a kernel packs ahead of time are packed inside it.\nWith --json: one "
      "object with workload, target, triple, cpu, config, format, function, bytes and output "
      "(the file written, or null); without -o, assembly or LLVM IR comes in its field code.\n"
      "Exit codes: 0 written, 1 a failed build, 2 bad flags, workload, target, config or "
      "format, or an output file that cannot be written.");
  flags.add_required_string("workload", "W",
                            "the workload, e.g. matmul:M=1024,N=1024,K=1024 or "
                            "conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1");
  flags.add_required_string("target", "T",
                            "the target: llvm (this machine), or llvm -mtriple=TRIPLE -mcpu=CPU "
                            "-mattr=+feat,... for another, e.g. llvm -mtriple=aarch64-linux-gnu "
                            "-mcpu=cortex-a72");
  flags.add_string("config", "JSON",
                   "the config to compile, {\"index\": N} or {\"knobs\": {\"name\": value, ...}} "
                   "of the target's config space; without it, the template's default");
  flags.add_string("format", "F",
                   "what to write: asm (text assembly), obj (ELF object) or llvm "
                   "(optimized LLVM IR)",
                   "asm");
  flags.add_string("output", "FILE",
                   "the file to write; required for obj; without it asm and llvm go to stdout", "",
                   'o');
  flags.add_bool("json", "print one JSON object on stdout instead of the code");
  return flags;
}

bool is_format(std::string_view format) {
  for (std::string_view known : kFormats) {
    if (format == known) return true;
  }
  return false;
}

/// Writes `bytes` to `path`. InvalidArgument when the file cannot be opened (a path the user
/// gave), Internal when writing it fails.
Status write_file(const std::string& path, std::string_view bytes) {
  Status written = write_file_atomically(path, bytes);
  if (written.code() == StatusCode::kFailedPrecondition) {
    return invalid_argument("cannot write '" + path + "' for -o: " + written.message() +
                            "; give a file in a folder that exists and that you can write");
  }
  return written;
}

}  // namespace

int emit_command(const std::vector<std::string>& args) {
  FlagSet flags = make_flags();
  if (auto exit_code = parse_flags_or_exit(flags, args)) return *exit_code;
  const std::string& format = flags.get_string("format");
  const std::string& output = flags.get_string("output");
  const bool json = flags.get_bool("json");
  if (!is_format(format)) {
    return report_error(
        invalid_argument("unknown format '" + format + "' for --format; use asm, obj or llvm"));
  }
  if (flags.is_set("output") && output.empty()) {
    return report_error(invalid_argument("-o needs a file name (-o FILE)"));
  }
  if (format == "obj" && output.empty()) {
    return report_error(invalid_argument(
        "--format obj writes a binary object file and needs -o FILE (-o /dev/stdout to pipe it)"));
  }

  Result<core::Workload> workload = core::parse_workload(flags.get_string("workload"));
  if (!workload) return report_error(workload.status());
  Result<core::Target> parsed_target = core::parse_target(flags.get_string("target"));
  if (!parsed_target) return report_error(parsed_target.status());
  Result<core::Target> target = core::resolve_host_target(*parsed_target);
  if (!target) return report_error(target.status());

  Result<core::ConfigSpace> space = core::config_space(*workload, *target);
  if (!space) return report_error(space.status());
  core::Config config = space->default_config();
  if (flags.is_set("config")) {
    Result<core::Config> given = space->parse(flags.get_string("config"));
    if (!given) return report_error(given.status());
    config = *given;
  }
  const std::string config_json = space->to_json(config);
  logger("tuner")->debug("emit workload={} target={} config={} format={}", workload->canonical(),
                         target->str(), config_json, format);

  const core::CodeFormat code_format = format == "obj"   ? core::CodeFormat::kObject
                                       : format == "asm" ? core::CodeFormat::kAssembly
                                                         : core::CodeFormat::kLlvmIr;
  Result<std::string> code = core::build_code(*workload, *target, config, code_format);
  if (!code) return report_error(code.status());

  if (!output.empty()) {
    Status written = write_file(output, *code);
    if (!written.is_ok()) return report_error(written);
  }
  if (!json) {
    if (output.empty()) std::cout << *code << std::flush;
    return 0;
  }
  nlohmann::ordered_json object = {
      {"workload", workload->canonical()},
      {"target", parsed_target->str()},
      {"triple", target->triple},
      {"cpu", target->cpu},
      {"config", nlohmann::ordered_json::parse(config_json)},
      {"format", format},
      {"function", core::kernel_function_name(*workload)},
      {"bytes", code->size()},
      {"output", output.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(output)},
  };
  if (output.empty()) object["code"] = *code;
  std::cout << object.dump() << "\n";
  return 0;
}

}  // namespace kiln::tuner
