//! A Debian trixie tree with today's engines (docker 26, containerd 1.7,
//! podman 5, crun), used as a chroot on the host kernel: the engines the
//! host's bookworm cannot install (testing.md, "Today's engines and
//! kernels we lack").
//!
//! [`tree`] builds it once per machine — `debootstrap --variant=minbase
//! --components=main,contrib trixie`, then `apt-get install` of
//! [`PACKAGES`] inside it — at `/var/cache/docker-mount-tests/trixie-<hash
//! of the recipe>` (outside the clone: it costs minutes and ~0.5 GB). It is
//! built in a sibling `trixie-<hash>.tmp` and renamed when complete, under
//! an exclusive flock on `trixie-<hash>.lock`, so an interrupted build never
//! looks complete and parallel test processes build it once. The hash is of
//! [`recipe`], not of this file: changing the chroot code does not rebuild.
//!
//! [`Chroot::enter`] makes a private view of the tree at
//! `/tmp/dmt-chroot.<pid>.<n>`: the tree bound there (runc needs `/` to be
//! a mount), `proc`, `dev` (with `dev/pts`, `dev/shm`), `sys`, a `cgroup2`
//! on `sys/fs/cgroup`, tmpfs on `run` and `tmp`, and
//! `/var/cache/docker-mount-tests` bound at the same path, so that a data
//! root there has one path inside and outside. Every mount is private (the
//! engines' own mounts stay in the view). Dropping it unmounts everything;
//! views of killed processes are swept by the next [`Chroot::enter`].

use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use nix::fcntl::{Flock, FlockArg};
use nix::mount::{mount, MsFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::real::{alive, run, unmount_under};

/// Where costly test artifacts live, outside the clone.
pub const CACHE: &str = "/var/cache/docker-mount-tests";
/// The Debian suite of the tree.
pub const SUITE: &str = "trixie";
/// The Debian mirror (the same registry as the host's).
pub const MIRROR: &str = "http://deb.debian.org/debian";
/// The packages installed into the tree (with their dependencies, no
/// recommends).
pub const PACKAGES: &[&str] = &[
    "docker.io",
    "docker-cli",
    "containerd",
    "runc",
    "podman",
    "crun",
    "conmon",
    "netavark",
    "uidmap",
    "busybox-static",
    "fuse-overlayfs",
    "tar",
];
/// The program that enters a tree (coreutils).
const CHROOT: &str = "/usr/sbin/chroot";
/// `PATH` inside the tree.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The recipe of the tree: what its cache key hashes.
pub fn recipe() -> String {
    format!(
        "debootstrap --variant=minbase --components=main,contrib {SUITE} DIR {MIRROR}\n\
         policy-rc.d: exit 101\n\
         apt-get install --no-install-recommends {}\n\
         mkdir {CACHE}\n",
        PACKAGES.join(" ")
    )
}

/// What the build measured, kept in `<tree>/docker-mount-tree.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TreeInfo {
    pub recipe: String,
    pub build_seconds: f64,
    /// Bytes of the tree (apparent sizes of regular files, `du -sb`).
    pub bytes: u64,
    /// `dpkg-query` versions of the engines.
    pub versions: Vec<(String, String)>,
}

/// The tree's measurements ([`TreeInfo`]), once [`tree`] succeeded.
pub fn info() -> Result<TreeInfo, String> {
    let t = tree()?;
    let p = t.join("docker-mount-tree.json");
    let b = fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", p.display()))
}

/// Whether the tree can be built or used here: root, and debootstrap
/// (installed with apt-get when missing).
pub fn available() -> Result<(), String> {
    crate::real::root_available()?;
    ensure_debootstrap()?;
    if !Path::new(CHROOT).exists() {
        return Err(format!("{CHROOT} is missing (apt-get install coreutils)"));
    }
    Ok(())
}

