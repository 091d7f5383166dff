// kiln_arm_mca_bench: how close the default kernels of ARM targets come to the core's FMA peak,
// by static analysis, from this x86 machine.
//
// For each workload and ARM CPU it builds the template's default config (or --config), emits
// the kernel's assembly (core::build_code), finds the hottest inner loop (the single-block
// loop, a label whose block ends with a branch back to it, holding the most fmla/fmadd
// instructions) and feeds exactly that loop body to llvm-mca (-iterations=200). The loop's FMA
// throughput (vector lanes of FMA per cycle) is reported as a fraction of the core's peak,
// which llvm-mca measures itself on a block of 32 independent `fmla v.4s` for the same -mcpu:
// no pipe counts are written down here. It also prints the loop's instruction mix (FMAs, loads,
// stores, other, stack accesses) and llvm-mca's bottleneck analysis, to say why a kernel falls
// short.
//
// The figures are llvm-mca's model of the core, not a measurement: LLVM 16 has scheduling
// models for some cores only (its neoverse-n1 uses the Cortex-A57 model), so a fraction says
// how well the loop fits that model.

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "compiler_core/build.h"
#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/schedule/config_space.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"

namespace {

using nlohmann::json;
namespace core = kiln::core;

constexpr const char* kWorkloads[] = {
    "matmul:M=1024,N=1024,K=1024",
    "conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1",
};
constexpr const char* kCpus[] = {"cortex-a72", "neoverse-n1"};
constexpr const char* kTriple = "aarch64-linux-gnu";
/// The share of peak the issue asks of every default kernel.
constexpr double kGoal = 0.85;

struct Options {
  std::string mca = "/usr/bin/llvm-mca-16";
  int iterations = 200;
  std::string only;    ///< a workload's operator ("matmul", "conv2d"), or all
  std::string cpu;     ///< one of kCpus, or all
  std::string config;  ///< a config for the selected cases instead of the default
  bool show_loop = false;
  bool json = false;
};

constexpr const char* kUsage =
    "usage: kiln_arm_mca_bench [--only=matmul|conv2d] [--cpu=cortex-a72|neoverse-n1]\n"
    "                          [--config=JSON] [--iterations=200] [--mca=/usr/bin/llvm-mca-16]\n"
    "                          [--show-loop] [--json]\n";

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "error: " << message << "\n" << kUsage;
  std::exit(2);
}

Options parse_flags(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    const size_t eq = arg.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto need_value = [&]() -> const std::string& {
      if (!inline_value) {
        if (i + 1 >= argc) usage_error(arg + " needs a value");
        value = argv[++i];
      }
      return value;
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else if (arg == "--json" && !inline_value) {
      o.json = true;
    } else if (arg == "--show-loop" && !inline_value) {
      o.show_loop = true;
    } else if (arg == "--mca") {
      o.mca = need_value();
    } else if (arg == "--only") {
      o.only = need_value();
      if (o.only != "matmul" && o.only != "conv2d") {
        usage_error("--only takes matmul or conv2d, got '" + o.only + "'");
      }
    } else if (arg == "--cpu") {
      o.cpu = need_value();
      if (std::find(std::begin(kCpus), std::end(kCpus), o.cpu) == std::end(kCpus)) {
        usage_error("--cpu takes cortex-a72 or neoverse-n1, got '" + o.cpu + "'");
      }
    } else if (arg == "--config") {
      o.config = need_value();
    } else if (arg == "--iterations") {
      const std::string& text = need_value();
      char* end = nullptr;
      const long n = std::strtol(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || n < 1 || n > 100000) {
        usage_error("--iterations takes an integer from 1 to 100000, got '" + text + "'");
      }
      o.iterations = static_cast<int>(n);
    } else {
      usage_error(std::string("unknown flag '") + argv[i] + "'");
    }
  }
  if (!o.config.empty() && o.only.empty()) {
    usage_error("--config names a point of one workload's space: give --only as well");
  }
  return o;
}

// ----- llvm-mca ------------------------------------------------------------------------------

