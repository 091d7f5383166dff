#include "tuner/baseline/baselines.h"

#include <dirent.h>
#include <omp.h>
#include <unistd.h>

#include <cblas.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "oneapi/dnnl/dnnl.hpp"

#include "compiler_core/runtime/thread_pool.h"

namespace kiln::baseline {
namespace {

using core::Layout;
using core::OpKind;
using core::Workload;

/// Set in the restarted process, so that it never restarts again.
constexpr const char* kRestartedVar = "KILN_BENCH_RESTARTED";
/// Carries what the restart removed to the restarted process ("NAME=value NAME=value").
constexpr const char* kRemovedVar = "KILN_BENCH_REMOVED_ENV";
constexpr const char* kOpenblasVars[] = {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"};

cpu_set_t all_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  // The kernel intersects the mask with the CPUs the process's cpuset allows.
  const long count = sysconf(_SC_NPROCESSORS_CONF);
  for (long cpu = 0; cpu < count && cpu < CPU_SETSIZE; ++cpu) CPU_SET(cpu, &set);
  return set;
}

void noop_body(int64_t, void*) {}

std::vector<float> copy_of(const float* data, int64_t count) {
  return std::vector<float>(data, data + count);
}

Status check_inputs(const Workload& w, std::span<const float* const> inputs) {
  const size_t expected = w.input_shapes().size();
  if (inputs.size() != expected) {
    return invalid_argument("baseline for '" + w.canonical() + "' takes " +
                            std::to_string(expected) + " inputs, got " +
                            std::to_string(inputs.size()));
  }
  return Status::ok();
}

/// Runs `fn`, turning oneDNN's exceptions into a Status (create functions return Results).
template <typename Fn>
Status guard_dnnl(const std::string& what, Fn&& fn) {
  try {
    fn();
  } catch (const dnnl::error& e) {
    return internal_error("oneDNN " + what + " failed: " + e.what() + " (status " +
                          std::to_string(static_cast<int>(e.status)) + ")");
  }
  return Status::ok();
}

void set_omp_threads(int threads) {
  if (omp_get_max_threads() != threads) omp_set_num_threads(threads);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Process set-up

void reexec_without_openblas_overrides(int argc, char** argv) {
  (void)argc;
  if (std::getenv(kRestartedVar) != nullptr) return;
  std::string removed;
  for (const char* var : kOpenblasVars) {
    const char* value = std::getenv(var);
    if (value == nullptr) continue;
    if (!removed.empty()) removed += ' ';
    removed += std::string(var) + "=" + value;
  }
  const bool set_bind = std::getenv("OMP_PROC_BIND") == nullptr;
  if (removed.empty() && !set_bind) return;

  for (const char* var : kOpenblasVars) unsetenv(var);
  if (set_bind) setenv("OMP_PROC_BIND", "true", 1);
  setenv(kRestartedVar, "1", 1);
  setenv(kRemovedVar, removed.c_str(), 1);
  std::string line = "bench: restarting with";
  if (!removed.empty()) {
    line += " " + removed +
            " removed from the environment (they force OpenBLAS's Haswell "
            "AVX2 kernels instead of the ones it detects, see ANCHORS.md)";
  }
  if (set_bind) line += std::string(removed.empty() ? "" : " and") + " OMP_PROC_BIND=true";
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
  std::fflush(stdout);
  execv("/proc/self/exe", argv);
  std::fprintf(stderr, "error: cannot restart the benchmark through /proc/self/exe: %s\n",
               std::strerror(errno));
  std::exit(1);
}

std::vector<std::string> removed_openblas_overrides() {
  std::vector<std::string> out;
  const char* removed = std::getenv(kRemovedVar);
  if (removed == nullptr) return out;
  std::string_view rest(removed);
  while (!rest.empty()) {
    const size_t space = rest.find(' ');
    std::string_view item = rest.substr(0, space);
    if (!item.empty()) out.emplace_back(item);
    if (space == std::string_view::npos) break;
    rest.remove_prefix(space + 1);
  }
  return out;
}

void place_benchmark_threads(int kiln_threads) {
  const cpu_set_t all = all_cpus();
  const pid_t main_tid = getpid();
  if (DIR* dir = opendir("/proc/self/task")) {
    while (dirent* entry = readdir(dir)) {
      const pid_t tid = static_cast<pid_t>(std::atoi(entry->d_name));
      if (tid <= 0 || tid == main_tid) continue;
      sched_setaffinity(tid, sizeof(all), &all);
    }
    closedir(dir);
  }
  // Made now, from the main thread, kiln's pool workers go where libgomp's own would: where
  // libgomp bound the main thread to one CPU (OMP_PROC_BIND=true, one place a CPU), to the next
  // places in turn (the pool does it, thread_pool.cc), so that kiln and oneDNN run on the same
  // CPUs, one thread each; otherwise unbound. Left unbound beside a bound oneDNN, kiln's worker
  // lost time to oneDNN's workers, which spin between calls (OMP_WAIT_POLICY=passive also ended
  // the loss): a 2-thread stride-2 3x3 read 168 GFLOP/s in bench against 204-214 alone, 191-211
  // bound.
  const int previous = core::num_threads();
  core::set_num_threads(std::max(kiln_threads, 1));
  kiln_parallel_for(int64_t{4} * std::max(kiln_threads, 1), noop_body, nullptr);
  core::set_num_threads(previous);
}

#if defined(__x86_64__) || defined(__i386__)
namespace {

/// One thread's FMA throughput (see fma_peak_gflops), in GFLOP/s: the fastest of the slices of
/// about a millisecond that fill `seconds`, so that a moment when the machine ran something
/// else does not lower the peak.
__attribute__((target("avx512f,fma"))) double fma_peak_avx512(double seconds) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(0.001f * static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  constexpr long kSlice = 1 << 18;  // 12 · 2^18 FMAs: about a millisecond
  double best = 0;
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    const auto begin = std::chrono::steady_clock::now();
    for (long i = 0; i < kSlice; ++i) {
#pragma GCC unroll 12
      for (int j = 0; j < 12; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
    }
    const auto end = std::chrono::steady_clock::now();
    best = std::max(best, kSlice * 12 * 32 / std::chrono::duration<double>(end - begin).count());
    if (std::chrono::duration<double>(end - start).count() >= seconds) break;
  }
  float sum = 0;
  float lanes[16];
  for (int j = 0; j < 12; ++j) {
    _mm512_storeu_ps(lanes, acc[j]);  // _mm512_reduce_add_ps trips GCC 12's -Wuninitialized
    sum += lanes[0];
  }
  volatile float sink = sum;
  (void)sink;
  return best / 1e9;
}

/// One pass over `floats` floats (a multiple of 128), summed into 8 vectors.
__attribute__((target("avx512f"))) float read_pass_avx512(const float* data, size_t floats) {
  __m512 acc[8];
  for (__m512& a : acc) a = _mm512_setzero_ps();
  for (size_t i = 0; i < floats; i += 128) {
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) acc[j] = _mm512_add_ps(acc[j], _mm512_load_ps(data + i + 16 * j));
  }
  for (int j = 1; j < 8; ++j) acc[0] = _mm512_add_ps(acc[0], acc[j]);
  float lanes[16];
  _mm512_storeu_ps(lanes, acc[0]);
  return lanes[0];
}

/// One thread's read rate of `floats` floats (see read_bandwidth_gbs): its fastest pass, GB/s.
double read_bandwidth_avx512(size_t floats, double seconds) {
  std::unique_ptr<float, decltype(&std::free)> data(
      static_cast<float*>(std::aligned_alloc(64, floats * sizeof(float))), &std::free);
  std::fill(data.get(), data.get() + floats, 1.0f);
  double best = 0;
  float sum = 0;
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    const auto begin = std::chrono::steady_clock::now();
    sum += read_pass_avx512(data.get(), floats);
    const auto end = std::chrono::steady_clock::now();
    best = std::max(best, static_cast<double>(floats * sizeof(float)) /
                              std::chrono::duration<double>(end - begin).count() / 1e9);
    if (std::chrono::duration<double>(end - start).count() >= seconds) break;
  }
  volatile float sink = sum;
  (void)sink;
  return best;
}

}  // namespace
#endif

namespace {

/// Runs `probe()` on `threads` threads at once (the caller is one of them) and sums the results.
template <typename Probe>
double sum_over_threads(int threads, Probe probe) {
  std::vector<double> per_thread(static_cast<size_t>(std::max(threads, 1)));
  {
    ScopedAllCpus unpinned;  // the helpers must not inherit the main thread's pin
    std::vector<std::thread> helpers;
    for (size_t t = 1; t < per_thread.size(); ++t) {
      helpers.emplace_back([&per_thread, &probe, t] { per_thread[t] = probe(); });
    }
    per_thread[0] = probe();
    for (std::thread& h : helpers) h.join();
  }
  double total = 0;
  for (double g : per_thread) total += g;
  return total;
}

}  // namespace

double read_bandwidth_gbs(size_t bytes, int threads, double seconds) {
#if defined(__x86_64__) || defined(__i386__)
  if (!__builtin_cpu_supports("avx512f")) return 0;
  const size_t share = bytes / sizeof(float) / static_cast<size_t>(std::max(threads, 1));
  const size_t floats = std::max<size_t>(128, (share + 127) / 128 * 128);
  return sum_over_threads(threads, [&] { return read_bandwidth_avx512(floats, seconds); });
#else
  (void)bytes;
  (void)threads;
  (void)seconds;
  return 0;
#endif
}

double fma_peak_gflops(int threads, double seconds) {
#if defined(__x86_64__) || defined(__i386__)
  if (!__builtin_cpu_supports("avx512f")) return 0;
  return sum_over_threads(threads, [&] { return fma_peak_avx512(seconds); });
#else
  (void)threads;
  (void)seconds;
  return 0;
#endif
}

ScopedAllCpus::ScopedAllCpus() {
  if (sched_getaffinity(0, sizeof(saved_), &saved_) != 0) return;
  const cpu_set_t all = all_cpus();
  restore_ = sched_setaffinity(0, sizeof(all), &all) == 0;
}

ScopedAllCpus::~ScopedAllCpus() {
  if (restore_) sched_setaffinity(0, sizeof(saved_), &saved_);
}

std::string current_thread_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return "?";
  std::string out;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &set)) continue;
    int last = cpu;
    while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, &set)) ++last;
    if (!out.empty()) out += ',';
    out += std::to_string(cpu);
    if (last > cpu) out += "-" + std::to_string(last);
    cpu = last;
  }
  return out;
}

