#!/usr/bin/env bash
# From a fresh Debian 12 to a first kernel: installs dependencies, builds the kiln binary into
# build/, tunes a 1024³ float32 matmul on this machine into the default tuning log, then
# builds, checks and times the best config found.
# Usage: bash scripts/quickstart.sh   (as root, or as a user with sudo)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build_dir="${BUILD_DIR:-build}"
jobs="${KILN_JOBS:-2}"

bash scripts/install_deps.sh

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build_dir" -j "$jobs" --target kiln

workload="matmul:M=1024,N=1024,K=1024"
echo "quickstart: kiln tune --workload $workload --target llvm --trials 200"
"$build_dir/tuner/kiln" tune --workload "$workload" --target llvm --trials 200
echo "quickstart: kiln run --workload $workload --target llvm (the best stored config)"
"$build_dir/tuner/kiln" run --workload "$workload" --target llvm
