//! Real ZFS pools made by real OpenZFS 2.3 and a real dockerd 26 with
//! `--storage-driver zfs` (issue 16), for the userspace ZFS reader. This
//! machine's kernel has no zfs, so a VM makes them (testing.md, "Today's
//! engines and kernels we lack"):
//!
//! 1. [`vm`]: the VM's disk, built once per machine at
//!    `/var/cache/docker-mount-tests/zfsvm-<hash of its recipe>`. A copy of
//!    the trixie tree ([`crate::trixie::tree`]: docker.io 26, containerd,
//!    busybox-static) gets [`VM_PACKAGES`] (linux-image 6.12, its headers,
//!    zfs-dkms — dkms builds the module in the chroot — and zfsutils-linux)
//!    and `/dm-init` ([`INIT`]); `mkfs.ext4 -d` makes `root.img` of it, and
//!    the kernel and initrd are copied beside it. The tree is then removed.
//! 2. [`pools`]: the pools, built once per machine at
//!    `/var/cache/docker-mount-tests/zfs-<hash of both recipes>`. qemu (TCG:
//!    KVM fails under this machine's nested virtualisation) boots the VM
//!    with `root.img` as a snapshot (never written), a work disk (ext4,
//!    holding [`SCENARIO`]) and the sparse pool disks of [`DISKS`]. `/dm-init`
//!    runs the scenario as PID 1: it makes the pools, runs dockerd, builds
//!    and runs the awkward containers, writes the oracle to the work disk
//!    and powers the VM off. The oracle is copied out of the work disk with
//!    `debugfs rdump` (no mount), the pool disks are made read-only
//!    (mode 0444) and hashed.
//!
//! Both are built in a sibling `<key>.tmp` and renamed when complete, under
//! an exclusive flock on `<key>.lock`, so an interrupted build never looks
//! complete and parallel test processes build once.
//!
//! The pools (see `real_zfs/scenario.sh`):
//! - `dmpool`, one whole disk (zpool partitions it: GPT, the vdev in
//!   partition 1 at 1 MiB): `dmpool/docker` (lz4, xattr=sa, the docker root
//!   `/var/lib/docker`, its layers `dmpool/docker/<id>` clones of deferred-
//!   destroyed snapshots, and the administrator's snapshot
//!   `dmpool/docker@admin-before-cleanup`), `dmpool/zstd` (xattr=dir),
//!   `dmpool/lzjb`, `dmpool/zle`. Left imported: dockerd is killed with
//!   SIGKILL and the VM powered off (a crash, as when a host is seized).
//! - `dmmirror`, a two-disk mirror: gzip with xattr=sa and dnodesize=auto
//!   (large dnodes), recordsize=1M (large blocks), an encrypted dataset.
//!   Exported cleanly (`zpool export`) before the power-off.
//! - `dmraidz`, a three-disk raidz1: lz4, zstd-19. Left imported.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::real::{run, which};
use crate::trixie::{self, CACHE};

/// Packages installed into the copy of the trixie tree for the VM, in two
/// timed apt-get calls: the kernel and its headers, then zfs (dkms builds
/// the module for that kernel).
pub const VM_PACKAGES: &[&[&str]] = &[
    &[
        "linux-image-amd64",
        "linux-headers-amd64",
        "attr",
        "busybox-static",
    ],
    &["zfs-dkms", "zfsutils-linux"],
];
/// `/dm-init` of the VM: mounts the work disk and runs the scenario there.
pub const INIT: &str = include_str!("real_zfs/init.sh");
/// The scenario, run as PID 1 in the VM.
pub const SCENARIO: &str = include_str!("real_zfs/scenario.sh");
/// The pool disks: (file name, size in bytes), attached as vdc, vdd, … in
/// this order (vda is the root disk, vdb the work disk).
pub const DISKS: &[(&str, u64)] = &[
    ("dmpool.img", 1 << 30),
    ("dmmirror-0.img", 256 << 20),
    ("dmmirror-1.img", 256 << 20),
    ("dmraidz-0.img", 256 << 20),
    ("dmraidz-1.img", 256 << 20),
    ("dmraidz-2.img", 256 << 20),
];
/// Size of the work disk (sparse), which receives the oracle.
const WORK_BYTES: u64 = 1 << 30;
/// The qemu machine: TCG on every vCPU thread (KVM fails here).
const QEMU: &str = "qemu-system-x86_64";
const QEMU_ARGS: &[&str] = &[
    "-accel",
    "tcg,thread=multi",
    "-cpu",
    "max",
    "-m",
    "4096",
    "-smp",
    "2",
    "-nographic",
    "-no-reboot",
    "-nic",
    "none",
];
const KERNEL_CMDLINE: &str = "root=/dev/vda rw console=ttyS0 init=/dm-init panic=-1";
/// How long the VM may run before it is killed.
const VM_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// The recipe of the VM disk: what its cache key hashes.
pub fn vm_recipe() -> String {
    format!(
        "{}cp -a TRIXIE DIR\n{}rm -rf /var/lib/dkms/zfs/*/build\n/dm-init:\n{INIT}\n\
         mkfs.ext4 -d DIR root.img\n",
        trixie::recipe(),
        VM_PACKAGES
            .iter()
            .map(|p| format!("apt-get install --no-install-recommends {}\n", p.join(" ")))
            .collect::<String>()
    )
}