fn ensure_debootstrap() -> Result<(), String> {
    if crate::real::which("debootstrap").is_some() {
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
                "debootstrap",
            ])
            .envs(env),
        600,
    );
    if code != 0 {
        return Err(format!(
            "apt-get install debootstrap failed ({code}): {out}{err}"
        ));
    }
    Ok(())
}

/// The trixie tree, built once per machine (see the module documentation);
/// the error says why it cannot be had here.
pub fn tree() -> Result<&'static Path, String> {
    static TREE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    TREE.get_or_init(|| {
        available()?;
        cached_tree()
    })
    .as_ref()
    .map(PathBuf::as_path)
    .map_err(Clone::clone)
}

fn cached_tree() -> Result<PathBuf, String> {
    fs::create_dir_all(CACHE).map_err(|e| format!("mkdir {CACHE}: {e}"))?;
    let key = format!(
        "trixie-{}",
        &hex::encode(Sha256::digest(recipe().as_bytes()))[..16]
    );
    let base = Path::new(CACHE);
    let dir = base.join(&key);
    let lock_path = base.join(format!("{key}.lock"));
    let lock = File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    let _lock = Flock::lock(lock, FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("flock {}: {e}", lock_path.display()))?;
    if dir.join("docker-mount-tree.json").is_file() {
        return Ok(dir);
    }
    let tmp = base.join(format!("{key}.tmp"));
    if tmp.exists() {
        // An interrupted build: whatever it mounted goes first.
        unmount_under(&[&tmp])?;
        fs::remove_dir_all(&tmp).map_err(|e| format!("rm -rf {}: {e}", tmp.display()))?;
    }
    prune_other_trees(base, &key);
    build(&tmp)?;
    fs::rename(&tmp, &dir)
        .map_err(|e| format!("rename {} {}: {e}", tmp.display(), dir.display()))?;
    Ok(dir)
}

