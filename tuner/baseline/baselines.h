/// \file
/// Library baselines for kiln's benchmarks: OpenBLAS sgemm, oneDNN matmul (plain weights and
/// weights packed ahead of time) and oneDNN convolution in its preferred blocked layouts.
///
/// Each baseline is an object that sets up its buffers, primitives and layouts once in
/// `create` and exposes `run()`, the region the caller times (with kiln's `time_function`, so
/// that kiln and the libraries are timed the same way). Inputs are copied in, in kiln's
/// layouts (te/workload.h), so a baseline computes the same thing as kiln's kernel on the same
/// data and `read_output` gives its result in kiln's output layout for checking.
///
/// Process set-up, which every benchmark that uses these baselines needs (ANCHORS.md, DEPS.md):
/// - `reexec_without_openblas_overrides` first thing in `main`: this machine's environment
///   exports OPENBLAS_CORETYPE=Haswell and OPENBLAS_L2_SIZE=512, which OpenBLAS reads when it
///   loads and which halve its speed; the process restarts itself without them (and with
///   OMP_PROC_BIND=true, which steadies oneDNN's two-thread runs).
/// - `place_benchmark_threads` next: with OMP_PROC_BIND set, libgomp pins the main thread to
///   one CPU when it loads, before `main`, and every thread created from it inherits that pin
///   (OpenBLAS's workers, kiln's pool, reference threads). That would run kiln's and
///   OpenBLAS's "two-thread" figures on one core.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include <sched.h>

#include "compiler_core/support/status.h"
#include "compiler_core/te/workload.h"

namespace kiln::baseline {

/// If OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE is set, or OMP_PROC_BIND is not, removes both
/// OpenBLAS variables, sets OMP_PROC_BIND=true (unless set), prints one line on stderr naming
/// what changed, and execv's /proc/self/exe with `argv` so the libraries load in the clean
/// environment. Returns normally in the restarted process (which it never restarts again) and
/// when nothing needs changing. Exits with status 1 if execv fails.
void reexec_without_openblas_overrides(int argc, char** argv);

/// The OpenBLAS variables the restart removed, as "NAME=value" (empty when none were set).
std::vector<std::string> removed_openblas_overrides();

/// Lets every thread other than the main thread and libgomp's run on all online CPUs: call it
/// once at the start of `main`, before any OpenMP region, when only the threads that libraries
/// made while loading exist (OpenBLAS's workers). Then warms kiln's thread pool up to
/// `kiln_threads` workers from the main thread: where libgomp bound it to one CPU, the pool
/// binds them to the places after it in turn, as libgomp binds its own workers, so that kiln
/// and oneDNN run on the same CPUs; otherwise they are unpinned. The main thread keeps
/// libgomp's binding.
void place_benchmark_threads(int kiln_threads);

/// The AVX-512 FMA peak of `threads` threads running at once, in GFLOP/s: each runs 12
/// independent chains of 16-lane FMAs (enough to cover the FMA latency on every x86 core kiln
/// targets) for `seconds`, in slices of about a millisecond, and the figure is the sum of each
/// thread's fastest slice. It is the physical limit that a kernel's GFLOP/s are measured
/// against. 0 where the CPU has no AVX-512 (and on other architectures).
double fma_peak_gflops(int threads, double seconds = 0.3);

/// The rate at which `threads` threads running at once read `bytes` in all (each its own share,
/// `bytes / threads`, summed with AVX-512 loads over and over for `seconds`), in GB/s: the sum
/// of each thread's fastest pass. A buffer that fits in the caches is read from them, as a
/// batch-1 dense layer reads its weights call after call. 0 where the CPU has no AVX-512.
double read_bandwidth_gbs(size_t bytes, int threads, double seconds = 0.3);

/// While alive, the calling thread may run on every online CPU; the destructor restores its
/// previous mask. Wrap code that creates threads from a pinned thread (reference kernels).
class ScopedAllCpus {
 public:
  ScopedAllCpus();
  ~ScopedAllCpus();
  ScopedAllCpus(const ScopedAllCpus&) = delete;
  ScopedAllCpus& operator=(const ScopedAllCpus&) = delete;

