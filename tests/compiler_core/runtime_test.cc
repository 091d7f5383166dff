#include <dlfcn.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "compiler_core/runtime/buffer.h"
#include "compiler_core/runtime/thread_pool.h"
#include "compiler_core/runtime/timer.h"
#include "compiler_core/runtime/workspace.h"

namespace kiln::core {
namespace {

// ---------------------------------------------------------------------------------------------
// Buffer

TEST(Buffer, AlignedAndZeroFilled) {
  for (const Shape& shape : {Shape{1}, Shape{3, 5}, Shape{7, 11, 13}, Shape{1000, 17}}) {
    Result<Buffer> b = Buffer::create(shape);
    ASSERT_TRUE(b.is_ok()) << b.status().to_string();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b->data()) % kBufferAlignment, 0u);
    EXPECT_EQ(b->size(), num_elements(shape));
    EXPECT_EQ(b->shape(), shape);
    EXPECT_TRUE(std::all_of(b->data(), b->data() + b->size(), [](float x) { return x == 0; }));
  }
}

TEST(Buffer, EmptyShapeStillHasAlignedStorage) {
  Result<Buffer> b = Buffer::create({0, 4});
  ASSERT_TRUE(b.is_ok());
  EXPECT_EQ(b->size(), 0);
  EXPECT_NE(b->data(), nullptr);
}

TEST(Buffer, AbsurdSizeIsResourceExhausted) {
  Result<Buffer> b = Buffer::create({int64_t{1} << 40, int64_t{1} << 40});
  ASSERT_FALSE(b.is_ok());
  EXPECT_EQ(b.status().code(), StatusCode::kResourceExhausted);
  Result<Buffer> negative = Buffer::create({-1});
  ASSERT_FALSE(negative.is_ok());
  EXPECT_EQ(negative.status().code(), StatusCode::kInvalidArgument);
}

TEST(Buffer, FillRandomIsUniformInMinusOneOne) {
  Result<Buffer> b = Buffer::create({100000});
  ASSERT_TRUE(b.is_ok());
  std::mt19937_64 rng(42);
  b->fill_random(rng);
  const float* p = b->data();
  const auto [lo, hi] = std::minmax_element(p, p + b->size());
  EXPECT_GE(*lo, -1.0f);
  EXPECT_LT(*hi, 1.0f);
  EXPECT_LT(*lo, -0.99f);
  EXPECT_GT(*hi, 0.99f);
  double sum = 0;
  for (int64_t i = 0; i < b->size(); ++i) sum += p[i];
  EXPECT_NEAR(sum / b->size(), 0.0, 0.02);

  // The same seed gives the same values.
  Result<Buffer> again = Buffer::create({100000});
  std::mt19937_64 rng2(42);
  again->fill_random(rng2);
  EXPECT_TRUE(std::equal(p, p + b->size(), again->data()));
}

// ---------------------------------------------------------------------------------------------
// Thread pool

/// Restores the pool's thread count when a test ends.
class ThreadPoolTest : public ::testing::Test {
 protected:
  void TearDown() override { set_num_threads(1); }
};

struct CountEnv {
  std::vector<std::atomic<int>>* hits;
};

void count_hit(int64_t i, void* env) {
  (*static_cast<CountEnv*>(env)->hits)[i].fetch_add(1, std::memory_order_relaxed);
}

TEST_F(ThreadPoolTest, CoversEveryIndexExactlyOnce) {
  for (int threads : {1, 2, 4}) {
    set_num_threads(threads);
    EXPECT_EQ(num_threads(), threads);
    for (int64_t n : {0, 1, 7, 1000}) {
      std::vector<std::atomic<int>> hits(n);
      CountEnv env{&hits};
      EXPECT_EQ(kiln_parallel_for(n, count_hit, &env), 0);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(hits[i].load(), 1) << "threads=" << threads << " n=" << n << " i=" << i;
      }
    }
  }
}

struct OwnerEnv {
  std::vector<std::thread::id>* owner;
};

