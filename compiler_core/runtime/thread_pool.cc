#include "compiler_core/runtime/thread_pool.h"

#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "compiler_core/support/check.h"

namespace kiln::core {
namespace {

/// More threads than this is a bug in the caller (the worker count is packed in 16 bits).
constexpr int kMaxThreads = 1024;

/// How long an idle worker spins on the job word before it parks on the condition variable.
/// Kernels are often run back to back (the timer's loop, a network's layers); spinning for a
/// moment saves the futex wake-up (tens of microseconds) on the next call.
constexpr auto kSpinTime = std::chrono::microseconds(100);

/// Chunks per participating thread: enough to even out uneven bodies, few enough that the
/// atomic claim costs nothing next to the work.
constexpr int64_t kChunksPerThread = 4;

std::atomic<int> g_num_threads{1};

/// True on pool workers and on a caller while it runs its share: a parallel_for from inside a
/// body runs serially on that thread.
thread_local bool t_inside_parallel = false;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

/// The CPU sets of the places an OpenMP runtime in this process binds its threads to, in order,
/// when it binds threads at all (OMP_PROC_BIND or OMP_PLACES set); empty otherwise, and where no
/// OpenMP runtime is loaded. The runtime is looked up, not linked: kiln needs none.
std::vector<cpu_set_t> openmp_places() {
  using IntFn = int (*)();
  using NumProcsFn = int (*)(int);
  using ProcIdsFn = void (*)(int, int*);
  void* library = RTLD_DEFAULT;
  if (dlsym(library, "omp_get_num_places") == nullptr) {
    // Loaded by a library with RTLD_LOCAL (a Python extension's dependencies), it is not in
    // the global scope; a handle to it still finds its functions.
    library = nullptr;
    for (const char* name : {"libgomp.so.1", "libomp.so.5", "libomp.so", "libiomp5.so"}) {
      if ((library = dlopen(name, RTLD_LAZY | RTLD_NOLOAD)) != nullptr) break;
    }
    if (library == nullptr) return {};
  }
  auto proc_bind = reinterpret_cast<IntFn>(dlsym(library, "omp_get_proc_bind"));
  auto num_places = reinterpret_cast<IntFn>(dlsym(library, "omp_get_num_places"));
  auto place_num_procs = reinterpret_cast<NumProcsFn>(dlsym(library, "omp_get_place_num_procs"));
  auto place_proc_ids = reinterpret_cast<ProcIdsFn>(dlsym(library, "omp_get_place_proc_ids"));
  std::vector<cpu_set_t> places;
  if (proc_bind && num_places && place_num_procs && place_proc_ids && proc_bind() != 0) {
    for (int place = 0; place < num_places(); ++place) {
      std::vector<int> ids(static_cast<size_t>(std::max(place_num_procs(place), 0)));
      if (!ids.empty()) place_proc_ids(place, ids.data());
      cpu_set_t set;
      CPU_ZERO(&set);
      for (int id : ids) {
        if (id >= 0 && id < CPU_SETSIZE) CPU_SET(id, &set);
      }
      places.push_back(set);
    }
  }
  if (library != RTLD_DEFAULT) dlclose(library);
  return places;
}

/// An OpenMP runtime that binds threads binds the thread that loads it (the main thread, as a
/// rule) to its first place, and threads made from it inherit that binding: kiln's workers
/// would all share the caller's CPUs, and "2 threads" would run on one core (`kiln run` with
/// OMP_PROC_BIND=true: 108 GFLOP/s against 240 on a 3x3 convolution). Where the thread that
/// makes workers is bound to one of the OpenMP places, the new workers `first`.. of `workers`
/// are bound as OpenMP binds its own team (close): worker i to the (i + 1)-th place after the
/// caller's, round the places. Elsewhere they keep the binding they inherit.
void place_like_openmp(std::vector<std::thread>& workers, size_t first) {
  cpu_set_t caller;
  if (sched_getaffinity(0, sizeof(caller), &caller) != 0) return;
  const std::vector<cpu_set_t> places = openmp_places();
  size_t own = places.size();
  for (size_t p = 0; p < places.size(); ++p) {
    if (CPU_EQUAL(&places[p], &caller)) own = p;
  }
  if (places.size() < 2 || own == places.size()) return;
  for (size_t i = first; i < workers.size(); ++i) {
    const cpu_set_t& place = places[(own + 1 + i) % places.size()];
    pthread_setaffinity_np(workers[i].native_handle(), sizeof(place), &place);
  }
}

/// One parallel_for call: the pool's single job slot, reused by every call (calls are
/// serialised by the dispatch mutex). Its chunks are split into one contiguous range per
/// participant (the caller first, then worker 0, 1, ...): each takes its own range's chunks in
/// order, then takes what is left of the others' ranges. Run after run, a participant computes
/// the same part of the iteration space, so a kernel called back to back (the timer's loop, a
/// layer reading what the previous one wrote) finds its part of the data in its own core's
/// cache, while a participant that the OS has not scheduled has its range taken by the others.
struct Job {
  /// A participant's range of chunks, alone on its cache line: [next, end).
  struct alignas(64) Range {
    std::atomic<int64_t> next{0};
    int64_t end = 0;
  };

