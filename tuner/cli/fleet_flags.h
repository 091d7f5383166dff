/// \file
/// The security flags the fleet's commands share (--token-file, --tls-cert/--tls-key on the
/// listening side, --tls-ca on the connecting side) and reading the files they name.
#pragma once

#include <memory>
#include <string>

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include "compiler_core/support/status.h"
#include "tuner/cli/flags.h"

namespace kiln::tuner {

/// Declares --token-file F.
void add_token_flag(FlagSet& flags);
/// Declares --tls-cert F and --tls-key F (servers).
void add_tls_server_flags(FlagSet& flags);
/// Declares --tls-ca F (clients and agents).
void add_tls_client_flag(FlagSet& flags);

/// The contents of the file flag `name` names, trailing whitespace removed for tokens; empty
/// when the flag is not given. InvalidArgument when the file cannot be read or is empty.
Result<std::string> read_flag_file(const FlagSet& flags, const std::string& name,
                                   bool trim = false);

/// True for a `host:port` whose host is a name or IPv4 address and whose port is a number.
bool is_host_port(const std::string& address);

/// A channel to the server the flag `address_flag` names, with --token-file and --tls-ca.
struct ClientConnection {
  std::string address;
  std::shared_ptr<grpc::Channel> channel;
  std::string token;
  /// Adds the bearer token (if any) to a call's metadata.
  void authorize(grpc::ClientContext& context) const;
};
/// InvalidArgument for an address that is not host:port and for unreadable files.
Result<ClientConnection> connect_from_flags(const FlagSet& flags, const std::string& address_flag);

}  // namespace kiln::tuner
