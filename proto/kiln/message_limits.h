/// \file
/// The sizes of the gRPC messages kiln's servers and clients accept, set explicitly on every
/// server and channel rather than left to gRPC's defaults (4 MiB received, unlimited sent), so
/// that a peer cannot make one allocate without bound and the limits are stated in one place.
/// A message over a limit fails its call with RESOURCE_EXHAUSTED; the connection stays usable.
#pragma once

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

namespace kiln {

/// What the tracker receives (a Submit of thousands of tasks, an agent's result) and what an
/// agent receives (a task).
inline constexpr int kMaxFleetMessageBytes = 16 << 20;
/// What a client of `kiln serve` or of a tracker receives: a finished job's status carries its
/// curves (a few values per trial), GetStatus every agent.
inline constexpr int kMaxClientReceiveBytes = 64 << 20;

/// A channel to `address` that receives messages of up to `max_receive_bytes` and sends any
/// size its server accepts.
inline std::shared_ptr<grpc::Channel> create_channel(
    const std::string& address, const std::shared_ptr<grpc::ChannelCredentials>& credentials,
    int max_receive_bytes = kMaxClientReceiveBytes) {
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(max_receive_bytes);
  arguments.SetMaxSendMessageSize(-1);
  return grpc::CreateCustomChannel(address, credentials, arguments);
}

}  // namespace kiln
