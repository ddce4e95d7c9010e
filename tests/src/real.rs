//! Docker roots made by a real dockerd (tier 2 of testing.md): a private
//! dockerd builds awkward images and containers, the oracles (`docker
//! export`, `docker diff`, `inspect`, `ps`) are recorded, then the daemon is
//! killed with SIGKILL, leaving a crashed root (running containers keep
//! `State.Running: true`). Roots are cached under
//! `/var/cache/docker-mount-tests/real-roots/<driver>-<hash of this file>/`
//! across processes and clones ([`real_roots_dir`]).
//!
//! The btrfs root lives in a loop-mounted btrfs image (`btrfs.img` in the
//! cache dir): the image file is the cached artifact. Each test process
//! mounts it read-only (read-only loop device, `ro`, no log-tree replay) at
//! its own long path `ro-<pid>/.../docker` and unmounts it at exit; mounts
//! left by killed processes are swept by the next one. Take the evidence
//! state with [`RealRoot::evidence`]: it hashes every btrfs subvolume
//! (which `integrity::snapshot` alone would stop at: each has its own
//! `st_dev`) and the image file itself.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::mount::{umount2, MntFlags};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The docker CLI (Debian's docker.io); `/usr/local/bin/docker` may be a
/// different client.
pub const DOCKER: &str = "/usr/bin/docker";
/// The daemon.
pub const DOCKERD: &str = "/usr/sbin/dockerd";
/// Static busybox, the base image's only binary.
pub const BUSYBOX: &str = "/bin/busybox";
/// Minimum length of the data root path (long evidence paths must work).
pub const DATA_ROOT_MIN_LEN: usize = 240;
/// Total layers of `dm-deep:1` (dockerd's layer store refuses more than 125).
pub const DEEP_LAYERS: usize = 125;
/// Total layers of `dm-deep:1` for full-tree drivers (vfs copies every layer
/// whole; btrfs makes a subvolume of each).
pub const FULL_TREE_DEEP_LAYERS: usize = 20;
/// Size of the sparse btrfs image holding the btrfs root.
pub const BTRFS_IMAGE_BYTES: u64 = 2 << 30;

/// A program from `PATH`, `/usr/sbin`, `/sbin` or `/usr/bin`.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// btrfs-progs' `mkfs.btrfs` ([`which`]).
pub fn mkfs_btrfs() -> Option<PathBuf> {
    which("mkfs.btrfs")
}

/// Total layers of `dm-deep:1` made with storage driver `driver`.
pub fn deep_layers(driver: &str) -> usize {
    match driver {
        "vfs" | "btrfs" => FULL_TREE_DEEP_LAYERS,
        _ => DEEP_LAYERS,
    }
}

/// A crashed docker root made by a real dockerd, with its oracles.
#[derive(Debug, Clone)]
pub struct RealRoot {
    /// Storage driver it was made with.
    pub driver: String,
    /// The docker data root (the evidence).
    pub root: PathBuf,
    /// The cache directory holding `root`, exports and logs.
    pub dir: PathBuf,
    pub containers: Vec<RealContainer>,
    /// `docker inspect` of all containers (a JSON array), before the crash.
    pub inspect: Value,
    /// `docker ps -a --no-trunc --format '{{json .}}'`, one value a line.
    pub ps: Vec<Value>,
    /// `docker image inspect` of all images (a JSON array).
    pub images: Value,
    /// Seconds the cold build took.
    pub build_seconds: f64,
    /// Total layers of `dm-deep:1` ([`deep_layers`]).
    pub deep_layers: usize,
    /// The filesystem image holding `root` (btrfs), mounted read-only at
    /// `root` by [`btrfs_root`].
    pub image: Option<PathBuf>,
    /// Hex sha256 of `image` when the build finished.
    pub image_sha256: Option<String>,
}

/// One container of a [`RealRoot`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RealContainer {
    /// Full 64-hex id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// `docker export` taken while the daemon was alive.
    pub export_tar: PathBuf,
    /// `docker diff` output.
    pub diff: String,
    /// `State.Running` before the crash.
    pub running_at_crash: bool,
}

impl RealRoot {
    /// The container named `name`; panics if there is none.
    pub fn container(&self, name: &str) -> &RealContainer {
        container_named(&self.containers, name, |c| &c.name, "real root")
    }

    /// The container's `config.v2.json` as now on disk.
    pub fn config_v2(&self, name: &str) -> Value {
        let p = self
            .root
            .join("containers")
            .join(&self.container(name).id)
            .join("config.v2.json");
        read_json_value(&p)
    }
}

/// The container of `containers` named `name` (the name `name_of` gives);
/// panics, naming the `root` it is not in, if there is none.
pub fn container_named<'a, T>(
    containers: &'a [T],
    name: &str,
    name_of: impl Fn(&T) -> &str,
    root: &str,
) -> &'a T {
    containers
        .iter()
        .find(|c| name_of(c) == name)
        .unwrap_or_else(|| panic!("{root} has no container {name:?}"))
}

/// The overlay2 root, built once per process and cached on disk.
pub fn overlay2_root() -> &'static RealRoot {
    static ROOT: OnceLock<RealRoot> = OnceLock::new();
    ROOT.get_or_init(|| cached("overlay2"))
}

/// The overlay (v1) root, built once per process and cached on disk.
pub fn overlay_root() -> &'static RealRoot {
    static ROOT: OnceLock<RealRoot> = OnceLock::new();
    ROOT.get_or_init(|| cached("overlay"))
}

/// The vfs root (every layer a full copy), built once per process and
/// cached on disk.
pub fn vfs_root() -> &'static RealRoot {
    static ROOT: OnceLock<RealRoot> = OnceLock::new();
    ROOT.get_or_init(|| cached("vfs"))
}

/// The btrfs root (every layer a subvolume), built once per process and
/// cached on disk as a btrfs image, which this process mounts read-only at
/// `root` (see the module documentation) until it exits.
pub fn btrfs_root() -> &'static RealRoot {
    static ROOT: OnceLock<RealRoot> = OnceLock::new();
    ROOT.get_or_init(|| {
        let mut r = cached("btrfs");
        let image = r.image.clone().expect("the btrfs root has an image");
        sweep_stale_mounts(&r.dir);
        let top = r.dir.join(format!("ro-{}", std::process::id()));
        let point = long_data_root(&top);
        unmount_at_exit(top);
        mount_image_ro(&image, &point);
        r.root = point;
        r
    })
}

/// Whether this process runs as root.
pub fn root_available() -> Result<(), String> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err("not running as root".into())
    }
}

/// Whether every program in `programs` is installed; if not, which one is
/// missing and the Debian packages (`packages`) that bring them.
pub fn programs_available(programs: &[&str], packages: &str) -> Result<(), String> {
    match programs.iter().find(|p| !Path::new(p).exists()) {
        Some(p) => Err(format!("{p} is missing (apt-get install {packages})")),
        None => Ok(()),
    }
}

/// Whether real roots can be built here: root, dockerd, docker CLI, busybox.
pub fn privileged_available() -> Result<(), String> {
    root_available()?;
    programs_available(&[DOCKERD, DOCKER, BUSYBOX], "docker.io busybox-static")
}

/// Whether a real root of `driver` can be built here: what
/// [`privileged_available`] checks, and for btrfs also mkfs.btrfs, the
/// kernel's btrfs and loop devices.
pub fn driver_available(driver: &str) -> Result<(), String> {
    privileged_available()?;
    if driver == "btrfs" {
        if mkfs_btrfs().is_none() {
            return Err("mkfs.btrfs is missing (apt-get install btrfs-progs)".into());
        }
        if !Path::new("/dev/loop-control").exists() {
            return Err("/dev/loop-control is missing (no loop devices)".into());
        }
        let known = |fs: &str| {
            fs::read_to_string("/proc/filesystems")
                .is_ok_and(|s| s.lines().any(|l| l.split_whitespace().last() == Some(fs)))
        };
        if !known("btrfs") {
            // Loading the module is what mount(8) would do anyway.
            let _ = Command::new("modprobe").arg("btrfs").status();
            if !known("btrfs") {
                return Err("the kernel has no btrfs".into());
            }
        }
    }
    Ok(())
}