void record_owner(int64_t i, void* env) {
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
  (*static_cast<OwnerEnv*>(env)->owner)[size_t(i)] = std::this_thread::get_id();
}

// Each participant runs its own contiguous range first (the caller the first half of 8
// chunks, the worker the second), so a kernel called again finds its part of the data in its
// core's cache. The worker may be late (a busy machine): then the caller takes its chunks, so
// this asks for the split in one call of ten. Chunks claimed in turn split that way almost
// never.
TEST_F(ThreadPoolTest, EachThreadRunsItsOwnRangeFirst) {
  set_num_threads(2);
  const int64_t n = 8;
  int split = 0;
  for (int call = 0; call < 10 && split == 0; ++call) {
    std::vector<std::thread::id> owner(n);
    OwnerEnv env{&owner};
    kiln_parallel_for(n, record_owner, &env);
    const std::thread::id caller = std::this_thread::get_id();
    bool halves = true;
    for (int64_t i = 0; i < n; ++i)
      halves = halves && ((owner[size_t(i)] == caller) == (i < n / 2));
    split += halves ? 1 : 0;
  }
  EXPECT_GE(split, 1);
}

TEST_F(ThreadPoolTest, NegativeCountRunsNothing) {
  set_num_threads(2);
  std::vector<std::atomic<int>> hits(1);
  CountEnv env{&hits};
  EXPECT_EQ(kiln_parallel_for(-5, count_hit, &env), 0);
  EXPECT_EQ(hits[0].load(), 0);
}

struct NestedEnv {
  int64_t inner;
  std::vector<std::atomic<int>>* hits;
};

struct InnerEnv {
  int64_t outer_index;
  int64_t inner;
  std::vector<std::atomic<int>>* hits;
};

void inner_body(int64_t j, void* env) {
  auto* e = static_cast<InnerEnv*>(env);
  (*e->hits)[e->outer_index * e->inner + j].fetch_add(1, std::memory_order_relaxed);
}

void outer_body(int64_t i, void* env) {
  auto* e = static_cast<NestedEnv*>(env);
  InnerEnv inner{i, e->inner, e->hits};
  kiln_parallel_for(e->inner, inner_body, &inner);
}

TEST_F(ThreadPoolTest, NestedCallsCoverEveryPairOnce) {
  for (int threads : {1, 2, 4}) {
    set_num_threads(threads);
    for (int64_t outer : {1, 7, 50}) {
      const int64_t inner = 13;
      std::vector<std::atomic<int>> hits(outer * inner);
      NestedEnv env{inner, &hits};
      kiln_parallel_for(outer, outer_body, &env);
      for (int64_t i = 0; i < outer * inner; ++i) {
        ASSERT_EQ(hits[i].load(), 1) << "threads=" << threads << " outer=" << outer;
      }
    }
  }
}

struct ThreadIdEnv {
  std::vector<std::thread::id>* ids;
};

void record_thread(int64_t i, void* env) {
  (*static_cast<ThreadIdEnv*>(env)->ids)[i] = std::this_thread::get_id();
  // Long enough that one thread cannot claim every chunk before the others wake.
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
  while (std::chrono::steady_clock::now() < until) {
  }
}

TEST_F(ThreadPoolTest, CallerTakesPartAndWorkersHelp) {
  set_num_threads(2);
  std::vector<std::thread::id> ids(64);
  ThreadIdEnv env{&ids};
  kiln_parallel_for(64, record_thread, &env);
  const auto self = std::this_thread::get_id();
  EXPECT_TRUE(std::any_of(ids.begin(), ids.end(), [&](auto id) { return id == self; }));
  EXPECT_TRUE(std::any_of(ids.begin(), ids.end(), [&](auto id) { return id != self; }));
}

