//! A docker root made by a real *rootless* dockerd (issue 8): Debian's
//! `dockerd-rootless.sh` run by an unprivileged user (`dmrootless`, created
//! here with its own `/etc/subuid` and `/etc/subgid` ranges) inside
//! rootlesskit's user namespace, with `--net=host` (no slirp4netns needed)
//! and the overlay2 storage driver, whose layers then carry
//! `user.overlay.*` xattrs and whose ids on disk are shifted: container
//! root is the user's own uid, container id `n >= 1` is `subuid + n - 1`.
//!
//! No registry: the base image is `docker import`ed from a busybox rootfs,
//! a second image is `docker build` from it (a directory replaced, files
//! deleted), a third is `docker load`ed from an archive written here whose
//! second layer holds aufs-style `.wh..wh..opq` and `.wh.` whiteouts (what
//! a pulled layer carries). Containers replace a directory (opaque), move a
//! lower directory, add, change, chown and delete files; they exit, and
//! one is only created. `docker export`, `docker diff`, `inspect` and the
//! layers' xattrs and whiteouts are recorded while (or right after) the
//! daemon runs; then dockerd is stopped with SIGTERM, the rootlesskit
//! process tree is waited for (and killed by pid if it lingers), and no
//! mount is left: every mount of a rootless daemon lives in rootlesskit's
//! own mount namespace.
//!
//! Kept apart from [`real`](crate::real): cached under
//! `/var/cache/docker-mount-tests/real-roots/rootless-<hash of this file>/`. The data root
//! keeps the owners the rootless daemon gave it (the evidence); root reads
//! it like any other root.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::real::{
    alive, cached_root, container_named, docker_cli, import_args, kill_all, log_tail, mentions,
    os_args, privileged_available, programs_available, require, run, run_ok, signal, tar_rootfs,
    tree, unmount_under, write, Leftovers, BUSYBOX,
};

/// The unprivileged user that runs the rootless daemon.
pub const USER: &str = "dmrootless";
/// Debian docker.io's rootless launcher.
pub const ROOTLESS_SH: &str = "/usr/share/docker.io/contrib/dockerd-rootless.sh";
/// The tools it needs (packages rootlesskit and uidmap).
pub const ROOTLESS_TOOLS: [&str; 3] = [
    "/usr/bin/rootlesskit",
    "/usr/bin/newuidmap",
    "/usr/bin/newgidmap",
];
/// Ids given to the user when it has no subordinate range yet.
const SUBID_COUNT: u32 = 65536;
/// The lowest first subordinate id we hand out.
const SUBID_FLOOR: u32 = 300_000;

/// Whether a rootless root can be built here: what
/// [`privileged_available`] checks, the rootless launcher, rootlesskit,
/// newuidmap / newgidmap, useradd / usermod.
pub fn rootless_available() -> Result<(), String> {
    privileged_available()?;
    let programs: Vec<&str> = std::iter::once(ROOTLESS_SH)
        .chain(ROOTLESS_TOOLS)
        .chain(["/usr/sbin/useradd", "/usr/sbin/usermod"])
        .collect();
    programs_available(&programs, "docker.io rootlesskit uidmap")
}

/// True if rootless tests can run. Otherwise panics when `CI=true` (a
/// privileged test must fail in CI), else prints `skipping: <why>`.
pub fn require_rootless() -> bool {
    require("rootless", rootless_available())
}

/// One container of the root, with its oracles.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootlessContainer {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    /// `docker export` by the rootless daemon (container ids).
    pub export_tar: PathBuf,
    /// `docker diff`.
    pub diff: String,
    /// `State.Status` (`exited`, `created`).
    pub status: String,
    pub exit_code: i64,
    /// The overlay2 id of its rw layer (`GraphDriver.Data.UpperDir`).
    pub rw_layer: String,
}

/// One xattr found on an entry of a layer's `diff/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct XattrSeen {
    /// Relative to `diff/`; `""` is `diff/` itself.
    pub path: String,
    pub name: String,
    /// The value, as text when it is printable, else `0x` and hex.
    pub value: String,
}

