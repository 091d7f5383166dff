#!/usr/bin/env bash
# Installs dependencies, configures and builds kiln into build/ (warnings as errors), and runs
# the test suite with ctest.
#
# Usage: bash scripts/test.sh [CTEST_ARGS...]
#   bash scripts/test.sh                  every test
#   bash scripts/test.sh -L unit          only tests labelled unit
#   bash scripts/test.sh -LE 'arm|fault'  all but the arm and fault tests
# Labels: unit, integration, fault, property, arm, model (STYLE.md §6).
# Without arguments it then builds the fuzz targets with clang-16, libFuzzer and ASan+UBSan in
# build-fuzz/ (KILN_FUZZ=ON) and runs each for KILN_FUZZ_SECONDS (default 60) with
# `ctest -L fuzz` (tests/fuzz/); KILN_SKIP_FUZZ=1 leaves that out. The exit code is non-zero
# when a test of either run fails.
# On an amd64 machine it also cross-builds the arm64 kiln (scripts/cross_build_arm64.sh), which
# the arm suite runs under qemu-user; KILN_SKIP_ARM=1 leaves that out (and the arm tests skip).
# Environment: BUILD_DIR (default build), KILN_JOBS (build and test parallelism, default 2),
# KILN_FUZZ_SECONDS, KILN_SKIP_FUZZ.
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
export KILN_REQUIRE_POSTGRES=1

# Test selection: ctest's -L/-LE label options (or -R NAME) come from this script's arguments.
test_selection=("$@")

status=0
ctest --test-dir "$build_dir" --output-on-failure -j "$jobs" "${test_selection[@]}" || status=$?

# The fuzz stage: only the fuzz targets and the libraries they link are built (no tests, no
# benchmarks, no kiln binary), each target then fuzzes for KILN_FUZZ_SECONDS.
if [ ${#test_selection[@]} -eq 0 ] && [ "${KILN_SKIP_FUZZ:-0}" != 1 ]; then
  fuzz_dir=build-fuzz
  fuzz_status=0
  CC=clang-16 CXX=clang++-16 cmake -S . -B "$fuzz_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DKILN_WERROR=ON -DKILN_FUZZ=ON -DKILN_BUILD_TESTS=OFF -DKILN_BUILD_BENCHES=OFF &&
    cmake --build "$fuzz_dir" -j "$jobs" --target kiln_fuzz_targets &&
    ctest --test-dir "$fuzz_dir" --output-on-failure -j "$jobs" -L fuzz || fuzz_status=$?
  if [ "$fuzz_status" -ne 0 ]; then
    echo "test.sh: the fuzz stage failed (exit $fuzz_status); inputs that crashed a target are" \
      "kept in tests/fuzz/regressions/" >&2
    status=$fuzz_status
  fi
fi
exit "$status"
