/// \file
/// Graph passes: small functions of graph to graph, listed in order in optimize_graph. Each
/// keeps the graph verified (Graph::verify) and every value typed; none changes what the graph
/// computes beyond float rounding (folding BatchNormalization into weights reorders sums).
#pragma once

#include <string>

#include "compiler_core/graph/graph.h"
#include "compiler_core/support/status.h"
#include "compiler_core/target/target.h"

namespace kiln::graph {

/// Replaces Identity nodes, and Dropout nodes in inference (one output), by their input.
Status remove_identities(Graph& graph);

/// Evaluates every node whose inputs are all constants (and Shape, whose output the static
/// shapes decide) and makes its outputs constants. Nodes left without readers are removed.
Status fold_constants(Graph& graph);

/// Folds a BatchNormalization that alone reads a Conv's output into the Conv's weights and bias
/// (both constant): W'[k] = W[k]·s[k], B'[k] = (B[k] − mean[k])·s[k] + beta[k] with
/// s = scale / sqrt(var + epsilon).
Status fold_batch_norm(Graph& graph);

/// Replaces each Conv, Gemm and MatMul that a compiler_core workload expresses (constant
/// weights, 2-D convolution with symmetric padding, ...) by a kernel node (kKernelOp); Gemm and
/// MatMul weights are transposed into dense's W[N,K] once, here. Others stay host nodes.
Status lower_to_kernels(Graph& graph);

/// Fuses into a kernel node the elementwise nodes that alone read its output, in this order: a
/// per-channel bias Add, a residual Add (another value of the output's shape), one activation
/// (Relu, Clip(0,6), HardSwish, Sigmoid). A fusion happens only when the fused workload parses.
Status fuse_epilogues(Graph& graph);

/// Chooses each convolution kernel's layout (NCHW or NHWC, both of which its templates build)
/// so that the graph needs the fewest layout transforms: a kernel whose input is a Transpose
/// from NHWC to NCHW and whose output only a Transpose back to NHWC reads (how converters from
/// NHWC frameworks wrap every convolution) runs in NHWC on the untransposed input, its weights
/// reordered once here, and both transforms go. Every other kernel keeps the model's NCHW,
/// which needs none.
Status choose_layouts(Graph& graph);

/// Removes nodes none of whose outputs is read, and constants nobody reads.
Status eliminate_dead_code(Graph& graph);

/// The pipeline, in order: remove_identities, fold_constants, fold_batch_norm,
/// lower_to_kernels, fuse_epilogues, choose_layouts, eliminate_dead_code; the graph is verified
/// after each.
Status optimize_graph(Graph& graph);

/// A kernel node's workload string: its base workload with its fused epilogue.
std::string kernel_workload(const Node& node);

}  // namespace kiln::graph
