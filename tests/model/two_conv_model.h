/// \file
/// A model of two convolutions of very unequal cost, for the whole-model tuning tests: a heavy
/// 3x3 convolution (32 -> 32 channels at 28x28, about 15 MFLOP) with a fused ReLU, then a light
/// 1x1 convolution with stride 4 (32 -> 4 channels at 7x7, about 13 kFLOP).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tests/model/model_builder.h"

namespace kiln::model_test {

inline std::string two_conv_model() {
  ModelBuilder m(13);
  constexpr int32_t kFloat = onnx::TensorProto::FLOAT;
  m.input("x", kFloat, {1, 32, 28, 28}).output("y", kFloat, {1, 4, 7, 7});
  auto values = [](size_t n, uint32_t seed) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i) {
      seed = seed * 1664525u + 1013904223u;
      v[i] = float(int32_t(seed >> 8) % 2001 - 1000) / 8000.0f;
    }
    return v;
  };
  m.initializer("w_heavy", {32, 32, 3, 3}, values(32 * 32 * 9, 1));
  m.initializer("w_light", {4, 32, 1, 1}, values(4 * 32, 2));
  onnx::NodeProto& heavy = m.node("Conv", {"x", "w_heavy"}, {"h"}, "heavy");
  add_ints_attr(heavy, "kernel_shape", {3, 3});
  add_ints_attr(heavy, "pads", {1, 1, 1, 1});
  m.node("Relu", {"h"}, {"r"}, "relu");
  onnx::NodeProto& light = m.node("Conv", {"r", "w_light"}, {"y"}, "light");
  add_ints_attr(light, "kernel_shape", {1, 1});
  add_ints_attr(light, "strides", {4, 4});
  return m.bytes();
}

/// The canonical workloads of two_conv_model's tasks.
inline constexpr const char* kHeavyTask =
    "conv2d:N=1,C=32,H=28,W=28,K=32,R=3,S=3,stride=1,pad=1,act=relu";
inline constexpr const char* kLightTask = "conv2d:N=1,C=32,H=28,W=28,K=4,R=1,S=1,stride=4,pad=0";

}  // namespace kiln::model_test
