#!/usr/bin/env bash
# Cross-builds the `kiln` binary for 64-bit ARM Linux (aarch64) on an amd64 Debian 12, against
# Debian 12's own arm64 packages, so that `kiln agent` (or any subcommand) can run on an ARM
# board or under qemu-user.
#
#   1. Makes a sysroot of Debian's arm64 -dev packages with mmdebstrap (about 1 GiB; only when
#      it is missing or the package list below changed).
#   2. Configures build-arm64/ with cmake/aarch64-linux-gnu.cmake (Release, Ninja, ccache) and
#      builds the kiln target alone (no tests, no benchmarks).
#   3. Prints where the binary is and how to run it under qemu-user.
#
# Usage: bash scripts/cross_build_arm64.sh   (as root, or as a user with sudo: installs the host
#                                              tools it needs and runs mmdebstrap)
# Environment: KILN_ARM64_SYSROOT (default build-arm64/sysroot), KILN_ARM64_BUILD_DIR (default
# build-arm64), KILN_JOBS (build parallelism, default 2), DEBIAN_MIRROR (default: the mirror
# mmdebstrap picks for bookworm).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

sysroot="${KILN_ARM64_SYSROOT:-build-arm64/sysroot}"
build_dir="${KILN_ARM64_BUILD_DIR:-build-arm64}"
jobs="${KILN_JOBS:-2}"
suite=bookworm

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

# Host tools of the cross build (amd64 packages). A native build on an ARM board needs none of
# them: it runs scripts/install_deps.sh alone.
host_packages=(
  cmake ninja-build ccache pkg-config
  protobuf-compiler protobuf-compiler-grpc
  g++-aarch64-linux-gnu
  mmdebstrap
  qemu-user
)

# The arm64 packages the kiln target builds against: what scripts/install_deps.sh installs for
# it, less the tests' GoogleTest. `xgboost` (the program) because Debian's XGBoost CMake config
# names it; libopenblas-dev and libdnnl-dev for `kiln bench`'s baselines.
sysroot_packages=(
  libc6-dev libstdc++-12-dev
  libgrpc++-dev libprotobuf-dev
  llvm-16-dev
  libxgboost-dev xgboost
  libsqlite3-dev libspdlog-dev nlohmann-json3-dev
  libopenblas-dev libdnnl-dev
  libonnx-dev libzip-dev libcli11-dev libssl-dev
  prometheus-cpp-dev libpq-dev
)

install_host_packages() {
  local missing=() p
  for p in "${host_packages[@]}"; do
    if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != *"install ok installed"* ]]; then
      missing+=("$p")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return
  echo "cross_build_arm64: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# mmdebstrap's extract variant unpacks packages without running their maintainer scripts, so
# two things a real install does are missing: symlinks are still absolute (usr/lib/.../libz.so
# -> /lib/...: on this machine that is the host's amd64 file), and update-alternatives never
# ran (libopenblas.so.0, openblas.pc). Makes every absolute symlink relative, inside the
# sysroot, and adds the alternatives the OpenBLAS packages would have registered.
fix_sysroot() {
  local root="$1" link target dir
  while IFS= read -r -d '' link; do
    target="$(readlink "$link")"
    case "$target" in /proc/* | /dev/* | /sys/*) continue ;; esac
    dir="$(dirname "$link")"
    ln -sfn "$(realpath -m -s --relative-to="$dir" "$root$target")" "$link"
  done < <(find "$root" -path "$root/dev" -prune -o -type l -lname '/*' -print0)

  local lib="$root/usr/lib/aarch64-linux-gnu" inc="$root/usr/include/aarch64-linux-gnu" name
  local blas=openblas-pthread
  for name in libopenblas.so.0 libopenblas.so libopenblas.a libblas.so.3 libblas.so libblas.a \
              liblapack.so.3 liblapack.so liblapack.a; do
    if [ -e "$lib/$blas/$name" ] && [ ! -e "$lib/$name" ]; then ln -s "$blas/$name" "$lib/$name"; fi
  done
  for name in openblas.pc:openblas.pc blas.pc:blas-openblas.pc lapack.pc:lapack-openblas.pc; do
    if [ -e "$lib/$blas/pkgconfig/${name#*:}" ] && [ ! -e "$lib/pkgconfig/${name%%:*}" ]; then
      ln -s "../$blas/pkgconfig/${name#*:}" "$lib/pkgconfig/${name%%:*}"
    fi
  done
  for name in cblas.h f77blas.h openblas_config.h; do
    if [ -e "$inc/$blas/$name" ] && [ ! -e "$inc/$name" ]; then ln -s "$blas/$name" "$inc/$name"; fi
  done
}

# Makes the sysroot unless one with the same package list is there. It is made beside its final
# place and moved there when complete, so an interrupted run leaves no half sysroot behind.
make_sysroot() {
  local stamp="$sysroot/.kiln-sysroot" want
  want="$(printf '%s\n' "$suite" "${sysroot_packages[@]}" | sort)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "cross_build_arm64: sysroot $sysroot is up to date"
    return
  fi
  if [ -e "$sysroot" ] && [ ! -f "$stamp" ]; then
    echo "cross_build_arm64: $sysroot exists but was not made by this script; remove it or set" \
         "KILN_ARM64_SYSROOT" >&2
    exit 1
  fi
  local tmp="$sysroot.new"
  rm -rf "$tmp"
  mkdir -p "$(dirname "$sysroot")"
  local include
  include="$(IFS=,; echo "${sysroot_packages[*]}")"
  echo "cross_build_arm64: making the arm64 sysroot $sysroot (mmdebstrap, about 1 GiB)"
  local mirror=()
  if [ -n "${DEBIAN_MIRROR:-}" ]; then mirror=("$DEBIAN_MIRROR"); fi
  "${sudo_cmd[@]}" mmdebstrap --variant=extract --arch=arm64 --include="$include" \
    "$suite" "$tmp" "${mirror[@]}"
  if [ ${#sudo_cmd[@]} -gt 0 ]; then "${sudo_cmd[@]}" chown -R "$(id -u):$(id -g)" "$tmp"; fi
  fix_sysroot "$(realpath "$tmp")"
  printf '%s\n' "$want" > "$tmp/.kiln-sysroot"
  rm -rf "$sysroot"
  mv "$tmp" "$sysroot"
}

install_host_packages
make_sysroot

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" \
  -DKILN_ARM64_SYSROOT="$(realpath "$sysroot")" \
  -DKILN_BUILD_TESTS=OFF -DKILN_BUILD_BENCHES=OFF
cmake --build "$build_dir" -j "$jobs" --target kiln

kiln="$build_dir/tuner/kiln"
echo "cross_build_arm64: built $kiln ($(file -b "$kiln" | cut -d, -f1-2))"
echo "cross_build_arm64: run it with: qemu-aarch64 -L $sysroot $kiln --help"
