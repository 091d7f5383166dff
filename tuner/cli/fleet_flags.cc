#include "tuner/cli/fleet_flags.h"

#include <fstream>
#include <sstream>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "proto/kiln/message_limits.h"

namespace kiln::tuner {

void add_token_flag(FlagSet& flags) {
  flags.add_string("token-file", "F",
                   "a file holding the bearer token that tracker, agents and clients share");
}

void add_tls_server_flags(FlagSet& flags) {
  flags.add_string("tls-cert", "F", "PEM certificate chain: serve TLS only (with --tls-key)");
  flags.add_string("tls-key", "F", "PEM private key of --tls-cert");
}

void add_tls_client_flag(FlagSet& flags) {
  flags.add_string("tls-ca", "F", "PEM CA certificate: connect over TLS, trusting this CA");
}

Result<std::string> read_flag_file(const FlagSet& flags, const std::string& name, bool trim) {
  if (!flags.is_set(name)) return std::string();
  const std::string& path = flags.get_string(name);
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalid_argument("cannot read --" + name + " file '" + path + "'");
  std::stringstream text;
  text << in.rdbuf();
  std::string value = text.str();
  if (trim) {
    while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) {
      value.pop_back();
    }
  }
  if (value.empty()) return invalid_argument("the --" + name + " file '" + path + "' is empty");
  return value;
}

bool is_host_port(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) return false;
  for (size_t i = colon + 1; i < address.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(address[i]))) return false;
  }
  return address.size() - colon - 1 <= 5;
}

void ClientConnection::authorize(grpc::ClientContext& context) const {
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
}

Result<ClientConnection> connect_from_flags(const FlagSet& flags, const std::string& address_flag) {
  ClientConnection c;
  c.address = flags.get_string(address_flag);
  if (!is_host_port(c.address)) {
    return invalid_argument("--" + address_flag + " '" + c.address +
                            "' is not host:port, e.g. 127.0.0.1:9190");
  }
  KILN_ASSIGN_OR_RETURN(c.token, read_flag_file(flags, "token-file", true));
  KILN_ASSIGN_OR_RETURN(std::string ca, read_flag_file(flags, "tls-ca"));
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!ca.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ca;
    credentials = grpc::SslCredentials(ssl);
  }
  c.channel = create_channel(c.address, credentials);
  return c;
}

}  // namespace kiln::tuner
