/// \file
/// Helpers shared by kiln's fuzz targets (tests/fuzz/*_fuzz.cc): the input as text, checks of
/// the properties a target asserts (a failed one aborts, which libFuzzer reports as a crash with
/// the input that caused it), quiet logs, and the split of one input into several messages.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "compiler_core/support/log.h"
#include "compiler_core/support/status.h"

namespace kiln::fuzz {

/// The fuzzer's bytes as a string_view.
inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

/// Aborts with `what` when `condition` is false: a property of kiln's code that bad input broke.
inline void check(bool condition, const char* what, std::string_view detail = {}) {
  if (condition) return;
  const std::string text(detail);
  std::fprintf(stderr, "kiln fuzz: property broken: %s\n%s\n", what, text.c_str());
  std::abort();
}

/// A refusal of bad input must be a user error with a message (STYLE.md §4): an internal
/// error, or an empty message, for a malformed string is a bug.
inline void check_refusal(const Status& status, const char* what) {
  check(!status.is_ok(), what, "expected a refusal");
  check(status.is_user_error() && !status.message().empty(), what, status.to_string());
}

/// Turns kiln's loggers off: the targets call kiln millions of times, and a refusal logged at
/// info or warn would be most of the run's time and output. KILN_FUZZ_LOG_LEVEL overrides it.
inline void quiet_logs() {
  const char* level = std::getenv("KILN_FUZZ_LOG_LEVEL");
  set_log_level(level != nullptr ? level : "off");
}

/// One message of an input that carries several: a kind byte and a payload.
struct Chunk {
  uint8_t kind = 0;
  std::string payload;
};

/// Splits `data` into chunks, each a kind byte, a 2-byte little-endian length and that many
/// bytes of payload (the last one shorter when the input ends first), at most `max_chunks`.
inline std::vector<Chunk> split_chunks(const uint8_t* data, size_t size, size_t max_chunks = 64) {
  std::vector<Chunk> chunks;
  size_t at = 0;
  while (at < size && chunks.size() < max_chunks) {
    Chunk chunk;
    chunk.kind = data[at++];
    size_t length = 0;
    if (at < size) length = data[at++];
    if (at < size) length |= size_t(data[at++]) << 8;
    length = std::min(length, size - at);
    chunk.payload.assign(reinterpret_cast<const char*>(data + at), length);
    at += length;
    chunks.push_back(std::move(chunk));
  }
  return chunks;
}

/// The inverse of split_chunks, for writing seeds.
inline std::string join_chunks(const std::vector<Chunk>& chunks) {
  std::string out;
  for (const Chunk& chunk : chunks) {
    out += char(chunk.kind);
    out += char(chunk.payload.size() & 0xff);
    out += char((chunk.payload.size() >> 8) & 0xff);
    out += chunk.payload;
  }
  return out;
}

}  // namespace kiln::fuzz
