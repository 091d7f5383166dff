#include "device_agent/worker.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>

#include "compiler_core/build.h"
#include "compiler_core/codegen/llvm/host.h"
#include "compiler_core/measure.h"
#include "compiler_core/runtime/thread_pool.h"
#include "compiler_core/schedule/templates.h"
#include "compiler_core/support/log.h"
#include "device_agent/task_adapter.h"
#include "kiln/v1/kiln.pb.h"
#include "proto/kiln/measure_options.h"

namespace kiln::agent {
namespace {

namespace pb = kiln::v1;
using Clock = std::chrono::steady_clock;

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Writes all of `data`; false when the other end is gone.
bool write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= size_t(n);
  }
  return true;
}

bool write_frame(int fd, const std::string& bytes) {
  uint32_t size = uint32_t(bytes.size());
  char header[4] = {char(size & 0xff), char((size >> 8) & 0xff), char((size >> 16) & 0xff),
                    char((size >> 24) & 0xff)};
  return write_all(fd, header, 4) && write_all(fd, bytes.data(), bytes.size());
}

enum class ReadOutcome { kOk, kClosed, kTimeout };

/// Reads exactly `size` bytes before `deadline` (none: wait forever).
ReadOutcome read_all(int fd, char* data, size_t size, std::optional<Clock::time_point> deadline) {
  while (size > 0) {
    if (deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now());
      if (left.count() <= 0) return ReadOutcome::kTimeout;
      pollfd p{fd, POLLIN, 0};
      int ready = ::poll(&p, 1, int(std::min<int64_t>(left.count(), 1 << 30)));
      if (ready < 0 && errno == EINTR) continue;
      if (ready == 0) return ReadOutcome::kTimeout;
    }
    ssize_t n = ::read(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ReadOutcome::kClosed;
    data += n;
    size -= size_t(n);
  }
  return ReadOutcome::kOk;
}

ReadOutcome read_frame(int fd, std::string& bytes, std::optional<Clock::time_point> deadline) {
  unsigned char header[4];
  ReadOutcome r = read_all(fd, reinterpret_cast<char*>(header), 4, deadline);
  if (r != ReadOutcome::kOk) return r;
  uint32_t size = uint32_t(header[0]) | uint32_t(header[1]) << 8 | uint32_t(header[2]) << 16 |
                  uint32_t(header[3]) << 24;
  bytes.resize(size);
  return read_all(fd, bytes.data(), size, deadline);
}

pb::MeasureResult failure(const pb::MeasureTask& task, pb::MeasureErrorCode code,
                          std::string message) {
  pb::MeasureResult r;
  r.set_task_id(task.task_id());
  r.set_error_code(code);
  r.set_error_message(std::move(message));
  r.set_measured_at_unix_ms(unix_ms());
  return r;
}

}  // namespace

Worker::Worker(std::vector<std::string> command, WorkerLimits limits)
    : command_(std::move(command)), limits_(limits) {}

Worker::~Worker() { kill_worker(); }

Status Worker::spawn() {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
    return Status(StatusCode::kResourceExhausted,
                  std::string("cannot make pipes for a worker: ") + std::strerror(errno));
  }
  std::vector<char*> argv;
  for (std::string& a : command_) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int64_t memory = kAddressSpaceLimitApplies ? limits_.memory_bytes : 0;
  pid_t pid = fork();
  if (pid < 0) {
    return Status(StatusCode::kResourceExhausted,
                  std::string("cannot start a worker: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // The child: only async-signal-safe calls until exec. A server blocks its stop signals in
    // its threads (serve_until_signal); the worker starts with none blocked.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(in[0], 0);
    dup2(out[1], 1);
    if (memory > 0) {
      rlimit limit{rlim_t(memory), rlim_t(memory)};
      setrlimit(RLIMIT_AS, &limit);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  pid_ = pid;
  to_worker_ = in[1];
  from_worker_ = out[0];
  return Status::ok();
}

void Worker::kill_worker() {
  if (pid_ < 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  close(to_worker_);
  close(from_worker_);
  pid_ = -1;
}

pb::MeasureResult Worker::measure(const pb::MeasureTask& task) {
  // Checked before the timeout below becomes a duration: 1e300 seconds would overflow it.
  if (Status valid = validate_measure_options(task.options()); !valid.is_ok()) {
    return failure(task, pb::MEASURE_ERROR_CODE_INVALID_CONFIG, valid.message());
  }
  if (pid_ < 0) {
    Status spawned = spawn();
    if (!spawned.is_ok()) {
      return failure(task, pb::MEASURE_ERROR_CODE_RUNTIME_ERROR, spawned.message());
    }
  }
  const auto timeout = task.options().timeout_s() > 0
                           ? std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(task.options().timeout_s()))
                           : Clock::duration(limits_.default_timeout);
  std::string bytes;
  ReadOutcome got = ReadOutcome::kClosed;
  if (write_frame(to_worker_, task.SerializeAsString())) {
    got = read_frame(from_worker_, bytes, Clock::now() + timeout);
  }
  if (got == ReadOutcome::kOk) {
    pb::MeasureResult result;
    if (result.ParseFromString(bytes) && result.task_id() == task.task_id()) return result;
    got = ReadOutcome::kClosed;  // garbage from the worker: treat it as a crash
  }
  if (got == ReadOutcome::kTimeout) {
    kill_worker();
    logger("agent")->warn("task={} timed out after {:.1f} s; worker killed", task.task_id(),
                          std::chrono::duration<double>(timeout).count());
    return failure(task, pb::MEASURE_ERROR_CODE_TIMEOUT,
                   "building, checking and timing took longer than " +
                       std::to_string(std::chrono::duration<double>(timeout).count()) + " s");
  }
  // The worker died: reap it and say how.
  int status = 0;
  ::kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
  close(to_worker_);
  close(from_worker_);
  pid_ = -1;
  std::string how = WIFSIGNALED(status) ? std::string("signal ") + strsignal(WTERMSIG(status))
                                        : "exit status " + std::to_string(WEXITSTATUS(status));
  logger("agent")->warn("task={} crashed the worker ({})", task.task_id(), how);
  return failure(task, pb::MEASURE_ERROR_CODE_RUNTIME_ERROR,
                 "the kernel's worker process died (" + how + ")");
}

int worker_main(const std::function<void(const pb::MeasureTask&)>& before_each) {
  // Inputs and references are kept per workload: a job sends many configs of one workload.
  std::map<std::string, std::unique_ptr<core::MeasureHarness>> harnesses;
  std::string bytes;
  while (read_frame(0, bytes, std::nullopt) == ReadOutcome::kOk) {
    pb::MeasureTask task;
    pb::MeasureResult result;
    if (!task.ParseFromString(bytes)) {
      result = failure(task, pb::MEASURE_ERROR_CODE_INVALID_CONFIG, "unreadable task");
    } else {
      if (before_each) before_each(task);
      result = run_task(task, harnesses);
    }
    if (!write_frame(1, result.SerializeAsString())) return 1;
  }
  return 0;
}

}  // namespace kiln::agent