TEST_F(ThreadPoolTest, ManyBackToBackCallsAndConcurrentCallers) {
  set_num_threads(4);
  auto hammer = [] {
    for (int round = 0; round < 300; ++round) {
      const int64_t n = 1 + round % 37;
      std::vector<std::atomic<int>> hits(n);
      CountEnv env{&hits};
      kiln_parallel_for(n, count_hit, &env);
      for (int64_t i = 0; i < n; ++i) {
        if (hits[i].load() != 1) return false;
      }
    }
    return true;
  };
  bool ok_a = false, ok_b = false;
  std::thread a([&] { ok_a = hammer(); });
  std::thread b([&] { ok_b = hammer(); });
  a.join();
  b.join();
  EXPECT_TRUE(ok_a);
  EXPECT_TRUE(ok_b);
}

TEST_F(ThreadPoolTest, WorksInAForkedChild) {
  // Warm the pool up in the parent so that the child inherits a pool whose workers it lacks.
  set_num_threads(2);
  std::vector<std::atomic<int>> warm(100);
  CountEnv warm_env{&warm};
  kiln_parallel_for(100, count_hit, &warm_env);

  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::vector<std::atomic<int>> hits(100);
    CountEnv env{&hits};
    kiln_parallel_for(100, count_hit, &env);
    for (auto& h : hits) {
      if (h.load() != 1) _exit(1);
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

/// Where the calling thread's CPUs are recorded by the first pool worker that runs a chunk.
struct WorkerCpusEnv {
  pid_t main_tid;
  std::atomic<bool> recorded{false};
  cpu_set_t cpus;
};

void record_worker_cpus(int64_t, void* p) {
  auto* env = static_cast<WorkerCpusEnv*>(p);
  std::this_thread::sleep_for(std::chrono::microseconds(200));  // time for a worker to join
  if (gettid() == env->main_tid || env->recorded.load()) return;
  cpu_set_t cpus;
  if (sched_getaffinity(0, sizeof(cpus), &cpus) != 0) return;
  bool expected = false;
  if (env->recorded.compare_exchange_strong(expected, true)) env->cpus = cpus;
}

// An OpenMP runtime that binds threads (OMP_PROC_BIND=true) binds the thread that loads it to
// its first place, and threads made from that thread inherit the binding. The pool's workers
// are bound to the next places instead, as OpenMP binds its own team, so that two threads run on
// two CPUs, and the caller keeps its binding (bench's main thread runs oneDNN's first thread).
// libgomp is loaded as a Python extension's dependency would be (RTLD_LOCAL), out of the global
// scope.
TEST(ThreadPlacement, WorkersOfAnOpenMpBoundThreadRunOnTheNextPlace) {
  cpu_set_t all;
  ASSERT_EQ(sched_getaffinity(0, sizeof(all), &all), 0);
  if (CPU_COUNT(&all) < 2) GTEST_SKIP() << "one CPU: there is no other place";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The child forgets the parent's pool and makes its own after libgomp has bound it.
    setenv("OMP_PROC_BIND", "true", 1);
    unsetenv("OMP_PLACES");
    if (dlopen("libgomp.so.1", RTLD_NOW | RTLD_LOCAL) == nullptr) _exit(3);
    cpu_set_t main_cpus;
    if (sched_getaffinity(0, sizeof(main_cpus), &main_cpus) != 0 || CPU_COUNT(&main_cpus) != 1) {
      _exit(4);
    }
    set_num_threads(2);
    WorkerCpusEnv env{gettid()};
    for (int attempt = 0; attempt < 100 && !env.recorded.load(); ++attempt) {
      kiln_parallel_for(16, record_worker_cpus, &env);
    }
    if (!env.recorded.load()) _exit(5);
    cpu_set_t main_after;
    if (sched_getaffinity(0, sizeof(main_after), &main_after) != 0 ||
        !CPU_EQUAL(&main_after, &main_cpus)) {
      _exit(6);
    }
    if (CPU_COUNT(&env.cpus) != 1 || CPU_EQUAL(&env.cpus, &main_cpus)) _exit(1);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  const int code = WEXITSTATUS(status);
  EXPECT_NE(code, 3) << "libgomp.so.1 could not be loaded (libgomp1 comes with libdnnl-dev)";
  EXPECT_NE(code, 4) << "libgomp did not bind the thread that loaded it to one CPU";
  EXPECT_NE(code, 5) << "no worker ran a chunk";
  EXPECT_NE(code, 6) << "the caller lost the binding libgomp gave it";
  EXPECT_EQ(code, 0) << "the worker runs on the caller's CPU, or on more than one";
}

// ---------------------------------------------------------------------------------------------
// Timer

TEST(Timer, ReturnsRepeatSamplesOfNumberRuns) {
  int calls = 0;
  TimingOptions options;
  options.number = 3;
  options.repeat = 4;
  options.warmup = 2;
  TimingResult result = time_function([&] { ++calls; }, options);
  EXPECT_EQ(result.seconds.size(), 4u);
  EXPECT_EQ(result.number, 3);
  EXPECT_EQ(calls, 2 + 3 * 4);
  for (double s : result.seconds) EXPECT_GE(s, 0);
}

TEST(Timer, NumberGrowsUntilASampleLastsMinRepeatMs) {
  auto spin = [] {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
    while (std::chrono::steady_clock::now() < until) {
    }
  };
  TimingOptions options;
  options.number = 1;
  options.repeat = 3;
  options.min_repeat_ms = 5;
  TimingResult result = time_function(spin, options);
  EXPECT_EQ(result.seconds.size(), 3u);
  // One 50 us run cannot fill 5 ms, so number must have grown until a sample did.
  EXPECT_GT(result.number, 1);
  EXPECT_GE(result.number * result.seconds.back(), 5e-3 * 0.999);
  for (double s : result.seconds) EXPECT_GE(s, 50e-6);
}

// One sample, no warm-up, each run after a cache flush.
TimingOptions one_flushed_sample() {
  TimingOptions options;
  options.repeat = 1;
  options.warmup = 0;
  options.flush_cache = true;
  return options;
}

// With flush_cache, every run follows a flush of a buffer larger than the cache, and the
// flush is not part of the run's time: 8 runs of nothing take 8 flushes of 64 MiB (at least
// 0.5 ms each, even at 128 GB/s), while each run's time stays that of nothing.
TEST(Timer, CacheFlushPrecedesEveryRunUntimed) {
  TimingOptions options = one_flushed_sample();
  options.number = 8;
  int calls = 0;
  const auto start = std::chrono::steady_clock::now();
  TimingResult result = time_function([&] { ++calls; }, options);
  const double elapsed_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(calls, 8);
  ASSERT_EQ(result.seconds.size(), 1u);
  EXPECT_GE(elapsed_ms, 8 * 0.5);
  EXPECT_LT(result.seconds[0], 0.1e-3);
}

// With flushes, min_repeat_ms bounds a sample's wall time, flushes included: a function of
// nothing fills 20 ms with a few dozen flushes of 64 MiB, not with the millions of runs its
// own time would take.
TEST(Timer, CacheFlushCountsTowardsMinRepeatMs) {
  TimingOptions options = one_flushed_sample();
  options.min_repeat_ms = 20;
  TimingResult result = time_function([] {}, options);
  EXPECT_LE(result.number, 20 / 0.5 + 2);
}

TEST(Timer, CacheFlushAndCooldownStillTimeEveryRun) {
  int calls = 0;
  TimingOptions options;
  options.number = 2;
  options.repeat = 2;
  options.warmup = 0;
  options.cooldown_ms = 1;
  options.flush_cache = true;
  TimingResult result = time_function([&] { ++calls; }, options);
  EXPECT_EQ(result.seconds.size(), 2u);
  EXPECT_EQ(calls, 4);
}

// time_interleaved pauses cooldown_ms before every sample, the first round's too, so that the
// threads the function timed before left spinning are parked when the next sample starts.
TEST(Timer, InterleavedSamplesEachFollowACooldown) {
  TimingOptions options;
  options.number = 1;
  options.repeat = 3;
  options.warmup = 0;
  options.cooldown_ms = 20;
  const std::vector<std::function<void()>> fns = {[] {}, [] {}};
  const auto start = std::chrono::steady_clock::now();
  const std::vector<TimingResult> results = time_interleaved(fns, options);
  const double elapsed_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].seconds.size(), 3u);
  EXPECT_EQ(results[1].seconds.size(), 3u);
  EXPECT_GE(elapsed_ms, 3 * 2 * options.cooldown_ms);
}

