//! Every parser of untrusted input in docker-mount, as a fuzz target: a
//! function of arbitrary bytes that must never panic, hang, escape the
//! directory it reads, or read without bound.
//!
//! The same functions serve `cargo fuzz` (`fuzz/libfuzzer/`, one thin
//! binary per target; `cargo xtask fuzz --time N` runs them all) and
//! `cargo test` on stable (`tests/seeds.rs` replays `fuzz/seeds/<target>/`
//! and `fuzz/regressions/<target>/`, plus a few bounded mutations of each
//! seed). A target panics only when docker-mount misbehaves: an error
//! returned for bad input is the expected outcome.
//!
//! Multi-file targets take their input as sections separated by NUL bytes,
//! each written to one file of a scratch docker root (a missing section:
//! no file). A section may instead say what to put there: `@dir` (a
//! directory), `@fifo` (a named pipe: reading it must not block),
//! `@link:<target>` (a symlink, never to be followed).

// The overlay2 and aufs drivers are compiled in from their own sources
// (instrumented, like the rest, when fuzzing). Linked as crates they could
// not share a binary: each exports the plugin loader's one symbol. Here
// `docker_mount_core` is this crate, which re-exports core and turns
// `export_driver!` into nothing.
extern crate self as docker_mount_core;
pub use dm_core::*;

/// The plugin export, left out: these drivers are called directly.
#[macro_export]
macro_rules! export_driver {
    ($driver:ty) => {};
}

/// The overlay2 driver's own source.
#[path = "../../drivers/overlay2/src/lib.rs"]
pub mod overlay2;

/// The aufs driver's own source.
#[path = "../../drivers/aufs/src/lib.rs"]
pub mod aufs;

/// The containerd overlayfs snapshotter driver's own source (containerd's
/// metadata, read from bolt files by core's `driver_kit::bolt`).
#[path = "../../drivers/containerd-overlayfs/src/lib.rs"]
pub mod overlayfs;

/// The podman driver's own source (libpod's SQLite state).
#[path = "../../drivers/podman/src/lib.rs"]
pub mod podman;

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use docker_mount_core::beneath::{is_safe_component, Beneath};
use docker_mount_engine::model::container::{ContainerConfigFile, HostConfig};
use docker_mount_engine::model::image::ImageConfig;
use docker_mount_engine::model::layerdb::{self, LayerDb, MAX_CHAIN};
use docker_mount_engine::model::legacy;
use docker_mount_engine::model::root::DockerRoot;
use docker_mount_engine::model::tarsplit::TarSplit;
use docker_mount_engine::union::{FileKind, Tree, Union};
use sha2::{Digest, Sha256};

/// A fuzz target: bytes in, a panic only on a bug.
pub type Target = fn(&[u8]);

/// Every target, by the name of its `cargo fuzz` binary and seed directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("container", container),
    ("image", image),
    ("legacy", legacy_graph),
    ("layerdb", layerdb),
    ("tarsplit", tarsplit),
    ("overlay2_lower", overlay2_lower),
    ("aufs_layers", aufs_layers),
    ("union_lookup", union_lookup),
    ("logs", logs),
    ("dm_thin", dm_thin),
    ("bolt", bolt),
    ("podman_sqlite", podman_sqlite),
    ("ext4_journal", ext4_journal),
    ("bodyfile", bodyfile),
    ("zfs_nvlist", zfs_nvlist),
    ("zfs_label", zfs_label),
    ("zfs_block", zfs_block),
    ("zfs_zap", zfs_zap),
    ("zfs_sa", zfs_sa),
    ("zfs_object", zfs_object),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Largest input worth trying per target (libFuzzer's `-max_len`).
pub fn max_len(name: &str) -> usize {
    match name {
        "dm_thin" | "ext4_journal" | "zfs_label" => 64 * 1024,
        "zfs_zap" | "zfs_block" | "zfs_object" => 16 * 1024,
        "bolt" | "podman_sqlite" => 256 * 1024,
        "tarsplit" | "logs" | "image" | "container" => 16 * 1024,
        _ => 4096,
    }
}

/// The container id of the scratch roots.
pub const CONTAINER_ID: &str = "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0";
/// The layerdb directories (chain ids) of the `layerdb` target.
pub const CHAIN_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub const CHAIN_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
/// Legacy image ids of the `legacy` target.
pub const GRAPH_A: &str = "1111111111111111111111111111111111111111111111111111111111111111";
pub const GRAPH_B: &str = "2222222222222222222222222222222222222222222222222222222222222222";

/// The first `n` NUL-separated sections of `data`; missing ones are `None`.
fn sections(data: &[u8], n: usize) -> Vec<Option<&[u8]>> {
    let mut parts = data
        .split(|&b| b == 0)
        .take(n)
        .map(Some)
        .collect::<Vec<_>>();
    parts.resize(n, None);
    parts
}

/// Puts `spec` at `rel` beneath `dir` (see the module documentation).
fn place(dir: &Path, rel: &str, spec: Option<&[u8]>) {
    let Some(spec) = spec.filter(|s| *s != b"@none") else {
        return;
    };
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("scratch: mkdir");
    }
    let made = if spec == b"@dir" {
        std::fs::create_dir(&path)
    } else if spec == b"@fifo" {
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o644))
            .map_err(std::io::Error::from)
    } else if let Some(target) = spec.strip_prefix(b"@link:") {
        // An empty target cannot be made: the bytes become a file instead.
        std::os::unix::fs::symlink(OsStr::from_bytes(target), &path)
    } else {
        Err(std::io::ErrorKind::Other.into())
    };
    if made.is_err() {
        std::fs::write(&path, spec).expect("scratch: write");
    }
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("dm-fuzz-")
        .tempdir()
        .expect("scratch dir")
}

