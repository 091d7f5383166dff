#!/usr/bin/python3
"""Does the sandbox of deploy/systemd/kiln-agent@.service slow measurement? Times the same
configs on an agent without it and on an agent inside it, alternately, in one run.

    bench/sandboxed_agent.py [--workload matmul:M=256,N=256,K=256] [--trials 48] [--rounds 2]
                             [--threads 1] [--kiln PATH]

A tracker on 127.0.0.1 (a free port) and, each round, two agents in turn on one device key:
first one as a plain process, then one in the unit's sandbox as far as it holds without systemd
as PID 1 (run as root):
  - SystemCallFilter=@system-service with SystemCallErrorNumber=EPERM and
    SystemCallArchitectures=native: a seccomp filter (Debian's python3-seccomp) that allows the
    syscalls of systemd's @system-service group, expanded through `systemd-analyze
    syscall-filter` as systemd does (with @default), and fails the rest with EPERM;
  - NoNewPrivileges=yes, CapabilityBoundingSet= and AmbientCapabilities= (setpriv), User= (the
    agent runs as nobody);
  - PrivateTmp=yes and ProtectSystem=strict: a mount namespace (unshare) with / read-only again
    and a tmpfs on /tmp.
Each agent's worker inherits all of it, as under systemd. `kiln tune --tracker --tuner random
--seed 1` measures the same configs each time, each into a fresh log; the bench prints, per
round, the median over configs of (sandboxed time / plain time) and of (plain time / the first
round's plain time), the noise floor; and the best time of each run. Ratios near 1.00 within the
noise floor: the sandbox costs nothing.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SECCOMP_CHILD = r"""
import os, sys, seccomp
names = sys.argv[1].split(",")
f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(1))  # EPERM
for name in names:
    try:
        f.add_rule(seccomp.ALLOW, name)
    except Exception:
        pass  # a name this kernel or libseccomp does not know, as systemd skips it
f.load()
os.execv(sys.argv[2], sys.argv[2:])
"""


def group_syscalls(group, seen=None):
    """The syscalls of a systemd syscall group, nested groups expanded."""
    seen = set() if seen is None else seen
    if group in seen:
        return set()
    seen.add(group)
    listing = subprocess.run(["systemd-analyze", "syscall-filter", group], check=True,
                             stdout=subprocess.PIPE, text=True).stdout
    names = set()
    for line in listing.splitlines()[1:]:
        word = line.strip()
        if not word or word.startswith("#"):
            continue
        if word.startswith("@"):
            names |= group_syscalls(word, seen)
        elif re.fullmatch(r"[a-z0-9_]+", word):
            names.add(word)
    return names


def sandboxed(command, syscalls):
    """`command` in the unit's sandbox (see the module's doc)."""
    inner = ["/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
             "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "/usr/bin/python3",
             "-c", SECCOMP_CHILD, ",".join(sorted(syscalls))] + command
    script = ("mount --make-rprivate / && mount -t tmpfs tmpfs /tmp && "
              "mount -o remount,bind,ro / && exec \"$@\"")
    return ["unshare", "--mount", "--", "sh", "-c", script, "sh"] + inner


def wait_for_line(process, pattern, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        match = re.search(pattern, line)
        if match:
            return match
    raise RuntimeError("no line matching %r from %s" % (pattern, process.args[0]))


def costs_by_config(kiln, db):
    out = subprocess.run([kiln, "db", "export", "--db", db], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    by_config = {}
    for line in out.splitlines():
        record = json.loads(line)
        if record["error"] != "OK" or record["measure_options"].get("remeasure"):
            continue
        by_config[record["config"]["index"]] = statistics.median(record["costs"])
    return by_config


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", default="matmul:M=256,N=256,K=256")
    parser.add_argument("--trials", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kiln", default=os.path.join(REPO, "build", "tuner", "kiln"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("sandboxed_agent.py: run as root (namespaces, setpriv)")
    syscalls = group_syscalls("@system-service") | group_syscalls("@default")
    print("@system-service with @default: %d syscalls allowed" % len(syscalls))

    folder = tempfile.mkdtemp(prefix="kiln-sandbox-bench-")
    # The binary where the agent (user nobody, its own /tmp) can read it: not under /tmp, nor
    # under a private home.
    binaries = tempfile.mkdtemp(prefix="kiln-sandbox-bench-", dir="/run")
    os.chmod(binaries, 0o755)
    kiln = os.path.join(binaries, "kiln")
    shutil.copy(args.kiln, kiln)
    tracker = subprocess.Popen([kiln, "tracker", "--listen", "127.0.0.1:0"],
                               stdout=subprocess.PIPE, text=True)
    runs = {}
    try:
        port = wait_for_line(tracker, r"listening on 127\.0\.0\.1:(\d+)").group(1)
        address = "127.0.0.1:" + port
        for round_number in range(1, args.rounds + 1):
            for kind in ("plain", "sandboxed"):
                agent_command = [kiln, "agent", "--tracker", address, "--key", "bench", "--id",
                                 kind]
                if kind == "sandboxed":
                    agent_command = sandboxed(agent_command, syscalls)
                agent = subprocess.Popen(agent_command, stdout=subprocess.DEVNULL, cwd="/")
                db = os.path.join(folder, "%s-%d.db" % (kind, round_number))
                try:
                    tune = subprocess.run(
                        [kiln, "tune", "--tracker", address, "--device-key", "bench",
                         "--workload", args.workload, "--target", "llvm", "--trials",
                         str(args.trials), "--tuner", "random", "--seed", "1", "--batch", "8",
                         "--threads", str(args.threads), "--db", db, "--json"],
                        stdout=subprocess.PIPE, text=True, timeout=1800)
                finally:
                    agent.terminate()
                    agent.wait(30)
                if tune.returncode != 0:
                    sys.exit("kiln tune on the %s agent failed (exit %d)" % (kind,
                                                                             tune.returncode))
                runs[(kind, round_number)] = costs_by_config(kiln, db)
                best = min(runs[(kind, round_number)].values())
                print("round %d %-9s: %d valid configs, best %.3f ms" %
                      (round_number, kind, len(runs[(kind, round_number)]), best * 1e3))
    finally:
        tracker.terminate()
        tracker.wait(30)

    def median_ratio(a, b):
        common = sorted(set(a) & set(b))
        return statistics.median(a[c] / b[c] for c in common), len(common)

    print("\nmedian over configs of the time ratio (1.00: the same speed):")
    base = runs[("plain", 1)]
    for round_number in range(1, args.rounds + 1):
        plain, boxed = runs[("plain", round_number)], runs[("sandboxed", round_number)]
        sandbox, n = median_ratio(boxed, plain)
        line = "round %d: sandboxed / plain %.3f over %d configs" % (round_number, sandbox, n)
        if round_number > 1:
            noise, _ = median_ratio(plain, base)
            line += "; plain / round 1's plain %.3f (noise)" % noise
        print(line)
    all_plain = [min(runs[("plain", r)].values()) for r in range(1, args.rounds + 1)]
    all_boxed = [min(runs[("sandboxed", r)].values()) for r in range(1, args.rounds + 1)]
    print("best time, median over rounds: plain %.3f ms, sandboxed %.3f ms (ratio %.3f)" %
          (statistics.median(all_plain) * 1e3, statistics.median(all_boxed) * 1e3,
           statistics.median(all_boxed) / statistics.median(all_plain)))
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(binaries, ignore_errors=True)


if __name__ == "__main__":
    main()