TEST(Timer, NonsenseCountsBecomeOne) {
  int calls = 0;
  TimingOptions options;
  options.number = 0;
  options.repeat = -3;
  options.warmup = 0;
  TimingResult result = time_function([&] { ++calls; }, options);
  EXPECT_EQ(result.seconds.size(), 1u);
  EXPECT_EQ(result.number, 1);
  EXPECT_EQ(calls, 1);
}

TEST(TimingResult, MedianAndMin) {
  TimingResult odd;
  odd.seconds = {3, 1, 2};
  EXPECT_DOUBLE_EQ(odd.median(), 2);
  EXPECT_DOUBLE_EQ(odd.min(), 1);
  TimingResult even;
  even.seconds = {4, 1, 3, 2};
  EXPECT_DOUBLE_EQ(even.median(), 2.5);
  EXPECT_DOUBLE_EQ(even.min(), 1);
  TimingResult empty;
  EXPECT_EQ(empty.median(), 0);
  EXPECT_EQ(empty.min(), 0);
}

// ---------------------------------------------------------------------------------------------
// Workspace

// A buffer freed is handed out again to the next request it can hold, on the same thread, so a
// loop that allocates on every iteration allocates once; nested buffers are distinct.
void reuses_what_the_thread_freed() {
  void* outer = kiln_workspace_alloc(200 << 10);
  void* inner = kiln_workspace_alloc(100 << 10);
  ASSERT_NE(outer, nullptr);
  ASSERT_NE(inner, nullptr);
  EXPECT_NE(outer, inner);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(outer) % 64, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(inner) % 64, 0u);
  static_cast<char*>(outer)[(200 << 10) - 1] = 1;  // the whole size is usable
  static_cast<char*>(inner)[(100 << 10) - 1] = 1;
  const int64_t kept = workspace_cached_bytes();
  EXPECT_GE(kept, int64_t{300} << 10);
  kiln_workspace_free(inner);
  kiln_workspace_free(outer);
  for (int i = 0; i < 100; ++i) {
    void* a = kiln_workspace_alloc(200 << 10);
    void* b = kiln_workspace_alloc(100 << 10);
    EXPECT_EQ(a, outer);
    EXPECT_EQ(b, inner);
    kiln_workspace_free(b);
    kiln_workspace_free(a);
  }
  EXPECT_EQ(workspace_cached_bytes(), kept) << "nothing allocated in the loop";
  // A request no free block holds replaces the free blocks that are too small.
  void* larger = kiln_workspace_alloc(400 << 10);
  static_cast<char*>(larger)[(400 << 10) - 1] = 1;
  EXPECT_EQ(workspace_cached_bytes(), int64_t{400} << 10);
  kiln_workspace_free(larger);
  // Each thread has its own blocks.
  std::thread other([&] {
    void* theirs = kiln_workspace_alloc(400 << 10);
    EXPECT_NE(theirs, larger);
    kiln_workspace_free(theirs);
  });
  other.join();
}

TEST(Workspace, ReusesWhatTheThreadFreed) {
  std::thread fresh(reuses_what_the_thread_freed);  // a thread whose workspace is empty
  fresh.join();
}

// Blocks beyond 16 MiB go back to the system when freed.
TEST(Workspace, GivesBackVeryLargeBlocks) {
  std::thread fresh([] {
    void* big = kiln_workspace_alloc(int64_t{32} << 20);
    ASSERT_NE(big, nullptr);
    EXPECT_GE(workspace_cached_bytes(), int64_t{32} << 20);
    kiln_workspace_free(big);
    EXPECT_EQ(workspace_cached_bytes(), 0);
  });
  fresh.join();
}

}  // namespace
}  // namespace kiln::core
