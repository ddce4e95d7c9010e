//! An aufs root made from a real overlay2 root, the way testing.md asks:
//! no dockerd on this kernel can make one. Each layer's `diff/` becomes
//! `aufs/diff/<id>` (0/0 character devices → `.wh.<name>` files, opaque
//! directories → `.wh..wh..opq`), `lower` becomes `aufs/layers/<id>`, and the
//! containers and image store are renamed to aufs. The overlay2 root's
//! `docker export` and `docker diff` remain the oracles.

use std::ffi::OsString;
use std::fs::{self, File};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use nix::fcntl::{Flock, FlockArg};
use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use sha2::{Digest, Sha256};

use crate::full_tree::{overlay2_to_full, FullDriver};
use crate::real::{self, RealRoot};

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// The aufs root converted from [`real::overlay2_root`], cached on disk.
pub fn aufs_root() -> &'static RealRoot {
    static ROOT: OnceLock<RealRoot> = OnceLock::new();
    ROOT.get_or_init(|| {
        let source = real::overlay2_root();
        let mut h = Sha256::new();
        h.update(include_str!("convert.rs"));
        h.update(source.dir.as_os_str().as_bytes());
        let key = format!("aufs-{}", &hex::encode(h.finalize())[..16]);
        let base = real::real_roots_dir();
        let dir = base.join(&key);
        let lock_path = dir.with_extension("lock");
        let lock =
            File::create(&lock_path).unwrap_or_else(|e| panic!("{}: {e}", lock_path.display()));
        let _lock = Flock::lock(lock, FlockArg::LockExclusive)
            .unwrap_or_else(|(_, e)| panic!("flock: {e}"));
        let root = dir.join("docker");
        if !dir.join("complete").exists() {
            real::prune_stale(&base, "aufs", &key);
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            overlay2_to_aufs(&source.root, &root);
            fs::write(dir.join("complete"), b"").expect("mark the aufs root complete");
        }
        RealRoot {
            driver: "aufs".into(),
            root,
            dir,
            ..source.clone()
        }
    })
}

/// Restores a directory's times after we changed its entries.
fn keep_times(dir: &Path, change: impl FnOnce()) {
    let meta = fs::symlink_metadata(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    change();
    let atime = TimeSpec::new(meta.atime(), meta.atime_nsec());
    let mtime = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    utimensat(None, dir, &atime, &mtime, UtimensatFlags::NoFollowSymlink)
        .unwrap_or_else(|e| panic!("utimensat {}: {e}", dir.display()));
}

/// Rewrites one layer's overlay markers as aufs ones, through a stack of
/// directories still to visit.
fn convert_markers(layer: &Path) {
    let mut pending = vec![layer.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        for path in entries {
            let meta = fs::symlink_metadata(&path).expect("lstat");
            if meta.file_type().is_char_device() && meta.rdev() == 0 {
                let name = path.file_name().expect("a name").as_bytes();
                let mut wh = b".wh.".to_vec();
                wh.extend_from_slice(name);
                keep_times(&dir, || {
                    fs::remove_file(&path).expect("remove overlay whiteout");
                    File::create(dir.join(OsString::from_vec(wh))).expect("create aufs whiteout");
                });
                continue;
            }
            if meta.is_dir() {
                if xattr::get(&path, OPAQUE_XATTR).ok().flatten().as_deref() == Some(b"y") {
                    keep_times(&path, || {
                        File::create(path.join(".wh..wh..opq")).expect("create aufs opaque marker");
                    });
                }
                pending.push(path.clone());
            }
            if !meta.file_type().is_symlink() {
                for name in xattr::list(&path).expect("list xattrs") {
                    if name.as_bytes().starts_with(b"trusted.overlay.") {
                        xattr::remove(&path, &name).expect("remove overlay xattr");
                    }
                }
            }
        }
    }
}

/// Builds an aufs-layout root at `dest` from the overlay2 root `src`.
pub fn overlay2_to_aufs(src: &Path, dest: &Path) {
    // Copy through a read-only noatime bind: the source is evidence for other tests.
    let view = crate::mounts::noatime_bind(src);
    let status = Command::new("cp")
        .arg("-a")
        .arg(view.path())
        .arg(dest)
        .status()
        .expect("run cp");
    assert!(
        status.success(),
        "cp -a {} {} failed",
        src.display(),
        dest.display()
    );
    let overlay2 = dest.join("overlay2");
    let aufs = dest.join("aufs");
    for sub in ["diff", "layers", "mnt"] {
        fs::create_dir_all(aufs.join(sub)).expect("mkdir aufs");
    }
    // Short link name → layer id, to turn `lower` files into `layers` files.
    let mut links = std::collections::HashMap::new();
    let ids: Vec<OsString> = fs::read_dir(&overlay2)
        .expect("list overlay2")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| n != "l")
        .collect();
    for id in &ids {
        if let Ok(link) = fs::read_to_string(overlay2.join(id).join("link")) {
            links.insert(link.trim().to_string(), id.clone());
        }
    }
    for id in &ids {
        let layer = overlay2.join(id);
        let diff = aufs.join("diff").join(id);
        fs::rename(layer.join("diff"), &diff).expect("move diff");
        convert_markers(&diff);
        let parents: Vec<String> = fs::read_to_string(layer.join("lower"))
            .unwrap_or_default()
            .trim()
            .split(':')
            .filter(|s| !s.is_empty())
            .map(|l| {
                let short = l.trim_start_matches("l/");
                links[short].to_string_lossy().into_owned()
            })
            .collect();
        fs::write(
            aufs.join("layers").join(id),
            parents.iter().map(|p| format!("{p}\n")).collect::<String>(),
        )
        .expect("write layers file");
        fs::create_dir_all(aufs.join("mnt").join(id)).expect("mkdir mnt");
        if id.as_bytes().ends_with(b"-init") || !layer.join("committed").exists() {
            // aufs keeps its own bookkeeping at the top of writable layers.
            keep_times(&diff, || {
                File::create(diff.join(".wh..wh.aufs")).expect("create .wh..wh.aufs");
                fs::create_dir(diff.join(".wh..wh.orph")).expect("mkdir .wh..wh.orph");
                fs::create_dir(diff.join(".wh..wh.plnk")).expect("mkdir .wh..wh.plnk");
            });
        }
    }
    fs::remove_dir_all(&overlay2).expect("remove overlay2");
    fs::rename(dest.join("image/overlay2"), dest.join("image/aufs")).expect("rename image store");
    for c in fs::read_dir(dest.join("containers")).expect("list containers") {
        let config = c.expect("entry").path().join("config.v2.json");
        let text = fs::read_to_string(&config).expect("read config.v2.json");
        fs::write(
            &config,
            text.replace("\"Driver\":\"overlay2\"", "\"Driver\":\"aufs\""),
        )
        .expect("write config");
    }
}

