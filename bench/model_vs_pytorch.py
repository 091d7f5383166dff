#!/usr/bin/python3
"""End-to-end latency of kiln's modules against PyTorch on torchvision models, batch 1.

    bench/model_vs_pytorch.py [--models resnet18,resnet50,mobilenet_v2] [--threads 1,2]
                              [--rounds 5] [--runs 10] [--db TUNING_LOG] [--slowest 5]
                              [--kiln PATH] [--lib PATH]

For each model (random weights, exported to ONNX at opset 13 by tests/model/export_torchvision.py's
code), `kiln compile` builds a module with default configs (a tuning log that does not exist)
and, with --db, a second one with that log's best records. In one process, interleaved round by
round, it times:
  kiln (default)   the module through libkiln_runtime's C API (examples/run_module.py's binding)
  kiln (tuned)     the same with --db's records, when --db is given
  torch eager      model(x) under torch.inference_mode()
  torch fastest    torch.jit.trace, torch.jit.freeze and torch.jit.optimize_for_inference
                   (oneDNN with packed weights and fused operators)
each for --runs calls a round after warm-up, at each thread count (torch.set_num_threads and the
module's thread count). It prints the median and the 10th/90th percentiles of every variant and
its ratio to the faster PyTorch mode (below 1 is faster than PyTorch), and checks that kiln's
output matches PyTorch's (within 1e-3 of the largest output). With --db it then lists each model's
--slowest tasks (by weight x their best record's time) and times each with `kiln bench` against
oneDNN's kernel for the same layer, epilogue included, at each thread count. Needs Debian's python3-torch,
python3-torchvision and python3-numpy, and a build with the kiln binary and libkiln_runtime.so.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torchvision

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "examples"))
sys.path.insert(0, os.path.join(REPO, "tests", "model"))
import run_module  # noqa: E402  (the C API binding)
import export_torchvision  # noqa: E402


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def time_calls(fn, runs):
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def compile_module(kiln, onnx_path, out_path, db):
    subprocess.run([kiln, "compile", onnx_path, "--target", "llvm", "--db", db, "-o", out_path],
                   check=True, stdout=subprocess.DEVNULL)


def slowest_tasks(kiln, onnx_path, db, count, tmp):
    """The `count` tasks of the model with the largest weight x best recorded time."""
    compiled = subprocess.run([kiln, "compile", onnx_path, "--target", "llvm", "--db", db, "-o",
                               os.path.join(tmp, "tasks.kmod"), "--json"],
                              check=True, stdout=subprocess.PIPE, text=True)
    tasks = []
    for task in json.loads(compiled.stdout)["task_list"]:
        best = subprocess.run([kiln, "best", "--workload", task["workload"], "--target", "llvm",
                               "--db", db, "--json"], stdout=subprocess.PIPE, text=True)
        records = json.loads(best.stdout)["records"] if best.returncode == 0 else []
        if records:
            tasks.append((task["count"] * records[0]["time_s"], task["count"], task["workload"]))
    return sorted(tasks, reverse=True)[:count]


def bench_task(kiln, workload, db, threads):
    done = subprocess.run([kiln, "bench", "--workload", workload, "--db", db, "--threads",
                           str(threads), "--json"], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,resnet50,mobilenet_v2")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--db", help="a tuning log: also time a module built with its records")
    parser.add_argument("--slowest", type=int, default=5,
                        help="with --db: time this many of each model's slowest tasks against "
                             "oneDNN")
    parser.add_argument("--kiln", default=os.path.join(REPO, "build", "tuner", "kiln"))
    parser.add_argument("--lib", default=run_module.default_library_path())
    args = parser.parse_args()

    lib = run_module.load_library(args.lib)
    threads = [int(t) for t in args.threads.split(",")]
    rows = []
    task_rows = []
    with tempfile.TemporaryDirectory(prefix="kiln_model_bench_") as tmp:
        for name in args.models.split(","):
            torch.manual_seed(0)
            model = export_torchvision.build(name).eval()
            x = torch.rand(1, 3, 224, 224) * 2 - 1
            onnx_path = os.path.join(tmp, name + ".onnx")
            with torch.no_grad():
                expected = model(x).numpy()
                torch.onnx.export(model, x, onnx_path, opset_version=13, input_names=["input"],
                                  output_names=["output"], do_constant_folding=True)
                fastest = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, x)))
            variants = {}
            default_path = os.path.join(tmp, name + ".kmod")
            compile_module(args.kiln, onnx_path, default_path, os.path.join(tmp, "none.db"))
            variants["kiln (default)"] = run_module.KilnModule.load(default_path, lib)
            if args.db:
                tuned_path = os.path.join(tmp, name + ".tuned.kmod")
                compile_module(args.kiln, onnx_path, tuned_path, args.db)
                variants["kiln (tuned)"] = run_module.KilnModule.load(tuned_path, lib)
            xin = x.numpy()
            for label, module in variants.items():
                module.set_input("input", xin)
                module.run()
                got = module.output("output")
                err = np.abs(got - expected).max() / np.abs(expected).max()
                status = "ok" if err <= 1e-3 else "MISMATCH"
                print(f"{name} {label}: max |kiln - pytorch| / max |pytorch| = {err:.2e} ({status})")

            calls = {label: module.run for label, module in variants.items()}

            def eager():
                with torch.inference_mode():
                    model(x)

            def jit():
                with torch.no_grad():
                    fastest(x)

            calls["torch eager"] = eager
            calls["torch fastest"] = jit
            for t in threads:
                torch.set_num_threads(t)
                for module in variants.values():
                    module.set_threads(t)
                samples = {label: [] for label in calls}
                for fn in calls.values():  # warm-up
                    time_calls(fn, 3)
                for _ in range(args.rounds):
                    for label, fn in calls.items():
                        samples[label] += time_calls(fn, args.runs)
                medians = {label: statistics.median(s) for label, s in samples.items()}
                baseline_label = min(("torch eager", "torch fastest"), key=lambda k: medians[k])
                for label, s in samples.items():
                    rows.append((name, t, label, medians[label], percentile(s, 0.1),
                                 percentile(s, 0.9), medians[label] / medians[baseline_label],
                                 baseline_label))
            for module in variants.values():
                module.close()
            if args.db and args.slowest > 0:
                for share, count, workload in slowest_tasks(args.kiln, onnx_path, args.db,
                                                            args.slowest, tmp):
                    for t in threads:
                        b = bench_task(args.kiln, workload, args.db, t)
                        task_rows.append((name, t, count, workload, b))

    print()
    print(f"{'model':<14}{'threads':>8}  {'variant':<16}{'median ms':>10}{'p10':>9}{'p90':>9}"
          f"{'ratio':>8}  (to the faster PyTorch mode)")
    for name, t, label, med, p10, p90, ratio, base in rows:
        print(f"{name:<14}{t:>8}  {label:<16}{med:>10.2f}{p10:>9.2f}{p90:>9.2f}{ratio:>8.2f}  {base}")
    if task_rows:
        print()
        print("the slowest tasks (weight x best record), kiln bench against oneDNN for the layer "
              "(speed: oneDNN's time / kiln's, above 1 kiln is faster):")
        print(f"{'model':<14}{'threads':>8}{'x':>4}  {'kiln ms':>8}{'oneDNN ms':>10}{'speed':>7}"
              f"  workload")
        for name, t, count, workload, b in task_rows:
            if b is None:
                print(f"{name:<14}{t:>8}{count:>4}  {'kiln bench failed':>25}  {workload}")
                continue
            base = b["libraries"][b["baseline"]]["median_s"] * 1e3
            print(f"{name:<14}{t:>8}{count:>4}  {b['kiln_median_s'] * 1e3:>8.3f}{base:>10.3f}"
                  f"{b['ratio']:>7.2f}  {workload}")


if __name__ == "__main__":
    main()
