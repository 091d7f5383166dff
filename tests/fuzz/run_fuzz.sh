#!/usr/bin/env bash
# Runs one fuzz target for ctest (tests/fuzz/CMakeLists.txt).
#
# Usage: run_fuzz.sh replay|fuzz BINARY NAME
#   replay  runs every seed of corpus/NAME/ and every kept input of regressions/NAME/ once (the
#           test fuzz_replay_NAME, in every build)
#   fuzz    runs libFuzzer for KILN_FUZZ_SECONDS (default 60) from a temporary copy of
#           corpus/NAME/ with dict/NAME.dict when there is one (the test fuzz_NAME, in a
#           KILN_FUZZ build). A crash, a leak, a sanitizer report, a broken property, a hang or an
#           allocation past the memory limit fails it, and the input that caused it is copied
#           into regressions/NAME/ to be kept as a regression test.
# Environment: KILN_FUZZ_SECONDS (time per target), KILN_FUZZ_RSS_MB (memory limit, default
# 4096), KILN_FUZZ_ARGS (more libFuzzer flags, e.g. -jobs=2).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mode="${1:?usage: run_fuzz.sh replay|fuzz BINARY NAME}"
binary="${2:?usage: run_fuzz.sh replay|fuzz BINARY NAME}"
name="${3:?usage: run_fuzz.sh replay|fuzz BINARY NAME}"
corpus="$here/corpus/$name"
regressions="$here/regressions/$name"
dict="$here/dict/$name.dict"

case "$mode" in
  replay)
    inputs=()
    for dir in "$corpus" "$regressions"; do
      [ -d "$dir" ] || continue
      while IFS= read -r -d '' file; do inputs+=("$file"); done \
        < <(find "$dir" -maxdepth 1 -type f ! -name '.*' -print0 | sort -z)
    done
    if [ ${#inputs[@]} -eq 0 ]; then
      echo "run_fuzz: no inputs for $name in $corpus or $regressions" >&2
      exit 1
    fi
    # Given files, libFuzzer runs each once, as replay_main.cc does.
    exec "$binary" "${inputs[@]}"
    ;;
  fuzz)
    seconds="${KILN_FUZZ_SECONDS:-60}"
    work="$(mktemp -d "${TMPDIR:-/tmp}/kiln-fuzz-$name.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    mkdir "$work/corpus" "$work/artifacts"
    [ -d "$corpus" ] && cp -R "$corpus/." "$work/corpus/"
    args=(
      -max_total_time="$seconds"
      -rss_limit_mb="${KILN_FUZZ_RSS_MB:-4096}"
      -timeout=60
      -print_final_stats=1
      -artifact_prefix="$work/artifacts/"
    )
    [ -f "$dict" ] && args+=(-dict="$dict")
    # KILN_FUZZ_ARGS is split on spaces on purpose: it holds flags.
    # shellcheck disable=SC2206
    args+=(${KILN_FUZZ_ARGS:-})
    # New inputs go to the first folder (the temporary copy); the kept regressions run first.
    folders=("$work/corpus")
    [ -d "$regressions" ] && folders+=("$regressions")
    status=0
    # libFuzzer stops itself after max_total_time; the outer limit catches a run that does not.
    timeout --kill-after=30 $((seconds + 600)) "$binary" "${args[@]}" "${folders[@]}" || status=$?
    if [ "$status" -ne 0 ]; then
      kept=0
      for artifact in "$work/artifacts"/*; do
        [ -f "$artifact" ] || continue
        mkdir -p "$regressions"
        cp "$artifact" "$regressions/"
        echo "run_fuzz: $name failed; kept its input as tests/fuzz/regressions/$name/$(basename "$artifact")" >&2
        kept=1
      done
      [ "$kept" -eq 1 ] || echo "run_fuzz: $name failed (exit $status) without an input to keep" >&2
      exit "$status"
    fi
    ;;
  *)
    echo "usage: run_fuzz.sh replay|fuzz BINARY NAME" >&2
    exit 2
    ;;
esac
