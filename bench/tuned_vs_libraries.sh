#!/usr/bin/env bash
# Tunes each workload with `kiln tune` (xgb) and then times the best kernel against the fastest
# library with `kiln bench` (oneDNN, and OpenBLAS for matmul and dense), printing one ratio per
# workload and thread count, and the target the workload's kind has to meet.
#
# Usage: bench/tuned_vs_libraries.sh [--set NAME] [--db PATH] [--trials N] [--threads LIST]
#                                    [--only REGEX] [--layout NCHW|NHWC] [--bench-runs N]
#   --set      anchors (ANCHORS.md's workloads; the default), resnet50 (every distinct
#              convolution of ResNet-50 at 224x224 and its classifier), mobilenetv2 (its
#              expansions, projections and depthwise layers, strided ones included), dense
#              (batch-1 dense layers), or all
#   --db       the tuning log (one for every thread count: records carry theirs); default: a
#              new one in a temporary folder, removed at the end
#   --trials   trials per workload and thread count (default 300); a log that has them already
#              is only re-benched
#   --threads  thread counts to tune and bench at, comma-separated (default 1,2)
#   --only     run the workloads whose name or string matches this extended regex
#   --layout   the convolutions' layout (default NCHW, as ONNX models have it). oneDNN runs its
#              convolutions in NHWC (its own choice, the baseline): with NHWC kiln takes the
#              same layouts, without the transposes NCHW costs it on every call
#   --bench-runs `kiln bench` runs per workload and thread count (default 3): the line shows
#              the run of median ratio, and the lowest and highest ratio of all runs
# Columns: GFLOP/s of kiln and of the fastest library (direct-algorithm FLOPs, so Winograd can
# pass the peak), their ratio, the target, the runs' lowest and highest ratio, and kiln's and the
# library's share of the roofline `kiln bench` measured at that thread count (the AVX-512 FMA
# peak; for batch-1 dense, the rate its weights' bytes are read at).
# Environment: KILN (the kiln binary, default build/tuner/kiln).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

kiln="${KILN:-build/tuner/kiln}"
set_name=anchors db="" trials=300 threads=1,2 only="" layout=NCHW bench_runs=3
while [ $# -gt 0 ]; do
  case "$1" in
    --set) set_name="$2"; shift 2 ;;
    --db) db="$2"; shift 2 ;;
    --trials) trials="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --layout) layout="$2"; shift 2 ;;
    --bench-runs) bench_runs="$2"; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown flag '$1'; see --help" >&2; exit 2 ;;
  esac
done
case "$layout" in
  NCHW) layout_key="" ;;
  NHWC) layout_key=",layout=NHWC" ;;
  *) echo "error: --layout is NCHW or NHWC" >&2; exit 2 ;;
esac
scratch=""
if [ -z "$db" ]; then
  scratch="$(mktemp -d)"
  db="$scratch/tuning.db"
  trap 'rm -rf "$scratch"' EXIT
fi

