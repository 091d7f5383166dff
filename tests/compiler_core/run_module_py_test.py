#!/usr/bin/python3
"""The Python side of the model path, with Debian's python3 and numpy (exit 77: skipped when
numpy is missing):

1. kiln's .npz code and numpy agree: files numpy.savez and numpy.savez_compressed write, with
   float32, int64, float64, int32, big-endian, Fortran-order, scalar and empty arrays, go through
   kiln_npz_copy (graph::read_npz, then graph::write_npz stored and deflated) and numpy.load
   reads back the same values as float32 or int64, in C order.
2. examples/run_module.py runs kiln_c_api_module_writer's module through libkiln_runtime.so:
   its printout, outputs equal to numpy's computation of the module's graph, inputs from an .npz
   that kiln wrote, and its usage errors (exit 2 with a message).

Usage: run_module_py_test.py --lib LIB --writer WRITER --npz-copy NPZ_COPY --example SCRIPT
"""

import argparse
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
except ImportError:
    print("skipped: numpy is not installed (Debian: python3-numpy)")
    sys.exit(77)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def npz_interop(npz_copy, tmp):
    rng = np.random.default_rng(7)
    arrays = {
        "x": rng.standard_normal((2, 3, 4)).astype("<f4"),
        "ids": np.arange(-2, 5, dtype="<i8"),
        "scalar": np.array(3.5, dtype="<f4"),
        "f8": rng.standard_normal(5),
        "i4": np.array([[1, -2], [3, 2**31 - 1]], dtype=np.int32),
        "fortran": np.asfortranarray(rng.standard_normal((3, 4, 5)).astype(np.float32)),
        "big_endian": np.arange(6, dtype=">f4").reshape(2, 3),
        "empty": np.zeros((0, 4), np.float32),
    }
    source = os.path.join(tmp, "numpy.npz")
    for save in (np.savez, np.savez_compressed):
        save(source, **arrays)
        for flags in ([], ["--deflate"]):
            copy = os.path.join(tmp, "kiln.npz")
            subprocess.run([npz_copy, source, copy] + flags, check=True, capture_output=True)
            with np.load(copy) as back:
                check(sorted(back.files) == sorted(arrays), f"members {back.files}")
                for name, array in arrays.items():
                    want = array.astype(np.float32 if array.dtype.kind == "f" else np.int64)
                    got = back[name]
                    check(got.dtype == want.dtype and got.shape == want.shape,
                          f"{name}: {got.dtype}{got.shape}, want {want.dtype}{want.shape}")
                    check(got.flags.c_contiguous, f"{name} is not in C order")
                    check(np.array_equal(got, want), f"{name}: values differ")
    # numpy refuses to guess: an unsupported dtype is named in kiln's error.
    np.savez(source, mask=np.array([True, False]))
    result = subprocess.run([npz_copy, source, os.path.join(tmp, "x.npz")], capture_output=True,
                            text=True)
    check(result.returncode == 2 and "array 'mask' has dtype '|b1'" in result.stderr,
          f"bool array: {result.returncode} {result.stderr}")
    print("npz interop: ok")


def reference(x):
    """The graph of kiln_c_api_module_writer (see its comment) in numpy."""
    w = np.array([[(i - j) / 8 for j in range(4)] for i in range(8)], np.float32)
    b = np.array([j / 4 - 0.5 for j in range(4)], np.float32)
    v = np.array([[(j + 1) * (k - 1) / 4 for k in range(3)] for j in range(4)], np.float32)
    y = np.maximum(x @ w + b, 0)
    return y, y @ v


def run_example(example, lib, writer, npz_copy, tmp):
    module = os.path.join(tmp, "small.kmod")
    subprocess.run([writer, module], check=True, capture_output=True)
    python = sys.executable

    # Random inputs, the library from the environment; outputs saved and compared.
    outputs = os.path.join(tmp, "outputs.npz")
    env = dict(os.environ, KILN_RUNTIME_LIB=lib)
    result = subprocess.run([python, example, module, "--runs", "5", "--seed", "3",
                             "--save-outputs", outputs], env=env, capture_output=True, text=True)
    check(result.returncode == 0, f"run_module.py failed: {result.stdout}{result.stderr}")
    for line in ("  input  x float32[2,8]", "  output y float32[2,4]", "  output z float32[2,3]",
                 "ran 5 times after 3 warm-up runs: median "):
        check(line in result.stdout, f"missing {line!r} in:\n{result.stdout}")
    x = np.random.default_rng(3).standard_normal((2, 8)).astype(np.float32)
    y_ref, z_ref = reference(x)
    with np.load(outputs) as out:
        check(np.allclose(out["y"], y_ref, atol=1e-5), f"y {out['y']} != {y_ref}")
        check(np.allclose(out["z"], z_ref, atol=1e-5), f"z {out['z']} != {z_ref}")

    # Inputs from an .npz that kiln wrote (float64 from numpy, converted to float32 by kiln).
    x64 = np.linspace(-1, 1, 16).reshape(2, 8)
    np.savez_compressed(os.path.join(tmp, "x64.npz"), x=x64)
    kiln_inputs = os.path.join(tmp, "inputs.npz")
    subprocess.run([npz_copy, os.path.join(tmp, "x64.npz"), kiln_inputs], check=True,
                   capture_output=True)
    result = subprocess.run([python, example, module, "--lib", lib, "--inputs", kiln_inputs,
                             "--threads", "2", "--runs", "2", "--save-outputs", outputs],
                            capture_output=True, text=True)
    check(result.returncode == 0, f"run_module.py --inputs failed: {result.stderr}")
    y_ref, z_ref = reference(x64.astype(np.float32))
    with np.load(outputs) as out:
        check(np.allclose(out["y"], y_ref, atol=1e-5), "y from --inputs")
        check(np.allclose(out["z"], z_ref, atol=1e-5), "z from --inputs")

    # Usage errors: exit 2 and a message naming what is wrong.
    np.savez(os.path.join(tmp, "wrong.npz"), x=np.zeros((8, 2), np.float32))
    cases = [
        ([module, "--lib", os.path.join(tmp, "missing.so")], "no kiln runtime library at"),
        ([os.path.join(tmp, "missing.kmod"), "--lib", lib], "cannot read module"),
        ([module, "--lib", lib, "--inputs", os.path.join(tmp, "wrong.npz")],
         "has shape (8, 2); the module takes (2, 8)"),
        ([module, "--lib", lib, "--inputs", outputs], "has no array 'x'"),
    ]
    for args, message in cases:
        result = subprocess.run([python, example] + args, capture_output=True, text=True)
        check(result.returncode == 2 and message in result.stderr,
              f"{args}: exit {result.returncode}, stderr {result.stderr!r}, want {message!r}")
    print("run_module.py: ok")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lib", required=True)
    parser.add_argument("--writer", required=True)
    parser.add_argument("--npz-copy", required=True)
    parser.add_argument("--example", required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kiln_py_test_") as tmp:
        npz_interop(args.npz_copy, tmp)
        run_example(args.example, args.lib, args.writer, args.npz_copy, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
