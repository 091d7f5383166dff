/// \file
/// The kiln.v1 Tuning service over a tuning log: QueryBest (the fastest valid records of a
/// workload on a target) and ListWorkloads. `kiln serve` hosts it beside the tracker.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "compiler_core/support/status.h"

namespace grpc {
class Service;
}

namespace kiln::tuner {

struct TuningServiceOptions {
  std::filesystem::path db;  ///< the tuning log, created when missing
  std::string token;         ///< the bearer token callers must present; empty accepts all
};

class TuningService {
 public:
  /// Opens the tuning log (its errors as TuningLog::open's).
  static Result<std::unique_ptr<TuningService>> create(const TuningServiceOptions& options);
  virtual ~TuningService() = default;
  /// The gRPC service, to register with a server's builder.
  virtual grpc::Service* service() = 0;
};

}  // namespace kiln::tuner
