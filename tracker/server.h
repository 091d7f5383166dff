/// \file
/// The tracker as a gRPC server (`kiln tracker`, and inside `kiln serve`): the kiln.v1 Tracker
/// service over the Broker. Agents keep one stream each; clients submit tasks and get results
/// streamed back as they complete. An agent whose stream breaks, or that misses heartbeats, is
/// taken for lost and its tasks are leased again elsewhere; a task whose lease runs out is too.
///
/// Routing: one device key may hold boards of several architectures. A task needs the
/// architecture of its target's triple (arm64 read as aarch64, amd64 as x86_64; an empty triple
/// runs anywhere) and the features its target turns on ("+dotprod"); an agent runs the
/// architecture of its facts (else its target's triple) with its facts' ISA features and those
/// its target turns on. A task only ever reaches an agent that can run it. Tasks that no
/// connected agent of their key can run stay queued: their submitter gets a SubmitResponse with
/// `waiting` (why) and `waiting_changed`, again (with `waiting` empty) when an agent that can
/// run them registers, and GetStatus lists them in KeyStatus.waiting.
///
/// Security: with a token, every call must carry `authorization: Bearer <token>` metadata
/// (UNAUTHENTICATED otherwise; the token is never logged); with a certificate and key the
/// server speaks TLS only.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "compiler_core/support/status.h"
#include "tracker/broker.h"

namespace grpc {
class Service;
}

namespace kiln::v1 {
class MeasureTask;
}

namespace prometheus {
class Collectable;
}

namespace kiln::tracker {

/// The most tasks one agent may ask to run at once (RegisterAgent.capacity; `kiln agent
/// --capacity` accepts as many). The tracker keeps a slot per unit, so a larger claim is refused
/// instead of being allowed to grow the tracker's memory.
inline constexpr int kMaxAgentCapacity = 256;

/// The most Submit calls one client (a peer address, whatever its port) may have open at once;
/// more are refused with RESOURCE_EXHAUSTED until one ends. A tuning job has one open at a time.
inline constexpr int kMaxSubmissionsPerClient = 256;

/// The agents the tracker keeps figures of for `kiln status` by default: every connected one,
/// and the most recently lost up to this many in all (an id registered once and gone is not
/// kept for ever).
inline constexpr size_t kMaxAgentRecords = 4096;

struct TrackerOptions {
  /// host:port; port 0 picks a free one (see TrackerServer::port).
  std::string listen = "127.0.0.1:0";
  /// The bearer token clients and agents must present; empty accepts every caller.
  std::string token;
  /// PEM certificate chain and private key: TLS when both are set.
  std::string tls_cert_pem, tls_key_pem;
  /// Agents send a heartbeat this often; one silent for heartbeat_timeout is taken for lost.
  std::chrono::milliseconds heartbeat_interval{1000};
  std::chrono::milliseconds heartbeat_timeout{5000};
  /// The lease of a task whose options name no timeout.
  std::chrono::milliseconds default_lease{120000};
  BrokerOptions broker;
  /// Agents kept for `kiln status` (kMaxAgentRecords); the lost ones longest gone are forgotten
  /// first, connected ones never.
  size_t max_agent_records = kMaxAgentRecords;
  /// Checks a task before it is queued (workload, config): a failure refuses the whole
  /// submission with INVALID_ARGUMENT (OUT_OF_RANGE for a config index past the space). The
  /// tracker cannot check them itself: it never links the compiler.
  std::function<Status(const v1::MeasureTask&)> validate;
};

/// The Tracker service alone, for a gRPC server that hosts it beside other services (`kiln
/// serve`): register service() with the server's builder, call start() once the server runs,
/// and stop() before shutting the server down (it ends the agents' streams and the clients'
/// submissions, which the server's shutdown waits for). TLS and the listening address are the
/// hosting server's; the token is checked here.
class TrackerHost {
 public:
  static std::unique_ptr<TrackerHost> create(TrackerOptions options);
  virtual ~TrackerHost() = default;
  virtual grpc::Service* service() = 0;
  virtual void start() = 0;
  virtual void stop() = 0;
  /// The tracker's Prometheus metrics (tracker/metrics_internal.h names them), for an exposer
  /// that stops scraping before the host is destroyed.
  virtual std::shared_ptr<prometheus::Collectable> metrics() = 0;
};

class TrackerServer {
 public:
  /// Starts serving. Unavailable when the address cannot be bound.
  static Result<std::unique_ptr<TrackerServer>> start(TrackerOptions options);
  virtual ~TrackerServer() = default;
  /// The port it listens on.
  virtual int port() const = 0;
  /// Blocks until shutdown() is called (from another thread or a signal handler's thread).
  virtual void wait() = 0;
  /// Stops accepting calls, ends the streams and returns once every handler has finished.
  virtual void shutdown() = 0;
  /// As TrackerHost::metrics.
  virtual std::shared_ptr<prometheus::Collectable> metrics() = 0;
};

}  // namespace kiln::tracker
