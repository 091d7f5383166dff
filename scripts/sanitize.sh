#!/usr/bin/env bash
# Builds kiln with sanitizers in a folder of its own and runs tests there.
#
# Usage: bash scripts/sanitize.sh address|thread [CTEST_ARGS...]
#   address   AddressSanitizer and UndefinedBehaviorSanitizer, in build-asan/; every test
#             unless CTEST_ARGS select some (e.g. -L unit)
#   thread    ThreadSanitizer, in build-tsan/; the tracker, agent and serve tests unless
#             CTEST_ARGS select others
# Environment: KILN_JOBS (build and test parallelism, default 2). Any report fails its test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

kind="${1:-}"
shift || true
jobs="${KILN_JOBS:-2}"
case "$kind" in
  address)
    build_dir=build-asan
    sanitize=address,undefined
    default_selection=()
    export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:strict_string_checks=1"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    ;;
  thread)
    build_dir=build-tsan
    sanitize=thread
    default_selection=(-R 'Tracker|Broker|Fleet|Agent|TaskOptions|Serve')
    export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/scripts/tsan.supp"
    ;;
  *)
    echo "usage: bash scripts/sanitize.sh address|thread [CTEST_ARGS...]" >&2
    exit 2
    ;;
esac

bash scripts/install_deps.sh
export CCACHE_BASEDIR="$PWD"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_WERROR=ON \
  -DKILN_SANITIZE="$sanitize" -DKILN_BUILD_BENCHES=OFF
cmake --build "$build_dir" -j "$jobs"

selection=("$@")
[ ${#selection[@]} -eq 0 ] && selection=("${default_selection[@]}")
ctest --test-dir "$build_dir" --output-on-failure -j "$jobs" "${selection[@]}"