std::vector<std::string> thread_cpu_lists() {
  std::vector<std::string> out;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return out;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const std::string path = std::string("/proc/self/task/") + entry->d_name + "/status";
    std::ifstream status(path);
    for (std::string line; std::getline(status, line);) {
      constexpr std::string_view kKey = "Cpus_allowed_list:";
      if (line.rfind(kKey, 0) != 0) continue;
      const size_t start = line.find_first_not_of(" \t", kKey.size());
      out.push_back(std::string(entry->d_name) + ":" +
                    (start == std::string::npos ? "" : line.substr(start)));
    }
  }
  closedir(dir);
  std::sort(out.begin(), out.end());
  return out;
}

std::string openblas_core_name() { return openblas_get_corename(); }

std::string openblas_config() { return openblas_get_config(); }

std::string onednn_version() {
  const dnnl_version_t* v = dnnl_version();
  return std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
}

// ---------------------------------------------------------------------------------------------
// OpenBLAS

Result<std::unique_ptr<OpenblasSgemm>> OpenblasSgemm::create(const Workload& w,
                                                             std::span<const float* const> inputs,
                                                             int threads) {
  const bool plain_dense = w.op == OpKind::kDense && !w.has_epilogue();
  if (w.op != OpKind::kMatmul && !plain_dense) {
    return invalid_argument(
        "the OpenBLAS baseline computes matmul and dense without bias, residual or "
        "activation, not '" +
        w.canonical() + "'");
  }
  KILN_RETURN_IF_ERROR(check_inputs(w, inputs));
  std::unique_ptr<OpenblasSgemm> b(new OpenblasSgemm());
  b->transpose_b_ = w.op == OpKind::kDense;
  b->m_ = w.m;
  b->n_ = w.n;
  b->k_ = w.k;
  b->threads_ = std::max(threads, 1);
  b->a_ = copy_of(inputs[0], w.m * w.k);
  b->b_ = copy_of(inputs[1], w.k * w.n);
  b->c_.assign(static_cast<size_t>(w.m * w.n), 0.0f);
  b->impl_ = std::string("sgemm ") + openblas_get_corename();
  return b;
}

