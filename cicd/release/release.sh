#!/usr/bin/env bash
# Develop stage: release image (pushed when a registry is configured) and its integration tests.
#   cicd/release/release.sh [extra nox arguments]   ==   nox -s release integration
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 -m nox -s release integration "$@"