/// What llvm-mca says about a block.
struct McaReport {
  double cycles_per_iteration = 0;
  double block_rthroughput = 0;
  std::map<std::string, double> pressure;  ///< resource -> cycles of pressure per iteration
  std::string bottlenecks;                 ///< the "Throughput Bottlenecks" section, as printed
  std::string text;                        ///< the whole output
};

/// Runs llvm-mca on `block` for `cpu`; the output, or an error message.
std::optional<McaReport> run_mca(const Options& o, const std::string& cpu, const std::string& block,
                                 std::string* error) {
  char dir_template[] = "/tmp/kiln_arm_mca_XXXXXX";
  if (mkdtemp(dir_template) == nullptr) {
    *error = "cannot make a temporary folder";
    return std::nullopt;
  }
  const std::filesystem::path dir = dir_template;
  const std::filesystem::path input = dir / "block.s";
  std::ofstream(input) << block;
  const std::string command = o.mca + " -mtriple=aarch64 -mcpu=" + cpu +
                              " -iterations=" + std::to_string(o.iterations) +
                              " -bottleneck-analysis " + input.string() + " 2>&1";
  McaReport report;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe != nullptr) {
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), pipe)) > 0) report.text.append(chunk, n);
  }
  const int status = pipe != nullptr ? pclose(pipe) : -1;
  std::filesystem::remove_all(dir);
  if (status != 0) {
    *error = "llvm-mca failed (" + command + "): " + report.text.substr(0, 2000);
    return std::nullopt;
  }

  std::smatch m;
  double iterations = 0, cycles = 0;
  if (std::regex_search(report.text, m, std::regex(R"(Iterations:\s+(\d+))"))) {
    iterations = std::stod(m[1]);
  }
  if (std::regex_search(report.text, m, std::regex(R"(Total Cycles:\s+(\d+))"))) {
    cycles = std::stod(m[1]);
  }
  if (std::regex_search(report.text, m, std::regex(R"(Block RThroughput:\s+([0-9.]+))"))) {
    report.block_rthroughput = std::stod(m[1]);
  }
  if (iterations <= 0 || cycles <= 0) {
    *error = "llvm-mca printed no cycle count: " + report.text.substr(0, 2000);
    return std::nullopt;
  }
  report.cycles_per_iteration = cycles / iterations;

  // Resources: "[1.0] - A57UnitI" lines, then the pressure table's header and one row.
  std::istringstream lines(report.text);
  std::string line;
  std::map<std::string, std::string> names;  // "[1.0]" -> "A57UnitI"
  std::vector<std::string> columns;
  bool in_bottlenecks = false;
  while (std::getline(lines, line)) {
    if (std::regex_match(line, m, std::regex(R"((\[[0-9.]+\])\s+-\s+(\S+)\s*)"))) {
      names[m[1]] = m[2];
      continue;
    }
    if (line.starts_with("Resource pressure per iteration:")) {
      std::string header, row;
      std::getline(lines, header);
      std::getline(lines, row);
      std::istringstream h(header), r(row);
      std::string column, value;
      while (h >> column && r >> value) {
        report.pressure[names.count(column) ? names[column] : column] =
            value == "-" ? 0 : std::stod(value);
      }
      continue;
    }
    if (line.starts_with("Throughput Bottlenecks:") || line.starts_with("Cycles with backend")) {
      in_bottlenecks = true;
    } else if (in_bottlenecks && line.empty()) {
      in_bottlenecks = false;
    }
    if (in_bottlenecks) report.bottlenecks += line + "\n";
  }
  if (report.bottlenecks.empty() &&
      report.text.find("No resource or data dependency bottlenecks") != std::string::npos) {
    report.bottlenecks = "no resource or data dependency bottlenecks\n";
  }
  return report;
}

/// The block the core's FMA peak is measured on: 32 fmla v.4s whose sources no instruction
/// writes, into 30 accumulators, so that only the FMA pipes limit it.
std::string peak_block() {
  std::string block;
  for (int i = 0; i < 32; ++i) {
    block += "fmla v" + std::to_string(i % 30) + ".4s, v30.4s, v31.4s\n";
  }
  return block;
}

