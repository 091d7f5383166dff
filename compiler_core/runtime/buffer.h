/// \file
/// Aligned float32 buffers for kernel arguments.
#pragma once

#include <cstdint>
#include <memory>
#include <random>

#include "compiler_core/support/status.h"
#include "compiler_core/te/workload.h"

namespace kiln::core {

/// Bytes every buffer is aligned to (a cache line, and an AVX-512 vector).
constexpr int64_t kBufferAlignment = 64;

/// An owned, 64-byte aligned array of float32.
class Buffer {
 public:
  Buffer() = default;
  /// Allocates `shape`'s elements, zero-filled. ResourceExhausted when allocation fails.
  static Result<Buffer> create(const Shape& shape);

  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  int64_t size() const { return size_; }
  const Shape& shape() const { return shape_; }

  /// Fills with uniform values in [-1, 1) from `rng`.
  void fill_random(std::mt19937_64& rng);

 private:
  struct Free {
    void operator()(float* p) const;
  };
  std::unique_ptr<float[], Free> data_;
  int64_t size_ = 0;
  Shape shape_;
};

}  // namespace kiln::core