/// Removes trees of other recipes whose lock no process holds.
fn prune_other_trees(base: &Path, key: &str) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_prefix("trixie-") else {
            continue;
        };
        let stem = stem.strip_suffix(".tmp").unwrap_or(stem);
        let other = format!("trixie-{stem}");
        if other == key || stem.len() != 16 || !e.path().is_dir() {
            continue;
        }
        let lock_path = base.join(format!("{other}.lock"));
        let Ok(lock) = File::create(&lock_path) else {
            continue;
        };
        let Ok(_held) = Flock::lock(lock, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        if unmount_under(&[&e.path()]).is_ok() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// debootstrap, then the engines, into `dir` (which must not exist).
fn build(dir: &Path) -> Result<(), String> {
    let t0 = Instant::now();
    let (code, out, err) = run(
        Command::new("debootstrap")
            .args(["--variant=minbase", "--components=main,contrib", SUITE])
            .arg(dir)
            .arg(MIRROR),
        3600,
    );
    if code != 0 {
        return Err(format!("debootstrap failed ({code}):\n{out}\n{err}"));
    }
    // Packages must not start services in the tree.
    let policy = dir.join("usr/sbin/policy-rc.d");
    fs::write(&policy, "#!/bin/sh\nexit 101\n")
        .map_err(|e| format!("write {}: {e}", policy.display()))?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&policy, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", policy.display()))?;
    let cache_in = dir.join(CACHE.trim_start_matches('/'));
    fs::create_dir_all(&cache_in).map_err(|e| format!("mkdir {}: {e}", cache_in.display()))?;
    {
        let c = Chroot::enter_at(dir)?;
        c.run_ok(["apt-get", "update", "-qq"], 900)?;
        let mut install = vec!["apt-get", "install", "-y", "-qq", "--no-install-recommends"];
        install.extend(PACKAGES);
        c.run_ok(install, 3600)?;
        c.run_ok(["apt-get", "clean"], 120)?;
    }
    let versions = PACKAGES
        .iter()
        .map(|p| {
            let (_, v, _) = run(
                Command::new(CHROOT)
                    .arg(dir)
                    .args(["dpkg-query", "-W", "-f", "${Version}", p])
                    .env_clear()
                    .env("PATH", PATH),
                60,
            );
            (p.to_string(), v.trim().to_string())
        })
        .collect();
    let (_, du, _) = run(Command::new("du").args(["-sbx"]).arg(dir), 600);
    let bytes = du
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let info = TreeInfo {
        recipe: recipe(),
        build_seconds: t0.elapsed().as_secs_f64(),
        bytes,
        versions,
    };
    eprintln!(
        "built the {SUITE} tree in {:.0} s, {} MB, at {}",
        info.build_seconds,
        info.bytes >> 20,
        dir.display()
    );
    let p = dir.join("docker-mount-tree.json");
    fs::write(
        &p,
        serde_json::to_vec_pretty(&info).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("write {}: {e}", p.display()))
}

/// A private view of a tree with the kernel filesystems an engine needs
/// (see the module documentation); everything is unmounted on drop.
#[derive(Debug)]
pub struct Chroot {
    /// The view's `/`, `/tmp/dmt-chroot.<pid>.<n>`.
    root: PathBuf,
    /// Whether to remove `root` on drop (not when it is the tree itself).
    remove: bool,
}

/// Name prefix of the views in `/tmp`.
const VIEW_TAG: &str = "dmt-chroot.";

impl Chroot {
    /// A view of the trixie tree ([`tree`]), with the cache bound in.
    pub fn enter() -> Result<Chroot, String> {
        let t = tree()?;
        sweep_stale_views();
        let root = (0..1000)
            .map(|n| PathBuf::from(format!("/tmp/{VIEW_TAG}{}.{n}", std::process::id())))
            .find(|p| fs::create_dir(p).is_ok())
            .ok_or("no free /tmp/dmt-chroot.<pid>.<n>")?;
        let c = Chroot { root, remove: true };
        bind(t, &c.root, false)?;
        c.mount_kernel_fs()?;
        c.bind_same(Path::new(CACHE))?;
        Ok(c)
    }

    /// The tree being built, mounted in place (no cache bind: the cache
    /// dir holds the tree).
    fn enter_at(dir: &Path) -> Result<Chroot, String> {
        let c = Chroot {
            root: dir.to_path_buf(),
            remove: false,
        };
        bind(dir, dir, false)?;
        c.mount_kernel_fs()?;
        Ok(c)
    }

    fn mount_kernel_fs(&self) -> Result<(), String> {
        let r = &self.root;
        let fs_mount = |fstype: &str, at: &str, data: Option<&str>| -> Result<(), String> {
            let p = r.join(at);
            fs::create_dir_all(&p).map_err(|e| format!("mkdir {}: {e}", p.display()))?;
            mount(
                Some(fstype),
                &p,
                Some(fstype),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                data,
            )
            .map_err(|e| format!("mount -t {fstype} {}: {e}", p.display()))?;
            private(&p)
        };
        fs_mount("proc", "proc", None)?;
        bind(Path::new("/dev"), &r.join("dev"), true)?;
        fs_mount("sysfs", "sys", None)?;
        fs_mount("cgroup2", "sys/fs/cgroup", None)?;
        fs_mount("tmpfs", "run", Some("mode=755"))?;
        fs_mount("tmpfs", "tmp", Some("mode=1777"))?;
        Ok(())
    }

    /// The view's `/` on the host.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Binds the host directory `dir` (absolute) at the same path in the
    /// view, creating the mount point (in the tree, unless it lies on one
    /// of the view's tmpfs: `/run`, `/tmp`).
    pub fn bind_same(&self, dir: &Path) -> Result<(), String> {
        let inside = self.root.join(dir.strip_prefix("/").unwrap_or(dir));
        bind(dir, &inside, false)
    }

    /// A command running `program` in the view, with a clean environment
    /// (`PATH`, `HOME=/root`, `LANG=C.UTF-8`).
    pub fn command(&self, program: &str) -> Command {
        command_in(&self.root, program)
    }

    /// Runs `args` in the view with a timeout: (exit code, or -1 on a
    /// timeout, stdout, stderr).
    pub fn run<I, S>(&self, args: I, timeout: u64) -> (i32, String, String)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let args: Vec<String> = args.into_iter().map(|a| a.as_ref().to_string()).collect();
        let Some((program, rest)) = args.split_first() else {
            return (-1, String::new(), "no command".into());
        };
        run(self.command(program).args(rest), timeout)
    }

    /// [`Chroot::run`] that must succeed: its stdout, or an error with
    /// both outputs.
    pub fn run_ok<I, S>(&self, args: I, timeout: u64) -> Result<String, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let args: Vec<String> = args.into_iter().map(|a| a.as_ref().to_string()).collect();
        let (code, out, err) = self.run(&args, timeout);
        if code == 0 {
            Ok(out)
        } else {
            Err(format!(
                "in {}: {args:?} failed ({code}):\n{out}\n{err}",
                self.root.display()
            ))
        }
    }
}

