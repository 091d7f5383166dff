// Fuzz target: the Tuning service (kiln serve) through a real gRPC server in this process, over
// a tuning log and a jobs file in a temporary folder. The input is a sequence of chunks
// (fuzz_util.h's split_chunks); each chunk's kind picks the method its payload is the raw
// protobuf request of, sent through grpc::GenericStub so that gRPC's deserialization and the
// service's handlers run on it:
//   kind % 7 == 0  QueryBest       == 4  CancelJob
//            == 1  ListWorkloads   == 5  ListJobs
//            == 2  StartJob        == 6  ResumeJob
//            == 3  WatchJob (the stream stays open until the input ends; at most 4 at once)
// Jobs would tune for real, on this machine: after each StartJob and ResumeJob the target
// interrupts every running job (TuningService::interrupt_jobs), which stops a job before its
// first batch unless its thread got there first, so an accepted job costs little. Jobs started
// with a device key are refused (no tracker is set), as by `kiln serve --no-tracker`. After
// the input, every job must have stopped and every watch must end by itself. The tuning log
// holds a few records from the start, for QueryBest and ListWorkloads to find; the server
// starts afresh, in a new folder, when its jobs file grows past 256 KiB.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <openssl/crypto.h>

#include "compiler_core/db/tuning_log.h"
#include "proto/kiln/message_limits.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/grpc_fuzz.h"
#include "tests/fuzz/temp_folder.h"
#include "tuner/model_tuning.h"
#include "tuner/service/tuning_service.h"

namespace {

using namespace kiln;
namespace fs = std::filesystem;

/// Records the tuning log starts with: a matmul measured twice on one board, a convolution.
constexpr char kSeedRecords[] =
    R"({"workload":"matmul:M=64,N=64,K=64","target":"llvm -mcpu=znver4","model":"AMD EPYC",)"
    R"("emulated":false,"config":{"index":0,"knobs":{}},"costs":[0.001,0.0011],"error":"OK",)"
    R"("error_message":"","agent":"","device":"","measure_options":{},)"
    R"("measured_at_ms":1700000000000,"kiln_version":"0.1.0"})"
    "\n"
    R"({"workload":"matmul:M=64,N=64,K=64","target":"llvm -mcpu=znver4","model":"AMD EPYC",)"
    R"("emulated":false,"config":{"index":3,"knobs":{}},"costs":[0.002],"error":"OK",)"
    R"("error_message":"","agent":"a1","device":"","measure_options":{},)"
    R"("measured_at_ms":1700000000001,"kiln_version":"0.1.0"})"
    "\n"
    R"({"workload":"conv2d:N=1,C=8,H=8,W=8,K=8,R=3,S=3,pad=1","target":"llvm","model":"",)"
    R"("emulated":false,"config":{"index":1,"knobs":{}},"costs":[],"error":"COMPILE_ERROR",)"
    R"("error_message":"x","agent":"","device":"","measure_options":{},)"
    R"("measured_at_ms":1700000000002,"kiln_version":"0.1.0"})"
    "\n";

/// The largest tuning log (jobs and their trials) before the server starts afresh.
constexpr uintmax_t kMaxLogBytes = 4 << 20;

class Serve {
 public:
  Serve() {
    fuzz::quiet_logs();
    // OpenSSL initialises itself once per process, inside CRYPTO_THREAD_run_once, on the first
    // thread that uses it (a gRPC thread, in the first StartJob that stores a model under its
    // SHA-256): loading its config file makes an error-queue object in that thread's local
    // storage (ERR_set_mark in CONF_modules_load_file_ex), which LeakSanitizer reports at exit.
    // It is one object per process whatever the requests, not a leak that grows with them.
    // Initialising OpenSSL here makes it the main thread's, which the check sees as reachable.
    OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, nullptr);
    start();
  }
  ~Serve() { stop(); }

  grpc::GenericStub& stub() { return *stub_; }
  tuner::TuningService& service() { return *service_; }

