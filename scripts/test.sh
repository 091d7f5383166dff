#!/usr/bin/env bash
# Installs dependencies, configures and builds kiln into build/ (warnings as errors), and runs
# the test suite with ctest.
#
# Usage: bash scripts/test.sh [CTEST_ARGS...]
#   bash scripts/test.sh                  every test
#   bash scripts/test.sh -L unit          only tests labelled unit
#   bash scripts/test.sh -LE 'arm|fault'  all but the arm and fault tests
# Labels: unit, integration, fault, property, arm, model (STYLE.md §6).
# On an amd64 machine it also cross-builds the arm64 kiln (scripts/cross_build_arm64.sh), which
# the arm suite runs under qemu-user; KILN_SKIP_ARM=1 leaves that out (and the arm tests skip).
# Environment: BUILD_DIR (default build), KILN_JOBS (build and test parallelism, default 2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build_dir="${BUILD_DIR:-build}"
jobs="${KILN_JOBS:-2}"

bash scripts/install_deps.sh

# ccache hits across clones of the repository: paths under it are hashed relative to it.
export CCACHE_BASEDIR="$PWD"

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_WERROR=ON
cmake --build "$build_dir" -j "$jobs"

if [ "$(dpkg --print-architecture)" = amd64 ] && [ "${KILN_SKIP_ARM:-0}" != 1 ]; then
  bash scripts/cross_build_arm64.sh
  export KILN_REQUIRE_ARM=1
fi

# install_deps.sh installed the model suite's peers (ONNX's node tests, PyTorch and
# torchvision): here their absence is a failure, not a skip.
export KILN_REQUIRE_MODEL=1

# Test selection: ctest's -L/-LE label options (or -R NAME) come from this script's arguments.
test_selection=("$@")

ctest --test-dir "$build_dir" --output-on-failure -j "$jobs" "${test_selection[@]}"
