#!/usr/bin/env bash
# From a fresh Debian 12 to tuned kernels: installs dependencies, builds the kiln binary into
# build/, tunes a 1024³ float32 matmul and a 3×3 convolution on this machine into the default
# tuning log (a few minutes), then times the best kernels against OpenBLAS and oneDNN.
# Usage: bash scripts/quickstart.sh   (as root, or as a user with sudo)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build_dir="${BUILD_DIR:-build}"
jobs="${KILN_JOBS:-2}"

bash scripts/install_deps.sh

export CCACHE_BASEDIR="$PWD"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build_dir" -j "$jobs" --target kiln

# A real tuning job on this machine: the model-guided search (xgb) over a 1024³ matmul and a
# ResNet 3×3 convolution, every measurement into the default tuning log, then the best kernel
# of each against the fastest library (OpenBLAS, oneDNN) in one process.
kiln="$build_dir/tuner/kiln"
matmul="matmul:M=1024,N=1024,K=1024"
conv2d="conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1"

tune() {
  echo "quickstart: kiln tune --workload $1 --target llvm --trials $2 --plot $3"
  "$kiln" tune --workload "$1" --target llvm --trials "$2" --plot "$3"
}
tune "$matmul" 300 "$build_dir/tune-matmul.svg"
tune "$conv2d" 200 "$build_dir/tune-conv2d.svg"

for workload in "$matmul" "$conv2d"; do
  echo "quickstart: kiln bench --workload $workload"
  "$kiln" bench --workload "$workload"
done