void OpenblasSgemm::run() {
  if (openblas_get_num_threads() != threads_) {
    // Workers made now would inherit a pinned caller's mask.
    ScopedAllCpus unpinned;
    openblas_set_num_threads(threads_);
  }
  const auto m = static_cast<blasint>(m_), n = static_cast<blasint>(n_),
             k = static_cast<blasint>(k_);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, transpose_b_ ? CblasTrans : CblasNoTrans, m, n, k, 1.0f,
              a_.data(), k, b_.data(), transpose_b_ ? k : n, 0.0f, c_.data(), n);
}

void OpenblasSgemm::read_output(float* out) { std::memcpy(out, c_.data(), c_.size() * 4); }

// ---------------------------------------------------------------------------------------------
// oneDNN matmul

struct DnnlMatmul::State {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  dnnl::matmul prim;
  dnnl::memory src, weights, bias, dst;
  std::vector<float> src_data, weights_data, bias_data, dst_data;
  int threads = 1;
  std::string name, impl;
};

DnnlMatmul::DnnlMatmul(std::unique_ptr<State> state) : state_(std::move(state)) {}
DnnlMatmul::~DnnlMatmul() = default;

Result<std::unique_ptr<DnnlMatmul>> DnnlMatmul::create(const Workload& w,
                                                       std::span<const float* const> inputs,
                                                       int threads, bool packed_weights) {
  if (w.op != OpKind::kMatmul && w.op != OpKind::kBatchMatmul && w.op != OpKind::kDense) {
    return invalid_argument(
        "the oneDNN matmul baseline computes matmul, batch_matmul and "
        "dense, not '" +
        w.canonical() + "'");
  }
  if (w.residual || (w.act != core::Activation::kNone && w.act != core::Activation::kRelu)) {
    return invalid_argument(
        "the oneDNN matmul baseline computes dense with a bias and relu at most, not '" +
        w.canonical() + "'");
  }
  KILN_RETURN_IF_ERROR(check_inputs(w, inputs));
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  auto s = std::make_unique<State>();
  s->threads = std::max(threads, 1);
  s->name = packed_weights ? "onednn_packed" : "onednn";
  set_omp_threads(s->threads);

  const bool batched = w.op == OpKind::kBatchMatmul;
  const int64_t b = batched ? w.batch : 1;
  dnnl::memory::dims src_dims =
      batched ? dnnl::memory::dims{b, w.m, w.k} : dnnl::memory::dims{w.m, w.k};
  dnnl::memory::dims wei_dims =
      batched ? dnnl::memory::dims{b, w.k, w.n} : dnnl::memory::dims{w.k, w.n};
  dnnl::memory::dims dst_dims =
      batched ? dnnl::memory::dims{b, w.m, w.n} : dnnl::memory::dims{w.m, w.n};
  const tag plain = batched ? tag::abc : tag::ab;
  // dense reads W[N, K]: the K×N weights stored column-major.
  const tag wei_plain = w.op == OpKind::kDense ? tag::ba : plain;

  s->src_data = copy_of(inputs[0], b * w.m * w.k);
  s->weights_data = copy_of(inputs[1], b * w.k * w.n);
  s->dst_data.assign(static_cast<size_t>(b * w.m * w.n), 0.0f);
  const bool has_bias = w.op == OpKind::kDense && w.bias;
  if (has_bias) s->bias_data = copy_of(inputs[2], w.n);

  Status st = guard_dnnl("matmul set-up", [&] {
    dnnl::memory::desc src_md(src_dims, dt::f32, plain);
    dnnl::memory::desc user_wei_md(wei_dims, dt::f32, wei_plain);
    dnnl::memory::desc wei_md =
        packed_weights ? dnnl::memory::desc(wei_dims, dt::f32, tag::any) : user_wei_md;
    dnnl::memory::desc dst_md(dst_dims, dt::f32, plain);
    dnnl::memory::desc bias_md({1, w.n}, dt::f32, tag::ab);
    dnnl::primitive_attr attr;
    if (w.op == OpKind::kDense && w.act == core::Activation::kRelu) {
      dnnl::post_ops ops;
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
      attr.set_post_ops(ops);
    }
    dnnl::matmul::desc desc = has_bias ? dnnl::matmul::desc(src_md, wei_md, bias_md, dst_md)
                                       : dnnl::matmul::desc(src_md, wei_md, dst_md);
    dnnl::matmul::primitive_desc pd(desc, attr, s->engine);
    s->prim = dnnl::matmul(pd);
    s->impl = pd.impl_info_str();
    s->src = dnnl::memory(src_md, s->engine, s->src_data.data());
    s->dst = dnnl::memory(dst_md, s->engine, s->dst_data.data());
    if (has_bias) s->bias = dnnl::memory(bias_md, s->engine, s->bias_data.data());
    dnnl::memory user_wei(user_wei_md, s->engine, s->weights_data.data());
    if (pd.weights_desc() == user_wei_md) {
      s->weights = user_wei;
    } else {
      s->impl += " (weights reordered ahead of time)";
      s->weights = dnnl::memory(pd.weights_desc(), s->engine);
      dnnl::reorder(user_wei, s->weights).execute(s->stream, user_wei, s->weights);
      s->stream.wait();
    }
  });
  KILN_RETURN_IF_ERROR(st);
  return std::unique_ptr<DnnlMatmul>(new DnnlMatmul(std::move(s)));
}

