#!/usr/bin/env bash
# Build the local stand-in for the official nginx image when no image registry is reachable:
# Debian bookworm (minbase) with Debian's nginx (1.22), imported as an image. The toolkit starts
# it with a command of its own (cicd/deploy/proxy.py), as it does the official image.
# Usage: .ci/make-proxy-image.sh [IMAGE]   (no-op if IMAGE is present)
set -euo pipefail
exec "$(dirname "$0")/debootstrap-image.sh" "${1:-local/nginx:bookworm}" nginx 'CMD ["nginx", "-g", "daemon off;"]'
