#!/usr/bin/env bash
# Installs kiln's build and test dependencies from Debian 12's packages.
# Idempotent: only missing packages are fetched. Needs root (or sudo) when something is missing.
#
# Usage: bash scripts/install_deps.sh [--build-only]
#   --build-only   what building the kiln binary needs, and nothing for the tests (a container
#                  image's build stage)
set -euo pipefail

# What `cmake --build build --target kiln` needs.
build_packages=(
  build-essential cmake ninja-build ccache pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libxgboost-dev xgboost
  llvm-16-dev
  libsqlite3-dev libspdlog-dev nlohmann-json3-dev
  libopenblas-dev libdnnl-dev
  libonnx-dev libzip-dev libcli11-dev
  # kiln serve names the models it stores by their SHA-256 (libcrypto).
  libssl-dev
  # The PostgreSQL tuning log (--db postgresql://...).
  libpq-dev
  # Prometheus metrics (--metrics-listen): prometheus-cpp's counters, histograms and text format.
  prometheus-cpp-dev
)

# What the tests, the benchmarks and the deploy/ checks need beside it.
test_packages=(
  git binutils libgtest-dev libgmock-dev
  # The TLS tests make their certificates with openssl.
  openssl
  python3-grpcio
  # The model suite: ONNX's node tests, and PyTorch as the peer on torchvision's models.
  libonnx-testdata python3-onnx python3-numpy python3-torch python3-torchvision
  # The fuzz targets (tests/fuzz/, built in build-fuzz/): clang with libFuzzer and the sanitizer
  # runtimes, and clang's OpenMP, which the configure step of kiln's baselines looks for.
  clang-16 libfuzzer-16-dev libclang-rt-16-dev libomp-16-dev
  # The tuning-log suite on PostgreSQL starts a real server (initdb, pg_ctl) per test.
  postgresql-15
  # The deploy/ checks: systemd-analyze verifies the units; the compose file and the Kubernetes
  # manifests are read as YAML.
  systemd python3-yaml
)

packages=("${build_packages[@]}")
case "${1:-}" in
  --build-only) ;;
  "") packages+=("${test_packages[@]}") ;;
  *)
    echo "usage: bash scripts/install_deps.sh [--build-only]" >&2
    exit 2
    ;;
esac

missing=()
for p in "${packages[@]}"; do
  if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != *"install ok installed"* ]]; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install_deps: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q

# On another architecture (an arm64 board), a package Debian does not build for it is skipped
# with a message instead of failing the whole install; on amd64 every package must install.
arch="$(dpkg --print-architecture)"
if [ "$arch" != amd64 ]; then
  available=()
  for p in "${missing[@]}"; do
    policy="$(apt-cache policy "$p" 2>/dev/null)"
    if [[ "$policy" =~ Candidate:\ [^\(] ]]; then
      available+=("$p")
    else
      echo "install_deps: $p is not packaged for $arch in this release; skipping it"
    fi
  done
  missing=("${available[@]}")
  if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
fi

"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
