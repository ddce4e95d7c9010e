//! Full-tree roots (vfs, btrfs) made from an overlay2 root, synthetic or
//! real: each layer's tree is a copy (vfs) or a snapshot (btrfs) of its
//! parent's with the layer's `diff/` applied (whiteouts remove, opaque
//! directories empty, everything else replaces, owners, modes, times and
//! xattrs kept). The image store and the containers are renamed to the new
//! driver; layerdb, chain ids and tar-split stay as they were.

use std::collections::HashMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{lchown, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::stat::{mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// A full-tree layout: where the trees go and how each is made from its
/// parent's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FullDriver {
    /// The storage driver's name (and image store).
    pub name: &'static str,
    /// The directory holding one tree per layer, relative to the root.
    pub store: &'static str,
    /// Each tree a btrfs subvolume, a snapshot of its parent's (`dest` must
    /// lie on a mounted btrfs), rather than a plain copy (new inodes).
    pub snapshots: bool,
}

/// `vfs/dir/<id>`, plain copies.
pub const VFS: FullDriver = FullDriver {
    name: "vfs",
    store: "vfs/dir",
    snapshots: false,
};

/// `btrfs/subvolumes/<id>`, snapshots.
pub const BTRFS: FullDriver = FullDriver {
    name: "btrfs",
    store: "btrfs/subvolumes",
    snapshots: true,
};

impl FullDriver {
    /// Makes `dest` a copy of `parent`'s tree, or an empty tree.
    fn start(self, parent: Option<&Path>, dest: &Path) {
        let mut cmd = match (self.snapshots, parent) {
            (false, Some(p)) => {
                let mut c = Command::new("cp");
                c.arg("-a").arg(p).arg(dest);
                c
            }
            (false, None) => {
                fs::create_dir(dest).unwrap_or_else(|e| panic!("mkdir {}: {e}", dest.display()));
                return;
            }
            (true, Some(p)) => {
                let mut c = Command::new("btrfs");
                c.args(["-q", "subvolume", "snapshot"]).arg(p).arg(dest);
                c
            }
            (true, None) => {
                let mut c = Command::new("btrfs");
                c.args(["-q", "subvolume", "create"]).arg(dest);
                c
            }
        };
        run(&mut cmd);
    }
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes at `dest` (which must not exist) the `driver` root equivalent to
/// the overlay2 root `src`, which is only read.
pub fn overlay2_to_full(src: &Path, dest: &Path, driver: FullDriver) {
    let store = dest.join(driver.store);
    fs::create_dir_all(&store).unwrap_or_else(|e| panic!("mkdir {}: {e}", store.display()));
    fs::create_dir_all(dest.join("image")).expect("mkdir image");
    for (from, to) in [
        (
            "image/overlay2".to_string(),
            format!("image/{}", driver.name),
        ),
        ("containers".into(), "containers".into()),
        ("volumes".into(), "volumes".into()),
    ] {
        if src.join(&from).exists() {
            run(Command::new("cp")
                .arg("-a")
                .arg(src.join(&from))
                .arg(dest.join(to)));
        }
    }
    for c in fs::read_dir(dest.join("containers")).expect("list containers") {
        let config = c.expect("entry").path().join("config.v2.json");
        let text = fs::read_to_string(&config).expect("read config.v2.json");
        fs::write(
            &config,
            text.replace(
                "\"Driver\":\"overlay2\"",
                &format!("\"Driver\":\"{}\"", driver.name),
            ),
        )
        .expect("write config.v2.json");
    }

    // Each layer with its parents (by `l/` name), parents first.
    let overlay2 = src.join("overlay2");
    let mut layers: Vec<(String, Vec<String>)> = fs::read_dir(&overlay2)
        .expect("list overlay2")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|id| id != "l" && overlay2.join(id).join("diff").is_dir())
        .map(|id| {
            let lower = fs::read_to_string(overlay2.join(&id).join("lower")).unwrap_or_default();
            let parents = lower
                .trim()
                .split(':')
                .filter(|l| !l.is_empty())
                .map(|l| l.trim_start_matches("l/").to_string())
                .collect();
            (id, parents)
        })
        .collect();
    layers.sort_by_key(|(id, parents)| (parents.len(), id.clone()));
    let by_link: HashMap<String, String> = layers
        .iter()
        .filter_map(|(id, _)| {
            let link = fs::read_to_string(overlay2.join(id).join("link")).ok()?;
            Some((link.trim().to_string(), id.clone()))
        })
        .collect();
    for (id, parents) in &layers {
        let parent = parents.first().map(|l| store.join(&by_link[l]));
        let tree = store.join(id);
        driver.start(parent.as_deref(), &tree);
        let diff = overlay2.join(id).join("diff");
        apply(&diff, &tree, &mut HashMap::new());
        copy_meta(&diff, &tree);
    }
}

/// Applies the overlay layer `diff` to the full tree `tree`. `links` maps
/// the diff's hard-linked inodes to their first copy.
fn apply(diff: &Path, tree: &Path, links: &mut HashMap<(u64, u64), PathBuf>) {
    let entries = fs::read_dir(diff).unwrap_or_else(|e| panic!("{}: {e}", diff.display()));
    for entry in entries {
        let from = entry.expect("entry").path();
        let to = tree.join(from.file_name().expect("a name"));
        let meta = fs::symlink_metadata(&from).expect("lstat");
        let existing = fs::symlink_metadata(&to).ok();
        let whiteout = meta.file_type().is_char_device() && meta.rdev() == 0;
        let opaque = meta.is_dir()
            && xattr::get(&from, OPAQUE_XATTR).ok().flatten().as_deref() == Some(b"y");
        if let Some(old) = existing {
            if whiteout || opaque || !(meta.is_dir() && old.is_dir()) {
                remove(&to, old.is_dir());
            }
        }
        if whiteout {
            continue;
        }
        if meta.is_dir() {
            if !to.exists() {
                fs::create_dir(&to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
            }
            apply(&from, &to, links);
        } else if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
            fs::hard_link(first, &to).unwrap_or_else(|e| panic!("link {}: {e}", to.display()));
            continue;
        } else {
            create(&from, &meta, &to);
            if meta.nlink() > 1 {
                links.insert((meta.dev(), meta.ino()), to.clone());
            }
        }
        copy_meta(&from, &to);
    }
}

fn remove(path: &Path, dir: bool) {
    let r = if dir {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    r.unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
}

/// A copy of non-directory `from` at `to`.
fn create(from: &Path, meta: &fs::Metadata, to: &Path) {
    let t = meta.file_type();
    let made = if t.is_symlink() {
        fs::read_link(from).and_then(|target| std::os::unix::fs::symlink(target, to))
    } else if t.is_file() {
        fs::copy(from, to).map(drop)
    } else {
        let kind = if t.is_char_device() {
            SFlag::S_IFCHR
        } else if t.is_block_device() {
            SFlag::S_IFBLK
        } else if t.is_fifo() {
            SFlag::S_IFIFO
        } else {
            SFlag::S_IFSOCK
        };
        mknod(to, kind, Mode::from_bits_truncate(0o600), meta.rdev()).map_err(Into::into)
    };
    made.unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
}

/// Gives `to` the owner, mode, xattrs (overlay's own left out) and times of `from`.
fn copy_meta(from: &Path, to: &Path) {
    let meta = fs::symlink_metadata(from).expect("lstat");
    lchown(to, Some(meta.uid()), Some(meta.gid()))
        .unwrap_or_else(|e| panic!("chown {}: {e}", to.display()));
    if !meta.file_type().is_symlink() {
        fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", to.display()));
        for name in xattr::list(from).expect("list xattrs") {
            if name.as_bytes().starts_with(b"trusted.overlay.") {
                continue;
            }
            if let Some(value) = xattr::get(from, &name).expect("get xattr") {
                xattr::set(to, &name, &value).expect("set xattr");
            }
        }
    }
    let atime = TimeSpec::new(meta.atime(), meta.atime_nsec());
    let mtime = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    utimensat(None, to, &atime, &mtime, UtimensatFlags::NoFollowSymlink)
        .unwrap_or_else(|e| panic!("utimensat {}: {e}", to.display()));
}