/// Builds an overlay (v1) root at `dest` from the overlay2 root `src`: each
/// image layer a complete tree `overlay/<id>/root`, each container and init
/// layer its diff as `overlay/<id>/upper` beside `lower-id` (the image's
/// top layer), `work/` and `merged/`, as docker's overlay driver lays them
/// out.
pub fn overlay2_to_overlay(src: &Path, dest: &Path) {
    let driver = FullDriver {
        name: "overlay",
        store: "overlay",
        snapshots: false,
    };
    overlay2_to_full(src, dest, driver);
    let overlay2 = src.join("overlay2");
    let store = dest.join(driver.store);
    let id_of_link: std::collections::HashMap<String, String> = fs::read_dir(&overlay2)
        .expect("list overlay2")
        .filter_map(|e| {
            let id = e.expect("entry").file_name().to_string_lossy().into_owned();
            let link = fs::read_to_string(overlay2.join(&id).join("link")).ok()?;
            Some((link.trim().to_string(), id))
        })
        .collect();
    for entry in fs::read_dir(&store).expect("list overlay") {
        let id = entry.expect("entry").file_name();
        let layer = overlay2.join(&id);
        let tree = store.join(&id);
        let moved = store.join(format!("{}.tree", id.to_string_lossy()));
        fs::rename(&tree, &moved).expect("move the tree aside");
        fs::create_dir(&tree).expect("mkdir layer");
        if layer.join("committed").exists() {
            fs::rename(&moved, tree.join("root")).expect("move the tree to root/");
            continue;
        }
        fs::remove_dir_all(&moved).expect("remove the container's full tree");
        let status = Command::new("cp")
            .arg("-a")
            .arg(layer.join("diff"))
            .arg(tree.join("upper"))
            .status()
            .expect("run cp");
        assert!(status.success(), "cp -a {}/diff failed", layer.display());
        let image_top = fs::read_to_string(layer.join("lower"))
            .unwrap_or_default()
            .split(':')
            .filter_map(|l| id_of_link.get(l.trim().trim_start_matches("l/")))
            .find(|id| overlay2.join(id).join("committed").exists())
            .cloned()
            .unwrap_or_default();
        fs::write(tree.join("lower-id"), image_top).expect("write lower-id");
        for sub in ["work", "merged"] {
            fs::create_dir(tree.join(sub)).expect("mkdir");
        }
    }
}
