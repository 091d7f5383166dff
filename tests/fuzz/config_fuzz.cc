// Fuzz target: config JSON (`{"index": N}`, `{"knobs": {...}}`) against a workload's config
// space through ConfigSpace::parse, as `kiln run --config` and tuning records read it. The
// input is three lines: a workload string, a target string (empty: `llvm`) and the JSON; a
// workload or target that does not parse ends the run (the workload and target targets fuzz
// those). A config parses or is refused with a user error; a parsed config is a point of the
// space whose to_json parses back to it, and at(index) gives it too.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/schedule/config_space.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace kiln;

/// The space of a (workload, target) pair, built once: the spaces of the seed corpus's few
/// workloads are most of what the fuzzer asks for. Bounded, as the tracker's TaskValidator is.
const Result<core::ConfigSpace>& space_of(std::string_view workload_text,
                                          std::string_view target_text) {
  static std::map<std::pair<std::string, std::string>, Result<core::ConfigSpace>> spaces;
  std::pair<std::string, std::string> key{std::string(workload_text), std::string(target_text)};
  auto it = spaces.find(key);
  if (it != spaces.end()) return it->second;
  if (spaces.size() >= 256) spaces.clear();
  Result<core::ConfigSpace> space = [&]() -> Result<core::ConfigSpace> {
    KILN_ASSIGN_OR_RETURN(core::Workload workload, core::parse_workload(workload_text));
    KILN_ASSIGN_OR_RETURN(core::Target target,
                          core::parse_target(target_text.empty() ? "llvm" : target_text));
    KILN_ASSIGN_OR_RETURN(target, core::resolve_host_target(target));
    return core::config_space(workload, target);
  }();
  return spaces.emplace(std::move(key), std::move(space)).first->second;
}

/// The next line of `text` from `at` (without its newline); `at` moves past it.
std::string_view next_line(std::string_view text, size_t& at) {
  const size_t end = std::min(text.find('\n', at), text.size());
  std::string_view line = text.substr(at, end - at);
  at = std::min(end + 1, text.size());
  return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = (fuzz::quiet_logs(), true);
  (void)quiet;
  const std::string_view text = fuzz::as_text(data, size);
  size_t at = 0;
  const std::string_view workload = next_line(text, at);
  const std::string_view target = next_line(text, at);
  const std::string_view json = text.substr(at);
  const Result<core::ConfigSpace>& space = space_of(workload, target);
  if (!space.is_ok()) return 0;

  Result<core::Config> config = space->parse(json);
  if (!config.is_ok()) {
    fuzz::check_refusal(config.status(), "ConfigSpace::parse refuses with a user error");
    return 0;
  }
  fuzz::check(config->index >= 0 && config->index < space->size(), "a config is in its space");
  fuzz::check(config->values.size() == space->knobs().size(), "a config has every knob");
  const std::string stored = space->to_json(*config);
  Result<core::Config> again = space->parse(stored);
  fuzz::check(again.is_ok() && again->index == config->index && again->values == config->values,
              "parse(to_json(c)) == c", stored);
  Result<core::Config> by_index = space->at(config->index);
  fuzz::check(by_index.is_ok() && by_index->values == config->values, "at(c.index) == c", stored);
  return 0;
}