// ----- assembly --------------------------------------------------------------------------------

struct AsmLine {
  std::string label;     ///< set for a label line
  std::string mnemonic;  ///< set for an instruction
  std::string operands;
  std::string text;  ///< the instruction without its comment
};

std::string trim(std::string s) {
  const size_t first = s.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  const size_t last = s.find_last_not_of(" \t\r");
  return s.substr(first, last - first + 1);
}

std::vector<AsmLine> parse_assembly(const std::string& assembly) {
  std::vector<AsmLine> out;
  std::istringstream in(assembly);
  std::string raw;
  while (std::getline(in, raw)) {
    std::string line = trim(raw.substr(0, raw.find("//")));
    if (line.empty()) continue;
    AsmLine entry;
    if (line.back() == ':') {
      entry.label = line.substr(0, line.size() - 1);
      out.push_back(entry);
      continue;
    }
    if (line[0] == '.') continue;  // a directive
    const size_t space = line.find_first_of(" \t");
    entry.mnemonic = line.substr(0, space);
    entry.operands = space == std::string::npos ? "" : trim(line.substr(space));
    entry.text = line;
    out.push_back(entry);
  }
  return out;
}

/// The label a branch goes to, or "" when `line` is not a direct branch.
std::string branch_target(const AsmLine& line) {
  const std::string& m = line.mnemonic;
  const bool branch =
      m == "b" || m.starts_with("b.") || m == "cbz" || m == "cbnz" || m == "tbz" || m == "tbnz";
  if (!branch) return "";
  const size_t comma = line.operands.rfind(',');
  return trim(comma == std::string::npos ? line.operands : line.operands.substr(comma + 1));
}

bool is_fma(const std::string& m) {
  return m == "fmla" || m == "fmls" || m == "fmadd" || m == "fmsub" || m == "fnmadd" ||
         m == "fnmsub";
}

/// float32 lanes an FMA instruction computes: from its destination's arrangement.
int fma_lanes(const AsmLine& line) {
  const std::string destination = line.operands.substr(0, line.operands.find(','));
  if (destination.ends_with(".4s")) return 4;
  if (destination.ends_with(".2s") || destination.ends_with(".2d")) return 2;
  return 1;
}

struct Mix {
  int instructions = 0;
  int fma = 0;
  int fma_lanes = 0;
  int loads = 0;
  int stores = 0;
  int stack = 0;  ///< loads and stores that address the stack: spills or stack buffers
  int other = 0;
};

Mix instruction_mix(const std::vector<AsmLine>& body) {
  Mix mix;
  for (const AsmLine& line : body) {
    ++mix.instructions;
    const std::string& m = line.mnemonic;
    const bool memory = m.starts_with("ld") || m.starts_with("st");
    if (memory && line.operands.find("[sp") != std::string::npos) ++mix.stack;
    if (is_fma(m)) {
      ++mix.fma;
      mix.fma_lanes += fma_lanes(line);
    } else if (m.starts_with("ld")) {
      ++mix.loads;
    } else if (m.starts_with("st")) {
      ++mix.stores;
    } else {
      ++mix.other;
    }
  }
  return mix;
}

struct Loop {
  std::string label;
  std::vector<AsmLine> body;  ///< from after the label through the backward branch
  Mix mix;
};

/// The single-block loop (a label whose block ends with a branch back to it, no other label
/// inside) with the most FMA instructions; the first of equals. Nullopt when there is none.
std::optional<Loop> hottest_loop(const std::vector<AsmLine>& lines) {
  std::optional<Loop> best;
  for (size_t start = 0; start < lines.size(); ++start) {
    if (lines[start].label.empty()) continue;
    for (size_t end = start + 1; end < lines.size(); ++end) {
      if (!lines[end].label.empty()) break;  // the block ends at the next label
      if (branch_target(lines[end]) != lines[start].label) continue;
      Loop loop{lines[start].label, {lines.begin() + start + 1, lines.begin() + end + 1}, {}};
      loop.mix = instruction_mix(loop.body);
      if (!best || loop.mix.fma > best->mix.fma) best = loop;
      break;
    }
  }
  return best;
}