/// The recipe of the pools: what their cache key hashes (the VM's recipe,
/// the disks, the qemu command and the scenario).
pub fn pools_recipe() -> String {
    let disks: Vec<String> = DISKS.iter().map(|(n, s)| format!("{n}:{s}")).collect();
    format!(
        "{}disks {}\nwork {WORK_BYTES}\n{QEMU} {} -append {KERNEL_CMDLINE}\nscenario:\n{SCENARIO}",
        vm_recipe(),
        disks.join(" "),
        QEMU_ARGS.join(" ")
    )
}

fn key(prefix: &str, recipe: &str) -> String {
    format!(
        "{prefix}-{}",
        &hex::encode(Sha256::digest(recipe.as_bytes()))[..16]
    )
}

/// Whether the pools can be built or used here: what the trixie tree needs
/// (root, debootstrap), and qemu, mkfs.ext4, debugfs.
pub fn available() -> Result<(), String> {
    trixie::available()?;
    ensure_qemu()?;
    for p in ["mkfs.ext4", "debugfs"] {
        if which(p).is_none() {
            return Err(format!("{p} is missing (apt-get install e2fsprogs)"));
        }
    }
    Ok(())
}

/// Installs qemu-system-x86 when missing, in its own apt-get call (in one
/// call with other packages apt once answered "held broken packages").
fn ensure_qemu() -> Result<(), String> {
    if which(QEMU).is_some() {
        return Ok(());
    }
    let env = [("DEBIAN_FRONTEND", "noninteractive")];
    let (code, out, err) = run(
        Command::new("apt-get").args(["update", "-qq"]).envs(env),
        600,
    );
    if code != 0 {
        return Err(format!("apt-get update failed ({code}): {out}{err}"));
    }
    let (code, out, err) = run(
        Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "qemu-system-x86",
            ])
            .envs(env),
        1200,
    );
    if code != 0 || which(QEMU).is_none() {
        return Err(format!(
            "apt-get install qemu-system-x86 failed ({code}): {out}{err}"
        ));
    }
    Ok(())
}

/// What the VM disk's build measured, in `<dir>/zfsvm.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmInfo {
    pub recipe: String,
    /// Seconds of the whole build (copy, install, mkfs), without the
    /// trixie tree.
    pub build_seconds: f64,
    /// Seconds of each `apt-get install` of [`VM_PACKAGES`]: the kernel,
    /// then zfs (the dkms build of the module is most of it).
    pub install_seconds: Vec<f64>,
    /// Seconds of `mkfs.ext4 -d`.
    pub mkfs_seconds: f64,
    /// Bytes of the tree (`du -sb`) made into `root.img`.
    pub tree_bytes: u64,
    /// Bytes `root.img` occupies on the host (allocated blocks).
    pub root_img_bytes: u64,
    /// `dpkg-query` versions of the packages.
    pub versions: Vec<(String, String)>,
    /// The kernel release (`/lib/modules/<release>`).
    pub kernel: String,
}

/// The cached VM disk.
#[derive(Debug, Clone)]
pub struct Vm {
    pub dir: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub root_img: PathBuf,
    pub info: VmInfo,
}

