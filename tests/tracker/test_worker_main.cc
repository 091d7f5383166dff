// kiln_test_worker: kiln's measurement worker with a test-only behaviour for two workloads, so
// that the fleet tests see kernels that crash (matmul with M=13) and hang (M=17) without kiln
// itself ever building such a kernel.

#include <csignal>
#include <string>
#include <thread>

#include "device_agent/worker.h"
#include "kiln/v1/kiln.pb.h"

int main() {
  return kiln::agent::worker_main([](const kiln::v1::MeasureTask& task) {
    const std::string& w = task.workload().canonical();
    if (w.rfind("matmul:M=13,", 0) == 0) {
      // The default action, as for a kernel's bad access: a sanitizer build's own SEGV
      // handler would report and exit instead of dying by the signal.
      std::signal(SIGSEGV, SIG_DFL);
      std::raise(SIGSEGV);
    }
    if (w.rfind("matmul:M=17,", 0) == 0) {
      while (true) std::this_thread::sleep_for(std::chrono::seconds(1));
    }
  });
}
