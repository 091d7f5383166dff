#!/usr/bin/python3
"""The gradient task scheduler against round-robin on a whole model, on the same total budget.

    bench/model_scheduler.py [--model resnet18] [--trials-per-task 40] [--threads 1]
                             [--batch 16] [--seed 1] [--kiln PATH] [--keep DIR]

Exports the torchvision model (random weights, tests/model/export_torchvision.py) and runs
`kiln tune --model` on it twice, each into a fresh tuning log: with `--scheduler gradient` and
with `--scheduler round-robin`, on the same total budget (trials per task x the model's tasks).
From each job's estimated-latency curve (the sum over tasks of weight x best time, after every
batch) it prints the trials each scheduler needed to come within 95% of the best estimate either
reached (latency <= best / 0.95), and the ratio gradient / round-robin (below 1: the gradient
scheduler got there in fewer trials); then the same at 98% and 99%, since the warm-up alone (a
batch per task) may already come within 95%, and each job's estimate after the warm-up and at
the end. Each job's --json output is kept in the folder (--keep). Needs Debian's python3-torch and python3-torchvision and a
build with the kiln binary.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tune(kiln, model, scheduler, trials, args, folder):
    db = os.path.join(folder, scheduler + ".db")
    command = [kiln, "tune", "--model", model, "--target", "llvm", "--trials", str(trials),
               "--scheduler", scheduler, "--threads", str(args.threads), "--batch",
               str(args.batch), "--seed", str(args.seed), "--db", db, "--json"]
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    with open(os.path.join(folder, scheduler + ".json"), "w") as out:
        out.write(done.stdout)
    return json.loads(done.stdout)


def trials_to_reach(curve, latency):
    for trials, estimate in curve:
        if estimate <= latency:
            return trials
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--trials-per-task", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kiln", default=os.path.join(REPO, "build", "tuner", "kiln"))
    parser.add_argument("--keep", help="a folder to keep the model and the logs in")
    args = parser.parse_args()

    folder = args.keep or tempfile.mkdtemp(prefix="kiln_model_scheduler_")
    os.makedirs(folder, exist_ok=True)
    subprocess.run(["/usr/bin/python3", os.path.join(REPO, "tests", "model",
                                                     "export_torchvision.py"),
                    args.model, folder], check=True, stdout=subprocess.DEVNULL)
    model = os.path.join(folder, "model.onnx")
    compiled = subprocess.run([args.kiln, "compile", model, "--target", "llvm", "--db",
                               os.path.join(folder, "none.db"), "-o",
                               os.path.join(folder, "model.kmod"), "--json"],
                              check=True, stdout=subprocess.PIPE, text=True)
    tasks = json.loads(compiled.stdout)["tasks"]
    trials = tasks * args.trials_per_task
    print(f"{args.model}: {tasks} tasks, {trials} trials each run, {args.threads} thread(s), "
          f"batch {args.batch}", flush=True)

    runs = {s: tune(args.kiln, model, s, trials, args, folder)
            for s in ("gradient", "round-robin")}
    best = min(min(e for _, e in r["latency_curve"]) for r in runs.values())
    warmup = tasks * args.batch
    print(f"best estimated latency either reached: {best * 1e3:.3f} ms")
    for name, r in runs.items():
        after_warmup = min((e for t, e in r["latency_curve"] if t <= warmup), default=None)
        final = r["latency_curve"][-1][1]
        warm = "-" if after_warmup is None else f"{after_warmup * 1e3:.3f} ms"
        print(f"  {name:<12} after the warm-up ({warmup} trials) {warm}; final {final * 1e3:.3f} ms "
              f"(re-measured {r['latency_s'] * 1e3:.3f} ms); wall {r['wall_s']:.0f} s")
    for within in (0.95, 0.98, 0.99):
        target = best / within
        reached = {name: trials_to_reach(r["latency_curve"], target) for name, r in runs.items()}
        g, rr = reached["gradient"], reached["round-robin"]
        text = {name: ("never" if n is None else str(n)) for name, n in reached.items()}
        ratio = f" = {g / rr:.2f}" if g is not None and rr else ""
        print(f"trials to {within:.0%} of the best (<= {target * 1e3:.3f} ms): gradient / "
              f"round-robin = {text['gradient']} / {text['round-robin']}{ratio}"
              + (" (target <= 0.67)" if within == 0.95 else ""))
    for name, r in runs.items():
        shares = ", ".join(f"{t['trials']}" for t in r["tasks"])
        print(f"  {name:<12} trials per task: {shares}")


if __name__ == "__main__":
    main()
