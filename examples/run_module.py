#!/usr/bin/python3
"""Runs a kiln module from Python through libkiln_runtime.so's C API (ctypes and numpy).

`kiln compile MODEL.onnx --target llvm -o MODEL.kmod` writes a module; this script loads it,
prints its inputs and outputs, feeds it random inputs (or the arrays of an .npz file), runs it
and prints each output's shape and a latency median. It needs Debian's python3 and
python3-numpy, and the shared library, which `cmake --build build --target kiln_runtime` builds.

The library is found, in this order, at:
    --lib PATH
    the KILN_RUNTIME_LIB environment variable
    build/compiler_core/libkiln_runtime.so in the repository this script lives in

Usage:
    /usr/bin/python3 examples/run_module.py MODEL.kmod [--inputs IN.npz] [--save-outputs OUT.npz]
        [--runs 20] [--warmup 3] [--threads N] [--seed 0] [--lib PATH]

Random inputs are float32 standard normal values and int64 values in [0, 10), from --seed.
Arrays of --inputs are matched to the module's inputs by name; float arrays are converted to
float32 and integer arrays to int64, and shapes must be the module's. --save-outputs writes
the outputs of the last run with numpy.savez.

Exits 0 after a run, 2 for bad usage (a missing library, module or input array, a wrong shape)
and 1 when the runtime fails; errors go to stderr as "error: ..." with kiln_last_error's text.

In your own code, the KilnModule class below is the whole binding:

    with KilnModule.load("model.kmod", library) as module:
        module.set_input("input", array)
        module.run()
        result = module.output("output")
"""

import argparse
import ctypes
import os
import statistics
import sys
import time

import numpy as np

KILN_OK = 0
KILN_ERROR_INVALID_ARGUMENT = 1
KILN_ERROR_NOT_FOUND = 2
DTYPES = {0: np.dtype("<f4"), 1: np.dtype("<i8")}  # kiln_dtype -> numpy dtype
DTYPE_CODES = {np.dtype("<f4"): 0, np.dtype("<i8"): 1}


