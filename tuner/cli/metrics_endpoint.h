/// \file
/// `--metrics-listen ADDR`, which `kiln tracker`, `kiln serve` and `kiln agent` share: a plain
/// HTTP/1.1 endpoint that answers `GET /metrics` with their Prometheus metrics in the text
/// exposition format (prometheus-cpp's collectables and serializer).
///
/// The endpoint is kiln's own, not prometheus-cpp's civetweb exposer: civetweb's threads get a
/// fixed 100 KiB stack, from which glibc carves every library's static TLS (OpenBLAS alone takes
/// 60 KiB in the kiln binary), and a scrape overflowed what was left. It serves one connection
/// at a time on a thread of its own; a request is read up to 8 KiB and 2 seconds, anything but
/// GET /metrics is answered 404 or 405, and every connection closes after its answer.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "compiler_core/support/status.h"
#include "tuner/cli/flags.h"

namespace prometheus {
class Collectable;
}  // namespace prometheus

namespace kiln::tuner {

/// Declares --metrics-listen ADDR (no metrics unless given).
void add_metrics_flag(FlagSet& flags);

/// InvalidArgument when --metrics-listen is given and is not host:port.
Status check_metrics_flag(const FlagSet& flags);

class MetricsEndpoint {
 public:
  /// Serves `metrics` at http://ADDR/metrics when --metrics-listen is given, else does nothing
  /// (null). Prints "metrics on HOST:PORT" on stdout (port 0 picks a free port). Unavailable when
  /// the address cannot be bound. The endpoint keeps the collectables and reads them on each
  /// scrape: destroy it before what they read.
  static Result<std::unique_ptr<MetricsEndpoint>> start(
      const FlagSet& flags, std::vector<std::shared_ptr<prometheus::Collectable>> metrics);
  /// Stops serving: no scrape reads a collectable once it returns.
  ~MetricsEndpoint();

  int port() const { return port_; }

 private:
  MetricsEndpoint() = default;
  void serve();
  void answer(int connection) const;
  /// Every collectable's metrics, serialized.
  std::string body() const;

  std::vector<std::shared_ptr<prometheus::Collectable>> metrics_;
  int listener_ = -1;
  int stop_read_ = -1, stop_write_ = -1;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace kiln::tuner
