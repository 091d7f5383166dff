#!/usr/bin/env bash
# Fails when the shared library $1 defines a dynamic symbol other than the C API's (kiln_*, not
# kiln_parallel_for), or lacks one of the C API's functions.
set -euo pipefail
lib="$1"
# Exported means global, weak or unique (nm's upper-case letters and u, v, w). A lower-case type
# is a local symbol: the version script demotes libstdc++'s unique typeinfo objects to local,
# and the linker still lists them in .dynsym, where no other object can bind to them.
symbols=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[A-Zuvw]$/ {print $3}' | sort)
bad=$(grep -v -E '^(kiln_last_error|kiln_status_name|kiln_module_[a-z_]+)$' <<<"$symbols" || true)
if [ -n "$bad" ]; then
  echo "$lib exports symbols outside the C API:" >&2
  echo "$bad" | head -20 >&2
  exit 1
fi
for f in kiln_last_error kiln_status_name kiln_module_load kiln_module_free kiln_module_run \
         kiln_module_set_input kiln_module_get_output kiln_module_set_threads; do
  # A here-string, not a pipe: with pipefail, grep -q leaving early can fail the pipe's writer.
  if ! grep -qx "$f" <<<"$symbols"; then
    echo "$lib does not export $f" >&2
    exit 1
  fi
done
echo "exports: ok ($(wc -l <<<"$symbols") functions)"
