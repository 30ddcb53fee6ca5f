#!/usr/bin/env bash
# Feature-branch stage: build image, unit tests and linters inside it. A thin wrapper:
#   cicd/build/build.sh [extra nox arguments]   ==   nox -s build unit lint
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 -m nox -s build unit lint "$@"