/// True if privileged tests can run. Otherwise panics when `CI=true`
/// (privileged tests must fail in CI), else prints `skipping: <why>` to
/// stderr and returns false.
pub fn require_privileged() -> bool {
    require("privileged", privileged_available())
}

/// [`require_privileged`] for a root of `driver` ([`driver_available`]).
pub fn require_driver(driver: &str) -> bool {
    require("privileged", driver_available(driver))
}

/// True if `check` passed. Otherwise panics when `CI=true` (a `what`
/// test, privileged or rootless, must fail in CI, not skip), else prints
/// `skipping: <why>` to stderr and returns false.
pub fn require(what: &str, check: Result<(), String>) -> bool {
    match check {
        Ok(()) => true,
        Err(why) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{what} test cannot run in CI: {why}");
            }
            eprintln!("skipping: {why}");
            false
        }
    }
}

/// The workspace's target directory: `$CARGO_TARGET_DIR` (relative to the
/// workspace) or `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) if !t.is_empty() => ws.join(t),
        _ => ws.join("target"),
    }
}

/// Where real roots are cached: outside the clone, in
/// `/var/cache/docker-mount-tests/real-roots`, so that a fresh clone on a
/// machine that built them (CI) does not build them again. Each is keyed by
/// the hash of its builder, so a changed builder still rebuilds its roots.
pub fn real_roots_dir() -> PathBuf {
    Path::new(crate::trixie::CACHE).join("real-roots")
}

/// Loads the cached root of `driver`, building it first if needed.
fn cached(driver: &str) -> RealRoot {
    let (dir, meta) = cached_root(
        driver,
        include_str!("real.rs"),
        driver_available(driver),
        &LEFTOVERS,
        |dir| build(driver, dir),
    );
    from_meta(&dir, meta)
}

// ---------------------------------------------------------------------
// The cache of real roots, shared by every real-root builder (this file,
// `real_triage`, `real_podman`, `real_rootless`, `real_containerd`).

/// What an interrupted build of a real root may have left behind: a run
/// directory `/tmp/<tag><pid>.<n>` (short: unix socket paths), named in
/// the cache dir's `run-dir` file, mounts under it and under the cache
/// dir, and processes that `stop` ends.
pub struct Leftovers {
    /// The run directories' name prefix, e.g. `dmr.`.
    pub tag: &'static str,
    /// Stops what the build in cache dir `dir` with run dir `run` left
    /// running (it knows its own kind: pid files, command lines); panics
    /// if something survives.
    pub stop: fn(dir: &Path, run: &Path),
}

impl Leftovers {
    /// Creates a fresh run directory `/tmp/<tag><pid>.<n>` and records it
    /// in `<dest>/run-dir`.
    pub fn run_dir(&self, dest: &Path) -> PathBuf {
        let run = (0..1000)
            .map(|n| PathBuf::from(format!("/tmp/{}{}.{n}", self.tag, std::process::id())))
            .find(|p| fs::create_dir(p).is_ok())
            .expect("a run dir under /tmp");
        write(&dest.join("run-dir"), run.as_os_str().as_bytes());
        run
    }

    /// The run directory recorded in `dir`, if it is one of ours: right in
    /// `/tmp` and named `<tag>…`. Path::starts_with compares whole
    /// components, so the name is checked on its own.
    fn recorded(&self, dir: &Path) -> Option<PathBuf> {
        let run = PathBuf::from(OsStr::from_bytes(&fs::read(dir.join("run-dir")).ok()?));
        let ours = run.parent() == Some(Path::new("/tmp"))
            && run
                .file_name()
                .is_some_and(|n| n.as_bytes().starts_with(self.tag.as_bytes()));
        ours.then_some(run)
    }

    /// Stops, unmounts and removes what an interrupted build in `dir` left:
    /// the processes of its run dir, the mounts under it and the run dir,
    /// then the mounts under `dir`.
    fn clean(&self, dir: &Path) {
        if let Some(run) = self.recorded(dir) {
            (self.stop)(dir, &run);
            unmount_under(&[&run]).unwrap_or_else(|e| panic!("{e}"));
            let _ = fs::remove_dir_all(&run);
        }
        unmount_under(&[dir]).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The leftovers of this file's builds: a dockerd's run dir.
const LEFTOVERS: Leftovers = Leftovers {
    tag: "dmr.",
    stop: stop_dockerd,
};

/// Stops a dockerd whose exec-root is `<run>/x` and pidfile `<run>/pid`,
/// its containerd and their containers ([`kill_run`]); panics if one
/// survives SIGKILL.
pub(crate) fn stop_dockerd(_dir: &Path, run: &Path) {
    let survivors = kill_run(run);
    assert!(
        survivors.is_empty(),
        "stale processes {survivors:?} survived SIGKILL"
    );
}

/// The root a builder makes, built once and cached across processes in
/// `<`[`real_roots_dir`]`>/<prefix>-<hash>/`, `<hash>` being 16 hex digits
/// of the sha256 of `source` (the builder's own file, by `include_str!`):
/// changing a builder rebuilds its roots and no others.
///
/// Under an exclusive flock on `<prefix>-<hash>.lock` (parallel test
/// processes build it once), if `meta.json` is missing: what an
/// interrupted build left is stopped and removed ([`Leftovers`]), roots
/// of other versions of the builder are pruned, and `build(dir)` makes the
/// root in `dir` (which does not exist yet) and returns its metadata, then
/// written to `meta.json`: the mark of a finished build. Returns the cache
/// dir and `meta.json` as read back. Panics if `available` is an error.
pub fn cached_root<M: Serialize + DeserializeOwned>(
    prefix: &str,
    source: &str,
    available: Result<(), String>,
    leftovers: &Leftovers,
    build: impl FnOnce(&Path) -> M,
) -> (PathBuf, M) {
    let base = real_roots_dir();
    cached_root_in(&base, prefix, source, available, leftovers, build)
}

/// [`cached_root`] with the cache in `base` instead of
/// [`real_roots_dir`] (costly roots live in
/// [`trixie::CACHE`](crate::trixie::CACHE), outside the clone).
pub fn cached_root_in<M: Serialize + DeserializeOwned>(
    base: &Path,
    prefix: &str,
    source: &str,
    available: Result<(), String>,
    leftovers: &Leftovers,
    build: impl FnOnce(&Path) -> M,
) -> (PathBuf, M) {
    if let Err(why) = available {
        panic!("cannot build the real {prefix} root: {why}");
    }
    fs::create_dir_all(base).unwrap_or_else(|e| panic!("mkdir {}: {e}", base.display()));
    // Canonical, so that it matches the mount points in mountinfo.
    let base = fs::canonicalize(base).unwrap_or_else(|e| panic!("{}: {e}", base.display()));
    let key = format!("{prefix}-{}", &hex::encode(Sha256::digest(source))[..16]);
    let dir = base.join(&key);
    let lock_path = base.join(format!("{key}.lock"));
    let lock = File::create(&lock_path).unwrap_or_else(|e| panic!("{}: {e}", lock_path.display()));
    let _lock = Flock::lock(lock, FlockArg::LockExclusive)
        .unwrap_or_else(|(_, e)| panic!("flock {}: {e}", lock_path.display()));
    let meta = dir.join("meta.json");
    if !meta.exists() {
        if dir.exists() {
            // An interrupted build: stop what it left running, then redo it.
            leftovers.clean(&dir);
            fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("rm -rf {}: {e}", dir.display()));
        }
        prune(&base, prefix, &key, &|old| leftovers.clean(old));
        let built = build(&dir);
        let tmp = dir.join("meta.json.tmp");
        write(
            &tmp,
            serde_json::to_vec_pretty(&built).expect("serialize meta"),
        );
        fs::rename(&tmp, &meta).unwrap_or_else(|e| panic!("rename {}: {e}", tmp.display()));
    }
    let meta = read_meta(&dir);
    (dir, meta)
}

/// Removes roots of `prefix` built by other versions of their builder,
/// unless some process holds their lock. For roots made without a run dir
/// (converted from another real root): their mounts are undone first.
pub(crate) fn prune_stale(base: &Path, prefix: &str, key: &str) {
    prune(base, prefix, key, &|old| {
        unmount_under(&[old]).unwrap_or_else(|e| panic!("{e}"));
    });
}

/// Removes the roots `<prefix>-<16 hex>` in `base` other than `key` whose
/// lock no process holds, after `clean` of each.
fn prune(base: &Path, prefix: &str, key: &str, clean: &dyn Fn(&Path)) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let is_root = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('-'));
        if name == key || !is_root.is_some_and(|h| h.len() == 16 && !h.contains('.')) {
            continue;
        }
        let lock_path = base.join(format!("{name}.lock"));
        let Ok(lock) = File::create(&lock_path) else {
            continue;
        };
        let Ok(_held) = Flock::lock(lock, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        clean(&e.path());
        let _ = fs::remove_dir_all(e.path());
        let _ = fs::remove_file(&lock_path);
    }
}

