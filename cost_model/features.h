/// \file
/// Features of a candidate, read from its lowered loop IR (lower::lower_for_features), not from
/// its knob values: what the loops do to memory and arithmetic is what transfers from one
/// workload to another. Halide's Featurization.h and TVM's loop features are the models.
///
/// ## What is measured
///
/// Every TensorStore of the nest is a *statement*. For each statement the extractor knows the
/// loops around it (innermost first; loops of extent 1 do not count, a split tail counts with
/// its largest extent), their annotations, and every buffer access in it: the store target and
/// each TensorLoad (a load of the store target at the same place, the `C = C + ...` of a
/// reduction, is merged into the store as one read-write access). Indices are read as affine
/// functions of the loop variables (floor division and modulo by constants, the min/max clamps
/// and selects of padding are approximated), which gives, per access and per loop:
/// - the stride in elements (of the flat, row-major buffer);
/// - the *footprint* at loop level j: the distinct elements (and 64-byte cache lines) one run of
///   the j-th innermost loop touches, and the *reuse* there: iterations / distinct elements.
/// From those, per statement: a cache *traffic* estimate for capacities of 32 KiB, 1 MiB and
/// 32 MiB (the outermost loop whose lines all fit is kept in cache; every run of it loads its
/// footprint once), arithmetic intensity (float operations per byte of that traffic), the
/// straight-line body that unrolling and vectorization make (its size, the accumulator and load
/// vectors in it), and the parallel loop around it.
///
/// ## Layout (version kFeatureVersion = 2, kNumFeatures floats)
///
/// Version 2: stages packed ahead of time (weights, Schedule::prepack) are not featurised.
///
/// Counts and sizes are log2(1 + x) unless marked "raw". Slots that do not exist (a statement
/// with fewer loops or accesses, a nest with one statement) are 0.
///
/// | offset | block | contents |
/// |---|---|---|
/// | 0 | global (kNumGlobalFeatures) | GlobalFeature: totals over every statement |
/// | kStatementOffset(0) | main statement | StatementFeature, then kLoopLevels × LoopFeature, then
/// kAccessSlots × AccessFeature | | kStatementOffset(1) | second statement | the same | |
/// kRestOffset | the other statements | RestFeature |
///
/// The main statement is the one with the most float operations (the reduction of a matmul or
/// convolution); the second is the one among the others with the most traffic at 1 MiB (a
/// packing stage, the init, the copy out of a local accumulator); ties go to the first in
/// program order. In a statement, loop level 0 is the innermost loop. Access slot 0 is the
/// store target; slots 1.. are the loads, most bytes touched first. Features depend only on the
/// nest's structure, never on tensor or loop names: two candidates that lower to the same loop
/// nest get bit-identical features.
///
/// Bump kFeatureVersion whenever the meaning or order of any feature changes: saved models
/// record the version they were trained with and refuse features of another.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "compiler_core/lower/build_loop_nest.h"
#include "compiler_core/schedule/config_space.h"
#include "compiler_core/support/status.h"
#include "compiler_core/target/target.h"
#include "compiler_core/te/workload.h"