// ----- the cases -------------------------------------------------------------------------------

struct Peak {
  double fmla_per_cycle = 0;
  McaReport mca;
};

/// The resource with the most pressure per iteration, as "name (cycles/iteration)".
std::string busiest_resource(const McaReport& report) {
  auto it = std::max_element(report.pressure.begin(), report.pressure.end(),
                             [](const auto& a, const auto& b) { return a.second < b.second; });
  if (it == report.pressure.end()) return "";
  char text[128];
  std::snprintf(text, sizeof(text), "%s (%.2f c/it)", it->first.c_str(), it->second);
  return text;
}

json run_case(const Options& o, const std::string& workload_text, const std::string& cpu,
              const Peak& peak) {
  json row = {{"workload", workload_text}, {"cpu", cpu}};
  auto fail = [&](const std::string& why) {
    row["error"] = why;
    return row;
  };
  auto workload = core::parse_workload(workload_text);
  if (!workload) return fail(workload.status().to_string());
  auto parsed = core::parse_target("llvm -mtriple=" + std::string(kTriple) + " -mcpu=" + cpu);
  if (!parsed) return fail(parsed.status().to_string());
  auto target = core::resolve_host_target(*parsed);
  if (!target) return fail(target.status().to_string());
  row["target"] = parsed->str();
  auto space = core::config_space(*workload, *target);
  if (!space) return fail(space.status().to_string());
  core::Config config = space->default_config();
  if (!o.config.empty()) {
    auto given = space->parse(o.config);
    if (!given) return fail(given.status().to_string());
    config = *given;
  }
  row["config"] = json::parse(space->to_json(config));
  row["source"] = o.config.empty() ? "default" : "flag";
  auto assembly = core::build_code(*workload, *target, config, core::CodeFormat::kAssembly);
  if (!assembly) return fail(assembly.status().to_string());

  std::optional<Loop> loop = hottest_loop(parse_assembly(*assembly));
  if (!loop || loop->mix.fma == 0) return fail("no single-block loop with FMAs in the assembly");
  std::string block;
  for (const AsmLine& line : loop->body) block += line.text + "\n";
  std::string error;
  std::optional<McaReport> mca = run_mca(o, cpu, block, &error);
  if (!mca) return fail(error);

  const Mix& mix = loop->mix;
  const double lanes_per_cycle = mix.fma_lanes / mca->cycles_per_iteration;
  const double peak_lanes_per_cycle = 4 * peak.fmla_per_cycle;
  row["loop"] = {{"label", loop->label},
                 {"instructions", mix.instructions},
                 {"fma", mix.fma},
                 {"fma_lanes", mix.fma_lanes},
                 {"loads", mix.loads},
                 {"stores", mix.stores},
                 {"stack_accesses", mix.stack},
                 {"other", mix.other},
                 {"loads_per_fma", double(mix.loads) / mix.fma}};
  row["cycles_per_iteration"] = mca->cycles_per_iteration;
  row["block_rthroughput"] = mca->block_rthroughput;
  row["fma_lanes_per_cycle"] = lanes_per_cycle;
  row["peak_fma_lanes_per_cycle"] = peak_lanes_per_cycle;
  row["fraction_of_peak"] = lanes_per_cycle / peak_lanes_per_cycle;
  row["meets_goal"] = lanes_per_cycle / peak_lanes_per_cycle >= kGoal;
  row["busiest_resource"] = busiest_resource(*mca);
  row["resource_pressure"] = mca->pressure;
  row["bottlenecks"] = mca->bottlenecks;
  if (o.show_loop) row["loop"]["body"] = block;
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_flags(argc, argv);
  if (access(o.mca.c_str(), X_OK) != 0) {
    std::cerr << "error: cannot run llvm-mca at '" << o.mca
              << "'; install Debian's llvm-16 package or give --mca=PATH\n";
    return 2;
  }

  json peaks = json::object();
  std::map<std::string, Peak> peak_of;
  for (const char* cpu : kCpus) {
    if (!o.cpu.empty() && o.cpu != cpu) continue;
    std::string error;
    std::optional<McaReport> mca = run_mca(o, cpu, peak_block(), &error);
    if (!mca) {
      std::cerr << "error: " << error << "\n";
      return 1;
    }
    Peak peak{32 / mca->cycles_per_iteration, *mca};
    peaks[cpu] = {{"fmla_4s_per_cycle", peak.fmla_per_cycle},
                  {"fma_lanes_per_cycle", 4 * peak.fmla_per_cycle},
                  {"busiest_resource", busiest_resource(*mca)}};
    peak_of[cpu] = peak;
  }

  json rows = json::array();
  for (const char* workload : kWorkloads) {
    if (!o.only.empty() && !std::string(workload).starts_with(o.only + ":")) continue;
    for (const char* cpu : kCpus) {
      if (!o.cpu.empty() && o.cpu != cpu) continue;
      rows.push_back(run_case(o, workload, cpu, peak_of[cpu]));
    }
  }

  bool failed = false;
  for (const json& row : rows) failed = failed || row.contains("error");
  if (o.json) {
    std::cout << json{{"iterations", o.iterations},
                      {"goal", kGoal},
                      {"peaks", peaks},
                      {"cases", rows}}
                     .dump(2)
              << "\n";
    return failed ? 1 : 0;
  }

  std::printf("llvm-mca (%s), %d iterations; peak: 32 independent fmla v.4s\n", o.mca.c_str(),
              o.iterations);
  for (const auto& [cpu, peak] : peaks.items()) {
    std::printf("  %-12s peak %.2f fmla.4s/cycle (%.1f FMA lanes/cycle), busiest %s\n", cpu.c_str(),
                peak["fmla_4s_per_cycle"].get<double>(), peak["fma_lanes_per_cycle"].get<double>(),
                peak["busiest_resource"].get<std::string>().c_str());
  }
  std::printf("\n%-9s %-12s %7s %6s %4s %5s %5s %5s %5s %6s %8s %7s %s\n", "workload", "cpu",
              "config", "instr", "fma", "loads", "store", "stack", "other", "ld/fma", "c/iter",
              "of peak", "busiest resource");
  for (const json& row : rows) {
    const std::string op =
        row["workload"].get<std::string>().substr(0, row["workload"].get<std::string>().find(':'));
    if (row.contains("error")) {
      std::printf("%-9s %-12s error: %s\n", op.c_str(), row["cpu"].get<std::string>().c_str(),
                  row["error"].get<std::string>().c_str());
      continue;
    }
    const json& loop = row["loop"];
    std::printf("%-9s %-12s %7s %6d %4d %5d %5d %5d %5d %6.2f %8.2f %6.1f%% %s%s\n", op.c_str(),
                row["cpu"].get<std::string>().c_str(),
                ("#" + std::to_string(row["config"]["index"].get<int64_t>())).c_str(),
                loop["instructions"].get<int>(), loop["fma"].get<int>(), loop["loads"].get<int>(),
                loop["stores"].get<int>(), loop["stack_accesses"].get<int>(),
                loop["other"].get<int>(), loop["loads_per_fma"].get<double>(),
                row["cycles_per_iteration"].get<double>(),
                100 * row["fraction_of_peak"].get<double>(),
                row["busiest_resource"].get<std::string>().c_str(),
                row["meets_goal"].get<bool>() ? "" : "  (below 85%)");
  }
  for (const json& row : rows) {
    if (row.contains("error")) continue;
    std::printf("\n%s on %s, config %s\n%s", row["workload"].get<std::string>().c_str(),
                row["cpu"].get<std::string>().c_str(), row["config"].dump().c_str(),
                row["bottlenecks"].get<std::string>().c_str());
    if (o.show_loop)
      std::printf("loop %s:\n%s", row["loop"]["label"].get<std::string>().c_str(),
                  row["loop"]["body"].get<std::string>().c_str());
  }
  return failed ? 1 : 0;
}
