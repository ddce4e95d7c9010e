//! Mount points for tests: cleaned up even when a test fails.

use std::path::Path;

/// A temporary directory to mount on; unmounted (lazily) and removed on drop.
pub struct MountPoint {
    dir: tempfile::TempDir,
}

impl MountPoint {
    pub fn new() -> MountPoint {
        MountPoint {
            dir: tempfile::Builder::new()
                .prefix("dm-mnt-")
                .tempdir()
                .expect("create a mount point"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for MountPoint {
    fn default() -> Self {
        MountPoint::new()
    }
}

impl Drop for MountPoint {
    fn drop(&mut self) {
        while mount_options(self.dir.path()).is_some() {
            if nix::mount::umount2(self.dir.path(), nix::mount::MntFlags::MNT_DETACH).is_err() {
                break;
            }
        }
    }
}

/// The filesystem type and options (per mount and per superblock) of the
/// topmost mount on `dir`; `None` if nothing is mounted there.
pub fn mount_options(dir: &Path) -> Option<(String, Vec<String>)> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let mounts =
        docker_mount_engine::mounts::kernel::mountinfo().expect("read /proc/self/mountinfo");
    mounts
        .into_iter()
        .rev()
        .find(|m| m.mount_point == dir)
        .map(|m| (m.fs_type, m.options))
}

/// Asserts that `dir` holds a mount that is ro, nosuid, nodev and noexec.
pub fn assert_read_only_mount(dir: &Path) {
    let (fs, opts) =
        mount_options(dir).unwrap_or_else(|| panic!("nothing mounted on {}", dir.display()));
    for want in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(
            opts.iter().any(|o| o == want),
            "{fs} mount on {} lacks {want}: {opts:?}",
            dir.display()
        );
    }
    assert!(
        !opts
            .iter()
            .any(|o| o.starts_with("upperdir") || o.starts_with("workdir")),
        "mount on {} has an upper or work dir: {opts:?}",
        dir.display()
    );
}

/// Whether this test may mount. Without root it skips, except under
/// `CI=true`, where a privileged test that cannot run must fail.
pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "this test needs root, and CI=true forbids skipping it"
    );
    eprintln!("skipping: needs root");
    false
}

/// Whether every program in `tools` is installed; skips like
/// [`require_root`] otherwise.
pub fn require_tools(tools: &[&str]) -> bool {
    let Some(missing) = tools.iter().find(|t| !Path::new(t).exists()) else {
        return true;
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{missing} is missing, and CI=true forbids skipping"
    );
    eprintln!("skipping: {missing} is missing");
    false
}

/// A read-only, noatime bind of `src`, so tests can copy evidence without
/// updating its atimes.
pub fn noatime_bind(src: &Path) -> MountPoint {
    use nix::mount::{mount, MsFlags};
    let mnt = MountPoint::new();
    mount(
        Some(src),
        mnt.path(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .expect("bind mount");
    let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | MsFlags::MS_NOATIME;
    mount(None::<&str>, mnt.path(), None::<&str>, flags, None::<&str>).expect("remount ro,noatime");
    mnt
}

/// A host tree for discovery tests: `etc/` files as given, and evidence
/// roots bound read-only and noatime at their places in the tree
/// (unmounted on drop).
pub struct BoundHost {
    dir: tempfile::TempDir,
    points: Vec<std::path::PathBuf>,
}

impl BoundHost {
    /// `etc` holds `(name, text)` files; each `(rel, source)` binds
    /// `source` at `<host>/<rel>`.
    pub fn new(etc: &[(&str, String)], binds: &[(&str, &Path)]) -> BoundHost {
        use nix::mount::{mount, MsFlags};
        let dir = tempfile::Builder::new()
            .prefix("dm-bound-host-")
            .tempdir()
            .expect("temp dir");
        for d in ["etc", "var/lib", "usr"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("host dirs");
        }
        for (name, text) in etc {
            std::fs::write(dir.path().join("etc").join(name), text).expect("etc file");
        }
        let mut host = BoundHost {
            dir,
            points: Vec::new(),
        };
        for (rel, source) in binds {
            let point = host.dir.path().join(rel);
            std::fs::create_dir_all(&point).expect("bind point");
            mount(
                Some(*source),
                &point,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .expect("bind the root into the host tree");
            host.points.push(point.clone());
            let flags =
                MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | MsFlags::MS_NOATIME;
            mount(None::<&str>, &point, None::<&str>, flags, None::<&str>).expect("read-only bind");
        }
        host
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `roots --json` on the host tree: the one root it finds present.
    pub fn only_root(&self) -> serde_json::Value {
        let roots = crate::cli::run(self.path(), &["roots", "--json"]).json();
        let mut present: Vec<&serde_json::Value> = roots["roots"]
            .as_array()
            .expect("roots")
            .iter()
            .filter(|x| x["present"] == true)
            .collect();
        assert_eq!(present.len(), 1, "{roots:#}");
        present.remove(0).clone()
    }
}

impl Drop for BoundHost {
    fn drop(&mut self) {
        for point in &self.points {
            while mount_options(point).is_some() {
                if nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH).is_err() {
                    break;
                }
            }
        }
    }
}