/// A built root's `meta.json`, read without moving its atime.
fn read_meta<M: DeserializeOwned>(dir: &Path) -> M {
    let p = dir.join("meta.json");
    let b =
        crate::integrity::read_noatime(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    serde_json::from_slice(&b).unwrap_or_else(|e| panic!("parse {}: {e}", p.display()))
}

/// What a built root's `meta.json` holds.
#[derive(Serialize, Deserialize)]
pub(crate) struct Meta {
    pub(crate) driver: String,
    /// Data root, relative to the cache dir.
    pub(crate) root: PathBuf,
    pub(crate) containers: Vec<RealContainer>,
    pub(crate) inspect: Value,
    pub(crate) ps: Vec<Value>,
    pub(crate) images: Value,
    pub(crate) build_seconds: f64,
    pub(crate) deep_layers: usize,
    /// The btrfs image, relative to the cache dir.
    pub(crate) image: Option<PathBuf>,
    pub(crate) image_sha256: Option<String>,
}

/// Loads a built root from its cache dir (no docker needed). A root kept
/// in an image (btrfs) is not mounted: `root` is then an empty mount point;
/// use [`btrfs_root`].
pub fn load(dir: &Path) -> RealRoot {
    from_meta(dir, read_meta(dir))
}

/// The root in cache dir `dir` that `meta` describes.
pub(crate) fn from_meta(dir: &Path, meta: Meta) -> RealRoot {
    RealRoot {
        driver: meta.driver,
        root: dir.join(meta.root),
        dir: dir.to_path_buf(),
        containers: meta
            .containers
            .into_iter()
            .map(|mut c| {
                c.export_tar = dir.join(&c.export_tar);
                c
            })
            .collect(),
        inspect: meta.inspect,
        ps: meta.ps,
        images: meta.images,
        build_seconds: meta.build_seconds,
        deep_layers: meta.deep_layers,
        image: meta.image.map(|i| dir.join(i)),
        image_sha256: meta.image_sha256,
    }
}

/// Reads JSON without moving the file's atime (it may be evidence).
pub(crate) fn read_json_value(p: &Path) -> Value {
    let b =
        crate::integrity::read_noatime(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    serde_json::from_slice(&b).unwrap_or_else(|e| panic!("parse {}: {e}", p.display()))
}

/// Writes a file, creating its parent directories.
pub(crate) fn write(p: &Path, content: impl AsRef<[u8]>) {
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    }
    fs::write(p, content).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

/// `<dir>/long-evidence-path-0-xxx/.../docker`, at least
/// [`DATA_ROOT_MIN_LEN`] bytes long.
pub(crate) fn long_data_root(dir: &Path) -> PathBuf {
    let mut p = dir.to_path_buf();
    let mut i = 0;
    while p.as_os_str().len() + "/docker".len() < DATA_ROOT_MIN_LEN {
        let need = DATA_ROOT_MIN_LEN - p.as_os_str().len() - "/docker".len();
        let mut seg = format!("long-evidence-path-{i}-");
        while seg.len() < need.min(100) {
            seg.push('x');
        }
        p.push(seg);
        i += 1;
    }
    p.join("docker")
}

/// Builds a crashed root with storage driver `driver` in `dest` (which must
/// not exist): images, containers, oracles, SIGKILL, unmount; returns what
/// [`cached_root`] writes to `meta.json`.
fn build(driver: &str, dest: &Path) -> Meta {
    let t0 = Instant::now();
    let root = long_data_root(dest);
    fs::create_dir_all(&root).unwrap_or_else(|e| panic!("mkdir {}: {e}", root.display()));
    // btrfs: the data root is a fresh btrfs filesystem in a sparse image.
    let image = (driver == "btrfs").then(|| {
        let image = dest.join("btrfs.img");
        File::create(&image)
            .and_then(|f| f.set_len(BTRFS_IMAGE_BYTES))
            .unwrap_or_else(|e| panic!("create {}: {e}", image.display()));
        let mkfs = mkfs_btrfs().expect("mkfs.btrfs");
        run_ok(Command::new(mkfs).args(["-q", "-f"]).arg(&image), 120);
        run_ok(
            Command::new("mount")
                .args(["-t", "btrfs", "-o", "loop"])
                .arg(&image)
                .arg(&root),
            60,
        );
        image
    });
    let mut d = Daemon::start(&LEFTOVERS, None, &root, dest, &["--storage-driver", driver]);
    let deep_layers = deep_layers(driver);
    scenario(&d, dest, Path::new(BUSYBOX), deep_layers);
    let Oracles {
        ps,
        inspect,
        images,
        containers,
    } = oracles(&d, dest);

    // The crash. It unmounts everything at and under the data root: for
    // btrfs, the filesystem itself, which is then checked read-only.
    d.crash();
    let check = image.as_ref().map(|image| {
        wait_detached(image);
        let top = dest.join("check");
        let point = top.join("docker");
        mount_image_ro(image, &point);
        (top, point)
    });
    let check_root = check.as_ref().map_or(&root, |(_, p)| p);
    for c in &containers {
        let cfg = read_json_value(
            &check_root
                .join("containers")
                .join(&c.id)
                .join("config.v2.json"),
        );
        let on_disk = cfg["State"]["Running"].as_bool().unwrap_or(false);
        assert_eq!(
            on_disk, c.running_at_crash,
            "{}: State.Running on disk after the crash differs from before it",
            c.name
        );
    }
    assert!(
        containers.iter().filter(|c| c.running_at_crash).count() >= 3,
        "expected c-running, c-deep and c-mounts running at the crash"
    );
    let mut image_sha256 = None;
    if let (Some(image), Some((top, _))) = (&image, &check) {
        unmount_under(&[top]).unwrap_or_else(|e| panic!("{e}"));
        wait_detached(image);
        fs::remove_dir_all(top).unwrap_or_else(|e| panic!("rm -rf {}: {e}", top.display()));
        image_sha256 = Some(sha256_file(image));
    }
    let root_rel = root
        .strip_prefix(dest)
        .expect("data root under dest")
        .to_path_buf();
    let build_seconds = t0.elapsed().as_secs_f64();
    let meta = Meta {
        driver: driver.to_string(),
        root: root_rel,
        containers,
        inspect,
        ps,
        images,
        build_seconds,
        deep_layers,
        image: image.map(|i| {
            i.strip_prefix(dest)
                .expect("image under dest")
                .to_path_buf()
        }),
        image_sha256,
    };
    eprintln!(
        "built real {driver} root in {build_seconds:.1} s at {} ({} bytes)",
        root.display(),
        root.as_os_str().len()
    );
    meta
}

/// The images and containers of every real docker root, made by the
/// daemon `d` in cache dir `dest` with a base image of `busybox` and a
/// `dm-deep:1` of `deep_layers` layers; returns once the running
/// containers made their last change.
pub(crate) fn scenario(d: &Daemon, dest: &Path, busybox: &Path, deep_layers: usize) {
    let b = dest.join("build");

    // Base image: static busybox + applet links, imported.
    let rootfs = b.join("base-rootfs");
    make_base_rootfs(&rootfs, busybox);
    let base_tar = b.join("base.tar");
    tar_rootfs(&rootfs, &base_tar, true);
    d.docker(import_args(&base_tar, "dm-base:latest"));

    // dm-awkward:1
    let awk = b.join("awkward");
    write(&awk.join("Dockerfile"), awkward_dockerfile());
    write(&awk.join("copied-file"), "copied from the build context\n");
    d.docker_timeout(
        [
            OsStr::new("build"),
            OsStr::new("--network"),
            OsStr::new("none"),
            OsStr::new("-t"),
            OsStr::new("dm-awkward:1"),
            awk.as_os_str(),
        ],
        600,
    );

    // dm-deep:1 — COPY steps need no running container, ~0.15 s each.
    let deep = b.join("deep");
    let mut df = String::from("FROM dm-base:latest\n");
    for i in 1..deep_layers {
        write(&deep.join("f").join(i.to_string()), format!("{i}\n"));
        let _ = writeln!(df, "COPY f/{i} /deep/{i}");
    }
    write(&deep.join("Dockerfile"), df);
    d.docker_timeout(
        [
            OsStr::new("build"),
            OsStr::new("-t"),
            OsStr::new("dm-deep:1"),
            deep.as_os_str(),
        ],
        900,
    );

    // Containers.
    let none = ["--network", "none"];
    let exited = "echo added > /added-file; echo changed >> /awk/modify-me; \
        rm '/awk/name with spaces'; rm -rf /awk/deep; rm /awk/hardlink-b; \
        mkfifo /ctr-fifo; ln -s /awk/sub /ctr-symlink; exit 3";
    let (code, _, err) = d.docker_status(
        ["run", "--name", "c-exited"].iter().chain(&none).chain(&[
            "dm-awkward:1",
            "sh",
            "-c",
            exited,
        ]),
        120,
    );
    assert_eq!(code, 3, "c-exited should exit 3: {err}");
    d.docker(
        ["create", "--name", "c-created"]
            .iter()
            .chain(&none)
            .chain(&["dm-awkward:1", "sh"]),
    );
    let running = "echo hi > /new-file; rm /etc/group; mkdir -p /var/tmp/x; sleep 100000";
    d.docker(
        ["run", "-d", "--name", "c-running"]
            .iter()
            .chain(&none)
            .chain(&["dm-awkward:1", "sh", "-c", running]),
    );
    let deep_cmd = "echo changed > /deep/1; rm /deep/2; mkdir /deep/ctr; sleep 100000";
    d.docker(
        ["run", "-d", "--name", "c-deep"]
            .iter()
            .chain(&none)
            .chain(&["dm-deep:1", "sh", "-c", deep_cmd]),
    );
    d.docker(
        ["run", "-d", "--name", "c-stopped"]
            .iter()
            .chain(&none)
            .chain(&["dm-awkward:1", "sleep", "100000"]),
    );
    d.docker(["stop", "-t", "1", "c-stopped"]);
    let bind = dest.join("bind");
    write(&bind.join("bound-file"), "bind-mounted, read-only\n");
    let bind_arg = format!("{}:/bind:ro", bind.display());
    let mounts_cmd = "echo vol > /data/in-volume; echo rw > /rw-file; sleep 100000";
    d.docker(
        [
            "run",
            "-d",
            "--name",
            "c-mounts",
            "--cap-add",
            "SYS_ADMIN",
            "--restart",
            "unless-stopped",
            "--hostname",
            "dm-host",
            "-e",
            "DM_SECRET=hunter2",
            "--label",
            "dm.role=mounts",
            "-w",
            "/awk",
            "-v",
            "dm-vol:/data",
            "-v",
            bind_arg.as_str(),
        ]
        .iter()
        .chain(&none)
        .chain(&["dm-awkward:1", "sh", "-c", mounts_cmd]),
    );
    // --privileged cannot start where the bounding set lacks a capability
    // (CAP_SYS_RESOURCE here): create it only; hostconfig.json records it.
    d.docker(
        ["create", "--name", "c-privileged", "--privileged"]
            .iter()
            .chain(&none)
            .chain(&["dm-awkward:1", "sh"]),
    );
    // Wait until the detached shells made their last change.
    for (name, last) in [
        ("c-running", "/var/tmp/x"),
        ("c-deep", "/deep/ctr"),
        ("c-mounts", "/rw-file"),
    ] {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let diff = d.docker(["diff", name]);
            if diff.lines().any(|l| l.ends_with(&format!(" {last}"))) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never made {last}: {diff}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The oracles of a real root, taken while its daemon is alive.
pub(crate) struct Oracles {
    pub ps: Vec<Value>,
    pub inspect: Value,
    pub images: Value,
    pub containers: Vec<RealContainer>,
}

/// `docker ps -a`, `inspect`, `image inspect` of every image, and each
/// container's `export` (to `<dest>/exports/<name>.tar`) and `diff`.
pub(crate) fn oracles(d: &Daemon, dest: &Path) -> Oracles {
    let ps: Vec<Value> = d
        .docker(["ps", "-a", "--no-trunc", "--format", "{{json .}}"])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("docker ps line {l:?}: {e}")))
        .collect();
    let ids: Vec<String> = d
        .docker(["ps", "-a", "-q", "--no-trunc"])
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let inspect: Value = {
        let out = d.docker(
            ["inspect".to_string()]
                .into_iter()
                .chain(ids.iter().cloned()),
        );
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("docker inspect: {e}"))
    };
    let image_ids: BTreeSet<String> = d
        .docker(["images", "-a", "-q", "--no-trunc"])
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let images: Value = {
        let args = ["image".to_string(), "inspect".to_string()];
        let out = d.docker(args.into_iter().chain(image_ids));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("docker image inspect: {e}"))
    };
    let mut containers = Vec::new();
    for c in inspect.as_array().map(Vec::as_slice).unwrap_or_default() {
        let id = c["Id"].as_str().expect("inspect Id").to_string();
        let name = c["Name"]
            .as_str()
            .expect("inspect Name")
            .trim_start_matches('/')
            .to_string();
        let export_rel = PathBuf::from("exports").join(format!("{name}.tar"));
        let export = dest.join(&export_rel);
        fs::create_dir_all(dest.join("exports")).expect("mkdir exports");
        d.docker_timeout(
            [
                OsStr::new("export"),
                OsStr::new("-o"),
                export.as_os_str(),
                OsStr::new(&id),
            ],
            300,
        );
        let diff = d.docker(["diff", id.as_str()]);
        write(&dest.join("diffs").join(format!("{name}.txt")), &diff);
        containers.push(RealContainer {
            id,
            name,
            export_tar: export_rel,
            diff,
            running_at_crash: c["State"]["Running"].as_bool().unwrap_or(false),
        });
    }
    Oracles {
        ps,
        inspect,
        images,
        containers,
    }
}

