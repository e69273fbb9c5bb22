#!/usr/bin/env bash
# podman on the store build.sh writes (see env.sh), e.g.
#   deploy/image/podman.sh run --rm --read-only localhost/tooljet-operator:dev --version
set -euo pipefail
source "$(dirname "$0")/env.sh"
exec podman "$@"
