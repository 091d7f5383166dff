#!/usr/bin/env bash
# The layering check (STYLE.md §1): fails when an #include breaks DESIGN.md's arrows,
#   tuner -> cost_model -> compiler_core, tuner -> proto, tracker -> proto,
#   device_agent -> compiler_core, proto, and every component -> kiln_support,
# or when a third-party header appears outside the one place allowed to use it.
# Usage: tests/layering.sh [REPO_ROOT]   (default: the parent of this script's folder)
set -euo pipefail

root="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
cd "$root"

components=(compiler_core cost_model tuner tracker device_agent)
violations=0
checked=0

# Generated proto headers are included as "kiln/v1/..."; proto sources as "proto/...".
proto='^(proto/|kiln/v1/|google/protobuf/)'
grpc='^(grpc/|grpcpp/|grpc\+\+/)'

# check COMPONENT PATTERN REASON [EXCEPT]: fails on each include under COMPONENT whose header
# matches the extended regex PATTERN and not EXCEPT.
check() {
  local component="$1" pattern="$2" reason="$3" except="${4:-^$}"
  local file line included
  while IFS=: read -r file line included; do
    echo "$file:$line: includes \"$included\": $reason" >&2
    violations=$((violations + 1))
  done < <(includes "$component" | awk -F: -v pat="$pattern" -v ok="$except" \
             '$3 ~ pat && $3 !~ ok')
}

# Prints FILE:LINE:HEADER for every #include in the C++ sources under the given folders.
includes() {
  local dirs=()
  local d
  for d in "$@"; do [ -d "$d" ] && dirs+=("$d"); done
  [ ${#dirs[@]} -eq 0 ] && return 0
  find "${dirs[@]}" -type f \( -name '*.h' -o -name '*.hpp' -o -name '*.cc' -o -name '*.cpp' \
      -o -name '*.inc' -o -name '*.def' \) -print0 |
    xargs -0 -r grep -HnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]' |
    sed -E 's/^([^:]*):([0-9]+):[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^>"]*)[>"].*/\1:\2:\3/'
}

check compiler_core '^(tuner|tracker|device_agent|cost_model)/' \
  "compiler_core may use only itself and kiln_support"
check compiler_core "$proto" "compiler_core knows nothing of proto (device_agent adapts tasks)"
check compiler_core "$grpc" "compiler_core knows nothing of gRPC"

check cost_model '^(tuner|tracker|device_agent)/' "cost_model may use only compiler_core"
check cost_model "$proto" "cost_model may use only compiler_core"
check cost_model "$grpc" "cost_model may use only compiler_core"

check tracker '^compiler_core/' "the tracker may use only compiler_core/support (it never compiles)" \
  '^compiler_core/support/'
check tracker '^(tuner|cost_model|device_agent)/' "the tracker may use only proto and kiln_support"

check device_agent '^(tuner|tracker|cost_model)/' \
  "device_agent may use only compiler_core and proto"

# Third-party headers that belong to one place.
for component in "${components[@]}"; do
  while IFS=: read -r file line included; do
    case "$file" in compiler_core/codegen/*) continue ;; esac
    echo "$file:$line: includes \"$included\": LLVM headers belong in compiler_core/codegen/" >&2
    violations=$((violations + 1))
  done < <(includes "$component" | awk -F: '$3 ~ /^llvm(-c)?\//')
  while IFS=: read -r file line included; do
    case "$file" in cost_model/*) continue ;; esac
    echo "$file:$line: includes \"$included\": XGBoost headers belong in cost_model/" >&2
    violations=$((violations + 1))
  done < <(includes "$component" | awk -F: '$3 ~ /^xgboost\//')
  while IFS=: read -r file line included; do
    case "$file" in compiler_core/db/*) continue ;; esac
    echo "$file:$line: includes \"$included\": SQLite headers belong in compiler_core/db/" >&2
    violations=$((violations + 1))
  done < <(includes "$component" | awk -F: '$3 ~ /^sqlite3(ext)?\.h$/')
  while IFS=: read -r file line included; do
    case "$file" in compiler_core/db/*) continue ;; esac
    echo "$file:$line: includes \"$included\": libpq headers belong in compiler_core/db/" >&2
    violations=$((violations + 1))
  done < <(includes "$component" | awk -F: '$3 ~ /^(libpq-fe|libpq-events|pg_config)\.h$/')
  while IFS=: read -r file line included; do
    case "$file" in compiler_core/frontend/onnx/*) continue ;; esac
    echo "$file:$line: includes \"$included\": ONNX headers belong in compiler_core/frontend/onnx/" >&2
    violations=$((violations + 1))
  done < <(includes "$component" | awk -F: '$3 ~ /^onnx\//')
  while IFS=: read -r file line included; do
    case "$file" in compiler_core/graph/*) continue ;; esac
    echo "$file:$line: includes \"$included\": libzip belongs in compiler_core/graph/" >&2
    violations=$((violations + 1))
  done < <(includes "$component" | awk -F: '$3 ~ /^zip\.h$/')
done

checked=$(includes "${components[@]}" | cut -d: -f1 | sort -u | wc -l)
if [ "$violations" -ne 0 ]; then
  echo "layering: $violations forbidden include(s) in $checked files" >&2
  exit 1
fi
echo "layering: ok ($checked files checked)"
