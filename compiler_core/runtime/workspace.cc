#include "compiler_core/runtime/workspace.h"

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "compiler_core/support/check.h"

namespace kiln::core {
namespace {

constexpr size_t kAlignment = 64;
/// Blocks larger than this go back to the system when freed: a thread keeps at most a few of
/// these, and a kernel run once (a root stage of a large layer) should not pin its memory.
constexpr size_t kMaxKeptBlockBytes = size_t{16} << 20;

struct Block {
  void* data = nullptr;
  size_t bytes = 0;
  bool in_use = false;
};

/// The calling thread's blocks: a handful (one per nested local buffer), searched linearly.
struct Workspace {
  std::vector<Block> blocks;
  ~Workspace() {
    for (Block& b : blocks) std::free(b.data);
  }
};

thread_local Workspace t_workspace;

}  // namespace

int64_t workspace_cached_bytes() {
  int64_t total = 0;
  for (const Block& b : t_workspace.blocks) total += int64_t(b.bytes);
  return total;
}

}  // namespace kiln::core

extern "C" void* kiln_workspace_alloc(int64_t bytes) {
  using namespace kiln::core;
  const size_t size =
      (size_t(std::max<int64_t>(bytes, 1)) + kAlignment - 1) / kAlignment * kAlignment;
  std::vector<Block>& blocks = t_workspace.blocks;
  Block* best = nullptr;
  for (Block& b : blocks) {
    if (!b.in_use && b.bytes >= size && (!best || b.bytes < best->bytes)) best = &b;
  }
  if (best) {
    best->in_use = true;
    return best->data;
  }
  // None fits: the free blocks are too small for what this thread now asks; let them go.
  std::erase_if(blocks, [](const Block& b) {
    if (b.in_use) return false;
    std::free(b.data);
    return true;
  });
  void* data = std::aligned_alloc(kAlignment, size);
  KILN_CHECK(data != nullptr) << "out of memory: a kernel's scratch buffer of " << size << " bytes";
  blocks.push_back({data, size, true});
  return data;
}

extern "C" void kiln_workspace_free(void* buffer) {
  using namespace kiln::core;
  std::vector<Block>& blocks = t_workspace.blocks;
  for (auto it = blocks.begin(); it != blocks.end(); ++it) {
    if (it->data != buffer) continue;
    KILN_CHECK(it->in_use) << "a kernel's scratch buffer freed twice";
    if (it->bytes > kMaxKeptBlockBytes) {
      std::free(it->data);
      blocks.erase(it);
    } else {
      it->in_use = false;
    }
    return;
  }
  KILN_CHECK(false) << "a kernel's scratch buffer freed on a thread that did not allocate it";
}