/// What one overlay2 layer directory holds, read after the daemon stopped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerReport {
    /// The overlay2 directory name.
    pub id: String,
    pub xattrs: Vec<XattrSeen>,
    /// 0/0 character devices (overlay whiteouts): path and link count.
    pub whiteouts: Vec<(String, u64)>,
    /// Entries named `.wh.*` (aufs-style whiteouts, never expected here).
    pub wh_files: Vec<String>,
    /// The distinct (uid, gid) pairs owning its entries, as on disk.
    pub owners: BTreeSet<(u32, u32)>,
}

/// The built root and its oracles.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootlessRoot {
    /// The cache directory.
    pub dir: PathBuf,
    /// The data root (`--data-root`): the evidence.
    pub root: PathBuf,
    pub user: String,
    /// The user's uid and gid: container root on disk.
    pub uid: u32,
    pub gid: u32,
    /// The user's subordinate ranges: (first, count).
    pub subuid: (u32, u32),
    pub subgid: (u32, u32),
    pub containers: Vec<RootlessContainer>,
    /// `docker inspect` of every container.
    pub inspect: Value,
    /// `docker image inspect` of every image.
    pub images: Value,
    /// Every layer directory's xattrs, whiteouts and owners.
    pub layers: Vec<LayerReport>,
    /// Mounts found under the cache and run directories after the daemon
    /// stopped (expected none: they live in rootlesskit's namespace).
    pub mounts_left: usize,
    /// `docker version --format {{json .}}` of the daemon.
    pub version: Value,
    pub build_seconds: f64,
}

impl RootlessRoot {
    /// The container named `name`; panics if there is none.
    pub fn container(&self, name: &str) -> &RootlessContainer {
        container_named(&self.containers, name, |c| &c.name, "rootless root")
    }

    /// `--uid-map` for this root: `0:<uid>:1,1:<subuid>:<count>`.
    pub fn uid_map(&self) -> String {
        format!("0:{}:1,1:{}:{}", self.uid, self.subuid.0, self.subuid.1)
    }

    /// `--gid-map` for this root.
    pub fn gid_map(&self) -> String {
        format!("0:{}:1,1:{}:{}", self.gid, self.subgid.0, self.subgid.1)
    }

    /// The uid on disk of container uid `c` (`None` outside the map).
    pub fn host_uid(&self, c: u64) -> Option<u64> {
        host_id(c, self.uid, self.subuid)
    }

    /// The gid on disk of container gid `c`.
    pub fn host_gid(&self, c: u64) -> Option<u64> {
        host_id(c, self.gid, self.subgid)
    }

    /// The layer report of overlay2 directory `id`.
    pub fn layer(&self, id: &str) -> &LayerReport {
        self.layers
            .iter()
            .find(|l| l.id == id)
            .unwrap_or_else(|| panic!("no layer report for {id}"))
    }
}

/// The id on disk of container id `c` for a user `own` with subordinate
/// ids `(first, count)` (`None` outside the map).
pub fn host_id(c: u64, own: u32, (first, count): (u32, u32)) -> Option<u64> {
    match c {
        0 => Some(own.into()),
        c if c <= u64::from(count) => Some(u64::from(first) + c - 1),
        _ => None,
    }
}

/// The root, built once per process and cached on disk.
pub fn rootless_root() -> &'static RootlessRoot {
    static ROOT: OnceLock<RootlessRoot> = OnceLock::new();
    ROOT.get_or_init(|| {
        let source = include_str!("real_rootless.rs");
        let (dir, mut r): (_, RootlessRoot) =
            cached_root("rootless", source, rootless_available(), &LEFTOVERS, build);
        // Paths are stored relative to the cache directory.
        r.root = dir.join(&r.root);
        for c in &mut r.containers {
            c.export_tar = dir.join(&c.export_tar);
        }
        r.dir = dir;
        r
    })
}

