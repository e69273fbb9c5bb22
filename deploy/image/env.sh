# Sourced by build.sh and podman.sh (or by you: `source deploy/image/env.sh`, then plain buildah
# and podman commands use the same store). Everything is set through environment variables and
# two configuration files written under $IMAGE_STORAGE, so nothing depends on /etc/containers,
# ~/.config or a systemd session:
#   vfs storage (no kernel overlay needed), cgroupfs, no events log, runc (crun refuses hybrid
#   cgroup v1/v2 hosts), its own CNI directory, chroot isolation for buildah, and modest ulimits (a sandbox without
#   CAP_SYS_RESOURCE cannot give containers podman's default 1048576 open files).
# IMAGE_STORAGE: where images, containers and temporary files live (default target/image-storage;
# delete the directory to remove them all).
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IMAGE_STORAGE=${IMAGE_STORAGE:-$repo_root/target/image-storage}
mkdir -p "$IMAGE_STORAGE/tmp"
IMAGE_STORAGE=$(cd "$IMAGE_STORAGE" && pwd)
export IMAGE_STORAGE

cat >"$IMAGE_STORAGE/storage.conf" <<CONF
[storage]
driver = "vfs"
graphroot = "$IMAGE_STORAGE/root"
runroot = "$IMAGE_STORAGE/run"
CONF
runtime=""
command -v runc >/dev/null && runtime='runtime = "runc"'
cat >"$IMAGE_STORAGE/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "none"
tmp_dir = "$IMAGE_STORAGE/libpod"
$runtime
[network]
network_config_dir = "$IMAGE_STORAGE/net.d"
CONF
export CONTAINERS_STORAGE_CONF=$IMAGE_STORAGE/storage.conf
export CONTAINERS_CONF=$IMAGE_STORAGE/containers.conf
export BUILDAH_ISOLATION=chroot
export TMPDIR=$IMAGE_STORAGE/tmp
# A foreign XDG_RUNTIME_DIR would send runtime files elsewhere.
export XDG_RUNTIME_DIR=$IMAGE_STORAGE/run
