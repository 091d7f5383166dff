#!/usr/bin/env bash
# Tunes each workload of ANCHORS.md with `kiln tune` (xgb) and then times the best kernel against
# the fastest library with `kiln bench`, printing one ratio per workload and thread count.
#
# Usage: bench/tuned_vs_libraries.sh [--db PATH] [--trials N] [--threads LIST] [--only REGEX]
#   --db       the tuning log, PATH-tN.db per thread count N (records do not say how many threads
#              they ran on yet, so one log per count keeps the searches apart); default: new
#              ones in a temporary folder, removed at the end
#   --trials   trials per workload (default 300); a log that has them already is only re-benched
#   --threads  thread counts to tune and bench at, comma-separated (default 1)
#   --only     run the workloads whose string matches this extended regex
# Environment: KILN (the kiln binary, default build/tuner/kiln).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

kiln="${KILN:-build/tuner/kiln}"
db="" trials=300 threads=1 only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --db) db="$2"; shift 2 ;;
    --trials) trials="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown flag '$1'; see --help" >&2; exit 2 ;;
  esac
done
scratch=""
if [ -z "$db" ]; then
  scratch="$(mktemp -d)"
  db="$scratch/tuning"
  trap 'rm -rf "$scratch"' EXIT
fi

workloads=(
  "matmul:M=1024,N=1024,K=1024"
  "conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1"
  "conv2d:N=1,C=128,H=28,W=28,K=128,R=3,S=3,stride=1,pad=1"
  "conv2d:N=1,C=256,H=14,W=14,K=256,R=3,S=3,stride=1,pad=1"
  "conv2d:N=1,C=512,H=7,W=7,K=512,R=3,S=3,stride=1,pad=1"
  "conv2d:N=1,C=64,H=56,W=56,K=256,R=1,S=1,stride=1,pad=0"
  "conv2d:N=1,C=3,H=224,W=224,K=64,R=7,S=7,stride=2,pad=3"
  "depthwise_conv2d:N=1,C=256,H=28,W=28,R=3,S=3,stride=1,pad=1"
)

printf '%-62s %3s %9s %9s %-15s %6s\n' workload thr kiln library baseline ratio
for workload in "${workloads[@]}"; do
  if [ -n "$only" ] && ! [[ "$workload" =~ $only ]]; then continue; fi
  for t in ${threads//,/ }; do
    log="${db%.db}-t$t.db"
    "$kiln" tune --workload "$workload" --target llvm --trials "$trials" --threads "$t" \
      --db "$log" >/dev/null 2>&1 || { echo "error: kiln tune failed for $workload" >&2; exit 1; }
    line="$("$kiln" bench --workload "$workload" --threads "$t" --db "$log" --json 2>/dev/null)"
    /usr/bin/python3 - "$line" <<'PY'
import json, sys
j = json.loads(sys.argv[1])
print(f"{j['workload']:<62} {j['threads']:>3} {j['kiln_gflops']:>9.1f} {j['baseline_gflops']:>9.1f} "
      f"{j['baseline']:<15} {j['ratio']:>6.2f}")
PY
  done
done