/// The VM disk ([`Vm`]), built once per machine; the error says why it
/// cannot be had here.
pub fn vm() -> Result<&'static Vm, String> {
    static VM: OnceLock<Result<Vm, String>> = OnceLock::new();
    VM.get_or_init(|| {
        available()?;
        let tree = trixie::tree()?;
        let dir = cached(&key("zfsvm", &vm_recipe()), "zfsvm.json", |tmp| {
            build_vm(tree, tmp)
        })?;
        load_vm(&dir)
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn load_vm(dir: &Path) -> Result<Vm, String> {
    let info: VmInfo = read_json(&dir.join("zfsvm.json"))?;
    Ok(Vm {
        dir: dir.to_path_buf(),
        kernel: dir.join("vmlinuz"),
        initrd: dir.join("initrd.img"),
        root_img: dir.join("root.img"),
        info,
    })
}

/// Runs `build` in `<CACHE>/<key>.tmp` unless `<CACHE>/<key>/<done>`
/// exists, then renames it to `<CACHE>/<key>`; under a flock on
/// `<CACHE>/<key>.lock`.
fn cached(
    key: &str,
    done: &str,
    build: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<PathBuf, String> {
    fs::create_dir_all(CACHE).map_err(|e| format!("mkdir {CACHE}: {e}"))?;
    let base = Path::new(CACHE);
    let dir = base.join(key);
    let lock_path = base.join(format!("{key}.lock"));
    let lock = File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    let _lock = Flock::lock(lock, FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("flock {}: {e}", lock_path.display()))?;
    if dir.join(done).is_file() {
        return Ok(dir);
    }
    prune_others(base, key);
    let tmp = base.join(format!("{key}.tmp"));
    if tmp.exists() {
        // An interrupted build: whatever it mounted goes first.
        crate::real::unmount_under(&[&tmp])?;
        fs::remove_dir_all(&tmp).map_err(|e| format!("rm -rf {}: {e}", tmp.display()))?;
    }
    fs::create_dir(&tmp).map_err(|e| format!("mkdir {}: {e}", tmp.display()))?;
    build(&tmp)?;
    fs::rename(&tmp, &dir)
        .map_err(|e| format!("rename {} {}: {e}", tmp.display(), dir.display()))?;
    Ok(dir)
}

/// Removes the builds (complete or not) of other recipes of the same kind
/// as `key` (`zfsvm-…`, `zfs-…`) whose lock no process holds.
fn prune_others(base: &Path, key: &str) {
    let Some((prefix, _)) = key.rsplit_once('-') else {
        return;
    };
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let stem = name.strip_suffix(".tmp").unwrap_or(&name);
        let Some(hash) = stem.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')) else {
            continue;
        };
        if stem == key || hash.len() != 16 || !e.path().is_dir() {
            continue;
        }
        let lock_path = base.join(format!("{stem}.lock"));
        let Ok(lock) = File::create(&lock_path) else {
            continue;
        };
        let Ok(_held) = Flock::lock(lock, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        if crate::real::unmount_under(&[&e.path()]).is_ok() {
            // Pool disks are read-only files in a writable directory.
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

fn build_vm(trixie_tree: &Path, out: &Path) -> Result<(), String> {
    let t0 = Instant::now();
    let tree = out.join("tree");
    let (code, o, e) = run(
        Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(trixie_tree)
            .arg(&tree),
        1800,
    );
    if code != 0 {
        return Err(format!("cp -a {}: ({code}) {o}{e}", trixie_tree.display()));
    }
    let mut install_seconds = Vec::new();
    let versions;
    {
        let c = trixie::enter_copy(&tree)?;
        c.run_ok(["apt-get", "update", "-qq"], 900)?;
        for packages in VM_PACKAGES {
            let t = Instant::now();
            let mut install = vec!["apt-get", "install", "-y", "-qq", "--no-install-recommends"];
            install.extend(*packages);
            c.run_ok(install, 3600)?;
            install_seconds.push(t.elapsed().as_secs_f64());
        }
        c.run_ok(["apt-get", "clean"], 120)?;
        versions = VM_PACKAGES
            .iter()
            .flat_map(|p| p.iter())
            .map(|p| {
                let (_, v, _) = c.run(["dpkg-query", "-W", "-f", "${Version}", p], 60);
                (p.to_string(), v.trim().to_string())
            })
            .collect();
    }
    let modules = tree.join("lib/modules");
    let kernel = fs::read_dir(&modules)
        .map_err(|e| format!("{}: {e}", modules.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .max()
        .ok_or("no kernel in the tree")?;
    let kdir = modules.join(&kernel);
    if !find_file(&kdir, &["zfs.ko", "zfs.ko.xz", "zfs.ko.zst"]) {
        return Err(format!("dkms built no zfs.ko under {}", kdir.display()));
    }
    // The module's object files are not needed in the VM.
    for e in fs::read_dir(tree.join("var/lib/dkms/zfs"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let b = e.path().join("build");
        if b.is_dir() {
            fs::remove_dir_all(&b).map_err(|e| format!("rm -rf {}: {e}", b.display()))?;
        }
    }
    let init = tree.join("dm-init");
    fs::write(&init, INIT).map_err(|e| format!("write {}: {e}", init.display()))?;
    fs::set_permissions(&init, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", init.display()))?;
    for (from, to) in [
        (format!("boot/vmlinuz-{kernel}"), "vmlinuz"),
        (format!("boot/initrd.img-{kernel}"), "initrd.img"),
    ] {
        fs::copy(tree.join(&from), out.join(to)).map_err(|e| format!("copy {from}: {e}"))?;
    }
    let tree_bytes = du_bytes(&tree);
    let t = Instant::now();
    let root_img = out.join("root.img");
    // Room for the tree, the ext4 metadata and what the VM writes (its
    // writes go to qemu's snapshot, but the filesystem must have room).
    let size = tree_bytes + tree_bytes / 3 + (512 << 20);
    sparse_file(&root_img, size)?;
    let (code, o, e) = run(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "dmroot", "-d"])
            .arg(&tree)
            .arg(&root_img),
        1800,
    );
    if code != 0 {
        return Err(format!("mkfs.ext4 -d {}: ({code}) {o}{e}", tree.display()));
    }
    let mkfs_seconds = t.elapsed().as_secs_f64();
    fs::remove_dir_all(&tree).map_err(|e| format!("rm -rf {}: {e}", tree.display()))?;
    let info = VmInfo {
        recipe: vm_recipe(),
        build_seconds: t0.elapsed().as_secs_f64(),
        install_seconds,
        mkfs_seconds,
        tree_bytes,
        root_img_bytes: allocated_bytes(&root_img),
        versions,
        kernel,
    };
    eprintln!(
        "built the zfs VM disk in {:.0} s (apt-get install {:.0?} s, mkfs {:.0} s), {} MB, at {}",
        info.build_seconds,
        info.install_seconds,
        info.mkfs_seconds,
        info.root_img_bytes >> 20,
        out.display()
    );
    write_json(&out.join("zfsvm.json"), &info)
}

/// One pool disk of [`Pools`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Disk {
    /// File name in `<dir>/disks`.
    pub name: String,
    /// Apparent size.
    pub bytes: u64,
    /// Bytes allocated on the host (the image is sparse).
    pub allocated: u64,
    /// Hex sha256 when the build finished: the evidence must keep it.
    pub sha256: String,
}

/// One timed step of the scenario (`oracle/steps.txt`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    /// The VM's uptime when it began.
    pub at: f64,
    /// Seconds until the next step (or the end).
    pub seconds: f64,
}

/// What the pools' build measured, in `<dir>/zfs-pools.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolsInfo {
    pub recipe: String,
    /// Seconds of the whole build of the pools (VM disk not included).
    pub build_seconds: f64,
    /// Wall seconds qemu ran.
    pub vm_seconds: f64,
    /// The VM's uptime when the scenario began: the boot.
    pub boot_seconds: f64,
    /// The VM's uptime from the scenario's start to its end.
    pub scenario_seconds: f64,
    pub steps: Vec<Step>,
    pub disks: Vec<Disk>,
    /// Bytes of the oracle directory.
    pub oracle_bytes: u64,
}

/// The cached pools and their oracle.
#[derive(Debug, Clone)]
pub struct Pools {
    pub dir: PathBuf,
    pub info: PoolsInfo,
}

impl Pools {
    /// The pool disk image `name` (e.g. `dmpool.img`).
    pub fn disk(&self, name: &str) -> PathBuf {
        self.dir.join("disks").join(name)
    }

    /// The disk of the docker pool `dmpool` (a whole-disk vdev: GPT, the
    /// vdev in partition 1).
    pub fn docker_disk(&self) -> PathBuf {
        self.disk("dmpool.img")
    }

    /// The disks of `pool` (`dmpool`, `dmmirror`, `dmraidz`), in order.
    pub fn pool_disks(&self, pool: &str) -> Vec<PathBuf> {
        self.info
            .disks
            .iter()
            .filter(|d| d.name == format!("{pool}.img") || d.name.starts_with(&format!("{pool}-")))
            .map(|d| self.disk(&d.name))
            .collect()
    }

    /// The oracle directory (written by the scenario in the VM).
    pub fn oracle(&self) -> PathBuf {
        self.dir.join("oracle")
    }

    /// A file of the oracle directory.
    pub fn oracle_file(&self, name: &str) -> PathBuf {
        self.oracle().join(name)
    }

    /// `docker ps -a --no-trunc --format '{{json .}}'` at the end.
    pub fn ps(&self) -> Result<Vec<Value>, String> {
        json_lines(&self.oracle_file("ps.jsonl"))
    }

    /// `docker inspect` of every container at the end (a JSON array).
    pub fn inspect(&self) -> Result<Value, String> {
        read_json(&self.oracle_file("inspect.json"))
    }

    /// `zfs list -t all` at the end.
    pub fn zfs_list(&self) -> Result<Vec<ZfsEntry>, String> {
        let p = self.oracle_file("zfs-list.tsv");
        let s = fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        s.lines().map(ZfsEntry::parse).collect()
    }

    /// The docker export of container `name` (`running`, `exited`,
    /// `created`).
    pub fn export_tar(&self, name: &str) -> PathBuf {
        self.oracle_file(&format!("export-{name}.tar"))
    }

    /// The docker diff of container `name`.
    pub fn diff(&self, name: &str) -> Result<String, String> {
        let p = self.oracle_file(&format!("diff-{name}.txt"));
        fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))
    }

    /// The tar of the tree of the unmounted filesystem dataset `name` (image
    /// layers, `-init` layers, the non-docker datasets), if taken.
    pub fn dataset_tar(&self, name: &str) -> PathBuf {
        self.oracle()
            .join("datasets")
            .join(format!("{}.tar", name.replace('/', "_")))
    }
}

/// One line of `zfs list -t all -H -p -o name,type,origin,mountpoint,guid,
/// createtxg,objsetid,compression,xattr,mounted`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZfsEntry {
    pub name: String,
    /// `filesystem`, `snapshot`, `volume`.
    pub kind: String,
    /// The origin snapshot of a clone.
    pub origin: Option<String>,
    pub mountpoint: Option<String>,
    pub guid: u64,
    pub createtxg: u64,
    pub objsetid: u64,
    pub compression: String,
    pub xattr: String,
    pub mounted: Option<bool>,
}

impl ZfsEntry {
    fn parse(line: &str) -> Result<ZfsEntry, String> {
        let f: Vec<&str> = line.split('\t').collect();
        let [name, kind, origin, mountpoint, guid, createtxg, objsetid, compression, xattr, mounted] =
            f[..]
        else {
            return Err(format!("zfs list: 10 fields expected: {line:?}"));
        };
        let opt = |s: &str| (s != "-").then(|| s.to_string());
        let num = |s: &str| {
            s.parse::<u64>()
                .map_err(|e| format!("zfs list: {s:?}: {e} in {line:?}"))
        };
        Ok(ZfsEntry {
            name: name.into(),
            kind: kind.into(),
            origin: opt(origin),
            mountpoint: opt(mountpoint),
            guid: num(guid)?,
            createtxg: num(createtxg)?,
            objsetid: num(objsetid)?,
            compression: compression.into(),
            xattr: xattr.into(),
            mounted: opt(mounted).map(|m| m == "yes"),
        })
    }
}

/// The pools ([`Pools`]), built once per machine (see the module
/// documentation); the error says why they cannot be had here.
pub fn pools() -> Result<&'static Pools, String> {
    static POOLS: OnceLock<Result<Pools, String>> = OnceLock::new();
    POOLS
        .get_or_init(|| {
            let vm = vm()?;
            let dir = cached(&key("zfs", &pools_recipe()), "zfs-pools.json", |tmp| {
                build_pools(vm, tmp)
            })?;
            let info = read_json(&dir.join("zfs-pools.json"))?;
            Ok(Pools { dir, info })
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn build_pools(vm: &Vm, out: &Path) -> Result<(), String> {
    let t0 = Instant::now();
    let disks = out.join("disks");
    fs::create_dir(&disks).map_err(|e| format!("mkdir {}: {e}", disks.display()))?;
    for (name, size) in DISKS {
        sparse_file(&disks.join(name), *size)?;
    }
    // The work disk: ext4 holding the scenario, later the oracle.
    let stage = out.join("work");
    fs::create_dir(&stage).map_err(|e| format!("mkdir {}: {e}", stage.display()))?;
    let scenario = stage.join("scenario.sh");
    fs::write(&scenario, SCENARIO).map_err(|e| format!("write {}: {e}", scenario.display()))?;
    fs::set_permissions(&scenario, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", scenario.display()))?;
    let work = out.join("work.img");
    sparse_file(&work, WORK_BYTES)?;
    let (code, o, e) = run(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "dmwork", "-d"])
            .arg(&stage)
            .arg(&work),
        600,
    );
    if code != 0 {
        return Err(format!("mkfs.ext4 work.img: ({code}) {o}{e}"));
    }
    fs::remove_dir_all(&stage).map_err(|e| format!("rm -rf {}: {e}", stage.display()))?;

    let console = out.join("console.log");
    let mut qemu = Command::new(which(QEMU).ok_or("qemu-system-x86_64 is missing")?);
    qemu.args(QEMU_ARGS)
        .arg("-kernel")
        .arg(&vm.kernel)
        .arg("-initrd")
        .arg(&vm.initrd)
        .args(["-append", KERNEL_CMDLINE])
        .arg("-drive")
        .arg(drive(&vm.root_img, true))
        .arg("-drive")
        .arg(drive(&work, false));
    for (name, _) in DISKS {
        qemu.arg("-drive").arg(drive(&disks.join(name), false));
    }
    let log = File::create(&console).map_err(|e| format!("{}: {e}", console.display()))?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    let tq = Instant::now();
    let mut child = qemu
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| format!("{QEMU}: {e}"))?;
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(s) => break s,
            None if tq.elapsed() > VM_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the zfs VM ran over {} s; see {}",
                    VM_TIMEOUT.as_secs(),
                    console.display()
                ));
            }
            None => std::thread::sleep(Duration::from_millis(500)),
        }
    };
    let vm_seconds = tq.elapsed().as_secs_f64();
    if !status.success() {
        return Err(format!(
            "{QEMU} failed ({status}); see {}",
            console.display()
        ));
    }

    // The oracle, out of the work disk without mounting it.
    let oracle = out.join("oracle");
    let (code, o, e) = run(
        Command::new("debugfs")
            .arg("-R")
            .arg(format!("rdump /oracle {}", out.display()))
            .arg(&work),
        600,
    );
    if code != 0 || !oracle.is_dir() {
        return Err(format!(
            "debugfs rdump /oracle from {}: ({code}) {o}{e}; see {}",
            work.display(),
            console.display()
        ));
    }
    let steps_txt = fs::read_to_string(oracle.join("steps.txt")).unwrap_or_default();
    let last = steps_txt.lines().last().unwrap_or("");
    if !last.starts_with("DONE") {
        return Err(format!(
            "the zfs scenario did not finish: {last:?}; see {} and {}",
            console.display(),
            oracle.join("steps.txt").display()
        ));
    }
    fs::remove_file(&work).map_err(|e| format!("rm {}: {e}", work.display()))?;
    let (steps, boot_seconds, scenario_seconds) = parse_steps(&steps_txt);

    let mut disk_info = Vec::new();
    for (name, bytes) in DISKS {
        let p = disks.join(name);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o444))
            .map_err(|e| format!("chmod {}: {e}", p.display()))?;
        disk_info.push(Disk {
            name: name.to_string(),
            bytes: *bytes,
            allocated: allocated_bytes(&p),
            sha256: sha256_file(&p)?,
        });
    }
    let info = PoolsInfo {
        recipe: pools_recipe(),
        build_seconds: t0.elapsed().as_secs_f64(),
        vm_seconds,
        boot_seconds,
        scenario_seconds,
        steps,
        disks: disk_info,
        oracle_bytes: du_bytes(&oracle),
    };
    eprintln!(
        "built the zfs pools in {:.0} s (VM {:.0} s: boot {:.0} s, scenario {:.0} s) at {}",
        info.build_seconds,
        info.vm_seconds,
        info.boot_seconds,
        info.scenario_seconds,
        out.display()
    );
    write_json(&out.join("zfs-pools.json"), &info)
}