  void (*body)(int64_t, void*) = nullptr;
  void* env = nullptr;
  int64_t n = 0;
  int64_t num_chunks = 0;
  int participants = 1;
  std::unique_ptr<Range[]> ranges = std::make_unique<Range[]>(kMaxThreads);

  /// Splits the chunks among `count` participants (before the job is published).
  void split(int count) {
    participants = count;
    for (int p = 0; p < count; ++p) {
      ranges[p].next.store(num_chunks * p / count, std::memory_order_relaxed);
      ranges[p].end = num_chunks * (p + 1) / count;
    }
  }

  void run_chunks(int participant) {
    for (int k = 0; k < participants; ++k) {
      Range& range = ranges[(participant + k) % participants];
      for (;;) {
        const int64_t chunk = range.next.fetch_add(1, std::memory_order_relaxed);
        if (chunk >= range.end) break;
        const int64_t begin = n * chunk / num_chunks;
        const int64_t end = n * (chunk + 1) / num_chunks;
        for (int64_t i = begin; i < end; ++i) body(i, env);
      }
    }
  }
};

/// A persistent pool. Workers wait for a new value of `state_`, which packs a generation
/// (upper 48 bits) with the number of workers that may take part (lower 16 bits).
///
/// Workers join a job through `join_` (generation, a closed bit, and the count of workers
/// inside the job). The caller runs chunks itself and, when none are left, closes the job and
/// waits only for the workers that joined: a worker that the OS has not scheduled yet (the
/// other core busy with something else) costs nothing, instead of a whole time slice.
class Pool {
 public:
  void parallel_for(int64_t n, void (*body)(int64_t, void*), void* env, int threads) {
    std::lock_guard<std::mutex> dispatch(dispatch_mutex_);
    ensure_workers(threads - 1);

    job_.body = body;
    job_.env = env;
    job_.n = n;
    job_.num_chunks = std::min<int64_t>(n, threads * kChunksPerThread);
    const int helpers = static_cast<int>(std::min<int64_t>(threads - 1, job_.num_chunks - 1));
    job_.split(helpers + 1);
    {
      std::lock_guard<std::mutex> lock(wake_mutex_);
      generation_ += 1;
      join_.store(generation_ << kJoinGenerationShift, std::memory_order_release);
      state_.store((generation_ << 16) | static_cast<uint64_t>(helpers), std::memory_order_release);
    }
    if (helpers > 0) wake_cv_.notify_all();

    // Joined workers read the job until they leave it, so wait for them even if a C++ body
    // throws here (generated kernels never do).
    struct WaitOnExit {
      Pool* pool;
      ~WaitOnExit() {
        t_inside_parallel = false;
        pool->close_and_wait();
      }
    } wait_on_exit{this};
    t_inside_parallel = true;
    job_.run_chunks(0);
  }

 private:
  static constexpr int kJoinGenerationShift = 20;
  static constexpr uint64_t kClosed = uint64_t{1} << 19;
  static constexpr uint64_t kCountMask = kClosed - 1;

  void ensure_workers(int count) {
    const size_t first = workers_.size();
    while (static_cast<int>(workers_.size()) < count) {
      // The worker starts from the current generation, read here rather than in the new
      // thread: a thread that started late would otherwise take the next job's generation as
      // already seen and miss it.
      const int id = static_cast<int>(workers_.size());
      const uint64_t seen = generation_;
      workers_.emplace_back([this, id, seen] { worker_loop(id, seen); });
    }
    if (workers_.size() > first) place_like_openmp(workers_, first);
  }