class KilnError(Exception):
    """A failed C API call: `code` is its kiln_status, the message kiln_last_error()."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def default_library_path():
    """KILN_RUNTIME_LIB, else build/compiler_core/libkiln_runtime.so beside examples/."""
    if os.environ.get("KILN_RUNTIME_LIB"):
        return os.environ["KILN_RUNTIME_LIB"]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(repo, "build", "compiler_core", "libkiln_runtime.so")


def load_library(path):
    """Opens libkiln_runtime.so at `path` and declares the C API's signatures."""
    lib = ctypes.CDLL(path)
    c_int, c_char_p, c_void_p = ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p
    module = c_void_p  # kiln_module*
    p_int64 = ctypes.POINTER(ctypes.c_int64)
    signatures = {
        "kiln_last_error": (c_char_p, []),
        "kiln_status_name": (c_char_p, [c_int]),
        "kiln_module_load": (c_int, [c_char_p, ctypes.POINTER(c_void_p)]),
        "kiln_module_free": (c_int, [module]),
        "kiln_module_target": (c_int, [module, ctypes.POINTER(c_char_p)]),
        "kiln_module_num_inputs": (c_int, [module, ctypes.POINTER(c_int)]),
        "kiln_module_num_outputs": (c_int, [module, ctypes.POINTER(c_int)]),
        "kiln_module_input_name": (c_int, [module, c_int, ctypes.POINTER(c_char_p)]),
        "kiln_module_output_name": (c_int, [module, c_int, ctypes.POINTER(c_char_p)]),
        "kiln_module_input_dtype": (c_int, [module, c_int, ctypes.POINTER(c_int)]),
        "kiln_module_output_dtype": (c_int, [module, c_int, ctypes.POINTER(c_int)]),
        "kiln_module_input_shape":
            (c_int, [module, c_int, ctypes.POINTER(p_int64), ctypes.POINTER(c_int)]),
        "kiln_module_output_shape":
            (c_int, [module, c_int, ctypes.POINTER(p_int64), ctypes.POINTER(c_int)]),
        "kiln_module_set_input": (c_int, [module, c_char_p, c_void_p, p_int64, c_int, c_int]),
        "kiln_module_run": (c_int, [module]),
        "kiln_module_get_output": (c_int, [module, c_char_p, c_void_p, ctypes.c_size_t]),
        "kiln_module_set_threads": (c_int, [module, c_int]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes
    return lib


class KilnModule:
    """A loaded module. Every call raises KilnError when the C API reports a failure."""

    def __init__(self, lib, handle):
        self._lib = lib
        self._handle = handle
        self.inputs = [self._describe(True, i) for i in range(self._count(True))]
        self.outputs = [self._describe(False, i) for i in range(self._count(False))]
        target = ctypes.c_char_p()
        self._check(lib.kiln_module_target(handle, ctypes.byref(target)))
        self.target = target.value.decode()

    @classmethod
    def load(cls, path, lib):
        handle = ctypes.c_void_p()
        code = lib.kiln_module_load(os.fsencode(path), ctypes.byref(handle))
        if code != KILN_OK:
            raise KilnError(code, lib.kiln_last_error().decode())
        return cls(lib, handle)

    def _check(self, code):
        if code != KILN_OK:
            raise KilnError(code, self._lib.kiln_last_error().decode())

    def _count(self, inputs):
        n = ctypes.c_int()
        f = self._lib.kiln_module_num_inputs if inputs else self._lib.kiln_module_num_outputs
        self._check(f(self._handle, ctypes.byref(n)))
        return n.value

    def _describe(self, inputs, index):
        """(name, numpy dtype, shape tuple) of input or output `index`."""
        lib = self._lib
        name, dtype = ctypes.c_char_p(), ctypes.c_int()
        dims, rank = ctypes.POINTER(ctypes.c_int64)(), ctypes.c_int()
        kind = "input" if inputs else "output"
        self._check(getattr(lib, f"kiln_module_{kind}_name")(self._handle, index,
                                                               ctypes.byref(name)))
        self._check(getattr(lib, f"kiln_module_{kind}_dtype")(self._handle, index,
                                                                ctypes.byref(dtype)))
        self._check(getattr(lib, f"kiln_module_{kind}_shape")(self._handle, index,
                                                                ctypes.byref(dims),
                                                                ctypes.byref(rank)))
        shape = tuple(dims[i] for i in range(rank.value))
        return name.value.decode(), DTYPES[dtype.value], shape

    def set_input(self, name, array):
        """Copies `array` (float32 or int64, the input's shape) in as input `name`."""
        array = np.ascontiguousarray(array)
        if array.dtype not in DTYPE_CODES:
            raise KilnError(KILN_ERROR_INVALID_ARGUMENT,
                            f"input '{name}' is {array.dtype}; pass float32 or int64")
        shape = (ctypes.c_int64 * max(array.ndim, 1))(*array.shape)
        self._check(self._lib.kiln_module_set_input(
            self._handle, name.encode(), array.ctypes.data_as(ctypes.c_void_p), shape,
            array.ndim, DTYPE_CODES[array.dtype]))

    def run(self):
        self._check(self._lib.kiln_module_run(self._handle))

    def output(self, name):
        """A copy of output `name` of the last run, as a numpy array."""
        found = [o for o in self.outputs if o[0] == name]
        if not found:
            raise KilnError(KILN_ERROR_INVALID_ARGUMENT, f"the module has no output '{name}'")
        _, dtype, shape = found[0]
        out = np.empty(shape, dtype)
        self._check(self._lib.kiln_module_get_output(
            self._handle, name.encode(), out.ctypes.data_as(ctypes.c_void_p), out.nbytes))
        return out

    def set_threads(self, threads):
        self._check(self._lib.kiln_module_set_threads(self._handle, threads))

    def close(self):
        if self._handle:
            self._check(self._lib.kiln_module_free(self._handle))
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_handle", None):
            self._lib.kiln_module_free(self._handle)


def describe(value):
    name, dtype, shape = value
    kind = "float32" if dtype == np.float32 else "int64"
    return f"{name} {kind}[{','.join(str(d) for d in shape)}]"


def milliseconds(seconds):
    return f"{seconds * 1e3:.3f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} us"


def make_inputs(module, npz_path, seed):
    """The arrays to feed, by input name: from `npz_path`, else random."""
    rng = np.random.default_rng(seed)
    arrays = {}
    given = np.load(npz_path) if npz_path else None
    for name, dtype, shape in module.inputs:
        if given is None:
            if dtype == np.float32:
                arrays[name] = rng.standard_normal(shape).astype(np.float32)
            else:
                arrays[name] = rng.integers(0, 10, size=shape, dtype=np.int64)
            continue
        if name not in given.files:
            raise ValueError(f"{npz_path} has no array '{name}' (it has: "
                             f"{', '.join(given.files) or 'none'})")
        array = given[name]
        if array.dtype.kind not in "fiu":
            raise ValueError(f"array '{name}' of {npz_path} is {array.dtype}; the module "
                             f"takes {dtype}")
        if array.shape != shape:
            raise ValueError(f"array '{name}' of {npz_path} has shape {array.shape}; the "
                             f"module takes {shape}")
        arrays[name] = np.ascontiguousarray(array, dtype=dtype)
    return arrays


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("module", help="a module file that `kiln compile` wrote")
    parser.add_argument("--lib", help="libkiln_runtime.so (default: KILN_RUNTIME_LIB, else the "
                                      "repository's build/compiler_core/libkiln_runtime.so)")
    parser.add_argument("--inputs", help="an .npz file with an array per input name")
    parser.add_argument("--save-outputs", help="write the outputs to this .npz file")
    parser.add_argument("--runs", type=int, default=20, help="timed runs (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    parser.add_argument("--threads", type=int, help="kernel threads (default: the runtime's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    args = parser.parse_args()
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be at least 1 and --warmup at least 0")

    lib_path = args.lib or default_library_path()
    if not os.path.exists(lib_path):
        print(f"error: no kiln runtime library at '{lib_path}': build it with `cmake --build "
              f"build --target kiln_runtime`, or pass --lib or set KILN_RUNTIME_LIB",
              file=sys.stderr)
        return 2
    lib = load_library(lib_path)
    try:
        module = KilnModule.load(args.module, lib)
    except KilnError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2 if e.code in (KILN_ERROR_INVALID_ARGUMENT, KILN_ERROR_NOT_FOUND) else 1

    with module:
        # The target string's -mattr list is long; its kind and CPU say enough here.
        print(f"module {args.module} for {module.target.split(' -mattr=')[0]}")
        for value in module.inputs:
            print(f"  input  {describe(value)}")
        for value in module.outputs:
            print(f"  output {describe(value)}")
        try:
            arrays = make_inputs(module, args.inputs, args.seed)
        except (OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        try:
            if args.threads is not None:
                module.set_threads(args.threads)
            for name, array in arrays.items():
                module.set_input(name, array)
            for _ in range(args.warmup):
                module.run()
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                module.run()
                times.append(time.perf_counter() - start)
            outputs = {name: module.output(name) for name, _, _ in module.outputs}
        except KilnError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2 if e.code == KILN_ERROR_INVALID_ARGUMENT else 1

    print(f"ran {args.runs} times after {args.warmup} warm-up runs: median "
          f"{milliseconds(statistics.median(times))}, min {milliseconds(min(times))}")
    for name, dtype, shape in module.outputs:
        array = outputs[name]
        stats = ""
        if array.size:
            stats = (f": min {array.min():.6g}, max {array.max():.6g}, "
                     f"mean {array.astype(np.float64).mean():.6g}")
        print(f"  {describe((name, dtype, shape))}{stats}")
    if args.save_outputs:
        with open(args.save_outputs, "wb") as f:  # np.savez would append ".npz" to a path
            np.savez(f, **outputs)
        print(f"wrote {args.save_outputs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
