#!/usr/bin/env bash
# Build the local stand-in for python:3.11-slim when no image registry is reachable:
# Debian bookworm (minbase) with Debian's Python 3.11 and venv, imported as an image.
# Usage: .ci/make-base-image.sh [IMAGE] [EXTRA_PACKAGES]   (no-op if IMAGE is present)
#   .ci/make-base-image.sh local/python:3.11-bookworm                  the base image
#   .ci/make-base-image.sh local/newcomer:bookworm git,ca-certificates  a fresh Debian 12 machine
set -euo pipefail
IMAGE="${1:-local/python:3.11-bookworm}"
EXTRA="${2:-}"
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "image $IMAGE already present"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
ROOTFS="$(mktemp -d)"
trap 'rm -rf "$ROOTFS"' EXIT
debootstrap --variant=minbase --include="python3,python3-venv,python3-pip${EXTRA:+,$EXTRA}" bookworm "$ROOTFS" >/dev/null
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
tar -C "$ROOTFS" -c . | docker import -c 'CMD ["python3"]' -c 'ENV LANG=C.UTF-8' - "$IMAGE" >/dev/null
echo "image $IMAGE built"