// ---------------------------------------------------------------------
// For trees derived from this one (tests/src/real_zfs.rs copies the tree
// and installs a kernel and zfs-dkms into the copy).

/// A view of `dir`, a copy of [`tree`] (or any tree) being extended, in
/// place: `dir` bound onto itself with the kernel filesystems of
/// [`Chroot::enter`] but no cache bind; everything is unmounted on drop,
/// `dir` stays.
pub fn enter_copy(dir: &Path) -> Result<Chroot, String> {
    Chroot::enter_at(dir)
}

/// [`Chroot::command`] for the view whose `/` is `view`.
pub fn command_in(view: &Path, program: &str) -> Command {
    let mut c = Command::new(CHROOT);
    c.arg(view)
        .arg(program)
        .env_clear()
        .env("PATH", PATH)
        .env("HOME", "/root")
        .env("LANG", "C.UTF-8")
        .env("DEBIAN_FRONTEND", "noninteractive");
    c
}

impl Drop for Chroot {
    fn drop(&mut self) {
        if let Err(e) = unmount_under(&[&self.root]) {
            eprintln!("{e}");
            return;
        }
        if self.remove {
            let _ = fs::remove_dir(&self.root);
        }
    }
}

/// Bind-mounts `src` on `dst` (creating `dst`), recursively with `rec`,
/// then makes it and everything under it private.
fn bind(src: &Path, dst: &Path, rec: bool) -> Result<(), String> {
    fs::create_dir_all(dst).map_err(|e| format!("mkdir {}: {e}", dst.display()))?;
    let mut flags = MsFlags::MS_BIND;
    if rec {
        flags |= MsFlags::MS_REC;
    }
    mount(Some(src), dst, None::<&str>, flags, None::<&str>)
        .map_err(|e| format!("mount --bind {} {}: {e}", src.display(), dst.display()))?;
    private(dst)
}

/// `mount --make-rprivate dst`: mounts made in the view stay there.
fn private(dst: &Path) -> Result<(), String> {
    mount(
        None::<&str>,
        dst,
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("mount --make-rprivate {}: {e}", dst.display()))
}

/// Unmounts and removes the views of processes that are gone.
fn sweep_stale_views() {
    for e in fs::read_dir("/tmp").into_iter().flatten().flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .as_bytes()
            .strip_prefix(VIEW_TAG.as_bytes())
            .and_then(|r| std::str::from_utf8(r).ok())
            .and_then(|r| r.split('.').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() as i32 || alive(pid) {
            continue;
        }
        if unmount_under(&[&e.path()]).is_ok() {
            let _ = fs::remove_dir(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_names_every_package() {
        let r = recipe();
        assert!(PACKAGES.iter().all(|p| r.contains(p)));
        assert!(r.contains("--variant=minbase"));
    }
}
