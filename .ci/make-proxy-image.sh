#!/usr/bin/env bash
# Build the local stand-in for the official nginx image when no image registry is reachable:
# Debian bookworm (minbase) with Debian's nginx (1.22), imported as an image. The toolkit starts
# it with a command of its own (cicd/deploy/proxy.py), as it does the official image.
# Usage: .ci/make-proxy-image.sh [IMAGE]   (no-op if IMAGE is present)
set -euo pipefail
IMAGE="${1:-local/nginx:bookworm}"
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "image $IMAGE already present"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
ROOTFS="$(mktemp -d)"
trap 'rm -rf "$ROOTFS"' EXIT
debootstrap --variant=minbase --include=nginx bookworm "$ROOTFS" >/dev/null
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
tar -C "$ROOTFS" -c . | docker import -c 'CMD ["nginx", "-g", "daemon off;"]' - "$IMAGE" >/dev/null
echo "image $IMAGE built"
