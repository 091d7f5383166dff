// The C API over graph::ModuleRuntime. Every exported function is one call of `guarded`, which
// turns a Status into a code plus a thread-local message and catches every exception (XGBoost's
// API_BEGIN/API_END), so nothing but an int ever crosses the C boundary.
#include "compiler_core/graph/c_api/kiln_runtime.h"

#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "compiler_core/graph/runtime.h"
#include "compiler_core/support/check.h"
#include "compiler_core/support/status.h"

struct kiln_module {
  std::unique_ptr<kiln::graph::ModuleRuntime> runtime;
};

namespace {

using kiln::Status;
using kiln::StatusCode;
using kiln::graph::DType;
using kiln::graph::TensorInfo;
using kiln::graph::Value;

thread_local std::string last_error;

// Records `message` for kiln_last_error and returns `code`. Never throws: when even the
// message cannot be stored, the last error becomes "" rather than the process aborting.
int fail(int code, const char* function, const std::string& message) noexcept {
  try {
    last_error = std::string(function) + ": " + message;
  } catch (...) {
    last_error.clear();
  }
  return code;
}

int status_to_code(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return KILN_OK;
    case StatusCode::kInvalidArgument:
    case StatusCode::kInvalidConfig:
      return KILN_ERROR_INVALID_ARGUMENT;
    case StatusCode::kNotFound:
      return KILN_ERROR_NOT_FOUND;
    case StatusCode::kOutOfRange:
      return KILN_ERROR_OUT_OF_RANGE;
    case StatusCode::kFailedPrecondition:
      return KILN_ERROR_FAILED_PRECONDITION;
    case StatusCode::kResourceExhausted:
      return KILN_ERROR_OUT_OF_MEMORY;
    default:
      return KILN_ERROR_INTERNAL;
  }
}

// The failure a body returns: a code and a message, or KILN_OK.
struct Failure {
  int code = KILN_OK;
  std::string message;
};

Failure failure(int code, std::string message) { return Failure{code, std::move(message)}; }
Failure from_status(const Status& status) {
  if (status.is_ok()) return Failure{};
  return failure(status_to_code(status.code()), status.message());
}
Failure ok() { return Failure{}; }

// Runs `body` (returning a Failure) and converts its outcome, or any exception it throws, into
// a status code.
template <typename Body>
int guarded(const char* function, Body&& body) noexcept {
  try {
    Failure result = body();
    if (result.code == KILN_OK) return KILN_OK;
    return fail(result.code, function, result.message);
  } catch (const kiln::InternalError& e) {
    return fail(KILN_ERROR_INTERNAL, function,
                std::string("internal error in kiln (please report it): ") + e.what());
  } catch (const std::bad_alloc&) {
    return fail(KILN_ERROR_OUT_OF_MEMORY, function, "out of memory");
  } catch (const std::exception& e) {
    return fail(KILN_ERROR_INTERNAL, function, std::string("unexpected exception: ") + e.what());
  } catch (...) {
    return fail(KILN_ERROR_INTERNAL, function, "unexpected exception");
  }
}

Failure null_argument(const char* name) {
  return failure(KILN_ERROR_INVALID_ARGUMENT, std::string(name) + " is NULL");
}

// The value at `index` of `values` (the module's inputs or outputs, `kind` in messages).
Failure check_index(const std::vector<Value>& values, int index, const char* kind) {
  if (index >= 0 && size_t(index) < values.size()) return ok();
  return failure(KILN_ERROR_OUT_OF_RANGE, std::string(kind) + " index " + std::to_string(index) +
                                              " is out of range: the module has " +
                                              std::to_string(values.size()) + " " + kind + "s");
}

int dtype_code(DType dtype) {
  return dtype == DType::kFloat32 ? KILN_DTYPE_FLOAT32 : KILN_DTYPE_INT64;
}

