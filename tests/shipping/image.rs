//! The container image, built and started here without a Docker daemon: `deploy/image/build.sh`
//! (buildah, FROM scratch, vfs storage, chroot isolation) and `deploy/image/podman.sh` run it
//! read-only as uid 65532, as Kubernetes would with the chart's securityContext.
//!
//! The image holds the binary cargo just built for this test run (a debug build; set
//! `TOOLJET_OPERATOR_IMAGE_BINARY=target/release/tooljet-operator` to check the release one), so
//! the test costs seconds, not a release build. Everything lives in a temporary `IMAGE_STORAGE`,
//! removed afterwards. Needs root, buildah, podman and runc (`.ci/packages-19.txt`); skips with a
//! message without them, except in CI where it fails.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use test_support::tools;
use tools::{repo, run, skip_unless_ci, tool};

const TAG: &str = "localhost/tooljet-operator:image-test";
const NONROOT: u32 = 65532;
const INSTALL: &str = "apt-get install --no-install-recommends buildah podman runc";

/// The image's store, emptied and removed when the test ends, however it ends.
struct Store {
    dir: tempfile::TempDir,
    /// Whether the blob-info cache podman and buildah keep for root at a fixed path existed before.
    blob_cache_existed: bool,
}

const BLOB_CACHE: &str = "/var/lib/containers";