/// Tars the directory `rootfs` into `tar`: numeric owners, and with
/// `xattrs` the extended attributes.
pub(crate) fn tar_rootfs(rootfs: &Path, tar: &Path, xattrs: bool) {
    let mut c = Command::new("tar");
    c.arg("--numeric-owner");
    if xattrs {
        c.args(["--xattrs", "--xattrs-include=*"]);
    }
    run_ok(c.arg("-C").arg(rootfs).arg("-cf").arg(tar).arg("."), 60);
}

/// `import` of the rootfs tar `tar` as image `image` running `/bin/sh`:
/// arguments for docker or podman.
pub(crate) fn import_args<'a>(tar: &'a Path, image: &'a str) -> [&'a OsStr; 5] {
    [
        OsStr::new("import"),
        OsStr::new("--change"),
        OsStr::new("CMD [\"/bin/sh\"]"),
        tar.as_os_str(),
        OsStr::new(image),
    ]
}

/// The base image's rootfs in `r`: `busybox` (a static one) and its
/// applets, passwd files, xattrs.
pub(crate) fn make_base_rootfs(r: &Path, busybox: &Path) {
    for d in ["bin", "etc", "tmp", "root", "xattr"] {
        fs::create_dir_all(r.join(d)).unwrap_or_else(|e| panic!("mkdir {d}: {e}"));
    }
    fs::copy(busybox, r.join("bin/busybox"))
        .unwrap_or_else(|e| panic!("copy {}: {e}", busybox.display()));
    // A hard link in the base layer, the other applets as symlinks.
    fs::hard_link(r.join("bin/busybox"), r.join("bin/sh")).expect("link sh");
    for a in [
        "ls", "mkdir", "rm", "rmdir", "ln", "mknod", "mkfifo", "chmod", "chown", "touch", "echo",
        "printf", "cat", "sleep", "cp", "mv", "true", "dd", "head", "find", "stat", "wc",
    ] {
        std::os::unix::fs::symlink("busybox", r.join("bin").join(a)).expect("applet symlink");
    }
    write(
        &r.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    );
    write(&r.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n");
    write(&r.join("etc/shadow"), "root:*:19000:0:99999:7:::\n");
    use std::os::unix::fs::PermissionsExt;
    let perm = |p: &str, m: u32| {
        fs::set_permissions(r.join(p), fs::Permissions::from_mode(m)).expect("chmod");
    };
    perm("etc/shadow", 0o640);
    perm("tmp", 0o1777);
    perm("root", 0o700);
    // xattrs in the base layer (docker import applies them all).
    write(&r.join("xattr/user-xattr"), "has a user.* xattr\n");
    xattr::set(r.join("xattr/user-xattr"), "user.dm.note", b"evidence")
        .expect("set user xattr (filesystem without user xattrs?)");
    write(&r.join("xattr/capability"), "has file capabilities\n");
    // vfs_cap_data v2, effective, permitted = CAP_NET_BIND_SERVICE.
    let mut cap = Vec::new();
    cap.extend_from_slice(&(0x0200_0000u32 | 1).to_le_bytes());
    cap.extend_from_slice(&(1u32 << 10).to_le_bytes());
    cap.extend_from_slice(&0u32.to_le_bytes());
    cap.extend_from_slice(&0u32.to_le_bytes());
    cap.extend_from_slice(&0u32.to_le_bytes());
    xattr::set(r.join("xattr/capability"), "security.capability", &cap)
        .expect("set security.capability");
}

/// A 255-byte file name (the longest a component can be).
pub fn name_255() -> String {
    format!("n255-{}", "x".repeat(250))
}

/// The awkward image: every case of testing.md that a docker build can make.
pub(crate) fn awkward_dockerfile() -> String {
    let lines = [
        "FROM dm-base:latest",
        // Empty layers.
        "LABEL dm.case=\"awkward\" dm.note=\"LABEL and ENV make empty layers\"",
        "ENV DM_CASE=awkward DM_EMPTY=1",
        // Layer 1: the awkward files.
        "RUN set -e; mkdir -p /awk/deep/a/b/c/d/e/f/g/h/i/j; echo leaf > /awk/deep/a/b/c/d/e/f/g/h/i/j/leaf; \\",
        "  echo spaces > '/awk/name with spaces'; \\",
        "  echo newline > \"$(printf '/awk/new\\nline')\"; \\",
        "  echo backslash > '/awk/back\\slash'; \\",
        "  echo latin1 > \"$(printf '/awk/non-utf8-\\377\\376')\"; \\",
        "  mkdir \"$(printf '/awk/dir-\\351')\"; echo inside > \"$(printf '/awk/dir-\\351/f')\"; \\",
        "  mkdir /awk/sub; echo linked > /awk/hardlink-a; ln /awk/hardlink-a /awk/hardlink-b; ln /awk/hardlink-a /awk/sub/hardlink-c; \\",
        "  ln -s /etc/passwd /awk/abs-link; ln -s ../etc/passwd /awk/rel-link; ln -s sub /awk/dir-link; \\",
        "  ln -s ../../../../etc/shadow /awk/escape-rel; ln -s /etc/shadow /awk/escape-abs; ln -s /nonexistent /awk/dangling; \\",
        "  echo suid > /awk/setuid; chmod 4755 /awk/setuid; echo sgid > /awk/setgid; chmod 2755 /awk/setgid; \\",
        "  mkdir /awk/sticky /awk/setgid-dir; chmod 1777 /awk/sticky; chmod 2775 /awk/setgid-dir; \\",
        "  echo odd > /awk/odd-owner; chown 12345:54321 /awk/odd-owner; mkdir /awk/big-ids; chown 2000000000:2000000001 /awk/big-ids; \\",
        "  mkfifo /awk/fifo; mknod /awk/char-dev c 1 3; mknod /awk/block-dev b 7 200; \\",
        "  mkdir -p /awk/empty-dir /awk/empty-parent/empty-child; \\",
        "  echo zero > /awk/mode-000; chmod 000 /awk/mode-000; \\",
        "  dd if=/dev/zero of=/awk/big bs=65536 count=40 2>/dev/null; \\",
        "  echo long > /awk/@NAME255@; \\",
        "  echo doomed > /awk/doomed-file; mkdir -p /awk/doomed-dir/sub; echo x > /awk/doomed-dir/sub/x; \\",
        "  mkdir /awk/opaque; echo old > /awk/opaque/old1; echo old > /awk/opaque/old2; \\",
        "  echo original > /awk/modify-me; echo chmod > /awk/chmod-me; \\",
        "  mkdir /awk/dir-becomes-file; echo x > /awk/dir-becomes-file/x; echo f > /awk/file-becomes-dir",
        // Layer 2: whiteouts, an opaque directory, copy-ups, type changes.
        "RUN set -e; rm /awk/doomed-file; rm -rf /awk/doomed-dir; rm /bin/head; \\",
        "  rm -rf /awk/opaque; mkdir /awk/opaque; echo new > /awk/opaque/new; \\",
        "  echo appended >> /awk/modify-me; chmod 0600 /awk/chmod-me; \\",
        "  rm -rf /awk/dir-becomes-file; echo now-a-file > /awk/dir-becomes-file; \\",
        "  rm /awk/file-becomes-dir; mkdir /awk/file-becomes-dir; echo y > /awk/file-becomes-dir/y; \\",
        "  ln /awk/hardlink-a /awk/hardlink-upper",
        // Layer 3: a COPY layer; WORKDIR makes a directory.
        "COPY copied-file /awk/copied",
        "WORKDIR /awk/workdir",
        "CMD [\"/bin/sh\"]",
    ];
    let mut s = lines.join("\n").replace("@NAME255@", &name_255());
    s.push('\n');
    s
}

/// A private dockerd on a short exec-root in /tmp, on the host or in a
/// chroot view ([`Chroot`](crate::trixie::Chroot)).
pub(crate) struct Daemon {
    run: PathBuf,
    root: PathBuf,
    sock: String,
    log: PathBuf,
    child: Option<Child>,
    config: PathBuf,
    /// The chroot view it runs in (its `/` on the host).
    view: Option<PathBuf>,
}

impl Daemon {
    /// Starts dockerd with data root `root`, its log and CLI config in
    /// `dest`, and `args` (storage driver, config file); in `view` when
    /// given (which must show `root` and `dest` at their host paths; the
    /// run dir is bound into it).
    pub(crate) fn start(
        leftovers: &Leftovers,
        view: Option<&crate::trixie::Chroot>,
        root: &Path,
        dest: &Path,
        args: &[&str],
    ) -> Daemon {
        let run = leftovers.run_dir(dest);
        if let Some(v) = view {
            v.bind_same(&run).unwrap_or_else(|e| panic!("{e}"));
        }
        let log = dest.join("dockerd.log");
        let logf = File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let logf2 = logf.try_clone().expect("dup log fd");
        let sock = format!("unix://{}/s", run.display());
        let config = dest.join("docker-config");
        fs::create_dir_all(&config).expect("mkdir docker-config");
        let view = view.map(|v| v.root().to_path_buf());
        let child = program(view.as_deref(), DOCKERD)
            .arg("--data-root")
            .arg(root)
            .arg("--exec-root")
            .arg(run.join("x"))
            .arg("--host")
            .arg(&sock)
            .arg("--pidfile")
            .arg(run.join("pid"))
            .args(["--iptables=false", "--ip-masq=false", "--bridge=none"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(logf)
            .stderr(logf2)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {DOCKERD}: {e}"));
        let mut d = Daemon {
            run,
            root: root.to_path_buf(),
            sock,
            log,
            child: Some(child),
            config,
            view,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (code, _, _) = d.docker_status(["version"], 30);
            if code == 0 {
                break;
            }
            let exited = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "dockerd did not come up ({}):\n{}",
                    exited.map_or("timeout".into(), |s| s.to_string()),
                    log_tail(&d.log)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        if !d.run.join("x/containerd/containerd.pid").exists() {
            panic!(
                "dockerd uses a system containerd (/run/containerd/containerd.sock?), \
                 not its own: refusing to build (its shims could not be told apart)"
            );
        }
        d
    }

    fn cmd(&self) -> Command {
        let mut c = program(self.view.as_deref(), DOCKER);
        docker_env(&mut c, &self.sock, &self.config);
        c
    }

    pub(crate) fn docker_status<I, S>(&self, args: I, timeout: u64) -> (i32, String, String)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.cmd();
        c.args(args);
        run_capture(&mut c, timeout, &self.run)
    }

    pub(crate) fn docker_timeout<I, S>(&self, args: I, timeout: u64) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args = os_args(args);
        let (code, out, err) = self.docker_status(&args, timeout);
        if code != 0 {
            panic!(
                "docker {:?} failed ({code}):\n{out}\n{err}\n--- dockerd log ---\n{}",
                args,
                log_tail(&self.log)
            );
        }
        out
    }

    pub(crate) fn docker<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.docker_timeout(args, 120)
    }

    /// SIGKILL dockerd, its containerd, the container processes and shims,
    /// then unmount what they left and remove the exec-root.
    pub(crate) fn crash(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let survivors = kill_run(&self.run);
        // Read before unmounting: the data root may be a mounted filesystem.
        let ids = container_ids(&self.root);
        let unmounted = unmount_under(&[&self.root, &self.run]);
        remove_cgroups(&ids);
        let _ = fs::remove_dir_all(&self.run);
        if !std::thread::panicking() {
            assert!(
                survivors.is_empty(),
                "processes {survivors:?} survived SIGKILL"
            );
            if let Err(e) = unmounted {
                panic!("{e}");
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.crash();
        }
    }
}

/// The lines of a `docker diff` (or `docker-mount diff`) output as a sorted
/// set: docker's own order follows Go map iteration, ours is path order.
pub fn diff_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// The docker CLI talking to the private daemon at `sock` (`unix://…`),
/// with its own config dir and the legacy builder, whatever the
/// environment says.
pub(crate) fn docker_cli(sock: &str, config: &Path) -> Command {
    let mut c = Command::new(DOCKER);
    docker_env(&mut c, sock, config);
    c
}

/// `path` as a command: run on the host, or in the chroot view whose `/`
/// is `view` ([`trixie::Chroot::command`](crate::trixie::Chroot::command)).
fn program(view: Option<&Path>, path: &str) -> Command {
    match view {
        Some(v) => crate::trixie::command_in(v, path),
        None => Command::new(path),
    }
}

/// The environment of [`docker_cli`], on any docker command.
fn docker_env(c: &mut Command, sock: &str, config: &Path) {
    c.env("DOCKER_HOST", sock)
        .env("DOCKER_BUILDKIT", "0")
        .env("DOCKER_CONFIG", config)
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH");
}

/// The last 40 lines of a daemon's log, for failure messages.
pub(crate) fn log_tail(log: &Path) -> String {
    let s = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A command's arguments, collected: to pass them, then to show them.
pub(crate) fn os_args<I, S>(args: I) -> Vec<std::ffi::OsString>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    args.into_iter()
        .map(|a| a.as_ref().to_os_string())
        .collect()
}

/// Runs a command with a timeout, capturing output in files (no pipe
/// deadlocks). Returns (exit code, or -1 on a timeout, stdout, stderr) as bytes.
pub(crate) fn run_capture_bytes(
    c: &mut Command,
    timeout: u64,
    scratch: &Path,
) -> (i32, Vec<u8>, Vec<u8>) {
    let tmp = tempfile::Builder::new()
        .prefix("cmd")
        .tempdir_in(scratch)
        .or_else(|_| tempfile::tempdir())
        .expect("tempdir for command output");
    let (o, e) = (tmp.path().join("out"), tmp.path().join("err"));
    c.stdin(Stdio::null())
        .stdout(File::create(&o).expect("create stdout file"))
        .stderr(File::create(&e).expect("create stderr file"));
    let mut child = c.spawn().unwrap_or_else(|err| panic!("spawn {c:?}: {err}"));
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for command") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = fs::read(&o).unwrap_or_default();
    let mut err = fs::read(&e).unwrap_or_default();
    let code = match status {
        Some(s) => s.code().unwrap_or(-1),
        None => {
            err.extend_from_slice(format!("\n(timed out after {timeout} s)").as_bytes());
            -1
        }
    };
    (code, out, err)
}

/// [`run_capture_bytes`] with the output as text.
fn run_capture(c: &mut Command, timeout: u64, scratch: &Path) -> (i32, String, String) {
    let (code, out, err) = run_capture_bytes(c, timeout, scratch);
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// [`run_capture`] with its output files in `/tmp`.
pub(crate) fn run(c: &mut Command, timeout: u64) -> (i32, String, String) {
    run_capture(c, timeout, Path::new("/tmp"))
}

/// [`run`] that must succeed; its stdout.
pub(crate) fn run_ok(c: &mut Command, timeout: u64) -> String {
    let (code, out, err) = run(c, timeout);
    assert_eq!(code, 0, "{c:?} failed ({code}):\n{out}\n{err}");
    out
}

/// The arguments of `pid`'s command line.
pub(crate) fn cmdline(pid: i32) -> Vec<Vec<u8>> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// Whether `pid` runs (and is not a zombie).
pub(crate) fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the ")" closing the command name.
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let s = fs::read_to_string(t.path().join("children")).unwrap_or_default();
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
        }
    }
    out
}

