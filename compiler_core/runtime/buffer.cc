#include "compiler_core/runtime/buffer.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

namespace kiln::core {

void Buffer::Free::operator()(float* p) const { std::free(p); }

Result<Buffer> Buffer::create(const Shape& shape) {
  // No buffer that fits a 64-bit address space has more elements than this.
  constexpr int64_t kMaxElements = int64_t{1} << 60;
  bool empty = false;
  for (int64_t d : shape) {
    if (d < 0) {
      return invalid_argument("buffer dimension " + std::to_string(d) +
                              " is negative; every dimension must be >= 0");
    }
    empty = empty || d == 0;
  }
  int64_t count = empty ? 0 : 1;
  for (int64_t d : shape) {
    if (empty) break;
    if (count > kMaxElements / d) {
      return Status(StatusCode::kResourceExhausted,
                    "buffer with more than 2^60 elements cannot be allocated; reduce the "
                    "workload's sizes");
    }
    count *= d;
  }
  // aligned_alloc needs a size that is a multiple of the alignment; an empty buffer still
  // gets one aligned block so that data() is never null.
  const int64_t bytes = count * static_cast<int64_t>(sizeof(float));
  const int64_t rounded = std::max(
      kBufferAlignment, (bytes + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment);
  void* memory = std::aligned_alloc(kBufferAlignment, static_cast<size_t>(rounded));
  if (memory == nullptr) {
    return Status(StatusCode::kResourceExhausted,
                  "cannot allocate " + std::to_string(rounded) +
                      " bytes for a buffer; reduce the workload's sizes or free memory");
  }
  std::memset(memory, 0, static_cast<size_t>(rounded));
  Buffer buffer;
  buffer.data_.reset(static_cast<float*>(memory));
  buffer.size_ = count;
  buffer.shape_ = shape;
  return buffer;
}

void Buffer::fill_random(std::mt19937_64& rng) {
  // 24 random bits scaled to [-1, 1): exact in float, never 1.0, and the same values on every
  // standard library (uniform_real_distribution's algorithm is implementation-defined).
  constexpr float kScale = 1.0f / (1 << 23);
  float* p = data_.get();
  for (int64_t i = 0; i < size_; ++i) {
    const auto bits = static_cast<int32_t>(rng() >> 40);
    p[i] = static_cast<float>(bits) * kScale - 1.0f;
  }
}

}  // namespace kiln::core