impl Store {
    fn new() -> Store {
        Store {
            dir: tempfile::Builder::new()
                .prefix("tooljet-operator-image-")
                .tempdir()
                .expect("temp dir"),
            blob_cache_existed: Path::new(BLOB_CACHE).exists(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn podman(&self) -> Command {
        let mut cmd = Command::new(repo().join("deploy/image/podman.sh"));
        cmd.env("IMAGE_STORAGE", self.path());
        cmd
    }

    /// `podman run --rm` with the restrictions a hardened Pod has: read-only root, no network,
    /// no capabilities, no privilege escalation; the image's own user.
    fn run_image(&self, args: &[&str]) -> Output {
        let mut cmd = self.podman();
        cmd.args([
            "run",
            "--rm",
            "--read-only",
            "--read-only-tmpfs=false",
            "--network=none",
            "--cap-drop=all",
            "--security-opt=no-new-privileges",
            TAG,
        ])
        .args(args);
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.podman().args(["rm", "--all", "--force"]).output();
        let _ = self.podman().args(["rmi", "--all", "--force"]).output();
        // vfs layers are plain directories; nothing stays mounted once the containers are gone.
        let _ = std::fs::remove_dir_all(self.dir.path());
        if !self.blob_cache_existed {
            let _ = std::fs::remove_dir_all(BLOB_CACHE);
        }
    }
}

fn is_root() -> bool {
    run(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0")
}

/// The files ldd says `binary` loads, with the dynamic loader: what the image must hold.
fn linked_libraries(binary: &Path) -> Vec<String> {
    let out = run(Command::new("ldd").arg(binary)).unwrap_or_else(|e| panic!("{e}"));
    let mut libs: Vec<String> = out
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = l.split_once("=> ").map_or(l, |(_, p)| p);
            let path = path.split(" (0x").next()?;
            path.starts_with('/').then(|| path.to_owned())
        })
        .collect();
    libs.sort();
    libs.dedup();
    assert!(
        libs.iter().any(|l| l.contains("libc.so")),
        "ldd output not understood: {out}"
    );
    libs
}

/// Every entry of a directory tree: path (relative) → (mode, uid, gid, is_dir).
fn tree(root: &Path) -> BTreeMap<String, (u32, u32, u32, bool)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u32, u32, u32, bool)>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let entry = entry.expect("entry");
            let meta = entry.path().symlink_metadata().expect("metadata");
            let rel = entry
                .path()
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            out.insert(
                rel,
                (
                    meta.permissions().mode() & 0o7777,
                    meta.uid(),
                    meta.gid(),
                    meta.is_dir(),
                ),
            );
            if meta.is_dir() {
                walk(root, &entry.path(), out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The instructions of the last stage of a Dockerfile, comments and blank lines dropped, with
/// continuation lines joined.
fn final_stage(text: &str) -> Vec<String> {
    let joined = text.replace("\\\n", " ");
    let lines: Vec<&str> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let last_from = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("a FROM line");
    lines[last_from..].iter().map(|l| l.to_string()).collect()
}

#[test]
fn dockerfile_ends_with_the_containerfile() {
    let containerfile =
        std::fs::read_to_string(repo().join("deploy/image/Containerfile")).expect("Containerfile");
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    // The Dockerfile copies what its build stage staged (with the same rootfs.sh) into /out.
    let from_build: Vec<String> = final_stage(&dockerfile)
        .into_iter()
        .map(|l| l.replace("--from=build ", "").replace(" /out/", " "))
        .collect();
    assert_eq!(
        from_build,
        final_stage(&containerfile),
        "the Dockerfile's final stage and deploy/image/Containerfile must build the same image"
    );
    assert!(
        dockerfile.contains(
            "deploy/image/rootfs.sh target/release/tooljet-operator /out/rootfs /out/home"
        ),
        "the Dockerfile stages its files with deploy/image/rootfs.sh"
    );
}

#[test]
fn image_builds_from_scratch_and_runs_read_only_as_nonroot() {
    let (Some(_), Some(_), Some(_)) = (
        tool("BUILDAH", &["buildah"], INSTALL),
        tool("PODMAN", &["podman"], INSTALL),
        tool("RUNC", &["runc"], INSTALL),
    ) else {
        return;
    };
    if !is_root() {
        skip_unless_ci("the image test runs buildah and podman as root (vfs, chroot isolation)");
        return;
    }
    let binary = std::env::var_os("TOOLJET_OPERATOR_IMAGE_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tooljet-operator")));
    let store = Store::new();

    let built = Command::new(repo().join("deploy/image/build.sh"))
        .env("IMAGE_STORAGE", store.path())
        .arg("--binary")
        .arg(&binary)
        .args(["--tag", TAG])
        .output()
        .expect("build.sh starts");
    assert!(
        built.status.success(),
        "build.sh failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );

    // The configuration: non-root user, entrypoint and default command, CA bundle for TLS.
    let inspect = run(store.podman().args([
        "image",
        "inspect",
        "--format",
        "{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}|{{json .Config.Env}}|{{.Size}}",
        TAG,
    ]))
    .unwrap_or_else(|e| panic!("{e}"));
    let fields: Vec<&str> = inspect.trim().split('|').collect();
    assert_eq!(fields[0], "65532:65532", "{inspect}");
    assert_eq!(fields[1], r#"["/usr/local/bin/tooljet-operator"]"#);
    assert_eq!(fields[2], r#"["run"]"#);
    assert!(fields[3].contains("HOME=/home/nonroot"), "{inspect}");
    assert!(
        fields[3].contains("SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"),
        "{inspect}"
    );
    let size: u64 = fields[4].parse().expect("size");
    eprintln!(
        "image {TAG}: {size} bytes ({:.1} MB) with {}",
        size as f64 / 1e6,
        binary.display()
    );

    // The files: exactly the binary, the libraries ldd names, the CA bundle, the user database.
    let mounted =
        run(store.podman().args(["image", "mount", TAG])).unwrap_or_else(|e| panic!("{e}"));
    let files = tree(Path::new(mounted.trim()));
    let passwd =
        std::fs::read_to_string(Path::new(mounted.trim()).join("etc/passwd")).expect("etc/passwd");
    let _ = store.podman().args(["image", "unmount", TAG]).output();
    assert!(
        passwd
            .lines()
            .any(|l| l == "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin"),
        "{passwd}"
    );
    let mut expected: Vec<String> = linked_libraries(&binary)
        .iter()
        .map(|l| l.trim_start_matches('/').to_owned())
        .collect();
    expected.extend(
        [
            "usr/local/bin/tooljet-operator",
            "etc/ssl/certs/ca-certificates.crt",
            "etc/passwd",
            "etc/group",
            "etc/nsswitch.conf",
        ]
        .map(String::from),
    );
    expected.sort();
    let found: Vec<String> = files
        .iter()
        .filter(|(_, (_, _, _, dir))| !dir)
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(found, expected, "files in the image");
    assert_eq!(
        files["usr/local/bin/tooljet-operator"],
        (0o755, 0, 0, false),
        "the binary belongs to root: the process cannot change it"
    );
    assert_eq!(files["home/nonroot"], (0o700, NONROOT, NONROOT, true));
    assert_eq!(files["tmp"], (0o1777, 0, 0, true));

    // --version, crds: the binary starts with only what the image holds.
    let version = store.run_image(&["--version"]);
    assert!(
        version.status.success(),
        "--version: {}",
        String::from_utf8_lossy(&version.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("tooljet-operator {}", env!("CARGO_PKG_VERSION"))
    );
    let crds = store.run_image(&["crds"]);
    assert!(crds.status.success());
    assert_eq!(
        String::from_utf8(crds.stdout).expect("utf-8"),
        tooljet_operator::api::crds_yaml().expect("crds")
    );

    // The default command, `run`, without a cluster: a clear error and a failing exit code. The
    // kubeconfig it looked for is the nonroot user's: the process runs as uid 65532.
    let no_cluster = store.run_image(&[]);
    let stderr = String::from_utf8_lossy(&no_cluster.stderr);
    assert!(
        !no_cluster.status.success(),
        "run without a cluster must fail"
    );
    assert!(
        stderr.contains("no Kubernetes configuration: set KUBECONFIG or run in a cluster"),
        "{stderr}"
    );
    assert!(stderr.contains("/home/nonroot/.kube/config"), "{stderr}");

    // Nothing of the test stays behind: no container, nothing mounted under the store.
    let left = run(store.podman().args(["ps", "--all", "--quiet"])).expect("podman ps");
    assert_eq!(left.trim(), "", "containers left");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let store_path = store.path().to_string_lossy().into_owned();
    assert!(
        !mounts.contains(&store_path),
        "still mounted under {store_path}:\n{mounts}"
    );
}
