#include "tracker/server.h"

#include <atomic>

#include <grpcpp/grpcpp.h>

#include "proto/kiln/message_limits.h"
#include "tracker/tracker_service_internal.h"

namespace kiln::tracker {
namespace {

using internal::TrackerService;

class Host final : public TrackerHost {
 public:
  explicit Host(TrackerOptions options) : service_(std::move(options)) {}
  grpc::Service* service() override { return &service_; }
  void start() override { service_.start_reaper(); }
  void stop() override { service_.stop(); }
  std::shared_ptr<prometheus::Collectable> metrics() override { return service_.metrics(); }

 private:
  TrackerService service_;
};

class GrpcTrackerServer : public TrackerServer {
 public:
  GrpcTrackerServer(std::unique_ptr<TrackerService> service, std::unique_ptr<grpc::Server> server,
                    int port)
      : service_(std::move(service)), server_(std::move(server)), port_(port) {}
  ~GrpcTrackerServer() override { shutdown(); }

  int port() const override { return port_; }
  std::shared_ptr<prometheus::Collectable> metrics() override { return service_->metrics(); }
  void wait() override { server_->Wait(); }
  void shutdown() override {
    if (shut_down_.exchange(true)) return;
    service_->stop();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }

 private:
  std::unique_ptr<TrackerService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_;
  std::atomic<bool> shut_down_{false};
};

}  // namespace

std::unique_ptr<TrackerHost> TrackerHost::create(TrackerOptions options) {
  return std::make_unique<Host>(std::move(options));
}

Result<std::unique_ptr<TrackerServer>> TrackerServer::start(TrackerOptions options) {
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!options.tls_cert_pem.empty() || !options.tls_key_pem.empty()) {
    if (options.tls_cert_pem.empty() || options.tls_key_pem.empty()) {
      return invalid_argument("TLS needs both a certificate and its key (--tls-cert, --tls-key)");
    }
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({options.tls_key_pem, options.tls_cert_pem});
    credentials = grpc::SslServerCredentials(ssl);
  }
  const std::string listen = options.listen;
  auto service = std::make_unique<TrackerService>(std::move(options));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, credentials, &port);
  builder.SetMaxReceiveMessageSize(kMaxFleetMessageBytes);
  builder.SetMaxSendMessageSize(kMaxClientReceiveBytes);
  builder.RegisterService(service.get());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    return Status(StatusCode::kUnavailable,
                  "cannot listen on '" + listen + "'; pass a free host:port to --listen");
  }
  service->start_reaper();
  return std::unique_ptr<TrackerServer>(
      new GrpcTrackerServer(std::move(service), std::move(server), port));
}

}  // namespace kiln::tracker