void DnnlMatmul::run() {
  State& s = *state_;
  set_omp_threads(s.threads);
  std::unordered_map<int, dnnl::memory> args = {
      {DNNL_ARG_SRC, s.src}, {DNNL_ARG_WEIGHTS, s.weights}, {DNNL_ARG_DST, s.dst}};
  if (s.bias) args.emplace(DNNL_ARG_BIAS, s.bias);
  s.prim.execute(s.stream, args);
  s.stream.wait();
}

void DnnlMatmul::read_output(float* out) {
  std::memcpy(out, state_->dst_data.data(), state_->dst_data.size() * 4);
}

const std::string& DnnlMatmul::name() const { return state_->name; }
const std::string& DnnlMatmul::implementation() const { return state_->impl; }

// ---------------------------------------------------------------------------------------------
// oneDNN convolution

struct DnnlConv2d::State {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  dnnl::convolution_forward prim;
  ConvIo io = ConvIo::kBlocked;
  dnnl::memory user_src, user_dst;               ///< kiln's layouts
  dnnl::memory src, weights, dst;                ///< the convolution's layouts
  dnnl::memory bias;                             ///< with bias=1
  dnnl::memory residual;                         ///< with residual=1, in dst's layout
  std::optional<dnnl::reorder> src_in, dst_out;  ///< present when the layouts differ
  std::vector<float> src_data, weights_data, dst_data, bias_data, residual_data;
  int threads = 1;
  std::string name, impl;
};

