#!/usr/bin/env bash
# From a fresh Debian 12 to a first kernel: installs dependencies, builds the kiln binary into
# build/, then builds, checks and times a 1024³ float32 matmul on this machine.
# Usage: bash scripts/quickstart.sh   (as root, or as a user with sudo)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build_dir="${BUILD_DIR:-build}"
jobs="${KILN_JOBS:-2}"

bash scripts/install_deps.sh

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build_dir" -j "$jobs" --target kiln

workload="matmul:M=1024,N=1024,K=1024"
echo "quickstart: kiln run --workload $workload --target llvm"
"$build_dir/tuner/kiln" run --workload "$workload" --target llvm