/// `(first, count)` of `user`'s (or `uid`'s) first line in a subid file.
fn subid_range(file: &str, user: &str, uid: u32) -> Option<(u32, u32)> {
    let text = fs::read_to_string(file).unwrap_or_default();
    let uid = uid.to_string();
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.trim().split(':').collect();
        match f.as_slice() {
            [owner, first, count] if *owner == user || *owner == uid => {
                Some((first.parse().ok()?, count.parse().ok()?))
            }
            _ => None,
        }
    })
}

/// The first id past every range of a subid file, at least `SUBID_FLOOR`,
/// rounded up to a multiple of 65536.
fn free_subid_start(file: &str) -> u32 {
    let text = fs::read_to_string(file).unwrap_or_default();
    let end = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split(':').collect();
            let [_, first, count] = f.as_slice() else {
                return None;
            };
            first.parse::<u32>().ok()?.checked_add(count.parse().ok()?)
        })
        .max()
        .unwrap_or(0)
        .max(SUBID_FLOOR);
    end.div_ceil(SUBID_COUNT) * SUBID_COUNT
}

/// Creates `USER` (a system user with no home, no shell) and its subuid
/// and subgid ranges unless they exist. Returns (uid, gid, subuid, subgid).
pub fn ensure_user() -> (u32, u32, (u32, u32), (u32, u32)) {
    let ids = || {
        let id = |flag: &str| -> Option<u32> {
            let (code, out, _) = run(Command::new("id").args([flag, USER]), 30);
            (code == 0).then(|| out.trim().parse().ok()).flatten()
        };
        Some((id("-u")?, id("-g")?))
    };
    if ids().is_none() {
        run_ok(
            Command::new("/usr/sbin/useradd").args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "docker-mount tests, rootless dockerd",
                USER,
            ]),
            60,
        );
    }
    let (uid, gid) = ids().unwrap_or_else(|| panic!("user {USER} missing after useradd"));
    for (file, flag) in [
        ("/etc/subuid", "--add-subuids"),
        ("/etc/subgid", "--add-subgids"),
    ] {
        if subid_range(file, USER, uid).is_none() {
            let first = free_subid_start(file);
            let range = format!("{first}-{}", first + SUBID_COUNT - 1);
            run_ok(
                Command::new("/usr/sbin/usermod").args([flag, &range, USER]),
                60,
            );
        }
    }
    let range = |file: &str| {
        subid_range(file, USER, uid).unwrap_or_else(|| panic!("no range of {USER} in {file}"))
    };
    let (subuid, subgid) = (range("/etc/subuid"), range("/etc/subgid"));
    assert!(
        subuid.1 >= SUBID_COUNT && subgid.1 >= SUBID_COUNT,
        "{USER}'s subordinate ranges are too small for docker: {subuid:?} {subgid:?}"
    );
    (uid, gid, subuid, subgid)
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

// ---------------------------------------------------------------------
// Processes.

/// The leftovers of a build: the daemon's `XDG_RUNTIME_DIR`, and the
/// rootlesskit process tree.
const LEFTOVERS: Leftovers = Leftovers {
    tag: "dmrl.",
    stop: stop_stale,
};