DnnlConv2d::DnnlConv2d(std::unique_ptr<State> state) : state_(std::move(state)) {}
DnnlConv2d::~DnnlConv2d() = default;

Result<std::unique_ptr<DnnlConv2d>> DnnlConv2d::create(const Workload& w,
                                                       std::span<const float* const> inputs,
                                                       int threads, ConvIo io,
                                                       ConvAlgorithm algorithm) {
  if (w.op != OpKind::kConv2d && w.op != OpKind::kDepthwiseConv2d) {
    return invalid_argument(
        "the oneDNN convolution baseline computes conv2d and "
        "depthwise_conv2d, not '" +
        w.canonical() + "'");
  }
  KILN_RETURN_IF_ERROR(check_inputs(w, inputs));
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  using dims = dnnl::memory::dims;
  auto s = std::make_unique<State>();
  s->threads = std::max(threads, 1);
  s->io = io;
  const bool winograd = algorithm == ConvAlgorithm::kWinograd;
  s->name = winograd                 ? "onednn_winograd"
            : io == ConvIo::kBlocked ? "onednn_blocked"
                                     : "onednn_plain_io";
  set_omp_threads(s->threads);

  const bool depthwise = w.op == OpKind::kDepthwiseConv2d;
  const int64_t groups = depthwise ? w.in_channels : w.groups;
  const int64_t k = depthwise ? w.in_channels : w.out_channels;
  const int64_t cg = w.in_channels / groups, kg = k / groups;
  const bool nchw = w.layout == Layout::kNCHW;
  const dims src_dims = {w.batch_n, w.in_channels, w.height, w.width};
  const dims dst_dims = {w.batch_n, k, w.out_height(), w.out_width()};
  // kiln's weights: NCHW W[K, C/g, R, S] (oihw, or goihw with K split as g, K/g);
  // NHWC W[R, S, C/g, K] (hwio, or hwigo); depthwise W[C, 1, R, S] or W[R, S, C, 1].
  const bool grouped = groups > 1;
  const dims wei_dims =
      grouped ? dims{groups, kg, cg, w.kernel_h, w.kernel_w} : dims{k, cg, w.kernel_h, w.kernel_w};
  const tag wei_plain = grouped ? (nchw ? tag::goihw : tag::hwigo) : (nchw ? tag::oihw : tag::hwio);
  const tag act_plain = nchw ? tag::nchw : tag::nhwc;

  const std::vector<core::Shape> shapes = w.input_shapes();
  s->src_data = copy_of(inputs[0], core::num_elements(shapes[0]));
  s->weights_data = copy_of(inputs[1], core::num_elements(shapes[1]));
  s->dst_data.assign(static_cast<size_t>(core::num_elements(w.output_shape())), 0.0f);
  // The epilogue as oneDNN fuses it: the bias in the convolution, the residual as a sum
  // post-op onto a destination that holds it (copied in before each run), the activation as an
  // eltwise post-op.
  size_t next_input = 2;
  if (w.bias) s->bias_data = copy_of(inputs[next_input++], k);
  std::vector<float> residual_data;
  if (w.residual) residual_data = copy_of(inputs[next_input++], s->dst_data.size());

  Status st = guard_dnnl("convolution set-up", [&] {
    dnnl::memory::desc user_src_md(src_dims, dt::f32, act_plain);
    dnnl::memory::desc user_wei_md(wei_dims, dt::f32, wei_plain);
    dnnl::memory::desc user_dst_md(dst_dims, dt::f32, act_plain);
    dnnl::memory::desc src_md(src_dims, dt::f32, tag::any);
    dnnl::memory::desc wei_md(wei_dims, dt::f32, tag::any);
    dnnl::memory::desc dst_md(dst_dims, dt::f32, tag::any);
    // kiln's OH = (H + 2·pad − dil·(R−1) − 1) / stride + 1 is oneDNN's with pad on both sides;
    // oneDNN counts dilation from 0.
    const dims strides = {w.stride_h, w.stride_w}, dilates = {w.dilation_h - 1, w.dilation_w - 1};
    const dims pads = {w.pad_h, w.pad_w};
    const dnnl::memory::desc bias_md({k}, dt::f32, tag::x);
    const dnnl::algorithm alg =
        winograd ? dnnl::algorithm::convolution_winograd : dnnl::algorithm::convolution_direct;
    dnnl::convolution_forward::desc desc =
        w.bias
            ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, alg, src_md,
                                              wei_md, bias_md, dst_md, strides, dilates, pads, pads)
            : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, alg, src_md,
                                              wei_md, dst_md, strides, dilates, pads, pads);
    dnnl::post_ops post_ops;
    if (w.residual) post_ops.append_sum(1.0f);
    switch (w.act) {
      case core::Activation::kNone:
        break;
      case core::Activation::kRelu:
        post_ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
        break;
      case core::Activation::kRelu6:
        post_ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_clip, 0.0f, 6.0f);
        break;
      case core::Activation::kHardSwish:
        post_ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_hardswish, 0.0f, 0.0f);
        break;
      case core::Activation::kSigmoid:
        post_ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_logistic, 0.0f, 0.0f);
        break;
    }
    dnnl::primitive_attr attr;
    attr.set_post_ops(post_ops);
    dnnl::convolution_forward::primitive_desc pd(desc, attr, s->engine);
    s->prim = dnnl::convolution_forward(pd);
    s->impl = pd.impl_info_str();

    s->user_src = dnnl::memory(user_src_md, s->engine, s->src_data.data());
    s->user_dst = dnnl::memory(user_dst_md, s->engine, s->dst_data.data());
    dnnl::memory user_wei(user_wei_md, s->engine, s->weights_data.data());
    auto place = [&](dnnl::memory user, const dnnl::memory::desc& want) {
      if (want == user.get_desc()) return user;
      dnnl::memory m(want, s->engine);
      dnnl::reorder(user, m).execute(s->stream, user, m);
      return m;
    };
    s->weights = place(user_wei, pd.weights_desc());
    if (w.bias) s->bias = dnnl::memory(bias_md, s->engine, s->bias_data.data());
    if (w.residual) {
      s->residual_data = std::move(residual_data);
      s->residual =
          place(dnnl::memory(user_dst_md, s->engine, s->residual_data.data()), pd.dst_desc());
    }
    s->src = place(s->user_src, pd.src_desc());
    s->dst = pd.dst_desc() == user_dst_md ? s->user_dst : dnnl::memory(pd.dst_desc(), s->engine);
    s->stream.wait();
    if (pd.src_desc() != user_src_md) s->src_in = dnnl::reorder(s->user_src, s->src);
    if (pd.dst_desc() != user_dst_md) s->dst_out = dnnl::reorder(s->dst, s->user_dst);
    if (s->src_in || s->dst_out || pd.weights_desc() != user_wei_md) {
      s->impl += " (blocked layouts)";
    }
  });
  KILN_RETURN_IF_ERROR(st);
  return std::unique_ptr<DnnlConv2d>(new DnnlConv2d(std::move(s)));
}