 private:
  cpu_set_t saved_;
  bool restore_ = false;
};

/// The CPUs the calling thread may run on, as a list ("0", "0-1").
std::string current_thread_cpus();

/// Every thread of this process with the CPUs it may run on, "TID:LIST" (from
/// /proc/self/task), to show which threads a pin reached.
std::vector<std::string> thread_cpu_lists();

/// OpenBLAS's name for the kernel set it picked ("Cooperlake", "Haswell") and its build
/// configuration string.
std::string openblas_core_name();
std::string openblas_config();

/// oneDNN's version, "2.6.3".
std::string onednn_version();

/// One library computation of a workload, set up once, timed through `run()`.
class Baseline {
 public:
  virtual ~Baseline() = default;
  /// The timed region: one computation on the inputs given to `create`. Sets the library's
  /// thread count first if another baseline changed it.
  virtual void run() = 0;
  /// Copies the output of the last `run()` into `out`, in kiln's layout for the workload
  /// (Workload::output_shape()). Not timed; may reorder.
  virtual void read_output(float* out) = 0;
  /// Short name of the variant: "openblas", "onednn", "onednn_packed", "onednn_blocked", ...
  virtual const std::string& name() const = 0;
  /// What the library chose, e.g. oneDNN's implementation ("brg:avx512_core") and layouts.
  virtual const std::string& implementation() const = 0;
};

/// cblas_sgemm, row-major, C = A·B (matmul) or Y = X·Wᵀ (dense without bias or activation),
/// with `threads` threads (openblas_set_num_threads). InvalidArgument for other workloads.
class OpenblasSgemm : public Baseline {
 public:
  static Result<std::unique_ptr<OpenblasSgemm>> create(const core::Workload& workload,
                                                       std::span<const float* const> inputs,
                                                       int threads);
  void run() override;
  void read_output(float* out) override;
  const std::string& name() const override { return name_; }
  const std::string& implementation() const override { return impl_; }

 private:
  OpenblasSgemm() = default;
  bool transpose_b_ = false;
  int64_t m_ = 0, n_ = 0, k_ = 0;
  int threads_ = 1;
  std::vector<float> a_, b_, c_;
  std::string name_ = "openblas", impl_;
};

/// dnnl::matmul for matmul, batch_matmul and dense (bias and relu as oneDNN's bias and
/// post-op), plain row-major source and destination. With `packed_weights` the weights are
/// laid out in the format oneDNN prefers for them (format_tag::any), reordered once in
/// `create`; otherwise they stay plain. Threads through omp_set_num_threads.
class DnnlMatmul : public Baseline {
 public:
  static Result<std::unique_ptr<DnnlMatmul>> create(const core::Workload& workload,
                                                    std::span<const float* const> inputs,
                                                    int threads, bool packed_weights);
  ~DnnlMatmul() override;
  void run() override;
  void read_output(float* out) override;
  const std::string& name() const override;
  const std::string& implementation() const override;

 private:
  struct State;
  explicit DnnlMatmul(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

/// How a DnnlConv2d's timed region starts and ends.
enum class ConvIo {
  /// Source, weights and destination in the layouts oneDNN picks (format_tag::any), source and
  /// weights reordered once in `create`: the convolution alone is timed (ANCHORS.md's figures).
  kBlocked,
  /// Weights reordered once, but the timed region takes the source in kiln's layout (NCHW or
  /// NHWC) and leaves the destination in it: reorder in, convolution, reorder out. This is the
  /// contract kiln's kernels have.
  kPlainIo,
};

/// Which of oneDNN's convolution algorithms a DnnlConv2d runs.
enum class ConvAlgorithm {
  /// convolution_direct: what convolution_auto picks for batch-1 inference.
  kDirect,
  /// convolution_winograd (F(2x2, 3x3) on AVX-512): 3x3 kernels of stride 1 only, and only where
  /// oneDNN has an implementation for the shape; opted into, never chosen by oneDNN itself.
  kWinograd,
};

/// dnnl::convolution_forward (forward inference) for conv2d and depthwise_conv2d with
/// stride, padding, dilation and groups, NCHW or NHWC, and kiln's epilogue as oneDNN fuses it
/// (the bias in the convolution, the residual as a sum post-op, the activation as an eltwise
/// post-op). Threads through omp_set_num_threads. With ConvAlgorithm::kWinograd, named
/// "onednn_winograd"; an error where oneDNN has no Winograd implementation for the shape.
class DnnlConv2d : public Baseline {
 public:
  static Result<std::unique_ptr<DnnlConv2d>> create(
      const core::Workload& workload, std::span<const float* const> inputs, int threads, ConvIo io,
      ConvAlgorithm algorithm = ConvAlgorithm::kDirect);
  ~DnnlConv2d() override;
  void run() override;
  void read_output(float* out) override;
  const std::string& name() const override;
  const std::string& implementation() const override;

 private:
  struct State;
  explicit DnnlConv2d(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace kiln::baseline