// The name, dtype or shape of input or output `index`.
template <typename Write>
int describe(const char* function, const kiln_module* module, bool input, int index,
             Write&& write) noexcept {
  return guarded(function, [&]() -> Failure {
    if (module == nullptr) return null_argument("module");
    const std::vector<Value>& values =
        input ? module->runtime->inputs() : module->runtime->outputs();
    Failure range = check_index(values, index, input ? "input" : "output");
    if (range.code != KILN_OK) return range;
    return write(values[size_t(index)]);
  });
}

}  // namespace

extern "C" {

const char* kiln_last_error(void) { return last_error.c_str(); }

const char* kiln_status_name(int status) {
  switch (status) {
    case KILN_OK:
      return "ok";
    case KILN_ERROR_INVALID_ARGUMENT:
      return "invalid_argument";
    case KILN_ERROR_NOT_FOUND:
      return "not_found";
    case KILN_ERROR_OUT_OF_RANGE:
      return "out_of_range";
    case KILN_ERROR_FAILED_PRECONDITION:
      return "failed_precondition";
    case KILN_ERROR_OUT_OF_MEMORY:
      return "out_of_memory";
    case KILN_ERROR_INTERNAL:
      return "internal";
    default:
      return "unknown";
  }
}

int kiln_module_load(const char* path, kiln_module** out) {
  if (out != nullptr) *out = nullptr;
  return guarded(__func__, [&]() -> Failure {
    if (path == nullptr) return null_argument("path");
    if (out == nullptr) return null_argument("out");
    auto runtime = kiln::graph::ModuleRuntime::load(path);
    if (!runtime.is_ok()) {
      Failure f = from_status(runtime.status());
      if (f.message.find(path) == std::string::npos) {
        f.message = "module '" + std::string(path) + "': " + f.message;
      }
      return f;
    }
    auto module = std::make_unique<kiln_module>();
    module->runtime = std::move(runtime).value();
    *out = module.release();
    return ok();
  });
}

int kiln_module_free(kiln_module* module) {
  return guarded(__func__, [&]() -> Failure {
    delete module;
    return ok();
  });
}

int kiln_module_target(const kiln_module* module, const char** out) {
  return guarded(__func__, [&]() -> Failure {
    if (module == nullptr) return null_argument("module");
    if (out == nullptr) return null_argument("out");
    *out = module->runtime->target().c_str();
    return ok();
  });
}

int kiln_module_num_inputs(const kiln_module* module, int* out) {
  return guarded(__func__, [&]() -> Failure {
    if (module == nullptr) return null_argument("module");
    if (out == nullptr) return null_argument("out");
    *out = int(module->runtime->inputs().size());
    return ok();
  });
}

int kiln_module_num_outputs(const kiln_module* module, int* out) {
  return guarded(__func__, [&]() -> Failure {
    if (module == nullptr) return null_argument("module");
    if (out == nullptr) return null_argument("out");
    *out = int(module->runtime->outputs().size());
    return ok();
  });
}

int kiln_module_input_name(const kiln_module* module, int index, const char** out) {
  return describe(__func__, module, true, index, [&](const Value& v) -> Failure {
    if (out == nullptr) return null_argument("out");
    *out = v.name.c_str();
    return ok();
  });
}

int kiln_module_output_name(const kiln_module* module, int index, const char** out) {
  return describe(__func__, module, false, index, [&](const Value& v) -> Failure {
    if (out == nullptr) return null_argument("out");
    *out = v.name.c_str();
    return ok();
  });
}

int kiln_module_input_dtype(const kiln_module* module, int index, int* dtype) {
  return describe(__func__, module, true, index, [&](const Value& v) -> Failure {
    if (dtype == nullptr) return null_argument("dtype");
    *dtype = dtype_code(v.info.dtype);
    return ok();
  });
}

int kiln_module_output_dtype(const kiln_module* module, int index, int* dtype) {
  return describe(__func__, module, false, index, [&](const Value& v) -> Failure {
    if (dtype == nullptr) return null_argument("dtype");
    *dtype = dtype_code(v.info.dtype);
    return ok();
  });
}

int kiln_module_input_shape(const kiln_module* module, int index, const int64_t** dims, int* rank) {
  return describe(__func__, module, true, index, [&](const Value& v) -> Failure {
    if (dims == nullptr) return null_argument("dims");
    if (rank == nullptr) return null_argument("rank");
    *dims = v.info.shape.data();
    *rank = int(v.info.shape.size());
    return ok();
  });
}

int kiln_module_output_shape(const kiln_module* module, int index, const int64_t** dims,
                             int* rank) {
  return describe(__func__, module, false, index, [&](const Value& v) -> Failure {
    if (dims == nullptr) return null_argument("dims");
    if (rank == nullptr) return null_argument("rank");
    *dims = v.info.shape.data();
    *rank = int(v.info.shape.size());
    return ok();
  });
}

int kiln_module_set_input(kiln_module* module, const char* name, const void* data,
                          const int64_t* shape, int rank, int dtype) {
  return guarded(__func__, [&]() -> Failure {
    if (module == nullptr) return null_argument("module");
    if (name == nullptr) return null_argument("name");
    if (rank < 0) {
      return failure(KILN_ERROR_INVALID_ARGUMENT,
                     "rank " + std::to_string(rank) + " of input '" + name + "' is negative");
    }
    if (rank > 0 && shape == nullptr) return null_argument("shape");
    if (dtype != KILN_DTYPE_FLOAT32 && dtype != KILN_DTYPE_INT64) {
      return failure(KILN_ERROR_INVALID_ARGUMENT,
                     "dtype " + std::to_string(dtype) + " of input '" + name +
                         "' is not a kiln_dtype (0 for float32, 1 for int64)");
    }
    TensorInfo info;
    info.dtype = dtype == KILN_DTYPE_FLOAT32 ? DType::kFloat32 : DType::kInt64;
    info.shape.assign(shape, shape + rank);
    int64_t elements = 1;
    for (int64_t dim : info.shape) {
      if (dim < 0) {
        return failure(
            KILN_ERROR_INVALID_ARGUMENT,
            "input '" + std::string(name) + "' has a negative dimension " + std::to_string(dim));
      }
      if (__builtin_mul_overflow(elements, dim, &elements)) {
        return failure(KILN_ERROR_INVALID_ARGUMENT,
                       "the shape of input '" + std::string(name) + "' overflows 64 bits");
      }
    }
    if (data == nullptr && elements > 0) return null_argument("data");
    // The runtime compares the dtype and shape with the input's before it reads `data`.
    return from_status(module->runtime->set_input(name, info, data));
  });
}

int kiln_module_run(kiln_module* module) {
  return guarded(__func__, [&]() -> Failure {
    if (module == nullptr) return null_argument("module");
    return from_status(module->runtime->run());
  });
}

int kiln_module_get_output(const kiln_module* module, const char* name, void* out, size_t bytes) {
  return guarded(__func__, [&]() -> Failure {
    if (module == nullptr) return null_argument("module");
    if (name == nullptr) return null_argument("name");
    auto view = module->runtime->output(name);
    if (!view.is_ok()) {
      // An unknown output is a bad argument of this call, not a missing file.
      if (view.status().code() == StatusCode::kNotFound) {
        return failure(KILN_ERROR_INVALID_ARGUMENT, view.status().message());
      }
      return from_status(view.status());
    }
    size_t needed = size_t(view->info.num_bytes());
    if (bytes != needed) {
      return failure(KILN_ERROR_INVALID_ARGUMENT,
                     "output '" + std::string(name) + "' is " + kiln::graph::to_string(view->info) +
                         ", " + std::to_string(needed) + " bytes; the buffer holds " +
                         std::to_string(bytes));
    }
    if (needed == 0) return ok();
    if (out == nullptr) return null_argument("out");
    std::memcpy(out, view->data, needed);
    return ok();
  });
}

int kiln_module_set_threads(kiln_module* module, int threads) {
  return guarded(__func__, [&]() -> Failure {
    if (module == nullptr) return null_argument("module");
    if (threads < 1) {
      return failure(KILN_ERROR_INVALID_ARGUMENT,
                     "threads " + std::to_string(threads) + " is not a positive count");
    }
    module->runtime->set_threads(threads);
    return ok();
  });
}

}  // extern "C"
