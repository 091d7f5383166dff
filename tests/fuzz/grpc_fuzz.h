/// \file
/// Raw gRPC calls for the service fuzz targets: the fuzzer's bytes go out as the serialized
/// request through grpc::GenericStub, so that the server's own deserialization and handlers run
/// on them, and the responses come back as bytes. One RawCall is one call of any kind (unary,
/// server streaming, bidirectional streaming: on the wire they differ only in how many messages
/// each side sends), driven through a completion queue of its own so that the fuzz target
/// stays on one thread.
#pragma once

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/byte_buffer.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace kiln::fuzz {

/// `bytes` as a ByteBuffer (copied).
inline grpc::ByteBuffer to_buffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

/// The bytes of `buffer`.
inline std::string from_buffer(const grpc::ByteBuffer& buffer) {
  grpc::Slice slice;
  if (!buffer.TrySingleSlice(&slice).ok() && !buffer.DumpToSingleSlice(&slice).ok()) return {};
  return std::string(reinterpret_cast<const char*>(slice.begin()), slice.size());
}

/// One call of `method` ("/kiln.v1.Tracker/Submit") with raw messages. Responses are read as
/// they come (the last few are kept). The destructor cancels a call that is still open and
/// waits until gRPC has let go of it.
class RawCall {
 public:
  RawCall(grpc::GenericStub& stub, const std::string& method,
          std::chrono::milliseconds deadline = std::chrono::seconds(60)) {
    context_.set_deadline(std::chrono::system_clock::now() + deadline);
    call_ = stub.PrepareCall(&context_, method, &queue_);
    call_->StartCall(tag(kStart));
    started_ = wait(kStart);
    if (started_) {
      start_read();
    } else {
      read_ended_ = true;
    }
  }

  ~RawCall() {
    if (!finished_) {
      context_.TryCancel();
      finish();
    }
    queue_.Shutdown();
    void* got = nullptr;
    bool ok = false;
    while (queue_.Next(&got, &ok)) {
    }
  }

  RawCall(const RawCall&) = delete;
  RawCall& operator=(const RawCall&) = delete;

  /// Sends one message; false when the call has ended (the server finished it).
  bool write(const std::string& bytes) {
    if (!started_ || broken_ || writes_done_) return false;
    write_buffer_ = to_buffer(bytes);
    call_->Write(write_buffer_, tag(kWrite));
    broken_ = !wait(kWrite);
    return !broken_;
  }

  /// Tells the server that no more messages come (a half close).
  void writes_done() {
    if (!started_ || broken_ || writes_done_) return;
    writes_done_ = true;
    call_->WritesDone(tag(kWritesDone));
    wait(kWritesDone);
  }

  /// Cancels the call (the server sees OnCancel); finish() still has to be called.
  void cancel() { context_.TryCancel(); }

  /// Waits until the server ends the call, reading every response, and returns its status. The
  /// call's deadline bounds the wait.
  grpc::Status finish() {
    if (finished_) return status_;
    writes_done();
    while (!read_ended_) next();
    call_->Finish(&status_, tag(kFinish));
    wait(kFinish);
    finished_ = true;
    return status_;
  }

  /// Handles the events that are ready without waiting for more; whether the server has ended
  /// the call.
  bool poll_ended() {
    for (;;) {
      void* got = nullptr;
      bool ok = false;
      const grpc::CompletionQueue::NextStatus status =
          queue_.AsyncNext(&got, &ok, std::chrono::system_clock::now());
      if (status != grpc::CompletionQueue::GOT_EVENT) break;
      handle(got, ok);
    }
    return read_ended_;
  }

  /// Responses read so far.
  int64_t responses() const { return responses_; }
  /// The latest response read.
  const std::string& last_response() const { return last_response_; }

 private:
  enum Tag : intptr_t { kStart = 1, kWrite, kWritesDone, kRead, kFinish, kTags };
  static void* tag(Tag t) { return reinterpret_cast<void*>(intptr_t(t)); }

  void start_read() {
    if (reading_ || read_ended_) return;
    reading_ = true;
    call_->Read(&read_buffer_, tag(kRead));
  }

  /// Waits for the next event of the queue and handles it.
  void next() {
    void* got = nullptr;
    bool ok = false;
    if (!queue_.Next(&got, &ok)) std::abort();  // only the destructor shuts the queue down
    handle(got, ok);
  }

  void handle(void* got, bool ok) {
    const Tag t = Tag(reinterpret_cast<intptr_t>(got));
    if (t == kRead) {
      reading_ = false;
      if (!ok) {
        read_ended_ = true;
        return;
      }
      ++responses_;
      last_response_ = from_buffer(read_buffer_);
      start_read();
      return;
    }
    done_[t] = true;
    ok_[t] = ok;
  }

  /// Waits for the operation `t`; whether it succeeded.
  bool wait(Tag t) {
    while (!done_[t]) next();
    done_[t] = false;
    return ok_[t];
  }

  grpc::ClientContext context_;
  grpc::CompletionQueue queue_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call_;
  grpc::ByteBuffer read_buffer_, write_buffer_;
  bool started_ = false, broken_ = false, writes_done_ = false;
  bool reading_ = false, read_ended_ = false, finished_ = false;
  bool done_[kTags] = {}, ok_[kTags] = {};
  grpc::Status status_;
  int64_t responses_ = 0;
  std::string last_response_;
};

/// A unary call of `method` with `request`: its status, and its response in `response`.
inline grpc::Status unary_call(grpc::GenericStub& stub, const std::string& method,
                               const std::string& request, std::string* response = nullptr) {
  RawCall call(stub, method);
  call.write(request);
  grpc::Status status = call.finish();
  if (response != nullptr) *response = call.last_response();
  return status;
}

}  // namespace kiln::fuzz