  void close_and_wait() {
    join_.fetch_or(kClosed, std::memory_order_acq_rel);
    const auto spin_until = std::chrono::steady_clock::now() + kSpinTime;
    for (int i = 0; (join_.load(std::memory_order_acquire) & kCountMask) != 0; ++i) {
      cpu_relax();
      if ((i & 63) == 63 && std::chrono::steady_clock::now() > spin_until) break;
    }
    if ((join_.load(std::memory_order_acquire) & kCountMask) == 0) return;
    std::unique_lock<std::mutex> lock(done_mutex_);
    done_cv_.wait(lock, [&] { return (join_.load(std::memory_order_acquire) & kCountMask) == 0; });
  }

  /// Joins the job of generation `generation` unless it is closed or already replaced.
  bool join(uint64_t generation) {
    uint64_t word = join_.load(std::memory_order_acquire);
    for (;;) {
      if ((word >> kJoinGenerationShift) != generation || (word & kClosed)) return false;
      if (join_.compare_exchange_weak(word, word + 1, std::memory_order_acq_rel)) return true;
    }
  }

  /// Waits for a state whose generation differs from `seen`; spins first, then parks.
  uint64_t wait_for_state(uint64_t seen) {
    const auto spin_until = std::chrono::steady_clock::now() + kSpinTime;
    for (int i = 0;; ++i) {
      const uint64_t state = state_.load(std::memory_order_acquire);
      if ((state >> 16) != seen) return state;
      cpu_relax();
      if ((i & 63) == 63 && std::chrono::steady_clock::now() > spin_until) break;
    }
    std::unique_lock<std::mutex> lock(wake_mutex_);
    uint64_t state = 0;
    wake_cv_.wait(lock, [&] {
      state = state_.load(std::memory_order_acquire);
      return (state >> 16) != seen;
    });
    return state;
  }

  void worker_loop(int id, uint64_t seen) {
    t_inside_parallel = true;
    for (;;) {
      const uint64_t state = wait_for_state(seen);
      seen = state >> 16;
      const int helpers = static_cast<int>(state & 0xffff);
      if (id >= helpers || !join(seen)) continue;
      job_.run_chunks(id + 1);
      const uint64_t after = join_.fetch_sub(1, std::memory_order_acq_rel) - 1;
      if ((after & kCountMask) == 0 && (after & kClosed)) {
        // The caller may have parked; take the mutex so the notify cannot slip between its
        // check and its wait.
        { std::lock_guard<std::mutex> lock(done_mutex_); }
        done_cv_.notify_one();
      }
    }
  }

  std::mutex dispatch_mutex_;  ///< one job at a time; held by the caller for the whole call
  std::vector<std::thread> workers_;
  Job job_;
  uint64_t generation_ = 0;  ///< written under wake_mutex_ by the dispatching caller only
  std::atomic<uint64_t> state_{0};
  std::atomic<uint64_t> join_{0};
  std::mutex wake_mutex_;
  std::condition_variable wake_cv_;
  std::mutex done_mutex_;
  std::condition_variable done_cv_;
};

std::atomic<Pool*> g_pool{nullptr};
std::once_flag g_atfork_once;

/// The pool of this process. Never destroyed: workers park forever and die with the process,
/// so no static destructor can race a late parallel_for. After fork() the child has none of the
/// parent's workers (and maybe a locked mutex), so it forgets the parent's pool and builds its
/// own on first use.
Pool& pool() {
  std::call_once(g_atfork_once, [] {
    pthread_atfork(nullptr, nullptr, [] { g_pool.store(nullptr, std::memory_order_relaxed); });
  });
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p != nullptr) return *p;
  auto* fresh = new Pool();
  if (g_pool.compare_exchange_strong(p, fresh, std::memory_order_acq_rel)) return *fresh;
  delete fresh;  // another thread made one first; this one has no workers yet
  return *p;
}

}  // namespace

void set_num_threads(int threads) {
  KILN_CHECK(threads >= 1 && threads <= kMaxThreads)
      << "set_num_threads(" << threads << "): callers must validate the count to [1, "
      << kMaxThreads << "]";
  g_num_threads.store(threads, std::memory_order_relaxed);
}

int num_threads() { return g_num_threads.load(std::memory_order_relaxed); }

}  // namespace kiln::core

extern "C" int32_t kiln_parallel_for(int64_t n, void (*body)(int64_t index, void* env), void* env) {
  using kiln::core::t_inside_parallel;
  if (n <= 0) return 0;
  const int threads = kiln::core::num_threads();
  if (threads <= 1 || n == 1 || t_inside_parallel) {
    for (int64_t i = 0; i < n; ++i) body(i, env);
    return 0;
  }
  kiln::core::pool().parallel_for(n, body, env, threads);
  return 0;
}