/// A qemu `-drive` of a raw image on virtio; `snapshot`: writes go to a
/// temporary overlay, never to the file.
fn drive(p: &Path, snapshot: bool) -> String {
    format!(
        "file={},format=raw,if=virtio,cache=unsafe{}",
        p.display().to_string().replace(',', ",,"),
        if snapshot { ",snapshot=on" } else { "" }
    )
}

/// The steps of `steps.txt` ("STEP <name> <uptime>" lines, then "DONE
/// <uptime>"): the steps, the uptime of the first, the span to the end.
pub fn parse_steps(s: &str) -> (Vec<Step>, f64, f64) {
    let mut marks: Vec<(String, f64)> = Vec::new();
    for l in s.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f[..] {
            ["STEP", name, at] => marks.push((name.into(), at.parse().unwrap_or(0.0))),
            [end, at] => marks.push((end.into(), at.parse().unwrap_or(0.0))),
            _ => {}
        }
    }
    let steps: Vec<Step> = marks
        .windows(2)
        .map(|w| Step {
            name: w[0].0.clone(),
            at: w[0].1,
            seconds: w[1].1 - w[0].1,
        })
        .collect();
    let start = marks.first().map_or(0.0, |m| m.1);
    let end = marks.last().map_or(0.0, |m| m.1);
    (steps, start, end - start)
}

