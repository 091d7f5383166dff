/// \file
/// Scraping a kiln process's Prometheus endpoint (--metrics-listen) as Prometheus does: one
/// plain HTTP/1.1 GET on 127.0.0.1, and the samples of the text format by name and labels.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <sstream>
#include <string>

namespace kiln::test {

/// The whole answer to `GET path` (status line, headers, body); empty when nothing answered.
inline std::string http_get(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(uint16_t(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string answer;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
    const std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) == ssize_t(request.size())) {
      char buffer[4096];
      ssize_t n;
      while ((n = recv(fd, buffer, sizeof(buffer), 0)) > 0) answer.append(buffer, size_t(n));
    }
  }
  close(fd);
  return answer;
}

/// Every sample of a /metrics answer, by its name with labels as written
/// (`kiln_tracker_agents{device_key="cpu",state="idle"}`).
inline std::map<std::string, double> scrape(int port) {
  std::map<std::string, double> samples;
  const std::string answer = http_get(port, "/metrics");
  const size_t body = answer.find("\r\n\r\n");
  if (answer.rfind("HTTP/1.1 200", 0) != 0 || body == std::string::npos) return samples;
  std::istringstream lines(answer.substr(body + 4));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    if (space == std::string::npos) continue;
    samples[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return samples;
}

/// The port in a "metrics on 127.0.0.1:PORT" line of `text`; 0 when there is none yet.
inline int metrics_port(const std::string& text) {
  const std::string prefix = "metrics on 127.0.0.1:";
  const size_t at = text.find(prefix);
  if (at == std::string::npos || text.find('\n', at) == std::string::npos) return 0;
  return std::stoi(text.substr(at + prefix.size()));
}

}  // namespace kiln::test
