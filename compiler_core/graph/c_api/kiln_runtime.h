/// \file
/// kiln's module runtime as a C library (libkiln_runtime.so): load a module file that
/// `kiln compile` wrote, bind its inputs, run it and copy its outputs out, from C, C++, or any
/// language with a C foreign function interface (Python's ctypes: examples/run_module.py).
///
/// Conventions (those of XGBoost's C API):
/// - Every function returns an int: KILN_OK (0) on success, a nonzero kiln_status code on
///   failure. No function throws, aborts on bad input, or writes to stdout or stderr.
/// - After a failure, kiln_last_error() returns its message (on the calling thread). Successful
///   calls leave the message of the last failure in place.
/// - Results come back through out-parameters, written only on success (kiln_module_load sets
///   `*out` to NULL on failure). A NULL argument where a pointer is required, an index past the
///   end and a negative count are KILN_ERROR_INVALID_ARGUMENT or KILN_ERROR_OUT_OF_RANGE.
/// - Strings and shapes that a module returns are owned by it and valid until kiln_module_free.
/// - A module is used by one thread at a time; distinct modules may be used concurrently.
///   Kernels run on one process-wide thread pool (kiln_module_set_threads).
/// - Tensors are dense and row-major (C order); dtypes are KILN_DTYPE_FLOAT32 and
///   KILN_DTYPE_INT64, in the host's byte order.
#ifndef KILN_RUNTIME_H_
#define KILN_RUNTIME_H_

#include <stddef.h>
#include <stdint.h>

/// Marks the library's exported functions; everything else in it is hidden.
#if defined(KILN_RUNTIME_BUILDING)
#define KILN_API __attribute__((visibility("default")))
#else
#define KILN_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/// What a function returns. Values are stable: bindings may hard-code them.
typedef enum kiln_status {
  KILN_OK = 0,
  /// A NULL pointer, an unknown input or output name, a dtype or shape other than the
  /// module's, a buffer of the wrong size, a file that is not a valid module for this host.
  KILN_ERROR_INVALID_ARGUMENT = 1,
  /// The module file does not exist or cannot be read.
  KILN_ERROR_NOT_FOUND = 2,
  /// An input or output index past the end.
  KILN_ERROR_OUT_OF_RANGE = 3,
  /// The module is not in the state the call needs: run before every input is set, an output
  /// read before the first run.
  KILN_ERROR_FAILED_PRECONDITION = 4,
  /// Memory ran out.
  KILN_ERROR_OUT_OF_MEMORY = 5,
  /// Anything else, a bug in kiln included: the message says what.
  KILN_ERROR_INTERNAL = 6,
} kiln_status;

/// Element types.
typedef enum kiln_dtype {
  KILN_DTYPE_FLOAT32 = 0,
  KILN_DTYPE_INT64 = 1,
} kiln_dtype;

/// A loaded module: its code linked into this process, its weights packed, its buffers
/// allocated. Opaque.
typedef struct kiln_module kiln_module;

/// The message of the last failed call on this thread ("" before any failure). Owned by the
/// library; valid until the next failing call on this thread. Never NULL.
KILN_API const char* kiln_last_error(void);

/// The name of a status code ("ok", "invalid_argument", ...; "unknown" for other values).
/// Never NULL.
KILN_API const char* kiln_status_name(int status);

/// Loads the module file at `path` into `*out`. KILN_ERROR_NOT_FOUND when the file cannot be
/// read; KILN_ERROR_INVALID_ARGUMENT for a file that is not a kiln module, a damaged one, one of
/// another format version or one compiled for another architecture than this host's. The
/// message names the path. On failure `*out` is set to NULL (when `out` is not NULL).
KILN_API int kiln_module_load(const char* path, kiln_module** out);

/// Frees `module` and everything it owns. NULL is allowed and does nothing.
KILN_API int kiln_module_free(kiln_module* module);

/// The target string the module was compiled for.
KILN_API int kiln_module_target(const kiln_module* module, const char** out);

/// The number of graph inputs / outputs.
KILN_API int kiln_module_num_inputs(const kiln_module* module, int* out);
KILN_API int kiln_module_num_outputs(const kiln_module* module, int* out);

/// The name of input / output `index` (0-based, in the model's order).
KILN_API int kiln_module_input_name(const kiln_module* module, int index, const char** out);
KILN_API int kiln_module_output_name(const kiln_module* module, int index, const char** out);

/// The dtype (a kiln_dtype) of input / output `index`.
KILN_API int kiln_module_input_dtype(const kiln_module* module, int index, int* dtype);
KILN_API int kiln_module_output_dtype(const kiln_module* module, int index, int* dtype);

/// The shape of input / output `index`: `*rank` dimensions at `*dims` (owned by the module;
/// possibly NULL when the rank is 0).
KILN_API int kiln_module_input_shape(const kiln_module* module, int index, const int64_t** dims,
                                     int* rank);
KILN_API int kiln_module_output_shape(const kiln_module* module, int index, const int64_t** dims,
                                      int* rank);

/// Copies `data` (row-major, `rank` dimensions `shape`, elements of `dtype`) in as input `name`.
/// The dtype and shape must be the input's (the message names both). `shape` may be NULL when
/// `rank` is 0; `data` may be NULL only for an input without elements.
KILN_API int kiln_module_set_input(kiln_module* module, const char* name, const void* data,
                                   const int64_t* shape, int rank, int dtype);

/// Runs the module on the inputs set. KILN_ERROR_FAILED_PRECONDITION naming an input that has
/// not been set.
KILN_API int kiln_module_run(kiln_module* module);

/// Copies output `name` of the last run into `out`, which holds `bytes` bytes: exactly the
/// output's size (its element count times 4 for float32, 8 for int64), else
/// KILN_ERROR_INVALID_ARGUMENT naming both sizes. KILN_ERROR_FAILED_PRECONDITION before the
/// first run.
KILN_API int kiln_module_get_output(const kiln_module* module, const char* name, void* out,
                                    size_t bytes);

/// Sets the number of threads the kernels' parallel loops use, for every module of this
/// process (the pool is process-wide). `threads` must be at least 1.
KILN_API int kiln_module_set_threads(kiln_module* module, int threads);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // KILN_RUNTIME_H_
