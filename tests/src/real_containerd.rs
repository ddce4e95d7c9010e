//! A containerd root made by a real containerd (Debian's `containerd` and
//! `ctr`: bookworm's 1.6 on the host, or trixie's 1.7 in the trixie tree,
//! [`trixie`](crate::trixie)), for the overlayfs snapshotter driver.
//!
//! containerd 1.7's `ctr run` fails in the tree on its bare cgroup2 mount
//! ("controller cpu is not available": the host's cgroups are hybrid, the
//! controllers are all bound to v1 hierarchies). With the host's
//! `/sys/fs/cgroup` (its v1 hierarchies) bound recursively over it
//! instead, runc uses cgroup v1 there as it does on the host.
//!
//! A private containerd (its own root, state directory and socket, the CRI
//! plugin and the `/opt` plugin disabled) imports two images written here
//! without any network — a docker-archive tar (`dm/ctr-base:1`, two
//! layers, the second deleting a directory and a file, making a directory
//! opaque and changing files) into namespace `default`, and an OCI layout
//! whose image is a nested index (`dm/ctr-oci:1`) into namespace `other`
//! — then `ctr run`s containers that add, change and delete files (a
//! deleted directory, a symlink, a file whose mtime was put back, a
//! directory replaced by a new one), leaves them stopped, and `ctr
//! containers create`s one that never ran, and leaves one running. The
//! oracle is containerd's own view: `ctr snapshots mounts` of each
//! container's snapshot key, mounted read-only while building and written
//! out as a tar. containerd is then killed with SIGKILL (the host going
//! down with a container running), its shims and their containers too,
//! and nothing is left mounted or running.
//!
//! Kept apart from [`real`](crate::real) with its own cache key
//! (`/var/cache/docker-mount-tests/real-roots/containerd-<hash of this file>/`; 1.7's in
//! `/var/cache/docker-mount-tests/containerd17-<hash of this file and the
//! tree's recipe>/`, the path it has in the tree too).

use std::fs::{self, File};
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::real::{
    cached_root, cached_root_in, container_named, kill_with_shims, log_tail, mentioning,
    programs_available, require, root_available, run, run_ok, unmount_under, which, write,
    Leftovers, BUSYBOX,
};
use crate::trixie::{self, Chroot};

pub const CONTAINERD: &str = "/usr/bin/containerd";
pub const CTR: &str = "/usr/bin/ctr";
/// The image with two layers, in namespace `default`.
pub const BASE_IMAGE: &str = "docker.io/dm/ctr-base:1";
/// The same layers as an OCI layout whose image is a nested index, in
/// namespace `other`.
pub const OCI_IMAGE: &str = "docker.io/dm/ctr-oci:1";
/// Files and directories of the images carry this mtime.
const IMAGE_MTIME: u64 = 1_600_000_000;

/// One container of the root.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CtrContainer {
    pub namespace: String,
    pub id: String,
    /// What `docker-mount list` should call it: `<namespace>/` and nerdctl's
    /// name label, or the id.
    pub name: String,
    pub image: String,
    pub snapshotter: String,
    /// containerd's own view of its snapshot, as a tar (overlayfs only).
    pub oracle_tar: Option<PathBuf>,
}

/// Which containerd makes a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Generation {
    /// Debian bookworm's 1.6, on the host.
    Containerd16,
    /// Debian trixie's 1.7, in the trixie tree.
    Containerd17,
}

impl Generation {
    fn available(self) -> Result<(), String> {
        match self {
            Generation::Containerd16 => containerd_available(),
            Generation::Containerd17 => {
                root_available()?;
                programs_available(&[BUSYBOX], "busybox-static")?;
                trixie::available()
            }
        }
    }
}

/// The built root and its oracles.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CtrRoot {
    pub generation: Generation,
    /// The cache directory.
    pub dir: PathBuf,
    /// containerd's root (the evidence).
    pub root: PathBuf,
    pub containers: Vec<CtrContainer>,
    /// (namespace, image name, target digest).
    pub images: Vec<(String, String, String)>,
    pub build_seconds: f64,
}

impl CtrRoot {
    /// The container of that (qualified) name.
    pub fn container(&self, name: &str) -> &CtrContainer {
        container_named(&self.containers, name, |c| &c.name, "containerd root")
    }
}

