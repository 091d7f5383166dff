// kiln_db_writer: a helper process for the tuning log's multi-process tests
// (db_process_test.cc). It writes or reads one log the way kiln's processes do.
//
//   kiln_db_writer write DB WRITER_ID BATCHES BATCH_SIZE
//       appends BATCHES batches (0: until killed) of BATCH_SIZE records each, one transaction a
//       batch; every record of batch B carries device "batch-WRITER_ID-B".
//   kiln_db_writer read DB EXPECTED_RECORDS BATCH_SIZE DEADLINE_MS
//       reads the log over and over until it holds EXPECTED_RECORDS records, checking that the
//       count never shrinks and is always a whole number of batches (a batch is seen entirely or
//       not at all), and that best queries answer meanwhile.
//
// Exit codes: 0 done, 1 a tuning-log error (printed), 2 bad arguments, 3 a broken invariant,
// 4 deadline passed.

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "compiler_core/db/record.h"
#include "compiler_core/db/tuning_log.h"
#include "compiler_core/te/workload.h"

namespace {

using kiln::core::TuningLog;
using kiln::core::TuningRecord;

constexpr const char* kWorkload = "matmul:M=16,N=16,K=16";
const kiln::core::TargetKey kTarget{"cuda -arch=sm_80", ""};

int fail(const kiln::Status& status) {
  std::cerr << "kiln_db_writer: " << status.to_string() << "\n";
  return 1;
}

int write(const std::filesystem::path& db, int64_t writer, int64_t batches, int64_t batch_size) {
  kiln::Result<TuningLog> log = TuningLog::open(db);
  if (!log) return fail(log.status());
  for (int64_t batch = 0; batches == 0 || batch < batches; ++batch) {
    std::vector<TuningRecord> records(static_cast<size_t>(batch_size));
    for (int64_t i = 0; i < batch_size; ++i) {
      TuningRecord& record = records[static_cast<size_t>(i)];
      record.workload = kWorkload;
      record.target = kTarget;
      record.config_index = writer * 1000000 + batch * 1000 + i;
      record.config_knobs = "{\"i\":" + std::to_string(i) + "}";
      record.costs = {0.001 * double(i % 17 + 1), 0.001 * double(i % 13 + 1)};
      record.agent = "writer-" + std::to_string(writer);
      record.device = "batch-" + std::to_string(writer) + "-" + std::to_string(batch);
    }
    kiln::Status status = log->append(records);
    if (!status.is_ok()) return fail(status);
  }
  return 0;
}

int read(const std::filesystem::path& db, int64_t expected, int64_t batch_size,
         int64_t deadline_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(deadline_ms);
  const kiln::core::Workload workload = *kiln::core::parse_workload(kWorkload);
  int64_t seen = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    std::error_code error;
    if (!std::filesystem::exists(db, error)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      continue;
    }
    kiln::Result<TuningLog> log = TuningLog::open(db, {.read_only = true});
    if (!log) return fail(log.status());
    kiln::Result<kiln::core::TuningLogStats> stats = log->stats();
    if (!stats) return fail(stats.status());
    kiln::Result<std::vector<TuningRecord>> best = log->best(workload, kTarget, 5);
    if (!best) return fail(best.status());
    if (stats->records % batch_size != 0 || stats->records < seen) {
      std::cerr << "kiln_db_writer: saw " << stats->records << " records after " << seen
                << "; batches hold " << batch_size << "\n";
      return 3;
    }
    if (stats->records > 0 && best->empty()) {
      std::cerr << "kiln_db_writer: no best record among " << stats->records << "\n";
      return 3;
    }
    seen = stats->records;
    if (seen == expected) return 0;
    // Let the writers run between two looks.
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  std::cerr << "kiln_db_writer: deadline passed with " << seen << " of " << expected
            << " records\n";
  return 4;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  auto number = [&](size_t i) { return std::strtoll(args[i].c_str(), nullptr, 10); };
  if (args.size() == 5 && args[0] == "write") {
    return write(args[1], number(2), number(3), number(4));
  }
  if (args.size() == 5 && args[0] == "read") {
    return read(args[1], number(2), number(3), number(4));
  }
  std::cerr << "usage: kiln_db_writer write DB WRITER_ID BATCHES BATCH_SIZE\n"
               "       kiln_db_writer read DB EXPECTED_RECORDS BATCH_SIZE DEADLINE_MS\n";
  return 2;
}