/// Stops what an interrupted build in `dir` left running: the rootlesskit
/// whose pid it recorded, if that process still names this data root, and
/// its descendants. (Its mounts lived in rootlesskit's namespace.)
fn stop_stale(dir: &Path, _run: &Path) {
    let data_root = dir.join("data-root");
    if let Some(pid) = fs::read_to_string(dir.join("rootlesskit.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    {
        if alive(pid) && mentions(pid, data_root.as_os_str().as_bytes()) {
            let survivors = kill_all(&tree(pid));
            assert!(
                survivors.is_empty(),
                "stale rootless processes {survivors:?} survived SIGKILL"
            );
        }
    }
}

/// The rootless daemon: `dockerd-rootless.sh` run as `USER`.
struct Daemon {
    /// rootlesskit's parent process (the launcher execs it).
    child: Option<Child>,
    /// `XDG_RUNTIME_DIR`: a short directory in /tmp (socket paths).
    run: PathBuf,
    sock: String,
    log: PathBuf,
    config: PathBuf,
}

impl Daemon {
    fn start(dest: &Path, data_root: &Path, home: &Path, uid: u32, gid: u32) -> Daemon {
        let run = LEFTOVERS.run_dir(dest);
        chown(&run, uid, gid);
        chmod(&run, 0o700);
        let log = dest.join("dockerd.log");
        let logf = File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let config = dest.join("docker-config");
        fs::create_dir_all(&config).expect("mkdir docker-config");
        let child = Command::new("/bin/sh")
            .arg(ROOTLESS_SH)
            .arg("--data-root")
            .arg(data_root)
            .args(["--storage-driver", "overlay2"])
            .args(["--iptables=false", "--ip-masq=false", "--bridge=none"])
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", home)
            .env("USER", USER)
            .env("XDG_RUNTIME_DIR", &run)
            // No slirp4netns (and no /dev/net/tun for it): the host's network
            // namespace; containers run with --network none anyway.
            .env("DOCKERD_ROOTLESS_ROOTLESSKIT_NET", "host")
            .env("DOCKERD_ROOTLESS_ROOTLESSKIT_PORT_DRIVER", "none")
            .current_dir(home)
            .uid(uid)
            .gid(gid)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("dup log"))
            .stderr(logf)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {ROOTLESS_SH}: {e}"));
        write(&dest.join("rootlesskit.pid"), child.id().to_string());
        let mut d = Daemon {
            child: Some(child),
            sock: format!("unix://{}/docker.sock", run.display()),
            run,
            log,
            config,
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if d.status(["version"], 30).0 == 0 {
                break;
            }
            let exited = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "the rootless dockerd did not come up ({}):\n{}",
                    exited.map_or("timeout".into(), |s| s.to_string()),
                    log_tail(&d.log)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        d
    }

    fn status<I, S>(&self, args: I, timeout: u64) -> (i32, String, String)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(docker_cli(&self.sock, &self.config).args(args), timeout)
    }

    fn docker<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args = os_args(args);
        let (code, out, err) = self.status(&args, 300);
        assert_eq!(
            code,
            0,
            "docker {args:?} failed:\n{out}\n{err}\n--- dockerd ---\n{}",
            log_tail(&self.log)
        );
        out
    }

    /// Stops dockerd with SIGTERM (it stops its containerd and containers)
    /// and waits for rootlesskit to exit; what lingers of the process tree
    /// is then killed by pid. Panics (unless already panicking) if any
    /// process survives.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let root_pid = child.id() as i32;
        let before = tree(root_pid);
        let dockerd = fs::read_to_string(self.run.join("docker.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .filter(|p| before.contains(p));
        // dockerd, else rootlesskit (which passes the signal to its child).
        signal(dockerd.unwrap_or(root_pid), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut rest = tree(root_pid);
        rest.extend(before);
        rest.sort_unstable();
        rest.dedup();
        let survivors = kill_all(&rest);
        let _ = child.kill();
        let _ = child.wait();
        let _ = unmount_under(&[&self.run]);
        let _ = fs::remove_dir_all(&self.run);
        if !std::thread::panicking() {
            assert!(
                survivors.is_empty(),
                "rootless processes {survivors:?} survived SIGKILL"
            );
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------
// Content.

/// Busybox applets linked in the base image.
const APPLETS: [&str; 22] = [
    "sh", "ls", "mkdir", "rm", "rmdir", "ln", "mkfifo", "chmod", "chown", "touch", "echo",
    "printf", "cat", "sleep", "cp", "mv", "true", "find", "stat", "id", "test", "[",
];

/// The base rootfs: busybox, and what later layers and containers delete,
/// replace, move and chown. Owners below 65536 only: a rootless daemon
/// cannot store ids beyond its map (`docker import` would fail).
fn base_rootfs(r: &Path) {
    for d in [
        "bin",
        "etc",
        "tmp",
        "root",
        "keep/sub",
        "doomed-dir/x",
        "replace-me/deep",
        "move-me/inner",
        "loaded-keep/old",
        "owned-dir",
    ] {
        fs::create_dir_all(r.join(d)).unwrap_or_else(|e| panic!("mkdir {d}: {e}"));
    }
    fs::copy(BUSYBOX, r.join("bin/busybox")).expect("copy busybox");
    for a in APPLETS {
        std::os::unix::fs::symlink("busybox", r.join("bin").join(a)).expect("applet symlink");
    }
    write(
        &r.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    );
    write(
        &r.join("etc/group"),
        "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n",
    );
    for (p, text) in [
        ("keep/a", "a\n"),
        ("keep/sub/b", "b\n"),
        ("doomed-file", "doomed\n"),
        ("doomed-dir/x/y", "y\n"),
        ("replace-me/old1", "old1\n"),
        ("replace-me/deep/old2", "old2\n"),
        ("move-me/f", "f\n"),
        ("move-me/inner/g", "g\n"),
        ("loaded-keep/old/o", "o\n"),
        ("loaded-keep/top", "top\n"),
        ("owned-1000", "owned by 1000\n"),
        ("owned-65534", "owned by nobody\n"),
        ("owned-dir/f", "in a dir owned by 4242\n"),
        ("hl-a", "hard linked\n"),
        ("setuid", "setuid\n"),
    ] {
        write(&r.join(p), text);
    }
    fs::hard_link(r.join("hl-a"), r.join("hl-b")).expect("hard link");
    std::os::unix::fs::symlink("/keep/a", r.join("abs-link")).expect("symlink");
    chown(&r.join("owned-1000"), 1000, 1000);
    chown(&r.join("owned-65534"), 65534, 65534);
    chown(&r.join("owned-dir"), 4242, 4343);
    chown(&r.join("owned-dir/f"), 4242, 4343);
    chmod(&r.join("tmp"), 0o1777);
    chmod(&r.join("root"), 0o700);
    chmod(&r.join("setuid"), 0o4755);
}

/// The second image's Dockerfile: a directory replaced, files and a
/// directory deleted, a chown, a copy-up.
const BUILT_DOCKERFILE: &str = "FROM rl-base:1
RUN rm -rf /keep && mkdir /keep && echo x > /keep/new \\
 && rm /doomed-file && rm -rf /doomed-dir \\
 && echo o > /owned && chown 1234:4321 /owned \\
 && echo more >> /hl-a && chmod 0600 /owned-65534
CMD [\"/bin/sh\"]
";

/// Fixed mtime of the entries of the loaded layer.
const LOADED_MTIME: u64 = 1_700_000_000;

/// A layer tar: `(path, kind, mode, uid, gid, content)`; kind `d` or `f`.
fn layer_tar(entries: &[(&str, char, u32, u64, u64, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for &(path, kind, mode, uid, gid, content) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(if kind == 'd' {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(LOADED_MTIME);
        h.set_size(content.len() as u64);
        b.append_data(&mut h, path, content.as_bytes())
            .unwrap_or_else(|e| panic!("tar {path}: {e}"));
    }
    b.into_inner().expect("finish layer tar")
}

/// A `docker save` archive of image `tag` whose layers are `base` (the
/// base image's own tar, so docker reuses that layer) and a layer with an
/// opaque directory (`.wh..wh..opq`) and `.wh.` whiteouts, as a pulled
/// layer carries them.
fn loaded_archive(base: &[u8], tag: &str) -> Vec<u8> {
    let extra = layer_tar(&[
        ("loaded-keep/", 'd', 0o755, 0, 0, ""),
        ("loaded-keep/.wh..wh..opq", 'f', 0o644, 0, 0, ""),
        (
            "loaded-keep/from-load",
            'f',
            0o644,
            2000,
            2000,
            "from the loaded layer\n",
        ),
        (".wh.doomed-file", 'f', 0o644, 0, 0, ""),
        ("doomed-dir/", 'd', 0o755, 0, 0, ""),
        ("doomed-dir/.wh.x", 'f', 0o644, 0, 0, ""),
        ("loaded-file", 'f', 0o640, 3000, 3001, "loaded\n"),
    ]);
    let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
    let (base_id, extra_id) = (sha(base), sha(&extra));
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{base_id}"), format!("sha256:{extra_id}")]},
        "history": [
            {"created": "2023-11-14T22:13:20Z", "created_by": "imported base"},
            {"created": "2023-11-14T22:13:20Z", "created_by": "layer with .wh..wh..opq"}
        ]
    }))
    .expect("config json");
    let config_name = format!("{}.json", sha(&config));
    let manifest = serde_json::to_vec(&json!([{
        "Config": config_name,
        "RepoTags": [tag],
        "Layers": [format!("{base_id}/layer.tar"), format!("{extra_id}/layer.tar")]
    }]))
    .expect("manifest json");
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(LOADED_MTIME);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data)
            .unwrap_or_else(|e| panic!("tar {name}: {e}"));
    };
    add(&config_name, &config);
    add(&format!("{base_id}/layer.tar"), base);
    add(&format!("{extra_id}/layer.tar"), &extra);
    add("manifest.json", &manifest);
    b.into_inner().expect("finish archive")
}

/// What the containers do.
const REPLACE_SCRIPT: &str = "set -e; echo added > /added; chown 1000:1000 /added; \
    echo changed >> /etc/passwd; rm /hl-b; rm /abs-link; \
    rm -rf /replace-me; mkdir /replace-me; echo fresh > /replace-me/fresh; \
    mv /move-me /moved; mkfifo /ctr-fifo; ln -s /keep/new /ctr-link; \
    echo touched >> /keep/new; mkdir -p /ctr-dir/sub; chown -R 4242:4343 /ctr-dir; \
    chmod 0700 /owned-dir; exit 3";
const LOADED_SCRIPT: &str = "set -e; rm -rf /loaded-keep; mkdir -p /loaded-keep/again; \
    echo again > /loaded-keep/again/f; rm /owned-1000; chmod 0600 /loaded-file; \
    rm -rf /keep/sub; echo new-in-keep > /keep/c";

fn build(dest: &Path) -> RootlessRoot {
    let t0 = Instant::now();
    let (uid, gid, subuid, subgid) = ensure_user();
    fs::create_dir_all(dest).unwrap_or_else(|e| panic!("mkdir {}: {e}", dest.display()));
    let data_root = dest.join("data-root");
    let home = dest.join("home");
    for d in [&data_root, &home] {
        fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        chown(d, uid, gid);
        chmod(d, 0o700);
    }
    // The user must be able to reach its directories (as real_triage's
    // remapped root must): search permission for others on the way.
    for a in dest.ancestors() {
        if let Ok(m) = fs::metadata(a) {
            let mode = m.permissions().mode();
            if mode & 0o001 == 0 {
                chmod(a, mode | 0o001);
            }
        }
    }
    let mut d = Daemon::start(dest, &data_root, &home, uid, gid);
    let version: Value = serde_json::from_str(&d.docker(["version", "--format", "{{json .}}"]))
        .unwrap_or(Value::Null);
    let info = d.docker(["info", "--format", "{{json .SecurityOptions}} {{.Driver}}"]);
    assert!(
        info.contains("rootless") && info.trim_end().ends_with("overlay2"),
        "the daemon is not rootless on overlay2: {info}"
    );

    // Images.
    let b = dest.join("build");
    let rootfs = b.join("rootfs");
    base_rootfs(&rootfs);
    let base_tar = b.join("base.tar");
    tar_rootfs(&rootfs, &base_tar, false);
    d.docker(import_args(&base_tar, "rl-base:1"));
    let ctx = b.join("built");
    write(&ctx.join("Dockerfile"), BUILT_DOCKERFILE);
    d.docker([
        OsStr::new("build"),
        OsStr::new("--network"),
        OsStr::new("none"),
        OsStr::new("-t"),
        OsStr::new("rl-built:1"),
        ctx.as_os_str(),
    ]);
    let base_bytes = fs::read(&base_tar).expect("read base.tar");
    let archive = b.join("loaded.tar");
    write(&archive, loaded_archive(&base_bytes, "rl-loaded:1"));
    d.docker([OsStr::new("load"), OsStr::new("-i"), archive.as_os_str()]);

    // Containers: two exited, one created.
    let none = ["--network", "none"];
    let (code, _, err) = d.status(
        ["run", "--name", "c-replace"].iter().chain(&none).chain(&[
            "rl-built:1",
            "sh",
            "-c",
            REPLACE_SCRIPT,
        ]),
        120,
    );
    assert_eq!(
        code,
        3,
        "c-replace should exit 3: {err}\n{}",
        log_tail(&d.log)
    );
    d.docker(["run", "--name", "c-loaded"].iter().chain(&none).chain(&[
        "rl-loaded:1",
        "sh",
        "-c",
        LOADED_SCRIPT,
    ]));
    d.docker(
        ["create", "--name", "c-created"]
            .iter()
            .chain(&none)
            .chain(&["rl-built:1", "sh"]),
    );

    // Oracles, while the daemon runs.
    let ids: Vec<String> = d
        .docker(["ps", "-a", "-q", "--no-trunc"])
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let inspect: Value =
        serde_json::from_str(&d.docker(std::iter::once("inspect".to_string()).chain(ids)))
            .expect("docker inspect");
    let image_ids: BTreeSet<String> = d
        .docker(["images", "-a", "-q", "--no-trunc"])
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let images: Value = serde_json::from_str(
        &d.docker(
            ["image".to_string(), "inspect".to_string()]
                .into_iter()
                .chain(image_ids),
        ),
    )
    .expect("docker image inspect");
    fs::create_dir_all(dest.join("exports")).expect("mkdir exports");
    let mut containers = Vec::new();
    for c in inspect.as_array().map(Vec::as_slice).unwrap_or_default() {
        let id = c["Id"].as_str().expect("Id").to_string();
        let name = c["Name"]
            .as_str()
            .expect("Name")
            .trim_start_matches('/')
            .to_string();
        let export_rel = PathBuf::from("exports").join(format!("{name}.tar"));
        d.docker([
            OsStr::new("export"),
            OsStr::new("-o"),
            dest.join(&export_rel).as_os_str(),
            OsStr::new(&id),
        ]);
        let diff = d.docker(["diff", id.as_str()]);
        let upper = c["GraphDriver"]["Data"]["UpperDir"]
            .as_str()
            .unwrap_or_default();
        let rw_layer = Path::new(upper)
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| panic!("{name}: no UpperDir: {}", c["GraphDriver"]));
        containers.push(RootlessContainer {
            id,
            name,
            export_tar: export_rel,
            diff,
            status: c["State"]["Status"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            exit_code: c["State"]["ExitCode"].as_i64().unwrap_or(-1),
            rw_layer,
        });
    }
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(containers.len(), 3, "{containers:#?}");
    d.stop();

    // Nothing may stay mounted: the daemon's mounts lived in its namespace.
    let prefix = dest.as_os_str().as_bytes();
    let mounts_left = fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.as_bytes().starts_with(prefix))
        .count();
    unmount_under(&[dest]).unwrap_or_else(|e| panic!("{e}"));

    let layers = layer_reports(&data_root.join("overlay2"));
    let meta = RootlessRoot {
        dir: PathBuf::new(),
        root: PathBuf::from("data-root"),
        user: USER.to_string(),
        uid,
        gid,
        subuid,
        subgid,
        containers,
        inspect,
        images,
        layers,
        mounts_left,
        version,
        build_seconds: t0.elapsed().as_secs_f64(),
    };
    write(&dest.join("layers.txt"), layers_text(&meta.layers));
    eprintln!(
        "built the real rootless root in {:.1} s at {}",
        meta.build_seconds,
        data_root.display()
    );
    meta
}

/// A value as text when printable ASCII, else `0x` and hex.
fn show_value(v: &[u8]) -> String {
    if v.iter().all(|b| (0x20..0x7f).contains(b)) {
        format!("{:?}", String::from_utf8_lossy(v))
    } else {
        format!("0x{}", hex::encode(v))
    }
}

/// Walks every `overlay2/<id>/diff` (no symlink followed).
fn layer_reports(overlay2: &Path) -> Vec<LayerReport> {
    let mut ids: Vec<String> = fs::read_dir(overlay2)
        .unwrap_or_else(|e| panic!("{}: {e}", overlay2.display()))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "l")
        .collect();
    ids.sort();
    ids.into_iter()
        .map(|id| {
            let mut r = LayerReport {
                id: id.clone(),
                xattrs: Vec::new(),
                whiteouts: Vec::new(),
                wh_files: Vec::new(),
                owners: BTreeSet::new(),
            };
            let diff = overlay2.join(&id).join("diff");
            let mut pending = vec![PathBuf::new()];
            while let Some(rel) = pending.pop() {
                let p = diff.join(&rel);
                let md =
                    fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                let shown = rel.to_string_lossy().into_owned();
                if !rel.as_os_str().is_empty() {
                    r.owners.insert((md.uid(), md.gid()));
                }
                for name in xattr::list(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())) {
                    let value = xattr::get(&p, &name).ok().flatten().unwrap_or_default();
                    r.xattrs.push(XattrSeen {
                        path: shown.clone(),
                        name: name.to_string_lossy().into_owned(),
                        value: show_value(&value),
                    });
                }
                let ft = md.file_type();
                if ft.is_char_device() && md.rdev() == 0 {
                    r.whiteouts.push((shown.clone(), md.nlink()));
                }
                if rel
                    .file_name()
                    .is_some_and(|n| n.as_bytes().starts_with(b".wh."))
                {
                    r.wh_files.push(shown);
                }
                if ft.is_dir() {
                    for e in fs::read_dir(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())) {
                        let e = e.unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                        pending.push(rel.join(e.file_name()));
                    }
                }
            }
            r.xattrs.sort();
            r.whiteouts.sort();
            r.wh_files.sort();
            r
        })
        .collect()
}