  /// Starts afresh when the tuning log (with its write-ahead log) has grown past kMaxLogBytes.
  void bound() {
    std::error_code error;
    uintmax_t bytes = fs::file_size(db(), error);
    if (error) return;
    fs::path wal = db();
    wal += "-wal";
    bytes += fs::exists(wal, error) ? fs::file_size(wal, error) : 0;
    if (bytes <= kMaxLogBytes) return;
    stop();
    start();
  }

 private:
  fs::path db() const { return folder_->path() / "tuning.db"; }

  void start() {
    folder_.emplace("kiln-fuzz-serve");
    {
      Result<core::TuningLog> log = core::TuningLog::open(db());
      fuzz::check(log.is_ok(), "a new tuning log opens", log.status().to_string());
      std::istringstream records(kSeedRecords);
      Result<int64_t> imported = log->import_jsonl(records);
      fuzz::check(imported.is_ok(), "the seed records import", imported.status().to_string());
    }
    Result<std::unique_ptr<tuner::TuningService>> service =
        tuner::TuningService::create({.db = db()});
    fuzz::check(service.is_ok(), "the Tuning service starts", service.status().to_string());
    service_ = std::move(service).value();
    // The limits `kiln serve` sets (tuner/cli/serve.cc).
    grpc::ServerBuilder builder;
    builder.SetMaxReceiveMessageSize(int(tuner::kMaxModelBytes + (int64_t{1} << 20)));
    builder.SetMaxSendMessageSize(kMaxClientReceiveBytes);
    builder.RegisterService(service_->service());
    server_ = builder.BuildAndStart();
    fuzz::check(server_ != nullptr, "the server starts");
    grpc::ChannelArguments arguments;
    arguments.SetMaxReceiveMessageSize(kMaxClientReceiveBytes);
    stub_ = std::make_unique<grpc::GenericStub>(server_->InProcessChannel(arguments));
  }

  void stop() {
    stub_.reset();
    fuzz::check(service_->interrupt_jobs(std::chrono::seconds(60)) == 0, "every job stops");
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server_->Wait();
    server_.reset();
    service_.reset();
    folder_.reset();
  }

  std::optional<fuzz::TempFolder> folder_;
  std::unique_ptr<tuner::TuningService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::GenericStub> stub_;
};

constexpr const char* kMethods[] = {
    "/kiln.v1.Tuning/QueryBest", "/kiln.v1.Tuning/ListWorkloads", "/kiln.v1.Tuning/StartJob",
    "/kiln.v1.Tuning/WatchJob",  "/kiln.v1.Tuning/CancelJob",     "/kiln.v1.Tuning/ListJobs",
    "/kiln.v1.Tuning/ResumeJob",
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Serve serve;
  serve.bound();
  grpc::GenericStub& stub = serve.stub();
  std::vector<std::unique_ptr<fuzz::RawCall>> watches;

  for (const fuzz::Chunk& chunk : fuzz::split_chunks(data, size)) {
    const int method = chunk.kind % 7;
    if (method == 3) {
      if (watches.size() >= 4) continue;
      auto call = std::make_unique<fuzz::RawCall>(stub, kMethods[method]);
      call->write(chunk.payload);
      call->writes_done();
      watches.push_back(std::move(call));
      continue;
    }
    (void)fuzz::unary_call(stub, kMethods[method], chunk.payload);
    if (method == 2 || method == 6) {
      fuzz::check(serve.service().interrupt_jobs(std::chrono::seconds(60)) == 0,
                  "an interrupted job stops");
    }
  }
  // A watch ends by itself once its job has stopped (or at once, refused).
  fuzz::check(serve.service().interrupt_jobs(std::chrono::seconds(60)) == 0, "every job stops");
  for (auto& watch : watches) {
    grpc::Status status = watch->finish();
    fuzz::check(status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED,
                "a watch of a stopped job ends", status.error_message());
  }
  return 0;
}
