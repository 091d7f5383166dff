/// \file
/// A real PostgreSQL 15 server for the tuning-log tests on the PostgreSQL backend: Debian's
/// initdb in a temporary folder, pg_ctl on a free port of 127.0.0.1 (and a Unix socket in that
/// folder), started by the first test of a process that asks for it and stopped, folder and
/// all, when the process ends. initdb and pg_ctl refuse root: as root they run as the package's
/// `postgres` user (DEPS.md). Each test gets a database of its own (create_database).
#pragma once

#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include <gtest/gtest.h>

namespace kiln::test {

class PostgresServer {
 public:
  static constexpr const char* kBin = "/usr/lib/postgresql/15/bin";

  /// The process's server, started at the first call; null when PostgreSQL 15 is not installed
  /// or does not start (why() says which).
  static PostgresServer* get() {
    static std::unique_ptr<PostgresServer> server = start();
    return server && server->port_ > 0 ? server.get() : nullptr;
  }

  /// The server for a test; null when there is none, after failing the test when
  /// KILN_REQUIRE_POSTGRES is set (the README's test command sets it). The caller skips on null.
  static PostgresServer* for_test() {
    PostgresServer* server = get();
    if (server == nullptr && std::getenv("KILN_REQUIRE_POSTGRES") != nullptr) {
      ADD_FAILURE() << why();
    }
    return server;
  }

  /// Why get() gave null.
  static std::string& why() {
    static std::string text;
    return text;
  }

  ~PostgresServer() {
    if (port_ > 0) run("pg_ctl -D " + data() + " -m immediate -w stop > /dev/null 2>&1");
    std::error_code error;
    std::filesystem::remove_all(dir_, error);
  }

  /// Creates an empty database `name` (letters, digits and _) and returns its URL.
  std::string create_database(const std::string& name) {
    PGconn* admin = PQconnectdb(url("postgres").c_str());
    PGresult* result = PQexec(admin, ("DROP DATABASE IF EXISTS " + name).c_str());
    PQclear(result);
    result = PQexec(admin, ("CREATE DATABASE " + name).c_str());
    const bool ok = PQresultStatus(result) == PGRES_COMMAND_OK;
    PQclear(result);
    PQfinish(admin);
    return ok ? url(name) : "";
  }

  std::string url(const std::string& database) const {
    return "postgresql://kiln@127.0.0.1:" + std::to_string(port_) + "/" + database;
  }

  int port() const { return port_; }

 private:
  static std::unique_ptr<PostgresServer> start() {
    if (access((std::string(kBin) + "/initdb").c_str(), X_OK) != 0) {
      why() = "PostgreSQL 15 is not installed (apt-get install postgresql-15)";
      return nullptr;
    }
    auto server = std::unique_ptr<PostgresServer>(new PostgresServer());
    std::string pattern = (std::filesystem::temp_directory_path() / "kiln_pg_XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      why() = "cannot make a temporary folder";
      return nullptr;
    }
    server->dir_ = pattern;
    if (geteuid() == 0) {
      const passwd* postgres = getpwnam("postgres");
      if (postgres == nullptr) {
        why() = "no postgres user to run the server as";
        return server;
      }
      server->as_ = "runuser -u postgres -- ";
      if (chown(pattern.c_str(), postgres->pw_uid, postgres->pw_gid) != 0) {
        why() = "cannot give the server's folder to the postgres user";
        return server;
      }
    }
    if (server->run("initdb -D " + server->data() + " -A trust -U kiln > " + server->dir_ +
                    "/initdb.log 2>&1") != 0) {
      why() = "initdb failed; see " + server->dir_ + "/initdb.log";
      return server;
    }
    // A free port now; another process could take it before the server does, so try a few.
    for (int attempt = 0; attempt < 5 && server->port_ == 0; ++attempt) {
      const int port = free_port();
      const std::string options = "-p " + std::to_string(port) + " -k " + server->dir_ +
                                  " -c listen_addresses=127.0.0.1 -c fsync=off";
      if (server->run("pg_ctl -D " + server->data() + " -o \"" + options + "\" -l " + server->dir_ +
                      "/server.log -w start > /dev/null 2>&1") == 0) {
        server->port_ = port;
      }
    }
    if (server->port_ == 0) why() = "pg_ctl start failed; see " + server->dir_ + "/server.log";
    return server;
  }

  static int free_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    int port = 0;
    if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
      port = ntohs(address.sin_port);
    }
    close(fd);
    return port;
  }

  int run(const std::string& command) const {
    return std::system((as_ + std::string(kBin) + "/" + command).c_str());
  }

  std::string data() const { return dir_ + "/data"; }

  std::string dir_;
  std::string as_;  ///< runs a PostgreSQL program as the postgres user, when this is root
  int port_ = 0;
};

}  // namespace kiln::test
