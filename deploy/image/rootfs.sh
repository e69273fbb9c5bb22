#!/usr/bin/env bash
# Stages the image's root filesystem for a FROM-scratch image: the operator binary, exactly the
# shared libraries it links (from ldd), the CA bundle and a non-root user (uid 65532, as
# distroless's "nonroot"). Used by build.sh (buildah) and by the Dockerfile, so both images have
# the same files at the same paths.
#   rootfs.sh BINARY ROOTFS_DIR HOME_DIR
# ROOTFS_DIR receives everything owned by root; HOME_DIR receives home/nonroot, which the
# Containerfile/Dockerfile copy with --chown=65532:65532.
set -euo pipefail

if (($# != 3)); then
    echo "usage: $0 BINARY ROOTFS_DIR HOME_DIR" >&2
    exit 2
fi
binary=$1 rootfs=$2 homefs=$3
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

[[ -x "$binary" ]] || { echo "rootfs.sh: $binary is not an executable file" >&2; exit 1; }
[[ -r "$ca_bundle" ]] || {
    echo "rootfs.sh: no CA bundle at $ca_bundle (install Debian's ca-certificates or set CA_BUNDLE)" >&2
    exit 1
}
command -v ldd >/dev/null || { echo "rootfs.sh: ldd not found (Debian's libc-bin)" >&2; exit 1; }

mkdir -p "$rootfs" "$homefs"
install -D -m 0755 "$binary" "$rootfs/usr/local/bin/tooljet-operator"

# Every library ldd resolves, and the dynamic loader, at the path ldd names (the binary asks for
# the loader by that absolute path). linux-vdso has no file. A library ldd cannot find fails.
ldd_out=$(ldd "$binary")
if grep -q "not found" <<<"$ldd_out"; then
    echo "rootfs.sh: ldd cannot resolve every library of $binary:" >&2
    echo "$ldd_out" >&2
    exit 1
fi
while read -r lib; do
    # With its mode: the loader must stay executable.
    real=$(readlink -f "$lib")
    install -D -m "$(stat -c %a "$real")" "$real" "$rootfs$lib"
done < <(sed -n -e 's/^.*=> \(\/[^ ]*\) (0x[0-9a-f]*)$/\1/p' -e 's/^[[:space:]]*\(\/[^ ]*\) (0x[0-9a-f]*)$/\1/p' <<<"$ldd_out" | sort -u)

install -D -m 0644 "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
install -d -m 0755 "$rootfs/etc"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
    >"$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
# glibc's default without this file asks DNS before /etc/hosts.
printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group" "$rootfs/etc/nsswitch.conf"
install -d -m 1777 "$rootfs/tmp"
install -d -m 0700 "$homefs/home/nonroot"