/// Whether a real containerd root can be built here.
pub fn containerd_available() -> Result<(), String> {
    root_available()?;
    programs_available(&[CONTAINERD, CTR, BUSYBOX], "containerd busybox-static")?;
    if which("runc").is_none() {
        return Err("runc is missing (apt-get install runc)".into());
    }
    if which("containerd-shim-runc-v2").is_none() {
        return Err("containerd-shim-runc-v2 is missing (apt-get install containerd)".into());
    }
    Ok(())
}

/// True if the containerd tests can run; otherwise panics under `CI=true`
/// (privileged tests must fail in CI) or prints why and returns false.
pub fn require_containerd() -> bool {
    require("privileged", containerd_available())
}

/// True if the containerd 1.7 tests can run (as [`require_containerd`]).
pub fn require_containerd17() -> bool {
    require("privileged", Generation::Containerd17.available())
}

/// The containerd 1.6 root, built once per process and cached on disk.
pub fn containerd_root() -> &'static CtrRoot {
    static ROOT: OnceLock<CtrRoot> = OnceLock::new();
    ROOT.get_or_init(|| cached(Generation::Containerd16))
}

/// The containerd 1.7 root, built once per process and cached on disk.
pub fn containerd17_root() -> &'static CtrRoot {
    static ROOT: OnceLock<CtrRoot> = OnceLock::new();
    ROOT.get_or_init(|| cached(Generation::Containerd17))
}

fn cached(generation: Generation) -> CtrRoot {
    let source = include_str!("real_containerd.rs");
    let build = |dest: &Path| build(generation, dest);
    let (_, root) = match generation {
        Generation::Containerd16 => cached_root(
            "containerd",
            source,
            generation.available(),
            &LEFTOVERS,
            build,
        ),
        Generation::Containerd17 => cached_root_in(
            Path::new(trixie::CACHE),
            "containerd17",
            &format!("{source}{}", trixie::recipe()),
            generation.available(),
            &LEFTOVERS,
            build,
        ),
    };
    root
}

// ---- image tars -----------------------------------------------------------

/// A tar being written in memory with fixed times and owners.
struct TarBuf(tar::Builder<Vec<u8>>);

impl TarBuf {
    fn new() -> TarBuf {
        let mut b = tar::Builder::new(Vec::new());
        b.mode(tar::HeaderMode::Complete);
        TarBuf(b)
    }

    fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(IMAGE_MTIME);
        h.set_size(0);
        h
    }

    fn dir(&mut self, path: &[u8], mode: u32) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0, 0);
        self.0
            .append_data(&mut h, std::ffi::OsStr::from_bytes(path), std::io::empty())
            .expect("tar dir");
        self
    }

    fn file_owned(&mut self, path: &[u8], mode: u32, uid: u64, gid: u64, data: &[u8]) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, uid, gid);
        h.set_size(data.len() as u64);
        self.0
            .append_data(&mut h, std::ffi::OsStr::from_bytes(path), data)
            .expect("tar file");
        self
    }

    fn file(&mut self, path: &[u8], mode: u32, data: &[u8]) -> &mut Self {
        self.file_owned(path, mode, 0, 0, data)
    }

    fn link(&mut self, kind: tar::EntryType, path: &str, target: &str) -> &mut Self {
        // A hard link's mode is its file's (containerd applies it to both).
        let mode = if kind == tar::EntryType::Link {
            0o755
        } else {
            0o777
        };
        let mut h = Self::header(kind, mode, 0, 0);
        self.0.append_link(&mut h, path, target).expect("tar link");
        self
    }

    fn special(
        &mut self,
        kind: tar::EntryType,
        path: &str,
        mode: u32,
        dev: (u32, u32),
    ) -> &mut Self {
        let mut h = Self::header(kind, mode, 0, 0);
        h.set_device_major(dev.0).expect("major");
        h.set_device_minor(dev.1).expect("minor");
        self.0
            .append_data(&mut h, path, std::io::empty())
            .expect("tar special");
        self
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner().expect("finish tar")
    }
}

const APPLETS: [&str; 16] = [
    "ls", "mkdir", "rm", "ln", "echo", "cat", "touch", "sleep", "mv", "cp", "chmod", "mkfifo",
    "true", "rmdir", "stat", "find",
];