/// `pid` and all its descendants, parents first.
pub(crate) fn tree(pid: i32) -> Vec<i32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() && out.len() < 10_000 {
        out.extend(children(out[i]));
        i += 1;
    }
    out
}

/// Sends `sig` to the one process `pid` (never to a group or to init).
pub(crate) fn signal(pid: i32, sig: libc::c_int) {
    if pid > 1 {
        // SAFETY: kill(2) has no memory effects; pid is a single positive id.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// SIGKILLs, in order, those of `pids` still alive; returns those that
/// survive 20 s.
pub(crate) fn kill_all(pids: &[i32]) -> Vec<i32> {
    for &p in pids {
        if alive(p) {
            signal(p, libc::SIGKILL);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    pids.iter().copied().filter(|&p| alive(p)).collect()
}

fn read_pid(p: &Path) -> Option<i32> {
    fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// Whether an argument of `pid`'s command line contains `needle`.
pub(crate) fn mentions(pid: i32, needle: &[u8]) -> bool {
    !needle.is_empty()
        && cmdline(pid)
            .iter()
            .any(|a| a.windows(needle.len()).any(|w| w == needle))
}

/// The containerd shims (runc v2 or v1) whose `-address` lies under `run`.
pub(crate) fn shims(run: &Path) -> Vec<i32> {
    let needle = run.as_os_str().as_bytes();
    let mut out = Vec::new();
    for p in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let args = cmdline(pid);
        let is_shim = args.first().is_some_and(|a| {
            a.ends_with(b"containerd-shim-runc-v2") || a.ends_with(b"containerd-shim")
        });
        let ours = args
            .windows(2)
            .any(|w| w[0] == b"-address" && under(&w[1], needle));
        if is_shim && ours {
            out.push(pid);
        }
    }
    out
}

/// SIGKILLs, by pid, the processes of the dockerd whose exec-root is
/// `<run>/x`: dockerd (pidfile), its containerd (pidfile), the shims whose
/// `-address` lies under `run` and the containers they started. Each pid is
/// checked to still name `run` (or be a shim's child) before it is killed.
fn kill_run(run: &Path) -> Vec<i32> {
    let needle = run.as_os_str().as_bytes();
    let daemons = [run.join("pid"), run.join("x/containerd/containerd.pid")]
        .iter()
        .filter_map(|pidfile| read_pid(pidfile))
        .filter(|&p| mentions(p, needle))
        .collect();
    kill_with_shims(daemons, run)
}

/// SIGKILLs `daemons` first (nothing may record the deaths), then the
/// containers of the shims whose `-address` lies under `run` (killing a pid
/// namespace's init kills it all), then those shims; returns the processes
/// that survive.
pub(crate) fn kill_with_shims(mut daemons: Vec<i32>, run: &Path) -> Vec<i32> {
    let shims = shims(run);
    daemons.extend(shims.iter().flat_map(|&s| children(s)));
    daemons.extend(shims);
    kill_all(&daemons)
}

/// The live processes, other than this one, whose command line mentions
/// one of `paths`.
pub(crate) fn mentioning(paths: &[&Path]) -> Vec<i32> {
    let me = std::process::id() as i32;
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            pid != me
                && alive(pid)
                && paths
                    .iter()
                    .any(|p| mentions(pid, p.as_os_str().as_bytes()))
        })
        .collect()
}

fn unescape_mountinfo(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn under(p: &[u8], prefix: &[u8]) -> bool {
    p == prefix || (p.starts_with(prefix) && p.get(prefix.len()) == Some(&b'/'))
}

/// Lazily unmounts every mount at or below any of `prefixes`, deepest
/// (and most recently stacked) first, until none is left.
pub fn unmount_under(prefixes: &[&Path]) -> Result<(), String> {
    for _round in 0..20 {
        let info = fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
        let mut points: Vec<(usize, Vec<u8>)> = info
            .lines()
            .enumerate()
            .filter_map(|(i, l)| l.split(' ').nth(4).map(|m| (i, unescape_mountinfo(m))))
            .filter(|(_, m)| prefixes.iter().any(|p| under(m, p.as_os_str().as_bytes())))
            .collect();
        if points.is_empty() {
            return Ok(());
        }
        points.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(b.0.cmp(&a.0)));
        for (_, m) in points {
            let _ = umount2(Path::new(OsStr::from_bytes(&m)), MntFlags::MNT_DETACH);
        }
    }
    Err(format!("mounts under {prefixes:?} survive repeated umount"))
}

/// The container ids of a data root.
fn container_ids(root: &Path) -> Vec<std::ffi::OsString> {
    fs::read_dir(root.join("containers"))
        .map(|ids| ids.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default()
}

/// Removes the (now empty) cgroups docker made for containers `ids`.
fn remove_cgroups(ids: &[std::ffi::OsString]) {
    let Ok(hier) = fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let mut bases = vec![PathBuf::from("/sys/fs/cgroup")];
    bases.extend(hier.flatten().map(|e| e.path()));
    for base in bases {
        for id in ids {
            let p = base.join("docker").join(id);
            if p.is_dir() {
                let _ = fs::remove_dir(&p);
            }
        }
    }
}

/// One line of `/proc/self/mountinfo`.
struct Mount {
    point: Vec<u8>,
    fs_type: String,
    source: String,
    /// Per-mount options.
    mount_opts: Vec<String>,
    /// Per-superblock options.
    super_opts: Vec<String>,
}

fn mounts() -> Vec<Mount> {
    let info = fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
    info.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            let opts = |s: Option<&&str>| -> Vec<String> {
                s.map(|s| s.split(',').map(String::from).collect())
                    .unwrap_or_default()
            };
            Some(Mount {
                point: unescape_mountinfo(left.get(4)?),
                fs_type: right.first()?.to_string(),
                source: String::from_utf8_lossy(&unescape_mountinfo(right.get(1)?)).into_owned(),
                mount_opts: opts(left.get(5)),
                super_opts: opts(right.get(2)),
            })
        })
        .collect()
}

/// Mounts the btrfs `image` on `point` read-only: `mount -o ro,loop` makes
/// a read-only loop device, and `rescue=nologreplay` (`nologreplay` before
/// Linux 5.9) stops btrfs replaying a log tree, which it does even for a
/// read-only mount. [`check_ro_image_mount`] then checks all of it.
/// A second mount of the same image reuses its loop device and superblock.
fn mount_image_ro(image: &Path, point: &Path) {
    fs::create_dir_all(point).unwrap_or_else(|e| panic!("mkdir {}: {e}", point.display()));
    let mut errors = String::new();
    for no_replay in ["rescue=nologreplay", "nologreplay"] {
        let opts = format!("ro,nosuid,nodev,noexec,loop,{no_replay}");
        let (code, out, err) = run_capture(
            Command::new("mount")
                .args(["-t", "btrfs", "-o", &opts])
                .arg(image)
                .arg(point),
            60,
            Path::new("/tmp"),
        );
        if code == 0 {
            check_ro_image_mount(point);
            return;
        }
        let _ = writeln!(errors, "mount -o {opts}: {}{}", out.trim(), err.trim());
    }
    panic!(
        "cannot mount {} read-only on {}:\n{errors}",
        image.display(),
        point.display()
    );
}

/// Panics unless the topmost mount on `point` is btrfs, read-only per
/// mount and per superblock, replays no log tree, and reads a read-only
/// loop device.
pub fn check_ro_image_mount(point: &Path) {
    let all = mounts();
    let m = all
        .iter()
        .rev()
        .find(|m| m.point == point.as_os_str().as_bytes())
        .unwrap_or_else(|| panic!("nothing is mounted on {}", point.display()));
    let at = point.display();
    assert_eq!(m.fs_type, "btrfs", "{at}: not btrfs");
    assert!(
        m.mount_opts.iter().any(|o| o == "ro"),
        "{at}: mount not ro: {:?}",
        m.mount_opts
    );
    assert!(
        m.super_opts.iter().any(|o| o == "ro"),
        "{at}: superblock not ro: {:?}",
        m.super_opts
    );
    assert!(
        m.super_opts.iter().any(|o| o.ends_with("nologreplay")),
        "{at}: log replay not disabled: {:?}",
        m.super_opts
    );
    let dev = m
        .source
        .strip_prefix("/dev/")
        .filter(|d| d.starts_with("loop"))
        .unwrap_or_else(|| panic!("{at}: source {} is not a loop device", m.source));
    let ro = fs::read_to_string(format!("/sys/block/{dev}/ro")).unwrap_or_default();
    assert_eq!(ro.trim(), "1", "{at}: loop device {dev} is not read-only");
}

/// Waits until no loop device is backed by `image` (mount's autoclear
/// detaches it once the last mount of its filesystem is really gone).
fn wait_detached(image: &Path) {
    let image = fs::canonicalize(image).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    let want = image.as_os_str().as_bytes();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut users = Vec::new();
        for e in fs::read_dir("/sys/block").into_iter().flatten().flatten() {
            let backing = fs::read(e.path().join("loop/backing_file")).unwrap_or_default();
            let backing = backing.strip_suffix(b"\n").unwrap_or(&backing);
            let backing = backing.strip_suffix(b" (deleted)").unwrap_or(backing);
            if backing == want {
                users.push(e.file_name());
            }
        }
        if users.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "loop devices {users:?} still hold {}",
            image.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Unmounts and removes the `ro-<pid>` mounts of `dir` whose process is gone.
fn sweep_stale_mounts(dir: &Path) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("ro-"))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() as i32 || alive(pid) {
            continue;
        }
        if unmount_under(&[&e.path()]).is_ok() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

static AT_EXIT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

extern "C" fn unmount_registered() {
    let dirs = AT_EXIT
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    for d in dirs {
        let _ = std::panic::catch_unwind(|| {
            if unmount_under(&[&d]).is_ok() {
                let _ = fs::remove_dir_all(&d);
            }
        });
    }
}

/// Unmounts everything under `dir` and removes it when this process exits.
fn unmount_at_exit(dir: PathBuf) {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    AT_EXIT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(dir);
    REGISTERED.call_once(|| {
        // SAFETY: registers a plain extern "C" fn that catches its panics.
        let r = unsafe { libc::atexit(unmount_registered) };
        assert_eq!(r, 0, "atexit failed");
    });
}

/// Hex sha256 of a file, streamed, without moving its atime.
fn sha256_file(p: &Path) -> String {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(p)
        .unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read {}: {e}", p.display()),
        }
    }
    hex::encode(h.finalize())
}