/// A directory that lives as long as the process (for targets whose
/// driver caches per root), removed at the next start once its process
/// is gone.
fn process_dir(what: &str) -> PathBuf {
    let tmp = std::env::temp_dir();
    let prefix = format!("dm-fuzz-{what}-");
    if let Ok(entries) = std::fs::read_dir(&tmp) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(&prefix) {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    let dir = tmp.join(format!("{prefix}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A path the evidence gave must stay a plain relative path.
fn assert_plain(rel: &Path, what: &str) {
    assert!(
        rel.components().all(|c| matches!(c, Component::Normal(_))),
        "{what}: {rel:?} is not a plain relative path"
    );
}

/// Errors must name a file: a path of the scratch root, or the name given.
fn assert_names(err: &impl std::fmt::Display, root: &Path) {
    let text = err.to_string();
    assert!(
        text.contains(&*root.to_string_lossy()) || text.contains("sha256:"),
        "error names no file: {text}"
    );
}

/// `containers/<id>/config.v2.json`, `hostconfig.json`, `config.json`
/// (docker < 1.10), read as `list` and `info` do; and the same bytes as
/// each model directly.
pub fn container(data: &[u8]) {
    let _ = serde_json::from_slice::<ContainerConfigFile>(data);
    let _ = serde_json::from_slice::<HostConfig>(data);
    let s = sections(data, 3);
    let t = scratch();
    let base = format!("containers/{CONTAINER_ID}");
    std::fs::create_dir_all(t.path().join(&base)).expect("scratch: mkdir");
    place(t.path(), &format!("{base}/config.v2.json"), s[0]);
    place(t.path(), &format!("{base}/hostconfig.json"), s[1]);
    place(t.path(), &format!("{base}/config.json"), s[2]);
    let root = DockerRoot::open(t.path()).expect("scratch root opens");
    for c in root.containers() {
        match c {
            Ok(c) => {
                assert_eq!(c.id, CONTAINER_ID);
                let _ = (c.name(), c.state(), c.command(), c.image_id());
                serde_json::to_string(&c.config).expect("a config serialises");
                if let Some(h) = &c.host {
                    serde_json::to_string(h).expect("a host config serialises");
                }
            }
            Err(e) => assert_names(&e.error, t.path()),
        }
    }
    let _ = root.find_container(&CONTAINER_ID[..12]);
}

/// An image config (stored under its own sha256, so it is read in full),
/// `repositories.json` and the image's `parent`, read as `images` does.
pub fn image(data: &[u8]) {
    if let Ok(config) = serde_json::from_slice::<ImageConfig>(data) {
        let chain = layerdb::chain_ids(&config.rootfs.diff_ids);
        assert_eq!(chain.len(), config.rootfs.diff_ids.len());
    }
    let s = sections(data, 3);
    let t = scratch();
    let store = t.path().join("image/overlay2");
    std::fs::create_dir_all(store.join("imagedb/content/sha256")).expect("scratch: mkdir");
    let config = s[0].unwrap_or_default();
    let id = hex::encode(Sha256::digest(config));
    place(
        &store,
        &format!("imagedb/content/sha256/{id}"),
        Some(config),
    );
    place(&store, "repositories.json", s[1]);
    place(
        &store,
        &format!("imagedb/metadata/sha256/{id}/parent"),
        s[2],
    );
    let root = DockerRoot::open(t.path()).expect("scratch root opens");
    for i in root.images() {
        match i {
            Ok(i) => {
                assert_eq!(i.id, id);
                let chain = layerdb::chain_ids(&i.config.rootfs.diff_ids);
                assert_eq!(chain.len(), i.config.rootfs.diff_ids.len());
                for tag in i.tags.iter().chain(&i.digests).take(16) {
                    let _ = root.find_image(tag);
                }
            }
            Err(e) => assert_names(&e.error, t.path()),
        }
    }
    let _ = root.find_image(&id[..12]);
}

/// A docker < 1.10 root: `graph/<id>/json` of two images and
/// `repositories-overlay`, read as `images` and `info` do.
pub fn legacy_graph(data: &[u8]) {
    let s = sections(data, 3);
    let t = scratch();
    std::fs::create_dir_all(t.path().join("graph")).expect("scratch: mkdir");
    place(t.path(), &format!("graph/{GRAPH_A}/json"), s[0]);
    place(t.path(), &format!("graph/{GRAPH_B}/json"), s[1]);
    place(t.path(), "repositories-overlay", s[2]);
    let root = DockerRoot::open(t.path()).expect("scratch root opens");
    for i in legacy::images(root.dir()) {
        if let Err((_, e)) = i {
            assert_names(&e, t.path());
        }
    }
    for id in [GRAPH_A, GRAPH_B] {
        if let Ok(chain) = legacy::chain(root.dir(), id) {
            assert!(!chain.is_empty() && chain.len() <= MAX_CHAIN);
        }
    }
}

/// Two layerdb layers (`diff`, `parent`, `cache-id`, `size` each) and a
/// container's `mounts/<id>/` (`mount-id`, `init-id`, `parent`): the
/// chain is followed from every layer, as `info` and `images` do.
pub fn layerdb(data: &[u8]) {
    let s = sections(data, 11);
    let t = scratch();
    let db = t.path().join("image/overlay2/layerdb");
    std::fs::create_dir_all(db.join("sha256")).expect("scratch: mkdir");
    let files = ["diff", "parent", "cache-id", "size"];
    for (i, chain) in [CHAIN_A, CHAIN_B].iter().enumerate() {
        std::fs::create_dir_all(db.join("sha256").join(chain)).expect("scratch: mkdir");
        for (j, f) in files.iter().enumerate() {
            place(&db, &format!("sha256/{chain}/{f}"), s[i * 4 + j]);
        }
    }
    let mount = format!("mounts/{CONTAINER_ID}");
    std::fs::create_dir_all(db.join(&mount)).expect("scratch: mkdir");
    for (j, f) in ["mount-id", "init-id", "parent"].iter().enumerate() {
        place(&db, &format!("{mount}/{f}"), s[8 + j]);
    }
    let dir = Beneath::open(t.path()).expect("scratch root opens");
    let layers = LayerDb::read(&dir, "overlay2");
    for rec in layers.layers.values() {
        assert!(is_safe_component(&rec.cache_id), "{:?}", rec.cache_id);
        let _ = rec.link.chain_problem();
    }
    for top in [CHAIN_A, CHAIN_B, &format!("sha256:{CHAIN_B}"), ""] {
        match layers.chain(top) {
            Ok(chain) => assert!(chain.len() <= MAX_CHAIN),
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
    match layerdb::read_mount(&dir, "overlay2", CONTAINER_ID) {
        Ok(m) => {
            assert!(is_safe_component(&m.mount_id), "{:?}", m.mount_id);
            assert!(m.init_id.as_deref().is_none_or(is_safe_component));
            if let Some(p) = &m.parent {
                let _ = layers.chain(p);
            }
        }
        Err(e) => assert_names(&e, t.path()),
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("gzip in memory");
    enc.finish().expect("gzip in memory")
}

/// `tar-split.json.gz`. The first byte says whether the rest is the JSON
/// stream (even: the target compresses it) or the gzip itself (odd).
pub fn tarsplit(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode & 1 == 0 {
        gzip(rest)
    } else {
        rest.to_vec()
    };
    let name = Path::new("/fuzz/layer/tar-split.json.gz");
    match TarSplit::parse(&bytes[..], name) {
        Ok(ts) => {
            for e in &ts.entries {
                let n = &e.name;
                assert!(!n.starts_with(b"/") && !n.ends_with(b"/"), "{n:?}");
                assert!(!n.contains(&0));
                if !n.is_empty() {
                    let mut parts = n.split(|&b| b == b'/');
                    assert!(parts.all(|c| !c.is_empty() && c != b"."), "{n:?}");
                }
            }
            for p in ts.opaque_dirs().iter().chain(&ts.whiteouts()) {
                assert!(!p.starts_with(b"/"), "{p:?}");
            }
        }
        Err(e) => assert!(
            e.to_string().contains("/fuzz/layer/tar-split.json.gz"),
            "{e}"
        ),
    }
}

/// A layer source must lie inside the driver's store, and name known parents.
fn check_source(source: &LayerSource, store: &Path, known: Option<&[&str]>) {
    let LayerSource::Diff {
        dir, parent_ids, ..
    } = source
    else {
        panic!("a diff driver described a layer as {source:?}");
    };
    let rel = dir
        .strip_prefix(store)
        .unwrap_or_else(|_| panic!("{dir:?} is outside {store:?}"));
    assert_plain(rel, "layer dir");
    for p in parent_ids {
        assert!(is_safe_component(p), "{p:?}");
        assert!(
            known.is_none_or(|k| k.contains(&p.as_str())),
            "unknown parent {p:?}"
        );
    }
}

/// The overlay2 root of [`overlay2_lower`]: layers `base`, `mid`, `top`
/// with link files, and `odd` whose link file is padded. Built once per
/// process: the driver caches the link map per root.
fn overlay2_root() -> &'static Mutex<PathBuf> {
    static ROOT: OnceLock<Mutex<PathBuf>> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = process_dir("overlay2");
        let o2 = root.join("overlay2");
        for (id, link) in [
            ("base", "BASELINK"),
            ("mid", "MIDLINK"),
            ("top", "TOPLINK"),
            ("odd", "  ODD LINK \n"),
        ] {
            std::fs::create_dir_all(o2.join(id).join("diff")).expect("scratch: mkdir");
            std::fs::write(o2.join(id).join("link"), link).expect("scratch: write");
            std::os::unix::fs::symlink(format!("../{id}/diff"), o2.join("l").join(id))
                .or_else(|_| {
                    std::fs::create_dir_all(o2.join("l"))?;
                    std::os::unix::fs::symlink(format!("../{id}/diff"), o2.join("l").join(id))
                })
                .expect("scratch: symlink");
        }
        std::os::unix::fs::symlink("/etc", o2.join("escape")).expect("scratch: symlink");
        std::fs::create_dir_all(root.join("image/overlay2")).expect("scratch: mkdir");
        Mutex::new(root)
    })
}

/// overlay2's `lower` file of layer `top` (second section) and the layer
/// id asked for (first section, `top` when empty), through the driver.
pub fn overlay2_lower(data: &[u8]) {
    let s = sections(data, 2);
    let root = overlay2_root()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let lower = root.join("overlay2/top/lower");
    let _ = std::fs::remove_file(&lower);
    let _ = std::fs::remove_dir(&lower);
    place(&root.join("overlay2"), "top/lower", s[1]);
    let id = match s[0] {
        Some(b"") | None => "top".to_string(),
        Some(id) => String::from_utf8_lossy(id).into_owned(),
    };
    let driver = overlay2::Overlay2;
    let store = root.join("overlay2");
    match driver.layer(&root, &id) {
        Ok(source) => check_source(&source, &store, Some(&["base", "mid", "top", "odd"])),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let _ = driver.detect(&root);
    let _ = driver.layers(&root);
}

/// aufs's `layers/top` file (second section) and the layer id asked for
/// (first section, `top` when empty), through the driver.
pub fn aufs_layers(data: &[u8]) {
    let s = sections(data, 2);
    let t = scratch();
    let aufs = t.path().join("aufs");
    for id in ["base", "mid", "top"] {
        std::fs::create_dir_all(aufs.join("diff").join(id)).expect("scratch: mkdir");
    }
    std::fs::create_dir_all(aufs.join("layers")).expect("scratch: mkdir");
    std::os::unix::fs::symlink("/etc", aufs.join("diff/escape")).expect("scratch: symlink");
    place(&aufs, "layers/top", s[1]);
    let id = match s[0] {
        Some(b"") | None => "top".to_string(),
        Some(id) => String::from_utf8_lossy(id).into_owned(),
    };
    let driver = aufs::Aufs;
    match driver.layer(t.path(), &id) {
        Ok(source) => check_source(&source, &aufs, None),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let _ = driver.detect(t.path());
    let _ = driver.layers(t.path());
}

/// The union of [`union_lookup`]: an overlay layer over an aufs layer over
/// a full tree, with whiteouts, opaque directories and symlinks that point
/// out (to `/etc`, to `../../..`), built once per process. A canary file
/// sits beside the layers, outside every one of them.
fn union_fixture() -> &'static (PathBuf, Union) {
    static FIXTURE: OnceLock<(PathBuf, Union)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = process_dir("union");
        let mk = |rel: &str| std::fs::create_dir_all(dir.join(rel)).expect("scratch: mkdir");
        let file = |rel: &str, body: &str| std::fs::write(dir.join(rel), body).expect("write");
        let link = |rel: &str, to: &str| {
            std::os::unix::fs::symlink(to, dir.join(rel)).expect("scratch: symlink")
        };
        std::fs::write(dir.join("canary"), "outside every layer").expect("write");
        // Top: overlay style.
        mk("top/etc");
        mk("top/opaque");
        mk("top/deep/a/b/c");
        file("top/etc/passwd", "root:x:0:0\n");
        file("top/opaque/new", "new\n");
        link("top/etc/shadow", "/etc/shadow");
        link("top/up", "../../..");
        link("top/dir-link", "/etc");
        link("top/canary-link", "../canary");
        let root = nix::unistd::geteuid().is_root();
        if root {
            nix::sys::stat::mknod(
                &dir.join("top/gone"),
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::empty(),
                0,
            )
            .expect("scratch: whiteout");
        }
        // Middle: aufs style.
        mk("mid/etc");
        mk("mid/opaque");
        mk("mid/.wh..wh.plnk");
        file("mid/etc/group", "root:x:0:\n");
        file("mid/.wh.hidden", "");
        file("mid/opaque/.wh..wh..opq", "");
        file("mid/opaque/mid-only", "mid\n");
        mk("mid/.wh.dir-whiteout");
        // Bottom: a full tree.
        mk("base/etc");
        mk("base/opaque");
        mk("base/deep");
        file("base/gone", "deleted above\n");
        file("base/hidden", "deleted in mid\n");
        file("base/dir-whiteout", "whited out by a directory\n");
        file("base/opaque/old", "old\n");
        file("base/etc/hostname", "box\n");
        nix::unistd::mkfifo(
            &dir.join("base/etc/fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .expect("scratch: mkfifo");
        let b = Beneath::open(&dir).expect("scratch opens");
        let mut top = Tree::open(&b, Path::new("top"), Some(WhiteoutStyle::Overlay), "top")
            .expect("top layer");
        top.add_opaque_hints([b"opaque".to_vec()]);
        let mid =
            Tree::open(&b, Path::new("mid"), Some(WhiteoutStyle::Aufs), "mid").expect("mid layer");
        let base = Tree::open(&b, Path::new("base"), None, "base").expect("base layer");
        (dir, Union::new(vec![top, mid, base]))
    })
}

/// Path resolution in the union: the bytes (after a first byte choosing
/// the layer to look from) are a path as a user or a symlink would give
/// it. Whatever is found lies inside its layer; nothing escapes.
pub fn union_lookup(data: &[u8]) {
    let Some((&first, path)) = data.split_first() else {
        return;
    };
    let (dir, union) = union_fixture();
    let from = usize::from(first) % (union.trees.len() + 1);
    let path = Path::new(OsStr::from_bytes(path));
    let found = match union.lookup_from(from, path) {
        Ok(found) => found,
        Err(e) => {
            assert!(from < union.trees.len() || e.to_string().contains("no layer"));
            return;
        }
    };
    let Some(node) = found else { return };
    assert!(from < union.trees.len());
    assert!(
        !path.components().any(|c| c == Component::ParentDir),
        "{path:?} resolved through .."
    );
    assert_plain_or_root(&node.path);
    assert!(node.layer >= from && node.layer < union.trees.len());
    let tree = union.tree(&node);
    match node.stat.kind {
        FileKind::File => {
            let f = tree.open_file(&node.path).expect("a found file opens");
            let real = std::fs::read_link(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&f)
            ))
            .expect("fd path");
            assert!(
                real.starts_with(dir.join(&tree.id)),
                "{path:?} opened {real:?}, outside its layer"
            );
        }
        FileKind::Symlink => {
            tree.readlink(&node.path).expect("a found symlink reads");
        }
        FileKind::Dir => {
            for child in union.children(&node).expect("a found directory lists") {
                assert!(child.path.starts_with(&node.path));
                assert_plain(&child.path, "child");
            }
        }
        _ => {}
    }
}

fn assert_plain_or_root(p: &Path) {
    if !p.as_os_str().is_empty() {
        assert_plain(p, "node");
    }
}

/// A container log file, read as `logs` does: the first byte says which
/// format (bit 0: json-file or local; bit 3: podman's k8s-file over
/// either), whether the target gzips the rest
/// as a rotated `.gz` (bit 1) and whether to filter by time (bit 2). The
/// bytes are also decoded as one `local` record.
pub fn logs(data: &[u8]) {
    use docker_mount_engine::analysis::logs::{self, Filter, LogFamily, LogFile, LogFormat};
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let _ = logs::decode_entry(rest);
    let t = scratch();
    let dir = Path::new("containers").join(CONTAINER_ID);
    std::fs::create_dir_all(t.path().join(&dir)).expect("scratch: mkdir");
    let local = mode & 1 == 1;
    let compressed = mode & 2 == 2;
    let k8s = mode & 8 == 8;
    let name = match (k8s, local, compressed) {
        (true, _, false) => "ctr.log".to_string(),
        (true, _, true) => "ctr.log.1.gz".to_string(),
        (false, false, false) => format!("{CONTAINER_ID}-json.log"),
        (false, false, true) => format!("{CONTAINER_ID}-json.log.1.gz"),
        (false, true, false) => "container-cached.log".to_string(),
        (false, true, true) => "container-cached.log.1.gz".to_string(),
    };
    let rel = dir.join(name);
    let bytes = if compressed {
        gzip(rest)
    } else {
        rest.to_vec()
    };
    std::fs::write(t.path().join(&rel), &bytes).expect("scratch: write");
    let root = DockerRoot::open(t.path()).expect("scratch root opens");
    let (family, format) = match (k8s, local) {
        (true, _) => (LogFamily::K8sFile, LogFormat::K8sFile),
        (false, true) => (LogFamily::Cache, LogFormat::Local),
        (false, false) => (LogFamily::JsonFile, LogFormat::JsonFile),
    };
    let file = LogFile {
        family,
        format,
        path: t.path().join(&rel),
        rel,
        rotation: u32::from(compressed),
        compressed,
        size: bytes.len() as u64,
    };
    let filter = if mode & 4 == 4 {
        Filter {
            since: logs::parse_time_arg("2021-01-01T00:00:00Z"),
            until: logs::parse_time_arg("2030-01-01"),
        }
    } else {
        Filter::default()
    };
    let mut records = 0usize;
    let mut total = 0usize;
    let result = logs::read(&root, &[file], &filter, &mut |r| {
        records += 1;
        total += r.line.len();
        let _ = r.text();
        Ok(())
    });
    let warnings = result.expect("a damaged log is warnings, not an error");
    // A record's line is part of its encoding: never more bytes than came in.
    assert!(
        total <= rest.len(),
        "{records} records, {total} bytes from {}",
        rest.len()
    );
    for w in warnings {
        assert!(w.contains(&*t.path().to_string_lossy()), "{w}");
    }
}

/// bbolt files, read by core's `driver_kit::bolt` for the drivers (seeds:
/// containerd's databases and podman's `libpod/bolt_state.db`): every
/// bucket of the raw file is walked; then, as one of containerd's
/// databases, the overlayfs driver reads it from a scratch containerd root
/// as `list`, `images` and `export` would. The first byte says which —
/// bit 0 set: containerd's `meta.db`, else the overlayfs snapshotter's
/// `metadata.db` (the other file is missing).
pub fn bolt(data: &[u8]) {
    use docker_mount_core::driver_kit::bolt::{Bucket, Db, Value};
    use docker_mount_core::Driver;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    fn walk(db: &Db<Vec<u8>>, b: &Bucket, depth: usize, budget: &mut usize) {
        if depth > 8 {
            return;
        }
        let Ok(entries) = db.entries(b) else {
            return;
        };
        for (k, v) in entries {
            if *budget == 0 {
                return;
            }
            *budget -= 1;
            let _ = db.get(b, &k);
            if let Value::Bucket(child) = v {
                walk(db, &child, depth + 1, budget);
            }
        }
    }
    if let Ok(db) = Db::new(rest.to_vec()) {
        walk(&db, &db.root(), 0, &mut 10_000);
    }
    let scratch = tempfile::tempdir().expect("scratch dir");
    let root = scratch.path();
    let rel = if mode & 1 == 1 {
        Path::new(overlayfs::meta::META_DB).to_path_buf()
    } else {
        Path::new(overlayfs::SNAPSHOTTER_DIR).join(overlayfs::meta::SNAPSHOTTER_DB)
    };
    let file = root.join(&rel);
    std::fs::create_dir_all(file.parent().expect("parent")).expect("scratch: mkdir");
    std::fs::write(&file, rest).expect("scratch: write");
    for id in ["1", "2"] {
        let fs = root
            .join(overlayfs::SNAPSHOTTER_DIR)
            .join("snapshots")
            .join(id)
            .join("fs");
        std::fs::create_dir_all(fs).expect("scratch: mkdir");
    }
    let d = overlayfs::Overlayfs;
    let _ = d.detect(root);
    if let Ok(c) = d.catalog(root) {
        for l in c.containers.iter().flat_map(|c| &c.layers) {
            assert!(is_safe_component(&l.id), "layer id {:?}", l.id);
        }
    }
    for id in ["1", "2"] {
        if let Ok(source) = d.layer(root, id) {
            let dir = source.dir().expect("a directory").to_path_buf();
            assert!(dir.starts_with(root), "{} outside the root", dir.display());
        }
    }
    let _ = d.layers(root);
    let _ = d.container_layers(root, "c1");
}

/// Podman 5's libpod state, `db.sql` (SQLite), read by the podman driver's
/// catalog from a scratch podman root (copied to a private directory,
/// opened read-only). The first byte: bit 0 set, the rest is split in two,
/// the second half written as the database's `-wal`. No panic, no hang,
/// and every problem names a file of the root.
pub fn podman_sqlite(data: &[u8]) {
    use docker_mount_core::Driver;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let t = scratch();
    let (db, wal) = if mode & 1 == 1 {
        rest.split_at(rest.len() / 2)
    } else {
        (rest, &[][..])
    };
    std::fs::write(t.path().join("db.sql"), db).expect("scratch: write");
    if !wal.is_empty() {
        std::fs::write(t.path().join("db.sql-wal"), wal).expect("scratch: write");
    }
    // Every file of the root with its bytes.
    let listing = || {
        let mut v: Vec<(std::ffi::OsString, Vec<u8>)> = std::fs::read_dir(t.path())
            .expect("scratch: list")
            .map(|e| {
                let e = e.expect("scratch: entry");
                (
                    e.file_name(),
                    std::fs::read(e.path()).expect("scratch: read"),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = listing();
    let c = podman::Podman
        .catalog(t.path())
        .expect("a podman root with a state database has a catalog");
    for p in &c.problems {
        let path = p.path.as_deref().expect("a problem names its file");
        assert!(path.starts_with(t.path()), "{p}");
    }
    assert!(before == listing(), "the state database was written to");
}

/// Thin-pool metadata (the devicemapper driver's), read as `extract` and
/// `mount` do: the first byte says whether to read past bad checksums
/// (bit 0) and whether the target first gives every 4 KiB block its right
/// checksum (bit 1), so that mutations reach the trees behind them.
/// `attribute --journal`'s parsers: the bytes as a jbd2 journal file, and
/// every block it logs, and the bytes themselves, as ext4 directory blocks.
/// Every name found is one path component.
pub fn ext4_journal(data: &[u8]) {
    use docker_mount_engine::analysis::journal::{dir_entries, logged_blocks};
    let check = |block: &[u8]| {
        let entries = dir_entries(block);
        assert!(entries.len() <= block.len() / 8 + 1);
        for (ino, name) in entries {
            assert!(ino != 0 && !name.is_empty() && name.len() < 256);
            assert!(!name.contains(&b'/') && !name.contains(&0));
        }
    };
    check(data);
    if let Ok(blocks) = logged_blocks(data) {
        for (_, _, b) in blocks.iter().take(64) {
            check(b);
        }
    }
}

/// `attribute --bodyfile`: each line's name, never with fls's markers.
pub fn bodyfile(data: &[u8]) {
    for line in data.split(|&b| b == b'\n') {
        if let Some(name) = docker_mount_engine::analysis::attribute::bodyfile_name(line) {
            assert!(!name.as_os_str().is_empty());
            assert!(name.as_os_str().len() < line.len());
        }
    }
}

pub fn dm_thin(data: &[u8]) {
    use docker_mount_driver_devicemapper::crc32c::dm_checksum;
    use docker_mount_driver_devicemapper::thin::{
        Options, Pool, BLOCK_SIZE, BTREE_CSUM_XOR, SUPERBLOCK_CSUM_XOR,
    };
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 2 == 2 {
        for (i, block) in bytes.chunks_mut(BLOCK_SIZE).enumerate() {
            if block.len() < BLOCK_SIZE {
                break;
            }
            let salt = if i == 0 {
                SUPERBLOCK_CSUM_XOR
            } else {
                BTREE_CSUM_XOR
            };
            let sum = dm_checksum(&block[4..], salt);
            block[..4].copy_from_slice(&sum.to_le_bytes());
        }
    }
    let mut file = tempfile::tempfile().expect("scratch file");
    file.write_all(&bytes).expect("scratch: write");
    let opts = Options {
        ignore_checksums: mode & 1 == 1,
    };
    let Ok(pool) = Pool::open(file, opts) else {
        return;
    };
    let _ = pool.superblock().data_block_bytes();
    let _ = pool.devices();
    if let Ok(roots) = pool.mapping_roots() {
        for (&dev, &root) in roots.iter().take(8) {
            if let Ok(runs) = pool.device_runs(dev, root) {
                for r in runs {
                    assert!(r.len > 0);
                    assert!(r.virt.checked_add(r.len).is_some());
                }
            }
            let _ = pool.runs(dev);
        }
    }
    assert!(pool.warnings().len() <= 1000);
}

/// A deterministic mutator for stable-only runs (`tests/seeds.rs`):
/// byte flips, inserts, deletes, splices of interesting tokens.
#[derive(Debug)]
pub struct Mutator(u64);

impl Mutator {
    pub fn new(seed: u64) -> Mutator {
        Mutator(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// A mutation of `input`, at most `max` bytes long.
    pub fn mutate(&mut self, input: &[u8], max: usize) -> Vec<u8> {
        const TOKENS: &[&[u8]] = &[
            b"\0",
            b"../",
            b"/",
            b"..",
            b"@fifo",
            b"@dir",
            b"@link:/etc",
            b"\"",
            b"{",
            b"}",
            b"[",
            b"]",
            b":",
            b",",
            b"null",
            b"-1",
            b"18446744073709551616",
            b"1e999",
            b"sha256:",
            b"l/",
            b".wh.",
            b".wh..wh..opq",
            b"\n",
            b"\\u0000",
            b"\xff\xfe",
        ];
        let mut out = input.to_vec();
        for _ in 0..1 + self.below(4) {
            let at = self.below(out.len() + 1);
            match self.below(6) {
                0 if !out.is_empty() => {
                    let i = at.min(out.len() - 1);
                    out[i] ^= 1 << self.below(8);
                }
                1 if !out.is_empty() => {
                    let end = (at + 1 + self.below(16)).min(out.len());
                    out.drain(at.min(end)..end);
                }
                2 => {
                    let t = TOKENS[self.below(TOKENS.len())];
                    out.splice(at..at, t.iter().copied());
                }
                3 if !out.is_empty() => {
                    // Repeat a slice: long names, deep paths, big numbers.
                    let start = self.below(out.len());
                    let end = (start + 1 + self.below(32)).min(out.len());
                    let piece = out[start..end].repeat(1 + self.below(64));
                    out.splice(at..at, piece);
                }
                4 => out.insert(at, self.next() as u8),
                _ => out.truncate(at),
            }
        }
        out.truncate(max);
        out
    }
}

/// ZFS nvlists (labels, pool config, xattr=sa): decode, then look up.
pub fn zfs_nvlist(data: &[u8]) {
    if let Ok(nv) = docker_mount_zfs::nvlist::unpack(data) {
        let _ = nv.str("name");
        let _ = nv.u64("txg");
        if let Some(t) = nv.list("vdev_tree") {
            let _ = t.lists("children");
        }
        assert!(nv.pairs.len() <= docker_mount_zfs::limits::MAX_NVLIST_PAIRS);
    }
}

/// A vdev whose label 0 holds the input: after a mode byte and a
/// little-endian u16 length, that many bytes as the nvlist area, the rest
/// as the uberblock ring. Mode bit 0 seals the embedded checksums so
/// parsing gets past them; bits 1-2 pick the ring's slot size.
pub fn zfs_label(data: &[u8]) {
    use docker_mount_zfs::checksum::seal_embedded;
    use docker_mount_zfs::dev::{BlockDev, SliceDev};
    use docker_mount_zfs::label;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Some((len, rest)) = rest.split_first_chunk::<2>() else {
        return;
    };
    let nvlen = u16::from_le_bytes(*len) as usize;
    const NV: usize = 16 << 10;
    const NV_LEN: usize = 112 << 10;
    const RING: usize = 128 << 10;
    let size = 4 * (256 << 10) + (4 << 20);
    let mut img = vec![0u8; size];
    let (nv, ring) = rest.split_at(rest.len().min(nvlen).min(NV_LEN - 40));
    img[NV..NV + nv.len()].copy_from_slice(nv);
    let ring = &ring[..ring.len().min(RING)];
    img[RING..RING + ring.len()].copy_from_slice(ring);
    if mode & 1 == 1 {
        seal_embedded(&mut img[NV..NV + NV_LEN], [NV as u64, 0, 0, 0]);
        let slot = 1usize << (10 + (mode as usize >> 1) % 4);
        for (i, s) in img[RING..RING + RING].chunks_mut(slot).enumerate() {
            if s.iter().any(|&b| b != 0) {
                seal_embedded(s, [(RING + i * slot) as u64, 0, 0, 0]);
            }
        }
    }
    let dev: std::sync::Arc<dyn BlockDev> = std::sync::Arc::new(SliceDev::new("fuzz", img));
    if let Ok(Some(v)) = label::read(dev) {
        assert!(v.uberblocks.len() <= docker_mount_zfs::limits::MAX_UBERBLOCKS);
        assert!(v.info.vdev_size as usize == size);
    }
    for s in rest.chunks(1024) {
        let _ = label::parse_uberblock(s);
    }
}

/// A block pointer (the first 128 bytes) and a physical block (the rest):
/// the embedded payload or the block decompressed by the pointer's
/// algorithm, to at most 1 MiB.
pub fn zfs_block(data: &[u8]) {
    use docker_mount_zfs::bp::BlockPtr;
    use docker_mount_zfs::compress::decompress;
    if data.len() < 128 {
        return;
    }
    let (raw, rest) = data.split_at(128);
    let Ok(bp) = BlockPtr::parse(raw) else {
        return;
    };
    let _ = bp.is_hole();
    let _ = bp.describe();
    let lsize = (bp.lsize as usize).min(1 << 20);
    let out = if bp.embedded {
        bp.embedded_payload()
            .and_then(|p| decompress(bp.compress, &p, lsize))
    } else {
        decompress(bp.compress, rest, lsize)
    };
    if let Ok(o) = out {
        assert_eq!(o.len(), lsize);
    }
    // Every codec on the same bytes.
    for alg in [2, 3, 4, 10, 14, 15, 16] {
        if let Ok(o) = decompress(alg, rest, 4096) {
            assert_eq!(o.len(), 4096);
        }
    }
}

/// A ZAP block on its own: a micro ZAP or a fat-ZAP leaf.
pub fn zfs_zap(data: &[u8]) {
    if let Ok(es) = docker_mount_zfs::zap::parse_block(data) {
        for e in es {
            let _ = e.u64();
            let _ = e.string();
            assert!(e.name.len() <= data.len());
        }
    }
}

/// A bonus buffer of system attributes under the ZPL's usual registry,
/// with the layout given by the input's first byte (count) and the
/// attribute numbers after it; also decoded as a dnode.
pub fn zfs_sa(data: &[u8]) {
    use docker_mount_zfs::zpl::{parse_sa, Attrs, SaTables};
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = (n as usize % 24).min(rest.len());
    let (layout, bonus) = rest.split_at(n);
    let names = [
        ("ZPL_ATIME", 16),
        ("ZPL_MTIME", 16),
        ("ZPL_CTIME", 16),
        ("ZPL_CRTIME", 16),
        ("ZPL_GEN", 8),
        ("ZPL_MODE", 8),
        ("ZPL_SIZE", 8),
        ("ZPL_PARENT", 8),
        ("ZPL_LINKS", 8),
        ("ZPL_XATTR", 8),
        ("ZPL_RDEV", 8),
        ("ZPL_FLAGS", 8),
        ("ZPL_UID", 8),
        ("ZPL_GID", 8),
        ("ZPL_PAD", 32),
        ("ZPL_ZNODE_ACL", 88),
        ("ZPL_DACL_COUNT", 8),
        ("ZPL_SYMLINK", 0),
        ("ZPL_SCANSTAMP", 32),
        ("ZPL_DACL_ACES", 0),
        ("ZPL_DXATTR", 0),
        ("ZPL_PROJID", 8),
    ];
    let attrs: Vec<(u16, &str, u16)> = names
        .iter()
        .enumerate()
        .map(|(i, (name, len))| (i as u16, *name, *len))
        .collect();
    let lay: Vec<u16> = layout.iter().map(|&b| u16::from(b) % 24).collect();
    let sa = SaTables::with(&attrs, &[(2, lay.clone()), (3, lay)]);
    let mut out = Attrs::new();
    let _ = parse_sa(&sa, bonus, &mut out);
    if let Some(x) = out.get(&docker_mount_zfs::zpl::Attr::Dxattr) {
        let _ = docker_mount_zfs::nvlist::unpack(x);
    }
    let _ = docker_mount_zfs::dnode::Dnode::parse(data);
}

/// A dnode (the first 512 bytes) whose block pointers point into a disk
/// holding the rest: its indirect tree read, its data read, and it listed
/// and searched as a ZAP (micro or fat, pointer tables and leaves).
pub fn zfs_object(data: &[u8]) {
    use docker_mount_zfs::dev::{BlockDev, SliceDev};
    use docker_mount_zfs::dnode::Dnode;
    use docker_mount_zfs::pool::Spa;
    use docker_mount_zfs::zap;
    if data.len() < 512 {
        return;
    }
    let (dn, rest) = data.split_at(512);
    let Ok(dn) = Dnode::parse(dn) else {
        return;
    };
    let mut img = vec![0u8; 4 << 20];
    img.extend_from_slice(rest);
    img.resize(img.len() + 4096, 0);
    let dev: std::sync::Arc<dyn BlockDev> = std::sync::Arc::new(SliceDev::new("fuzz", img));
    let spa = Spa::single_disk(dev);
    let mut buf = vec![0u8; 8192];
    let _ = dn.read(&spa, 0, &mut buf);
    let _ = dn.read(&spa, u64::MAX - 100, &mut buf[..50]);
    if let Ok(es) = zap::list(&spa, &dn) {
        assert!(es.len() <= docker_mount_zfs::limits::MAX_ZAP_ENTRIES);
        if let Some(e) = es.first() {
            let _ = zap::lookup(&spa, &dn, &e.name);
        }
    }
    let _ = zap::lookup(&spa, &dn, b"hello");
}
