#include "tuner/cli/metrics_endpoint.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <sstream>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include "compiler_core/support/log.h"
#include "tuner/cli/fleet_flags.h"

namespace kiln::tuner {
namespace {

constexpr size_t kMaxRequestBytes = 8192;
constexpr int kRequestTimeoutMs = 2000;

/// Sends all of `data`, giving up on an error or once the peer stalls past the timeout.
void send_all(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, kRequestTimeoutMs) <= 0) return;
    const ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    sent += size_t(n);
  }
}

std::string response(const std::string& status, const std::string& content_type,
                     const std::string& body) {
  return "HTTP/1.1 " + status + "\r\nContent-Type: " + content_type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
         body;
}

}  // namespace

void add_metrics_flag(FlagSet& flags) {
  flags.add_string("metrics-listen", "ADDR",
                   "host:port to serve Prometheus metrics on, at /metrics (plain HTTP; port 0 "
                   "picks a free one); none when not given",
                   "");
}

Status check_metrics_flag(const FlagSet& flags) {
  const std::string address = flags.get_string("metrics-listen");
  if (!address.empty() && !is_host_port(address)) {
    return invalid_argument("--metrics-listen '" + address +
                            "' is not host:port, e.g. 127.0.0.1:9464");
  }
  return Status::ok();
}

Result<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::start(
    const FlagSet& flags, std::vector<std::shared_ptr<prometheus::Collectable>> metrics) {
  KILN_RETURN_IF_ERROR(check_metrics_flag(flags));
  const std::string address = flags.get_string("metrics-listen");
  if (address.empty()) return std::unique_ptr<MetricsEndpoint>();
  const size_t colon = address.rfind(':');
  std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  auto unavailable = [&](const std::string& why) {
    return Status(StatusCode::kUnavailable, "cannot serve metrics on '" + address + "' (" + why +
                                                "); pass a free host:port to --metrics-listen");
  };
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return unavailable(gai_strerror(rc));
  }
  std::unique_ptr<MetricsEndpoint> endpoint(new MetricsEndpoint());
  std::string error = "no address";
  for (addrinfo* a = found; a != nullptr && endpoint->listener_ < 0; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 16) == 0) {
      endpoint->listener_ = fd;
    } else {
      error = std::strerror(errno);
      close(fd);
    }
  }
  freeaddrinfo(found);
  if (endpoint->listener_ < 0) return unavailable(error);
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  getsockname(endpoint->listener_, reinterpret_cast<sockaddr*>(&bound), &length);
  char port_name[NI_MAXSERV];
  getnameinfo(reinterpret_cast<sockaddr*>(&bound), length, nullptr, 0, port_name, sizeof(port_name),
              NI_NUMERICSERV);
  endpoint->port_ = std::atoi(port_name);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return unavailable(std::strerror(errno));
  endpoint->stop_read_ = fds[0];
  endpoint->stop_write_ = fds[1];
  endpoint->metrics_ = std::move(metrics);
  endpoint->thread_ = std::thread([e = endpoint.get()] { e->serve(); });
  const std::string shown = address.substr(0, colon);
  std::cout << "metrics on " << shown << ":" << endpoint->port_ << std::endl;
  logger("kiln")->info("serving metrics on http://{}:{}/metrics", shown, endpoint->port_);
  return endpoint;
}

MetricsEndpoint::~MetricsEndpoint() {
  if (thread_.joinable()) {
    const char stop = 1;
    [[maybe_unused]] ssize_t n = write(stop_write_, &stop, 1);
    thread_.join();
  }
  for (int fd : {listener_, stop_read_, stop_write_}) {
    if (fd >= 0) close(fd);
  }
}

void MetricsEndpoint::serve() {
  for (;;) {
    pollfd p[2] = {{listener_, POLLIN, 0}, {stop_read_, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      logger("kiln")->error("metrics endpoint stops: {}", std::strerror(errno));
      return;
    }
    if (p[1].revents != 0) return;
    const int connection = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (connection < 0) continue;
    answer(connection);
    close(connection);
  }
}

void MetricsEndpoint::answer(int connection) const {
  // The request head, up to its blank line, within the size and time limits.
  std::string request;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(kRequestTimeoutMs);
  while (request.find("\r\n\r\n") == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (request.size() >= kMaxRequestBytes || left.count() <= 0) {
      send_all(connection, response("400 Bad Request", "text/plain", "bad request\n"));
      return;
    }
    pollfd p{connection, POLLIN, 0};
    if (poll(&p, 1, int(left.count())) <= 0) continue;
    char buffer[1024];
    const ssize_t n = recv(connection, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    request.append(buffer, size_t(n));
  }
  std::istringstream line(request.substr(0, request.find("\r\n")));
  std::string method, target;
  line >> method >> target;
  const std::string path = target.substr(0, target.find('?'));
  if (path != "/metrics") {
    send_all(connection, response("404 Not Found", "text/plain", "metrics are at /metrics\n"));
    return;
  }
  if (method != "GET") {
    send_all(connection, response("405 Method Not Allowed", "text/plain", "GET only\n"));
    return;
  }
  send_all(connection, response("200 OK", "text/plain; version=0.0.4; charset=utf-8", body()));
}

std::string MetricsEndpoint::body() const {
  std::vector<prometheus::MetricFamily> families;
  for (const auto& m : metrics_) {
    for (prometheus::MetricFamily& f : m->Collect()) families.push_back(std::move(f));
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

}  // namespace kiln::tuner