/// Directories below `root` on another device than their parent (btrfs
/// subvolumes, or mounts), relative to `root`, parents first. Symlinks are
/// not followed, directories are opened with `O_NOATIME`.
fn other_device_dirs(root: &Path) -> Vec<PathBuf> {
    use nix::dir::Dir;
    use nix::fcntl::{AtFlags, OFlag};
    use nix::sys::stat::{fstatat, Mode};
    use std::os::fd::AsRawFd;
    let flags = OFlag::O_RDONLY
        | OFlag::O_DIRECTORY
        | OFlag::O_NOATIME
        | OFlag::O_NOFOLLOW
        | OFlag::O_CLOEXEC;
    fn walk(mut dir: Dir, rel: &Path, dev: u64, flags: OFlag, root: &Path, out: &mut Vec<PathBuf>) {
        let fd = dir.as_raw_fd();
        let names: Vec<Vec<u8>> = dir
            .iter()
            .map(|e| {
                e.unwrap_or_else(|e| panic!("readdir {}: {e}", root.join(rel).display()))
                    .file_name()
                    .to_bytes()
                    .to_vec()
            })
            .filter(|n| n != b"." && n != b"..")
            .collect();
        for name in names {
            let name = OsStr::from_bytes(&name);
            let child = rel.join(name);
            let st = fstatat(Some(fd), name, AtFlags::AT_SYMLINK_NOFOLLOW)
                .unwrap_or_else(|e| panic!("lstat {}: {e}", root.join(&child).display()));
            if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                continue;
            }
            if st.st_dev != dev {
                out.push(child.clone());
            }
            let sub = Dir::openat(Some(fd), name, flags, Mode::empty())
                .unwrap_or_else(|e| panic!("opendir {}: {e}", root.join(&child).display()));
            walk(sub, &child, st.st_dev, flags, root, out);
        }
    }
    let dir = Dir::open(root, flags, Mode::empty())
        .unwrap_or_else(|e| panic!("opendir {}: {e}", root.display()));
    let st = fstatat(Some(dir.as_raw_fd()), ".", AtFlags::AT_SYMLINK_NOFOLLOW)
        .unwrap_or_else(|e| panic!("stat {}: {e}", root.display()));
    let mut out = Vec::new();
    walk(dir, Path::new(""), st.st_dev, flags, root, &mut out);
    out
}

