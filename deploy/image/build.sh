#!/usr/bin/env bash
# Builds the tooljet-operator image without a Docker daemon: buildah, FROM scratch, with the
# release binary, exactly the libraries it links, CA certificates and uid 65532 (rootfs.sh
# stages them, Containerfile assembles them; the Dockerfile does the same for Docker users).
#
#   deploy/image/build.sh [--binary PATH] [--tag NAME] [--archive FILE]
#
#   --binary PATH   the binary to ship (default: `cargo build --release --locked` and its output)
#   --tag NAME      image name (default localhost/tooljet-operator:dev)
#   --archive FILE  also write the image as a docker-archive (`docker load -i FILE`, or
#                   `skopeo copy docker-archive:FILE docker://...` to push it)
#
# Storage: $IMAGE_STORAGE (default target/image-storage, see env.sh); run the image with
# deploy/image/podman.sh, which uses the same storage. Needs root (or a working rootless setup).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
source "$here/env.sh"

binary="" tag="localhost/tooljet-operator:dev" archive=""
while (($#)); do
    case $1 in
    --binary) binary=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --archive) archive=$2; shift 2 ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

for tool in buildah ldd; do
    command -v "$tool" >/dev/null || {
        echo "build.sh: $tool not found (apt-get install --no-install-recommends buildah podman)" >&2
        exit 1
    }
done

if [[ -z "$binary" ]]; then
    (cd "$repo_root" && cargo build --release --locked --bin tooljet-operator)
    binary=${CARGO_TARGET_DIR:-$repo_root/target}/release/tooljet-operator
fi

context=$(mktemp -d "$IMAGE_STORAGE/tmp/context.XXXXXX")
trap 'rm -rf "$context"' EXIT
"$here/rootfs.sh" "$binary" "$context/rootfs" "$context/home"

buildah build --isolation chroot \
    --file "$here/Containerfile" --tag "$tag" "$context" >&2

if [[ -n "$archive" ]]; then
    rm -f "$archive"
    buildah push --quiet "$tag" "docker-archive:$archive:$tag" >&2
fi
size=$(buildah images --format '{{.Size}}' "$tag" 2>/dev/null | head -n 1 || true)
echo "build.sh: built $tag${size:+ ($size uncompressed)} in $IMAGE_STORAGE" >&2
echo "$tag"
