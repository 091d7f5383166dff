/* The C API's header compiled as C (not C++): a program in C uses it as c_api_test.cc does. */
#include "compiler_core/graph/c_api/kiln_runtime.h"

#include <stddef.h>

/* Loads `path` and, on success, reads every input's shape and frees the module. Returns the
 * first failing status, or KILN_OK. */
int kiln_c_api_load_and_describe(const char* path) {
  kiln_module* module = NULL;
  int status = kiln_module_load(path, &module);
  if (status != KILN_OK) return status;
  int inputs = 0;
  status = kiln_module_num_inputs(module, &inputs);
  for (int i = 0; status == KILN_OK && i < inputs; ++i) {
    const int64_t* dims = NULL;
    int rank = 0;
    int dtype = KILN_DTYPE_FLOAT32;
    status = kiln_module_input_shape(module, i, &dims, &rank);
    if (status == KILN_OK) status = kiln_module_input_dtype(module, i, &dtype);
  }
  int freed = kiln_module_free(module);
  return status != KILN_OK ? status : freed;
}