/// The state of a real root's evidence ([`RealRoot::evidence`]).
#[derive(Debug)]
pub struct Evidence {
    /// The data root (`""`) and every directory below it on another device,
    /// each snapshotted on its own: `integrity::snapshot` does not cross
    /// devices, and every btrfs subvolume has its own `st_dev`.
    trees: Vec<(PathBuf, crate::integrity::Snapshot)>,
    /// The image file holding the root (btrfs).
    image: Option<ImageState>,
}

#[derive(Debug, PartialEq, Eq)]
struct ImageState {
    sha256: String,
    len: u64,
    mtime: (i64, i64),
}

impl RealRoot {
    /// Snapshots the evidence: every file of the data root, subvolumes
    /// included, and the image file holding it (whose sha256 must still be
    /// the one recorded when it was built, and which must be mounted
    /// read-only, without log replay, from a read-only loop device).
    pub fn evidence(&self) -> Evidence {
        use std::os::unix::fs::MetadataExt;
        let image = self.image.as_ref().map(|img| {
            check_ro_image_mount(&self.root);
            let md = fs::metadata(img).unwrap_or_else(|e| panic!("{}: {e}", img.display()));
            let state = ImageState {
                sha256: sha256_file(img),
                len: md.len(),
                mtime: (md.mtime(), md.mtime_nsec()),
            };
            assert_eq!(
                Some(&state.sha256),
                self.image_sha256.as_ref(),
                "{} changed since it was built",
                img.display()
            );
            state
        });
        let mut trees = vec![(PathBuf::new(), crate::integrity::snapshot(&self.root))];
        for rel in other_device_dirs(&self.root) {
            let snap = crate::integrity::snapshot(&self.root.join(&rel));
            trees.push((rel, snap));
        }
        Evidence { trees, image }
    }
}

