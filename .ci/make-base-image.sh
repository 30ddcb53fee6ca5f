#!/usr/bin/env bash
# Build the local stand-in for python:3.11-slim when no image registry is reachable:
# Debian bookworm (minbase) with Debian's Python 3.11 and venv, imported as an image.
# Usage: .ci/make-base-image.sh [IMAGE] [EXTRA_PACKAGES]   (no-op if IMAGE is present)
#   .ci/make-base-image.sh local/python:3.11-bookworm                  the base image
#   .ci/make-base-image.sh local/newcomer:bookworm git,ca-certificates  a fresh Debian 12 machine
set -euo pipefail
IMAGE="${1:-local/python:3.11-bookworm}"
EXTRA="${2:-}"
exec "$(dirname "$0")/debootstrap-image.sh" "$IMAGE" "python3,python3-venv,python3-pip${EXTRA:+,$EXTRA}" \
  'CMD ["python3"]' 'ENV LANG=C.UTF-8'
