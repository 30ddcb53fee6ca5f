#!/usr/bin/env bash
# Build an image of Debian bookworm (minbase) plus Debian packages, imported with `docker import`:
# the local stand-ins for images no registry here can give (make-base-image.sh, make-proxy-image.sh).
# Usage: .ci/debootstrap-image.sh IMAGE PACKAGES [CHANGE...]   (no-op if IMAGE is present)
#   PACKAGES: comma-separated; each CHANGE is a Dockerfile instruction for `docker import -c`.
set -euo pipefail
IMAGE="$1"
PACKAGES="$2"
shift 2
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "image $IMAGE already present"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
ROOTFS="$(mktemp -d)"
trap 'rm -rf "$ROOTFS"' EXIT
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOTFS" >/dev/null
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
changes=()
for change in "$@"; do changes+=(-c "$change"); done
tar -C "$ROOTFS" -c . | docker import "${changes[@]}" - "$IMAGE" >/dev/null
echo "image $IMAGE built"