/// The base layer: busybox, its applets, and what the second layer and
/// the containers will change.
fn layer1() -> Vec<u8> {
    let busybox = fs::read(BUSYBOX).expect("read busybox");
    let mut t = TarBuf::new();
    t.dir(b"bin", 0o755)
        .file(b"bin/busybox", 0o755, &busybox)
        .link(tar::EntryType::Link, "bin/sh", "bin/busybox");
    for a in APPLETS {
        t.link(tar::EntryType::Symlink, &format!("bin/{a}"), "busybox");
    }
    t.dir(b"etc", 0o755)
        .file(b"etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
        .file(b"etc/group", 0o644, b"root:x:0:\n")
        .file(b"etc/motd", 0o644, b"welcome\n")
        .file(b"etc/keep", 0o644, b"deleted by layer 2\n")
        .file(b"etc/restored", 0o644, b"original\n")
        .file(b"etc/chmod-me", 0o644, b"mode changes in layer 2\n")
        .dir(b"tmp", 0o1777)
        .dir(b"root", 0o700)
        .dir(b"doomed-dir", 0o755)
        .dir(b"doomed-dir/sub", 0o755)
        .file(b"doomed-dir/sub/x", 0o644, b"x\n")
        .dir(b"opaque", 0o755)
        .file(b"opaque/old", 0o644, b"hidden by layer 2\n")
        .dir(b"data", 0o755)
        .file(b"data/name with spaces", 0o644, b"spaces\n")
        .file(b"data/non-utf8-\xff\xfe", 0o644, b"latin1\n")
        .file_owned(
            b"data/odd-owner",
            0o4755,
            12345,
            54321,
            b"setuid, odd owner\n",
        )
        .link(tar::EntryType::Symlink, "data/abs-link", "/etc/passwd")
        .link(tar::EntryType::Symlink, "data/rel-link", "../etc/passwd")
        .special(tar::EntryType::Fifo, "data/fifo", 0o644, (0, 0))
        .special(tar::EntryType::Char, "data/null", 0o666, (1, 3))
        .dir(b"ctr-rm", 0o755)
        .file(b"ctr-rm/a", 0o644, b"a\n")
        .dir(b"ctr-rm/deeper", 0o755)
        .file(b"ctr-rm/deeper/b", 0o644, b"b\n");
    t.finish()
}

/// The second layer: aufs-style whiteouts (as image tars carry them), an
/// opaque directory, changed content and mode, a new file.
fn layer2() -> Vec<u8> {
    let mut t = TarBuf::new();
    t.file(b".wh.doomed-dir", 0o644, b"")
        .dir(b"etc", 0o755)
        .file(b"etc/.wh.keep", 0o644, b"")
        .file(b"etc/motd", 0o644, b"welcome, changed by layer 2\n")
        .file(b"etc/chmod-me", 0o600, b"mode changes in layer 2\n")
        .file(b"etc/added-by-layer2", 0o644, b"new\n")
        .dir(b"opaque", 0o755)
        .file(b"opaque/.wh..wh..opq", 0o644, b"")
        .file(b"opaque/new", 0o644, b"only this is left\n");
    t.finish()
}

fn digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn config(diff_ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2020-09-13T12:26:40Z",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "layer1"}, {"created_by": "layer2"}],
    }))
    .expect("json")
}

/// `docker save` format: manifest.json, the config, one dir per layer.
fn docker_archive(name: &str, layers: &[Vec<u8>]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
    let cfg = config(&diff_ids);
    let cfg_name = format!("{}.json", digest(&cfg).trim_start_matches("sha256:"));
    let layer_names: Vec<String> = (0..layers.len())
        .map(|i| format!("l{i}/layer.tar"))
        .collect();
    let manifest = serde_json::json!([{"Config": cfg_name, "RepoTags": [name.trim_start_matches("docker.io/")], "Layers": layer_names}]);
    let mut t = TarBuf::new();
    t.file(
        b"manifest.json",
        0o644,
        &serde_json::to_vec(&manifest).expect("json"),
    )
    .file(cfg_name.as_bytes(), 0o644, &cfg);
    for (n, l) in layer_names.iter().zip(layers) {
        t.file(n.as_bytes(), 0o644, l);
    }
    t.finish()
}