fn sparse_file(p: &Path, size: u64) -> Result<(), String> {
    let f = File::create(p).map_err(|e| format!("{}: {e}", p.display()))?;
    f.set_len(size)
        .map_err(|e| format!("truncate {}: {e}", p.display()))
}

fn find_file(dir: &Path, names: &[&str]) -> bool {
    let Ok(rd) = fs::read_dir(dir) else {
        return false;
    };
    rd.flatten().any(|e| {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            find_file(&p, names)
        } else {
            names.iter().any(|n| e.file_name() == *n)
        }
    })
}

fn du_bytes(p: &Path) -> u64 {
    let (_, du, _) = run(Command::new("du").args(["-sbx"]).arg(p), 600);
    du.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn allocated_bytes(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(p).map_or(0, |m| m.blocks() * 512)
}

/// Hex sha256 of a file's content.
pub fn sha256_file(p: &Path) -> Result<String, String> {
    let mut f = File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| format!("read {}: {e}", p.display()))?;
    Ok(hex::encode(h.finalize()))
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T, String> {
    let b = fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", p.display()))
}

fn write_json<T: Serialize>(p: &Path, v: &T) -> Result<(), String> {
    let b = serde_json::to_vec_pretty(v).map_err(|e| e.to_string())?;
    fs::write(p, b).map_err(|e| format!("write {}: {e}", p.display()))
}

fn json_lines(p: &Path) -> Result<Vec<Value>, String> {
    let s = fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{}: {e}: {l}", p.display())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipes_name_what_they_build() {
        let r = pools_recipe();
        assert!(r.starts_with(&vm_recipe()));
        assert!(VM_PACKAGES
            .iter()
            .flat_map(|p| p.iter())
            .all(|p| r.contains(p)));
        assert!(r.contains("--storage-driver zfs"));
        assert_ne!(key("zfs", &r), key("zfs", &vm_recipe()));
    }

    #[test]
    fn steps_are_timed() {
        let (steps, boot, total) =
            parse_steps("STEP mounts 20.5\nSTEP modprobe 21.0\nSTEP pools 30.0\nDONE 100.0\n");
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[1].name, "modprobe");
        assert!((steps[1].seconds - 9.0).abs() < 1e-9);
        assert!((boot - 20.5).abs() < 1e-9);
        assert!((total - 79.5).abs() < 1e-9);
    }

    #[test]
    fn zfs_list_lines_parse() {
        let e = ZfsEntry::parse(
            "dmpool/docker/abc\tfilesystem\tdmpool/docker/def@123\tlegacy\t42\t17\t300\tlz4\tsa\tno",
        )
        .unwrap();
        assert_eq!(e.origin.as_deref(), Some("dmpool/docker/def@123"));
        assert_eq!(e.mounted, Some(false));
        assert!(ZfsEntry::parse("a\tb").is_err());
    }
}