void DnnlConv2d::run() {
  State& s = *state_;
  set_omp_threads(s.threads);
  const bool plain_io = s.io == ConvIo::kPlainIo;
  if (plain_io && s.src_in) s.src_in->execute(s.stream, s.user_src, s.src);
  if (s.residual) {
    std::memcpy(s.dst.get_data_handle(), s.residual.get_data_handle(), s.dst.get_desc().get_size());
  }
  std::unordered_map<int, dnnl::memory> args = {
      {DNNL_ARG_SRC, s.src}, {DNNL_ARG_WEIGHTS, s.weights}, {DNNL_ARG_DST, s.dst}};
  if (s.bias) args.emplace(DNNL_ARG_BIAS, s.bias);
  s.prim.execute(s.stream, args);
  if (plain_io && s.dst_out) s.dst_out->execute(s.stream, s.dst, s.user_dst);
  s.stream.wait();
}

void DnnlConv2d::read_output(float* out) {
  State& s = *state_;
  if (s.dst_out && s.io == ConvIo::kBlocked) {
    s.dst_out->execute(s.stream, s.dst, s.user_dst);
    s.stream.wait();
  }
  std::memcpy(out, s.dst_data.data(), s.dst_data.size() * 4);
}

const std::string& DnnlConv2d::name() const { return state_->name; }
const std::string& DnnlConv2d::implementation() const { return state_->impl; }

}  // namespace kiln::baseline
