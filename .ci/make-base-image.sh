#!/usr/bin/env bash
# Build the local stand-in for python:3.11-slim when no image registry is reachable:
# Debian bookworm (minbase) with Debian's Python 3.11 and venv, imported as an image.
# Usage: .ci/make-base-image.sh [IMAGE]   (default local/python:3.11-bookworm; no-op if present)
set -euo pipefail
IMAGE="${1:-local/python:3.11-bookworm}"
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base image $IMAGE already present"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
ROOTFS="$(mktemp -d)"
trap 'rm -rf "$ROOTFS"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip bookworm "$ROOTFS" >/dev/null
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
tar -C "$ROOTFS" -c . | docker import -c 'CMD ["python3"]' -c 'ENV LANG=C.UTF-8' - "$IMAGE" >/dev/null
echo "base image $IMAGE built"