/// An OCI layout whose index names (by containerd's annotation) an image
/// index, which lists the manifest for linux/amd64.
fn oci_archive(name: &str, layers: &[Vec<u8>]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
    let cfg = config(&diff_ids);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&cfg), "size": cfg.len()},
        "layers": layers.iter().map(|l| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(l), "size": l.len()})).collect::<Vec<_>>(),
    }))
    .expect("json");
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(&manifest), "size": manifest.len(), "platform": {"architecture": "amd64", "os": "linux"}}],
    }))
    .expect("json");
    let top = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest(&index), "size": index.len(),
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "1"}}],
    }))
    .expect("json");
    let mut t = TarBuf::new();
    t.file(b"oci-layout", 0o644, br#"{"imageLayoutVersion":"1.0.0"}"#)
        .file(b"index.json", 0o644, &top);
    for b in layers.iter().chain([&cfg, &manifest, &index]) {
        let p = format!("blobs/sha256/{}", digest(b).trim_start_matches("sha256:"));
        t.file(p.as_bytes(), 0o644, b);
    }
    t.finish()
}

// ---- the daemon -----------------------------------------------------------

struct Daemon {
    child: Option<Child>,
    /// The trixie tree containerd 1.7 runs in.
    chroot: Option<Chroot>,
    run: PathBuf,
    sock: PathBuf,
    log: PathBuf,
}