impl Evidence {
    /// Snapshotted trees (the data root and each subvolume below it).
    pub fn trees(&self) -> usize {
        self.trees.len()
    }

    /// Entries over all trees.
    pub fn entries(&self) -> usize {
        self.trees.iter().map(|(_, s)| s.entries()).sum()
    }

    /// Whether an image file was hashed too.
    pub fn has_image(&self) -> bool {
        self.image.is_some()
    }

    /// Human-readable differences from `self` to `after`; empty = identical.
    pub fn diff(&self, after: &Evidence) -> Vec<String> {
        let mut out = Vec::new();
        let paths = |e: &Evidence| e.trees.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
        if paths(self) != paths(after) {
            out.push(format!(
                "subvolumes (directories on other devices) differ: {:?} before, {:?} after",
                paths(self),
                paths(after)
            ));
        }
        for (p, a) in &self.trees {
            if let Some((_, b)) = after.trees.iter().find(|(q, _)| q == p) {
                let shown = Path::new("/").join(p);
                out.extend(
                    a.diff(b)
                        .into_iter()
                        .map(|d| format!("{}: {d}", shown.display())),
                );
            }
        }
        if self.image != after.image {
            out.push(format!(
                "the image file changed: {:?} before, {:?} after",
                self.image, after.image
            ));
        }
        out
    }

    /// Panics, listing up to 50 differences, if anything differs from `after`.
    pub fn assert_unchanged(&self, after: &Evidence) {
        let diff = self.diff(after);
        if diff.is_empty() {
            return;
        }
        let mut msg = format!("evidence was modified: {} difference(s)\n", diff.len());
        for line in diff.iter().take(50) {
            let _ = writeln!(msg, "  {line}");
        }
        if diff.len() > 50 {
            let _ = writeln!(msg, "  ... and {} more", diff.len() - 50);
        }
        panic!("{msg}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_root_is_long() {
        let p = long_data_root(Path::new("/x"));
        assert!(p.as_os_str().len() >= DATA_ROOT_MIN_LEN, "{}", p.display());
        assert!(p.iter().all(|c| c.len() <= 255));
        assert!(p.ends_with("docker"));
    }

    #[test]
    fn mountinfo_unescape() {
        assert_eq!(
            unescape_mountinfo("/a\\040b\\012c\\134"),
            b"/a b\nc\\".to_vec()
        );
        assert!(under(b"/a/b", b"/a"));
        assert!(!under(b"/ab", b"/a"));
    }

    #[test]
    fn name_255_is_255() {
        assert_eq!(name_255().len(), 255);
    }
}
