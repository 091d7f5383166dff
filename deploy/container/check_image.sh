#!/usr/bin/env bash
# Builds the kiln image from deploy/container/Containerfile with podman and runs its
# `kiln --version` and `kiln serve --check-flags` (the image's default command line) in the
# image's own filesystem.
#
#   bash deploy/container/check_image.sh [--tag kiln:check]
#
# Where `podman run` works, the checks run in a container. Where it does not (crun refuses
# cgroups in hybrid mode on some hosts), they run as root in a chroot of the mounted image:
# the same files, binary and libraries, without the namespaces. With no debian:12 image in
# podman's store and no registry to pull from, the base image is made with mmdebstrap from the
# host's apt sources first (`podman import`), so that the Containerfile's `FROM debian:12` holds.
# Needs podman (and mmdebstrap for the base image); takes as long as a build of the kiln binary.
set -euo pipefail

tag=kiln:check
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "check_image.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
root="$(cd "$(dirname "$0")/../.." && pwd)"
command -v podman >/dev/null || { echo "check_image.sh: podman is not installed" >&2; exit 2; }

if ! podman image exists docker.io/library/debian:12; then
  command -v mmdebstrap >/dev/null || {
    echo "check_image.sh: no debian:12 image and no mmdebstrap to make one" >&2; exit 2; }
  base="$(mktemp -d)"
  trap 'rm -rf "$base"' EXIT
  echo "== making the debian:12 base image with mmdebstrap"
  mmdebstrap --variant=minbase --quiet bookworm "$base/debian12.tar"
  podman import "$base/debian12.tar" docker.io/library/debian:12
fi

echo "== podman build -t $tag"
start=$(date +%s)
# chroot isolation: the build's RUN steps need no container runtime.
podman build --pull=never --isolation=chroot -f "$root/deploy/container/Containerfile" \
  -t "$tag" "$root"
echo "== built in $(( $(date +%s) - start )) s; size: $(podman image inspect "$tag" --format '{{.Size}}') bytes"

run_in_image() {
  local why
  if why="$(podman run --rm "$tag" "$@" 2>&1)"; then
    echo "$why"
    return 0
  fi
  echo "(podman run failed here: ${why##*$'\n'}; running in a chroot of the image instead)"
  # The same files in a chroot, as the image's user (kiln).
  local mount
  mount="$(podman image mount "$tag")"
  local rc=0
  chroot --userspec=10001:10001 "$mount" /usr/local/bin/kiln "$@" || rc=$?
  podman image unmount "$tag" >/dev/null
  return $rc
}

echo "== kiln --version in the image"
run_in_image --version
echo "== the image's default command line, checked"
run_in_image --check-flags serve --listen 0.0.0.0:9190 --db /var/lib/kiln/tuning.db \
  --metrics-listen 0.0.0.0:9464
mount="$(podman image mount "$tag")"
missing="$(chroot "$mount" ldd /usr/local/bin/kiln | grep 'not found' || true)"
podman image unmount "$tag" >/dev/null
if [[ -n "$missing" ]]; then
  echo "check_image.sh: the image lacks libraries the kiln binary links:" >&2
  echo "$missing" >&2
  exit 1
fi
echo "== every library the kiln binary links is in the image"