conv() {  # conv2d C H K R stride: square input and kernel, "same" padding
  echo "conv2d:N=1,C=$1,H=$2,W=$2,K=$3,R=$4,S=$4,stride=$5,pad=$(( $4 / 2 ))$layout_key"
}
depthwise() {  # depthwise 3x3: C H stride
  echo "depthwise_conv2d:N=1,C=$1,H=$2,W=$2,R=3,S=3,stride=$3,pad=1$layout_key"
}
# name workload, one per line.
anchors="
anchor.matmul_1024 matmul:M=1024,N=1024,K=1024
anchor.conv3x3_64_56 $(conv 64 56 64 3 1)
anchor.conv3x3_128_28 $(conv 128 28 128 3 1)
anchor.conv3x3_256_14 $(conv 256 14 256 3 1)
anchor.conv3x3_512_7 $(conv 512 7 512 3 1)
anchor.conv1x1_64_256_56 $(conv 64 56 256 1 1)
anchor.stem7x7 $(conv 3 224 64 7 2)
anchor.depthwise_256_28 $(depthwise 256 28 1)
"
# torchvision's ResNet-50 (v1.5: the stride of a stage's first block on its 3x3).
resnet50="
resnet50.conv1 $(conv 3 224 64 7 2)
resnet50.layer1.conv1_first $(conv 64 56 64 1 1)
resnet50.layer1.conv1 $(conv 256 56 64 1 1)
resnet50.layer1.conv2 $(conv 64 56 64 3 1)
resnet50.layer1.conv3 $(conv 64 56 256 1 1)
resnet50.layer2.conv1_first $(conv 256 56 128 1 1)
resnet50.layer2.conv2_first $(conv 128 56 128 3 2)
resnet50.layer2.downsample $(conv 256 56 512 1 2)
resnet50.layer2.conv1 $(conv 512 28 128 1 1)
resnet50.layer2.conv2 $(conv 128 28 128 3 1)
resnet50.layer2.conv3 $(conv 128 28 512 1 1)
resnet50.layer3.conv1_first $(conv 512 28 256 1 1)
resnet50.layer3.conv2_first $(conv 256 28 256 3 2)
resnet50.layer3.downsample $(conv 512 28 1024 1 2)
resnet50.layer3.conv1 $(conv 1024 14 256 1 1)
resnet50.layer3.conv2 $(conv 256 14 256 3 1)
resnet50.layer3.conv3 $(conv 256 14 1024 1 1)
resnet50.layer4.conv1_first $(conv 1024 14 512 1 1)
resnet50.layer4.conv2_first $(conv 512 14 512 3 2)
resnet50.layer4.downsample $(conv 1024 14 2048 1 2)
resnet50.layer4.conv1 $(conv 2048 7 512 1 1)
resnet50.layer4.conv2 $(conv 512 7 512 3 1)
resnet50.layer4.conv3 $(conv 512 7 2048 1 1)
resnet50.fc dense:M=1,N=1000,K=2048
"
# torchvision's MobileNetV2: the first 3x3, the expansions (1x1, x6), the depthwise 3x3 layers
# (stride 2 where a stage begins), the projections and the last 1x1.
mobilenetv2="
mobilenetv2.features0 $(conv 3 224 32 3 2)
mobilenetv2.block1.depthwise $(depthwise 32 112 1)
mobilenetv2.block1.project $(conv 32 112 16 1 1)
mobilenetv2.block2.expand $(conv 16 112 96 1 1)
mobilenetv2.block2.depthwise_s2 $(depthwise 96 112 2)
mobilenetv2.block2.project $(conv 96 56 24 1 1)
mobilenetv2.block3.expand $(conv 24 56 144 1 1)
mobilenetv2.block3.depthwise $(depthwise 144 56 1)
mobilenetv2.block3.project $(conv 144 56 24 1 1)
mobilenetv2.block4.depthwise_s2 $(depthwise 144 56 2)
mobilenetv2.block4.project $(conv 144 28 32 1 1)
mobilenetv2.block5.expand $(conv 32 28 192 1 1)
mobilenetv2.block5.depthwise $(depthwise 192 28 1)
mobilenetv2.block5.project $(conv 192 28 32 1 1)
mobilenetv2.block7.depthwise_s2 $(depthwise 192 28 2)
mobilenetv2.block7.project $(conv 192 14 64 1 1)
mobilenetv2.block8.expand $(conv 64 14 384 1 1)
mobilenetv2.block8.depthwise $(depthwise 384 14 1)
mobilenetv2.block8.project $(conv 384 14 64 1 1)
mobilenetv2.block11.project $(conv 384 14 96 1 1)
mobilenetv2.block12.expand $(conv 96 14 576 1 1)
mobilenetv2.block12.depthwise $(depthwise 576 14 1)
mobilenetv2.block12.project $(conv 576 14 96 1 1)
mobilenetv2.block14.depthwise_s2 $(depthwise 576 14 2)
mobilenetv2.block14.project $(conv 576 7 160 1 1)
mobilenetv2.block15.expand $(conv 160 7 960 1 1)
mobilenetv2.block15.depthwise $(depthwise 960 7 1)
mobilenetv2.block15.project $(conv 960 7 160 1 1)
mobilenetv2.block17.project $(conv 960 7 320 1 1)
mobilenetv2.features18 $(conv 320 7 1280 1 1)
mobilenetv2.classifier dense:M=1,N=1000,K=1280
"
dense="
dense.resnet50_fc dense:M=1,N=1000,K=2048
dense.vgg_fc dense:M=1,N=4096,K=4096
"
case "$set_name" in
  anchors) list="$anchors" ;;
  resnet50) list="$resnet50" ;;
  mobilenetv2) list="$mobilenetv2" ;;
  dense) list="$dense" ;;
  all) list="$anchors$resnet50$mobilenetv2$dense" ;;
  *) echo "error: --set is anchors, resnet50, mobilenetv2, dense or all" >&2; exit 2 ;;
esac

# The target of each kind of workload (issue figures): a batch-1 dense layer and a depthwise
# convolution at 1.2x the fastest library, everything else at 1.0x.
target_of() {
  case "$1" in
    dense:M=1,*|depthwise_conv2d:*) echo 1.2 ;;
    *) echo 1.0 ;;
  esac
}

[[ "$bench_runs" =~ ^[1-9][0-9]*$ ]] || { echo "error: --bench-runs is a positive count" >&2; exit 2; }

printf '%-34s %-72s %3s %9s %9s %-15s %6s %6s %11s %9s\n' name workload thr kiln library baseline \
  ratio target runs 'roof %'
while read -r name workload; do
  [ -n "$name" ] || continue
  if [ -n "$only" ] && ! [[ "$name $workload" =~ $only ]]; then continue; fi
  for t in ${threads//,/ }; do
    "$kiln" tune --workload "$workload" --target llvm --trials "$trials" --threads "$t" \
      --db "$db" >/dev/null 2>&1 || { echo "error: kiln tune failed for $workload" >&2; exit 1; }
    lines=()
    for _ in $(seq "$bench_runs"); do
      lines+=("$("$kiln" bench --workload "$workload" --threads "$t" --db "$db" --json 2>/dev/null)")
    done
    /usr/bin/python3 - "$name" "$(target_of "$workload")" "${lines[@]}" <<'PY'
import json, sys
name, target = sys.argv[1], float(sys.argv[2])
runs = sorted((json.loads(line) for line in sys.argv[3:]), key=lambda j: j["ratio"])
j = runs[(len(runs) - 1) // 2]  # the median run (the lower middle one of an even count)
spread = f"{runs[0]['ratio']:.2f}-{runs[-1]['ratio']:.2f}"
peak = j.get("roofline_gflops", 0)
shares = (f"{100 * j['kiln_gflops'] / peak:.0f}/{100 * j['baseline_gflops'] / peak:.0f}"
          if peak > 0 else "-")
mark = "" if j["ratio"] >= target else "  below"
print(f"{name:<34} {j['workload']:<72} {j['threads']:>3} {j['kiln_gflops']:>9.1f} "
      f"{j['baseline_gflops']:>9.1f} {j['baseline']:<15} {j['ratio']:>6.2f} {target:>6.1f} "
      f"{spread:>11} {shares:>9}{mark}")
PY
  done
done <<< "$list"