/// The trixie tree's view for containerd 1.7: the run dir bound in, and the
/// host's cgroup hierarchies over the view's bare cgroup2 (see the module
/// documentation).
fn tree_view(run_dir: &Path) -> Chroot {
    let c = Chroot::enter().unwrap_or_else(|e| panic!("{e}"));
    c.bind_same(run_dir).unwrap_or_else(|e| panic!("{e}"));
    let cgroup = c.root().join("sys/fs/cgroup");
    nix::mount::mount(
        Some("/sys/fs/cgroup"),
        &cgroup,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
        None::<&str>,
    )
    .unwrap_or_else(|e| panic!("mount --rbind /sys/fs/cgroup {}: {e}", cgroup.display()));
    nix::mount::mount(
        None::<&str>,
        &cgroup,
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .unwrap_or_else(|e| panic!("mount --make-rprivate {}: {e}", cgroup.display()));
    c
}

impl Daemon {
    fn start(generation: Generation, dest: &Path, root: &Path) -> Daemon {
        let run_dir = LEFTOVERS.run_dir(dest);
        let chroot = match generation {
            Generation::Containerd16 => None,
            Generation::Containerd17 => Some(tree_view(&run_dir)),
        };
        let sock = run_dir.join("s");
        let config = dest.join("config.toml");
        write(
            &config,
            format!(
                "version = 2\nroot = {root:?}\nstate = {state:?}\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.internal.v1.opt\", \
                 \"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.zfs\", \
                 \"io.containerd.snapshotter.v1.devmapper\", \"io.containerd.snapshotter.v1.aufs\"]\n\
                 [grpc]\n  address = {sock:?}\n[ttrpc]\n  address = {ttrpc:?}\n\
                 [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n",
                root = root.display().to_string(),
                state = run_dir.join("state").display().to_string(),
                sock = sock.display().to_string(),
                ttrpc = run_dir.join("t").display().to_string(),
            ),
        );
        let log = dest.join("containerd.log");
        let logf = File::create(&log).expect("containerd log");
        let child = program(chroot.as_ref(), CONTAINERD)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("dup"))
            .stderr(logf)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {CONTAINERD}: {e}"));
        let mut d = Daemon {
            child: Some(child),
            chroot,
            run: run_dir,
            sock,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if run(d.ctr("default").arg("version"), 30).0 == 0 {
                break;
            }
            let exited = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                panic!("containerd did not come up:\n{}", log_tail(&d.log));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        d
    }

    fn ctr(&self, ns: &str) -> Command {
        let mut c = program(self.chroot.as_ref(), CTR);
        c.arg("--address").arg(&self.sock).args(["--namespace", ns]);
        c.env_remove("CONTAINERD_ADDRESS")
            .env_remove("CONTAINERD_NAMESPACE")
            .env_remove("CONTAINERD_SNAPSHOTTER");
        c
    }

    /// `ctr` in `ns` that must succeed.
    fn ctr_ok(&self, ns: &str, args: &[&str], timeout: u64) -> String {
        let (code, out, err) = run(self.ctr(ns).args(args), timeout);
        if code != 0 {
            panic!(
                "ctr -n {ns} {args:?} failed ({code}):\n{out}\n{err}\n--- containerd log ---\n{}",
                log_tail(&self.log)
            );
        }
        out
    }

    /// `ctr run` that must exit with `code`. runc keeps its state in the
    /// run dir, not the host's `/run/containerd/runc`: a container killed
    /// with the crash leaves nothing behind there.
    fn run_container(&self, ns: &str, args: &[&str], code: i32) {
        let runc_root = self.run.join("runc").display().to_string();
        let mut all = vec!["run", "--runc-root", &runc_root];
        all.extend_from_slice(args);
        let (got, out, err) = run(self.ctr(ns).args(&all), 180);
        assert_eq!(
            got,
            code,
            "ctr -n {ns} {all:?} exited {got}:\n{out}\n{err}\n--- containerd log ---\n{}",
            log_tail(&self.log)
        );
    }

    /// SIGTERM containerd and wait for it; then whatever it left (shims,
    /// mounts, the state directory) goes.
    fn stop(&mut self) {
        self.signal(libc::SIGTERM);
    }

    /// The host going down: containerd SIGKILLed with a container
    /// running, then its shims and their containers.
    fn crash(&mut self) {
        self.signal(libc::SIGKILL);
    }

    fn signal(&mut self, signal: libc::c_int) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on the pid of our own child.
            unsafe {
                libc::kill(c.id() as libc::pid_t, signal);
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while c.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // Shims it left, and their containers.
        let survivors = kill_with_shims(Vec::new(), &self.run);
        assert!(
            survivors.is_empty() || std::thread::panicking(),
            "shims {survivors:?} survived SIGKILL"
        );
        // The tree's view, with the mounts containerd made in it.
        drop(self.chroot.take());
        let unmounted = unmount_under(&[&self.run]);
        let _ = fs::remove_dir_all(&self.run);
        if !std::thread::panicking() {
            unmounted.unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// `program` on the host, or its namesake in the tree.
fn program(chroot: Option<&Chroot>, program: &str) -> Command {
    match chroot {
        Some(t) => t.command(program),
        None => Command::new(program),
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
    }
}

/// The leftovers of a build: containerd's state, sockets and mount
/// point, the containerd given the cache dir's config, and its shims.
const LEFTOVERS: Leftovers = Leftovers {
    tag: "dmc.",
    stop: stop_stale,
};

/// Kills what an interrupted build in `dir` with run dir `run` left: the
/// containerd started with its `config.toml`, the shims and containers of
/// that containerd.
fn stop_stale(dir: &Path, run: &Path) {
    let containerd = mentioning(&[&dir.join("config.toml")]);
    let survivors = kill_with_shims(containerd, run);
    assert!(
        survivors.is_empty(),
        "stale containerd processes {survivors:?} survived SIGKILL"
    );
}

/// containerd's own mount of snapshot `key` (`ctr snapshots mounts`),
/// made read-only on `point`.
fn mount_snapshot(d: &Daemon, ns: &str, key: &str, point: &Path) {
    let point_s = point.display().to_string();
    let out = d.ctr_ok(
        ns,
        &[
            "snapshots",
            "--snapshotter",
            "overlayfs",
            "mounts",
            &point_s,
            key,
        ],
        60,
    );
    // `mount -t overlay overlay <point> -o <options>`
    let words: Vec<&str> = out.split_whitespace().collect();
    let opt = |flag: &str| {
        words
            .iter()
            .position(|w| *w == flag)
            .and_then(|i| words.get(i + 1))
            .copied()
            .unwrap_or_else(|| panic!("no {flag} in {out:?}"))
    };
    let fstype = opt("-t");
    let options = opt("-o");
    assert_eq!(fstype, "overlay", "{out}");
    run_ok(
        Command::new("mount")
            .args(["-t", fstype, "-o"])
            .arg(format!("ro,{options}"))
            .arg("overlay")
            .arg(point),
        60,
    );
}

/// Tars a mounted view (its entries, not `.` itself).
fn tar_view(point: &Path, out: &Path) {
    let list = out.with_extension("list");
    let mut f = File::create(&list).expect("list file");
    let mut names: Vec<_> = fs::read_dir(point)
        .expect("read view")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for n in names {
        f.write_all(n.as_bytes()).expect("write list");
        f.write_all(b"\0").expect("write list");
    }
    drop(f);
    run_ok(
        Command::new("tar")
            .args(["--numeric-owner", "--format=posix", "-C"])
            .arg(point)
            .arg("-cf")
            .arg(out)
            .args(["--null", "-T"])
            .arg(&list),
        300,
    );
    let _ = fs::remove_file(list);
}

/// Builds the root in `dest` (which must not exist); returns what
/// [`cached_root`] writes to `meta.json`.
pub fn build(generation: Generation, dest: &Path) -> CtrRoot {
    let t0 = Instant::now();
    fs::create_dir_all(dest).unwrap_or_else(|e| panic!("mkdir {}: {e}", dest.display()));
    let root = dest.join("containerd");
    let mut d = Daemon::start(generation, dest, &root);

    let images = dest.join("images");
    let layers = [layer1(), layer2()];
    write(
        &images.join("base.tar"),
        docker_archive(BASE_IMAGE, &layers),
    );
    write(&images.join("oci.tar"), oci_archive(OCI_IMAGE, &layers));
    let base_tar = images.join("base.tar").display().to_string();
    let oci_tar = images.join("oci.tar").display().to_string();
    d.ctr_ok(
        "default",
        &["images", "import", "--snapshotter", "overlayfs", &base_tar],
        300,
    );
    d.ctr_ok(
        "other",
        &["images", "import", "--snapshotter", "overlayfs", &oci_tar],
        300,
    );

    let ov = ["--snapshotter", "overlayfs"];
    let changes = "set -e; echo added > /added; echo appended >> /etc/motd; \
        rm -rf /ctr-rm; rm /data/abs-link; ln -s /etc/motd /ctr-link; \
        touch -r /etc/restored /tmp/ref; echo tampered > /etc/restored; touch -r /tmp/ref /etc/restored; rm /tmp/ref; \
        mkdir -p /new-dir/sub; echo deep > /new-dir/sub/f; touch -d '2021-02-03 04:05:06' /new-dir/sub/f; \
        chmod 0600 /etc/passwd; mkfifo /ctr-fifo; ln /etc/group /group-hardlink; \
        cp /bin/busybox /suid-copy; chmod 4755 /suid-copy; mv '/data/name with spaces' /data/renamed; \
        echo in-volume > /vol/file; exit 0";
    let mut containers = Vec::new();
    let mut add = |ns: &str, id: &str, name: &str, image: &str, snapshotter: &str| {
        containers.push(CtrContainer {
            namespace: ns.into(),
            id: id.into(),
            name: name.into(),
            image: image.into(),
            snapshotter: snapshotter.into(),
            oracle_tar: None,
        });
    };
    // A volume: a directory of the host bound in, outside the snapshot.
    let volume = dest.join("volume");
    fs::create_dir_all(&volume).expect("mkdir volume");
    let mount = format!(
        "type=bind,src={},dst=/vol,options=rbind:rw",
        volume.display()
    );
    d.run_container(
        "default",
        &[
            ov[0],
            ov[1],
            "--mount",
            &mount,
            BASE_IMAGE,
            "c-changes",
            "sh",
            "-c",
            changes,
        ],
        0,
    );
    assert_eq!(
        fs::read_to_string(volume.join("file")).ok().as_deref(),
        Some("in-volume\n"),
        "the volume was not written"
    );
    add(
        "default",
        "c-changes",
        "default/c-changes",
        BASE_IMAGE,
        "overlayfs",
    );
    let exit3 =
        "echo three > /three; rm /bin/ls; rm -rf /etc; mkdir /etc; echo only > /etc/only; exit 3";
    d.run_container(
        "default",
        &[ov[0], ov[1], BASE_IMAGE, "c-exit3", "sh", "-c", exit3],
        3,
    );
    add(
        "default",
        "c-exit3",
        "default/c-exit3",
        BASE_IMAGE,
        "overlayfs",
    );
    d.ctr_ok(
        "default",
        &[
            "containers",
            "create",
            ov[0],
            ov[1],
            BASE_IMAGE,
            "c-created",
            "sh",
        ],
        60,
    );
    add(
        "default",
        "c-created",
        "default/c-created",
        BASE_IMAGE,
        "overlayfs",
    );
    let other = "echo other > /other; rm /etc/motd; echo x >> /opaque/new";
    d.run_container(
        "other",
        &[
            ov[0],
            ov[1],
            "--label",
            "nerdctl/name=nerd-web",
            OCI_IMAGE,
            "c-other",
            "sh",
            "-c",
            other,
        ],
        0,
    );
    add("other", "c-other", "other/nerd-web", OCI_IMAGE, "overlayfs");
    d.run_container(
        "other",
        &[
            "--snapshotter",
            "native",
            OCI_IMAGE,
            "c-native",
            "sh",
            "-c",
            "echo n > /n",
        ],
        0,
    );
    add("other", "c-native", "other/c-native", OCI_IMAGE, "native");
    // The same id in both namespaces: only its qualified name tells them apart.
    for (ns, image) in [("default", BASE_IMAGE), ("other", OCI_IMAGE)] {
        let script = format!("echo {ns} > /twin");
        d.run_container(ns, &[ov[0], ov[1], image, "c-twin", "sh", "-c", &script], 0);
        add(ns, "c-twin", &format!("{ns}/c-twin"), image, "overlayfs");
    }

    // Running when the host goes down.
    let running = "echo running > /run-file; rm /etc/motd; sleep 100000";
    d.run_container(
        "default",
        &[
            "-d",
            ov[0],
            ov[1],
            BASE_IMAGE,
            "c-running",
            "sh",
            "-c",
            running,
        ],
        0,
    );
    add(
        "default",
        "c-running",
        "default/c-running",
        BASE_IMAGE,
        "overlayfs",
    );

    // Oracles: containerd's mount of each overlayfs container's snapshot.
    let oracles = dest.join("oracles");
    fs::create_dir_all(&oracles).expect("mkdir oracles");
    let point = d.run.join("m");
    fs::create_dir_all(&point).expect("mkdir mount point");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        mount_snapshot(&d, "default", "c-running", &point);
        let started = point.join("run-file").exists();
        unmount_under(&[&point]).unwrap_or_else(|e| panic!("{e}"));
        if started {
            break;
        }
        assert!(Instant::now() < deadline, "c-running never wrote /run-file");
        std::thread::sleep(Duration::from_millis(100));
    }
    for c in containers
        .iter_mut()
        .filter(|c| c.snapshotter == "overlayfs")
    {
        mount_snapshot(&d, &c.namespace, &c.id, &point);
        let rel = PathBuf::from("oracles").join(format!("{}-{}.tar", c.namespace, c.id));
        tar_view(&point, &dest.join(&rel));
        unmount_under(&[&point]).unwrap_or_else(|e| panic!("{e}"));
        c.oracle_tar = Some(rel);
    }
    let mut image_list = Vec::new();
    for ns in ["default", "other"] {
        for line in d.ctr_ok(ns, &["images", "ls"], 60).lines().skip(1) {
            let w: Vec<&str> = line.split_whitespace().collect();
            if w.len() >= 3 {
                image_list.push((ns.to_string(), w[0].to_string(), w[2].to_string()));
            }
        }
    }
    d.crash();
    unmount_under(&[dest]).unwrap_or_else(|e| panic!("{e}"));
    let mounted = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    assert!(
        !mounted.contains(&dest.display().to_string()),
        "something is still mounted under {}",
        dest.display()
    );

    let built = CtrRoot {
        generation,
        dir: dest.to_path_buf(),
        root,
        containers: containers
            .into_iter()
            .map(|mut c| {
                c.oracle_tar = c.oracle_tar.map(|t| dest.join(t));
                c
            })
            .collect(),
        images: image_list,
        build_seconds: t0.elapsed().as_secs_f64(),
    };
    eprintln!(
        "built real {generation:?} root in {:.1} s at {}",
        built.build_seconds,
        built.root.display()
    );
    built
}