/// The layer reports as text (`layers.txt` in the cache, for people).
pub fn layers_text(layers: &[LayerReport]) -> String {
    let mut s = String::new();
    for l in layers {
        let _ = writeln!(s, "{}", l.id);
        for x in &l.xattrs {
            let _ = writeln!(s, "  xattr    /{} {}={}", x.path, x.name, x.value);
        }
        for (p, n) in &l.whiteouts {
            let _ = writeln!(s, "  whiteout /{p} (0/0 char device, {n} links)");
        }
        for p in &l.wh_files {
            let _ = writeln!(s, "  .wh.     /{p}");
        }
        let owners: Vec<String> = l.owners.iter().map(|(u, g)| format!("{u}:{g}")).collect();
        let _ = writeln!(s, "  owners   {}", owners.join(" "));
    }
    s
}

/// Counts of xattr names over all layers (for reports).
pub fn xattr_names(layers: &[LayerReport]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for x in layers.iter().flat_map(|l| &l.xattrs) {
        *m.entry(x.name.clone()).or_insert(0) += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_shift_like_rootlesskit_maps_them() {
        assert_eq!(host_id(0, 999, (300_000, 65536)), Some(999));
        assert_eq!(host_id(1, 999, (300_000, 65536)), Some(300_000));
        assert_eq!(host_id(1000, 999, (300_000, 65536)), Some(300_999));
        assert_eq!(host_id(65536, 999, (300_000, 65536)), Some(365_535));
        assert_eq!(host_id(65537, 999, (300_000, 65536)), None);
    }

    #[test]
    fn loaded_archive_names_its_layers() {
        let a = loaded_archive(b"base", "x:1");
        let mut ar = tar::Archive::new(a.as_slice());
        let names: Vec<String> = ar
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(names.len(), 4);
        assert_eq!(names[3], "manifest.json");
    }
}