namespace kiln::cost {

/// The version of the layout below. Models trained with another version cannot be used.
inline constexpr int kFeatureVersion = 2;

/// Loop levels described per statement (innermost first), and footprint levels per access.
inline constexpr int kLoopLevels = 6;
/// Accesses described per statement: the store target and the two loads that touch most.
inline constexpr int kAccessSlots = 3;
/// Statements described one by one; the rest are summed up (RestFeature).
inline constexpr int kStatementSlots = 2;

/// Totals over the whole nest.
enum GlobalFeature : int {
  kTotalFlops,          ///< float operations of one run (iterations × float ops per statement)
  kTotalIterations,     ///< statement executions, summed over statements
  kNumStatements,       ///< raw
  kNumLoopNests,        ///< raw: top-level loop nests (stages computed at root)
  kLocalBytes,          ///< bytes of every Realize (intermediate buffers)
  kNumLocalBuffers,     ///< raw
  kArgumentBytes,       ///< bytes of the kernel's arguments (inputs and output)
  kMaxParallelExtent,   ///< the largest parallel loop
  kParallelFraction,    ///< raw: share of iterations inside a parallel loop
  kVectorizedFraction,  ///< raw: share of iterations inside a vectorized loop
  kUnrolledFraction,    ///< raw: share of iterations inside an unrolled loop
  kTrafficL1,           ///< bytes moved into a 32 KiB cache, summed over statements
  kTrafficL2,           ///< ... into a 1 MiB cache
  kTrafficL3,           ///< ... into a 32 MiB cache
  kIntensityL1,         ///< kTotalFlops / kTrafficL1 (flops per byte)
  kIntensityL2,
  kIntensityL3,
  kNumGlobalFeatures
};

/// One statement (a TensorStore and the loops around it).
enum StatementFeature : int {
  kStmtPresent,             ///< raw: 1 when the slot holds a statement
  kStmtIterations,          ///< executions of the store
  kStmtFlopsPerIteration,   ///< raw: float operations in the stored value
  kStmtIsReduction,         ///< raw: 1 when the store target is also read (an update)
  kStmtDepth,               ///< raw: loops around it
  kStmtTailLoops,           ///< raw: loops whose extent is not constant (split tails)
  kStmtGuards,              ///< raw: ifs around it
  kStmtSelects,             ///< raw: selects in the value (padding)
  kStmtVectorWidth,         ///< raw: extent of the innermost vectorized loop; 0 when none
  kStmtVectorInnermost,     ///< raw: 1 when the innermost loop is the vectorized one
  kStmtStraightLineSize,    ///< copies of the store in the unrolled/vectorized innermost loops
  kStmtAccumulatorVectors,  ///< store-target vectors written in that straight-line body
  kStmtLoadVectors,         ///< vectors loaded in it (distinct elements / vector width)
  kStmtParallelExtent,      ///< extent of the outermost parallel loop around it
  kStmtIterationsPerTask,   ///< iterations per iteration of that parallel loop
  kStmtTrafficL1,           ///< as the global traffic, for this statement
  kStmtTrafficL2,
  kStmtTrafficL3,
  kStmtIntensityL1,  ///< float operations per byte of traffic
  kStmtIntensityL2,
  kStmtIntensityL3,
  kNumStatementFeatures
};

/// One loop level of a statement (level 0: the innermost loop).
enum LoopFeature : int {
  kLoopExtent,     ///< the loop's extent (the largest, for a tail)
  kLoopKind,       ///< raw: 0 serial, 1 parallel, 2 vectorized, 3 unrolled
  kLoopReduction,  ///< raw: 1 when the store index does not depend on the loop
  kNumLoopFeatures
};

/// One buffer access of a statement. Footprints are per loop level, level 0 innermost.
enum AccessFeature : int {
  kAccessPresent,        ///< raw
  kAccessIsLocal,        ///< raw: 1 for an intermediate (realized) buffer, 0 for an argument
  kAccessIsReadWrite,    ///< raw: the store target of a reduction
  kAccessInnerStride,    ///< |stride| in elements along the innermost loop
  kAccessVectorPattern,  ///< raw: along the vectorized loop: 0 none, 1 broadcast, 2 contiguous,
                         ///< 3 strided (a gather or scatter)
  kAccessBytes,          ///< distinct bytes the whole statement touches
  kAccessLines,          ///< distinct 64-byte lines the whole statement touches
  kAccessLevelBytes,     ///< kLoopLevels entries: distinct bytes one run of level j touches
  kAccessLevelReuse = kAccessLevelBytes + kLoopLevels,  ///< kLoopLevels entries: iterations /
                                                        ///< distinct elements of that run
  kNumAccessFeatures = kAccessLevelReuse + kLoopLevels
};

/// Statements after the two that get slots of their own.
enum RestFeature : int {
  kRestStatements,  ///< raw
  kRestIterations,
  kRestTrafficL2,
  kNumRestFeatures
};

inline constexpr int kStatementBlock =
    kNumStatementFeatures + kLoopLevels * kNumLoopFeatures + kAccessSlots * kNumAccessFeatures;

/// Offset of statement slot `slot` (0 main, 1 second).
constexpr int kStatementOffset(int slot) { return kNumGlobalFeatures + slot * kStatementBlock; }
/// Offset of loop level `level` in a statement block.
constexpr int kLoopOffset(int level) { return kNumStatementFeatures + level * kNumLoopFeatures; }
/// Offset of access slot `slot` in a statement block.
constexpr int kAccessOffset(int slot) {
  return kNumStatementFeatures + kLoopLevels * kNumLoopFeatures + slot * kNumAccessFeatures;
}
inline constexpr int kRestOffset = kStatementOffset(kStatementSlots);
inline constexpr int kNumFeatures = kRestOffset + kNumRestFeatures;

/// The name of every feature, in layout order ("global.traffic_l2", "stmt0.loop1.extent",
/// "stmt1.access2.level3_reuse", ...): for model dumps and feature importances.
const std::vector<std::string>& feature_names();

/// Writes the features of `nest` (lower::lower_for_features's output) into `out`, which holds
/// kNumFeatures floats. Deterministic, and a function of the nest's structure alone. Parts of
/// an IR it does not model (flattened Load/Store, non-affine indices) are approximated, never
/// an error.
void features_of_loop_nest(const core::lower::LoopNest& nest, std::span<float> out);

/// A cost estimate that needs no training: the cycles the main statement's arithmetic would take
/// (lower is faster), read from `features` (kNumFeatures floats). Its vectorized body issues
/// one FMA per accumulator vector, at full rate only when
/// - there are enough independent accumulators to cover the FMA latency (8: 4 cycles on 2
///   ports, as on current x86 and Neoverse cores);
/// - accumulators and loaded vectors fit in `vector_registers` (else spills);
/// - it loads no more vectors than it has accumulators (one load per FMA at most);
/// and a nest that is mostly scalar pays the lanes it leaves idle. Memory is left out: it ranks
/// a space's register blocking, which is where most of a dense kernel's time is decided, and a
/// search that has measured nothing yet has nothing better (on an AVX-512 x86, the 16 configs
/// it ranks best hold 92% of the fastest of ResNet-50's 1x1 stride-2 projection's 4,320, where
/// 16 random ones hold 88% in a median run).
double estimated_cycles(std::span<const float> features, int vector_registers);

/// The features of one candidate: its schedule, lower_for_features, then features_of_loop_nest.
/// InvalidConfig when `config` is not a point of the workload's space or its schedule cannot be
/// lowered; then `out` is left as it was.
Status candidate_features(const core::Workload& workload, const core::Target& target,
                          const core::Config& config, std::span<float> out);

}  // namespace kiln::cost
