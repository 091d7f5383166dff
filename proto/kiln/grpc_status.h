/// \file
/// kiln's status codes as gRPC statuses, for the services that kiln_proto's stubs serve.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include "compiler_core/support/log.h"
#include "compiler_core/support/status.h"

namespace kiln {

/// The gRPC status of `s`: INVALID_ARGUMENT for bad input (kInvalidConfig too), the code of the
/// same name otherwise; the message is kept.
inline grpc::Status to_grpc(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk:
      return grpc::Status::OK;
    case StatusCode::kInvalidArgument:
    case StatusCode::kInvalidConfig:
      return {grpc::StatusCode::INVALID_ARGUMENT, s.message()};
    case StatusCode::kOutOfRange:
      return {grpc::StatusCode::OUT_OF_RANGE, s.message()};
    case StatusCode::kNotFound:
      return {grpc::StatusCode::NOT_FOUND, s.message()};
    case StatusCode::kAlreadyExists:
      return {grpc::StatusCode::ALREADY_EXISTS, s.message()};
    case StatusCode::kResourceExhausted:
      return {grpc::StatusCode::RESOURCE_EXHAUSTED, s.message()};
    case StatusCode::kFailedPrecondition:
      return {grpc::StatusCode::FAILED_PRECONDITION, s.message()};
    case StatusCode::kAborted:
      return {grpc::StatusCode::ABORTED, s.message()};
    case StatusCode::kUnavailable:
      return {grpc::StatusCode::UNAVAILABLE, s.message()};
    case StatusCode::kDataLoss:
      return {grpc::StatusCode::DATA_LOSS, s.message()};
    case StatusCode::kInternal:
      return {grpc::StatusCode::INTERNAL, s.message()};
  }
  return {grpc::StatusCode::INTERNAL, s.message()};
}

/// A client's view of a failed call to the server at `address`: INVALID_ARGUMENT, NOT_FOUND,
/// ALREADY_EXISTS and FAILED_PRECONDITION keep their meaning (the request was wrong); everything
/// else is Unavailable. The message names the server.
inline Status from_grpc(const grpc::Status& s, const std::string& address) {
  StatusCode code = StatusCode::kUnavailable;
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
      return Status::ok();
    case grpc::StatusCode::INVALID_ARGUMENT:
      code = StatusCode::kInvalidArgument;
      break;
    case grpc::StatusCode::NOT_FOUND:
      code = StatusCode::kNotFound;
      break;
    case grpc::StatusCode::ALREADY_EXISTS:
      code = StatusCode::kAlreadyExists;
      break;
    case grpc::StatusCode::FAILED_PRECONDITION:
      code = StatusCode::kFailedPrecondition;
      break;
    default:
      break;
  }
  return Status(code, "server " + address + ": " + s.error_message());
}

/// OK when `token` is empty or the call carries `authorization: Bearer <token>`; else
/// UNAUTHENTICATED, logged (never the token) under `component`'s logger.
/// True when `a` equals `b`, in a time that depends on their lengths only, not on where they
/// first differ: a caller cannot find a token a byte at a time by timing refusals.
inline bool constant_time_equal(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

/// The client a call counts against in per-client limits: its peer address without the port,
/// so that every connection of one host is one client.
inline std::string client_of(const grpc::CallbackServerContext& context) {
  const std::string peer = context.peer();
  return peer.substr(0, peer.rfind(':'));
}

inline grpc::Status check_bearer_token(const grpc::CallbackServerContext& context,
                                       const std::string& token, const char* component) {
  if (token.empty()) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  const std::string expected = "Bearer " + token;
  if (it == metadata.end() ||
      !constant_time_equal(std::string_view(it->second.data(), it->second.size()), expected)) {
    logger(component)->warn("refused a call from {}: {}", context.peer(),
                            it == metadata.end() ? "no bearer token" : "wrong bearer token");
    return {grpc::StatusCode::UNAUTHENTICATED,
            "a valid bearer token is required (--token-file on the client and the server)"};
  }
  return grpc::Status::OK;
}

}  // namespace kiln
