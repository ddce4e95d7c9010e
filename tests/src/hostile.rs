//! Hostile docker roots (issue 9): a small root made by the fixture
//! builder, converted to each storage driver's layout, then damaged the way
//! a crafted or corrupted image would be — symlinks out of a layer, links
//! pointing outside, a `mount-id` or `cache-id` climbing out with `..`, a
//! 10,000-entry `lower`, whiteouts that are directories, 255-byte names and
//! 4,096-byte paths, FIFOs where files are expected, a layer directory
//! replaced by a symlink, configs naming paths outside the root — and, for
//! devicemapper, pool files that are FIFOs or symlinks, device records
//! naming devices the pool lacks, and a crafted `deviceset-metadata`.
//!
//! Beside each root lies `outside/`: files no command may read (a canary
//! whose content must never show up in any output, and a fake layer that
//! the symlinks point at), all with old atimes so that any read moves them.
//! [`run_bounded`] runs the CLI with a time limit.

use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;

use crate::fixture::{
    ContainerOpts, ContainerRef, ContainerState, Fixture, ImageOpts, ImageRef, Node, RootBuilder,
    Volume,
};

/// The content of every file outside the root: must never be printed.
pub const CANARY: &str = "CANARY-outside-the-evidence-9f31c2";

/// The storage drivers the corpus covers: overlay2 as the fixture builds
/// it, the others converted from it.
pub const DRIVERS: [&str; 6] = [
    "overlay2",
    "aufs",
    "overlay",
    "vfs",
    "btrfs",
    "devicemapper",
];

/// How deep the narrow tree of [`Case::LongNames`] nests: as deep as a
/// 4,096-byte path allows, but only 1,000 levels inside a devicemapper
/// device (`mkfs.ext4 -d` aborts on deeper trees).
fn narrow_depth(driver: &str) -> usize {
    if driver == "devicemapper" {
        1000
    } else {
        2040
    }
}

/// The ways a root is hostile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// Symlinks in layers to `/etc/shadow`, `../../..`, and outside files.
    Symlinks,
    /// `l/` links (overlay2), `mnt/` entries (aufs, devicemapper), or
    /// `merged/`, `work/` and `lower-id` (overlay) pointing outside.
    LinksOutside,
    /// `mount-id` of `../../../etc`.
    MountIdEscape,
    /// The base image layer's `cache-id` climbing to a fake layer outside.
    CacheIdEscape,
    /// A rw layer with 10,000 parents (`lower` / `layers`).
    HugeLower,
    /// Whiteouts that are directories; whiteouts over directories; in full
    /// trees, whiteout look-alikes (a 0/0 device, a `.wh.` file).
    WhiteoutDir,
    /// Names of 255 bytes and paths of 4,096 bytes.
    LongNames,
    /// FIFOs where files are expected: config.v2.json, hostconfig.json,
    /// repositories.json, a log, a tar-split, a file in a layer, and the
    /// driver's own file of a layer (`lower`, `layers/<id>`, a full tree,
    /// devicemapper's `metadata/<id>`).
    Fifos,
    /// A layer directory (devicemapper: its metadata file) replaced by a
    /// symlink to outside, and the rw layer's files by one to `/etc`.
    LayerSymlink,
    /// config.v2.json and hostconfig.json naming paths outside the root
    /// (log, volumes, bind sources, hostname).
    ConfigPaths,
    /// devicemapper: the thin pool's `metadata` is a FIFO.
    DmPoolFifo,
    /// devicemapper: the pool's `metadata` and `data` are symlinks to
    /// working copies outside the root.
    DmPoolSymlink,
    /// devicemapper: device records naming a device the pool lacks, a size
    /// smaller than the device's mappings, a 1 MiB record, a device id of
    /// the wrong type.
    DmDevices,
    /// devicemapper: a crafted `deviceset-metadata` (an unknown filesystem,
    /// a UUID of `../../../etc`), `base` a FIFO, `transaction-metadata` a
    /// symlink to `/etc/shadow`.
    DmDeviceSet,
}

impl Case {
    pub const ALL: [Case; 14] = [
        Case::Symlinks,
        Case::LinksOutside,
        Case::MountIdEscape,
        Case::CacheIdEscape,
        Case::HugeLower,
        Case::WhiteoutDir,
        Case::LongNames,
        Case::Fifos,
        Case::LayerSymlink,
        Case::ConfigPaths,
        Case::DmPoolFifo,
        Case::DmPoolSymlink,
        Case::DmDevices,
        Case::DmDeviceSet,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Case::Symlinks => "symlinks",
            Case::LinksOutside => "links-outside",
            Case::MountIdEscape => "mount-id-escape",
            Case::CacheIdEscape => "cache-id-escape",
            Case::HugeLower => "huge-lower",
            Case::WhiteoutDir => "whiteout-dir",
            Case::LongNames => "long-names",
            Case::Fifos => "fifos",
            Case::LayerSymlink => "layer-symlink",
            Case::ConfigPaths => "config-paths",
            Case::DmPoolFifo => "dm-pool-fifo",
            Case::DmPoolSymlink => "dm-pool-symlink",
            Case::DmDevices => "dm-devices",
            Case::DmDeviceSet => "dm-device-set",
        }
    }

    /// Whether the driver's layout has what the case damages: vfs and btrfs
    /// keep no links and no parent files, only overlay2 and aufs list
    /// parents, and the pool is devicemapper's.
    pub fn applies_to(self, driver: &str) -> bool {
        match self {
            Case::LinksOutside => !matches!(driver, "vfs" | "btrfs"),
            Case::HugeLower => matches!(driver, "overlay2" | "aufs"),
            Case::DmPoolFifo | Case::DmPoolSymlink | Case::DmDevices | Case::DmDeviceSet => {
                driver == "devicemapper"
            }
            _ => true,
        }
    }
}

/// One hostile root.
#[derive(Debug)]
pub struct Hostile {
    pub case: Case,
    pub driver: &'static str,
    /// The docker root.
    pub root: PathBuf,
    /// Files outside the root that nothing may read.
    pub outside: PathBuf,
    pub fixture: Fixture,
    /// When `info web` must fail: a text its error names (the file at fault).
    pub info_error: Option<String>,
}

/// Sets atime (old) and mtime (newer) of `path` itself, so that any read
/// of it moves its atime, even under `relatime`.
pub fn age(path: &Path) {
    let atime = TimeSpec::new(1_000_000_000, 0);
    let mtime = TimeSpec::new(1_500_000_000, 0);
    utimensat(None, path, &atime, &mtime, UtimensatFlags::NoFollowSymlink)
        .unwrap_or_else(|e| panic!("utimensat {}: {e}", path.display()));
}

/// Ages `dir` and everything below it (a shallow tree of our own).
fn age_tree(dir: &Path) {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(p) = pending.pop() {
        if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            for e in fs::read_dir(&p).expect("list outside") {
                pending.push(e.expect("entry").path());
            }
        }
        age(&p);
    }
}

/// `outside/`: the canary, and a fake layer the symlinks lead to (an
/// overlay2 `diff/`, an overlay `root/`, a devicemapper device record that
/// would read the pool's first device), all aged.
fn build_outside(outside: &Path) {
    for tree in ["fake-layer/diff/etc", "fake-layer/root/etc"] {
        let etc = outside.join(tree);
        fs::create_dir_all(&etc).expect("mkdir outside");
        fs::write(etc.join("passwd"), CANARY).expect("write canary");
        fs::write(etc.join("shadow"), CANARY).expect("write canary");
    }
    fs::write(outside.join("secret"), CANARY).expect("write canary");
    fs::write(outside.join("fake-layer/link"), CANARY).expect("write canary");
    fs::write(outside.join("fake-layer/lower"), CANARY).expect("write canary");
    fs::write(
        outside.join("fake-layer/dm-metadata"),
        r#"{"device_id":1,"size":67108864,"transaction_id":1,"initialized":true,"deleted":false}"#,
    )
    .expect("write a fake device record");
}

/// `../` enough times to climb from anywhere in the root to `/`, then `to`.
fn climb(to: &Path) -> String {
    format!(
        "{}{}",
        "../".repeat(64),
        to.to_string_lossy().trim_start_matches('/')
    )
}

/// Removes `path` (a directory with its contents, or anything else).
fn remove(path: &Path) {
    if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        fs::remove_dir_all(path).unwrap_or_else(|e| panic!("rm {}: {e}", path.display()));
    } else {
        let _ = fs::remove_file(path);
    }
}

/// Replaces `path` (whatever it is) by a FIFO.
fn mkfifo(path: &Path) {
    remove(path);
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644))
        .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
}

fn replace_with_symlink(path: &Path, target: &Path) {
    remove(path);
    symlink(target, path).unwrap_or_else(|e| panic!("symlink {}: {e}", path.display()));
}

/// Creates `levels` nested directories of `name_len`-byte names below
/// `dir` and a file name as long at the bottom, through directory fds
/// (the whole path is longer than PATH_MAX on disk): 15 levels of 255
/// bytes make a 4,095-byte path inside the container, 4,096 with its `/`.
pub fn deep_tree(dir: &Path, levels: usize, name_len: usize) {
    let c = |s: &[u8]| CString::new(s).expect("no NUL");
    let dir_c = c(dir.as_os_str().as_bytes());
    // SAFETY: plain open of a NUL-terminated path.
    let mut fd = unsafe { libc::open(dir_c.as_ptr(), libc::O_DIRECTORY | libc::O_CLOEXEC) };
    assert!(fd >= 0, "open {}", dir.display());
    for i in 0..levels {
        let name = c(format!("{:x}", i % 16).repeat(name_len).as_bytes());
        // SAFETY: valid dirfd and C string.
        let rc = unsafe { libc::mkdirat(fd, name.as_ptr(), 0o755) };
        assert!(
            rc == 0,
            "mkdirat level {i}: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: valid dirfd and C string.
        let next = unsafe { libc::openat(fd, name.as_ptr(), libc::O_DIRECTORY | libc::O_CLOEXEC) };
        assert!(next >= 0, "openat level {i}");
        // SAFETY: fd is ours.
        unsafe { libc::close(fd) };
        fd = next;
    }
    let file = c(&vec![b'f'; name_len]);
    // SAFETY: valid dirfd and C string.
    let f = unsafe {
        libc::openat(
            fd,
            file.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
            0o644,
        )
    };
    assert!(f >= 0, "create the deepest file");
    let body = b"at the bottom of a 4096-byte path\n";
    // SAFETY: valid fd and buffer.
    let n = unsafe { libc::write(f, body.as_ptr().cast(), body.len()) };
    assert_eq!(n, body.len() as isize);
    // SAFETY: fds are ours.
    unsafe {
        libc::close(f);
        libc::close(fd);
    }
}

/// The overlay2 root every case starts from: a two-layer image `base:1`,
/// a second image `other:1`, containers `web` (running, with a volume and
/// a log) and `broken`, and what the case adds inside layers.
fn build_base(root: &Path, case: Case, outside: &Path) -> Fixture {
    let mut b = RootBuilder::new(root);
    let mut base_nodes = vec![
        Node::file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
        Node::file("etc/hostname", b"base\n"),
        Node::file("bin/sh", b"#!fake\n").mode(0o755),
        Node::file("var/d/old", b"old\n"),
        Node::dir("var/d/olddir"),
    ];
    let mut top_nodes = vec![Node::file("etc/motd", b"hello\n")];
    let mut rw = vec![Node::file("root/added", b"by the container\n")];
    match case {
        Case::Symlinks => {
            top_nodes.extend([
                Node::symlink("etc/shadow", "/etc/shadow"),
                Node::symlink("up", "../../.."),
                Node::symlink("escape", climb(&outside.join("secret"))),
                Node::symlink("abs-canary", outside.join("secret").as_os_str().as_bytes()),
                Node::symlink("etc/ssl", outside.as_os_str().as_bytes()),
                Node::hardlink("etc/passwd-hardlink", "etc/motd"),
            ]);
            rw.extend([
                Node::symlink("etc/passwd", "/etc/shadow"),
                Node::symlink("var/d", climb(outside)),
            ]);
        }
        Case::WhiteoutDir => {
            // A directory where a file was, a whiteout over a directory.
            top_nodes.push(Node::dir("etc/hostname"));
            top_nodes.push(Node::file("etc/hostname/inner", b"dir now\n"));
            rw.push(Node::whiteout("var"));
            rw.push(Node::dir(".wh.bin"));
            rw.push(Node::file(".wh.bin/inside", b"in a whiteout-named dir\n"));
            rw.push(Node::dir("etc/.wh..wh..opq"));
        }
        Case::Fifos => {
            rw.push(Node::fifo("etc/passwd"));
            rw.push(Node::fifo("run/pipe"));
        }
        _ => {}
    }
    base_nodes.push(Node::file("etc/base-only", b"base\n"));
    let base = b.layer(&base_nodes);
    let top = b.layer_on(base, &top_nodes);
    let image = b.image(&["base:1"], top, ImageOpts::default());
    let other_top = b.layer_on(base, &[Node::file("other", b"other\n")]);
    let other = b.image(&["other:1"], other_top, ImageOpts::default());
    b.container(
        "web",
        image,
        ContainerOpts {
            rw,
            volumes: vec![Volume {
                name: "data".into(),
                destination: "/data".into(),
                files: vec![Node::file("db", b"x")],
            }],
            ..ContainerOpts::default()
        },
    );
    b.container(
        "broken",
        other,
        ContainerOpts {
            state: ContainerState::Exited(1),
            ..ContainerOpts::default()
        },
    );
    b.finish()
}

/// Where a driver keeps what the cases damage, in a root converted from
/// the fixture (layer ids are the fixture's).
struct Layout<'a> {
    root: &'a Path,
    driver: &'static str,
}

impl Layout<'_> {
    /// `image/<driver>`.
    fn image_store(&self) -> PathBuf {
        self.root.join("image").join(self.driver)
    }

    /// What a layer id names in the driver's own directory (devicemapper:
    /// the device record).
    fn layer_dir(&self, id: &str) -> PathBuf {
        let store = match self.driver {
            "aufs" => "aufs/diff",
            "vfs" => "vfs/dir",
            "btrfs" => "btrfs/subvolumes",
            "devicemapper" => "devicemapper/metadata",
            other => other,
        };
        self.root.join(store).join(id)
    }

    /// Where a layer's files are; `None` inside a thin device.
    fn files_dir(&self, id: &str) -> Option<PathBuf> {
        let dir = self.layer_dir(id);
        match self.driver {
            "overlay2" => Some(dir.join("diff")),
            "overlay" if dir.join("root").is_dir() => Some(dir.join("root")),
            "overlay" => Some(dir.join("upper")),
            "devicemapper" => None,
            _ => Some(dir),
        }
    }

    /// The file listing a layer's parents (overlay2, aufs).
    fn parents_file(&self, id: &str) -> Option<PathBuf> {
        match self.driver {
            "overlay2" => Some(self.layer_dir(id).join("lower")),
            "aufs" => Some(self.root.join("aufs/layers").join(id)),
            _ => None,
        }
    }

    /// The thin pool's files (devicemapper).
    fn pool(&self, file: &str) -> PathBuf {
        self.root.join("devicemapper/devicemapper").join(file)
    }
}

/// Writes the overlay2 root `src` as a `driver` root at `dest`.
fn convert(src: &Path, dest: &Path, driver: &str) {
    match driver {
        "aufs" => crate::convert::overlay2_to_aufs(src, dest),
        "overlay" => crate::convert::overlay2_to_overlay(src, dest),
        "vfs" => crate::full_tree::overlay2_to_full(src, dest, crate::full_tree::VFS),
        // The synthetic tier: plain directories, not subvolumes.
        "btrfs" => crate::full_tree::overlay2_to_full(
            src,
            dest,
            crate::full_tree::FullDriver {
                snapshots: false,
                ..crate::full_tree::BTRFS
            },
        ),
        other => panic!("no hostile builder for {other}"),
    }
}

/// What the case writes among the container's own files (`rw`): in the
/// converted root, or for devicemapper in the overlay2 root before its
/// conversion, since its files live in thin devices.
fn damage_files(case: Case, driver: &str, rw: &Path) {
    match case {
        Case::LongNames => {
            fs::write(rw.join("n".repeat(255)), b"a 255-byte name\n").expect("write");
            deep_tree(rw, 15, 255);
            // And as deep as a path allows: one-byte names (4,088 bytes at 2,040).
            let narrow = rw.join("narrow");
            fs::create_dir(&narrow).expect("mkdir");
            deep_tree(&narrow, narrow_depth(driver), 1);
        }
        Case::WhiteoutDir if matches!(driver, "vfs" | "btrfs") => {
            // A full tree holds no whiteouts: these are plain entries.
            nix::sys::stat::mknod(
                &rw.join("etc/whiteout-device"),
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::from_bits_truncate(0o600),
                0,
            )
            .expect("mknod 0/0");
            fs::write(rw.join(".wh.etc"), b"an aufs whiteout's name\n").expect("write");
        }
        _ => {}
    }
}

/// Builds the hostile root of `case` for `driver` (one of [`DRIVERS`]) in `dir`.
pub fn build(case: Case, driver: &'static str, dir: &Path) -> Hostile {
    assert!(
        case.applies_to(driver),
        "{case:?} has nothing to damage in {driver}"
    );
    let outside = dir.join("outside");
    build_outside(&outside);
    let root = dir.join("docker");
    let mut fixture = match driver {
        "overlay2" => build_base(&root, case, &outside),
        "devicemapper" => {
            // Converted in place: the files go into thin devices first.
            let fx = build_base(&root, case, &outside);
            let rw = fx.overlay2().join(&fx.container(ContainerRef(0)).mount_id);
            damage_files(case, driver, &rw.join("diff"));
            let work = dir.join("work");
            crate::convert_dm::devicemapper_in_place(&root, &work, crate::convert_dm::Fs::Ext4);
            fs::remove_dir_all(&work).expect("remove the work directory");
            fx
        }
        _ => {
            let src = dir.join("overlay2-source");
            let fx = build_base(&src.join("docker"), case, &outside);
            convert(&fx.root, &root, driver);
            fs::remove_dir_all(&src).expect("remove the overlay2 source");
            fx
        }
    };
    fixture.root = root.clone();
    let layout = Layout {
        root: &root,
        driver,
    };
    let web = ContainerRef(0);
    let broken = ContainerRef(1);
    let c = fixture.container(web).clone();
    let image_top = fixture.image(ImageRef(0)).layers[1];
    let base_layer = fixture.image(ImageRef(0)).layers[0];
    let other_top = fixture.image(ImageRef(1)).layers[1];
    if let Some(rw) = layout.files_dir(&c.mount_id) {
        damage_files(case, driver, &rw);
    }
    let layerdb = |chain: &str| {
        layout
            .image_store()
            .join("layerdb/sha256")
            .join(crate::fixture::hex_of(chain))
    };
    let mounts = layout.image_store().join("layerdb/mounts").join(&c.id);
    let mut info_error = None;
    match case {
        Case::Symlinks | Case::WhiteoutDir | Case::LongNames => {}
        Case::LinksOutside => match driver {
            "overlay2" => {
                for entry in fs::read_dir(root.join("overlay2/l")).expect("list l/") {
                    let p = entry.expect("entry").path();
                    replace_with_symlink(&p, &outside.join("fake-layer/diff"));
                }
                symlink(climb(&outside), root.join("overlay2/l/ESCAPE")).expect("symlink");
            }
            "overlay" => {
                for id in [&c.mount_id, &c.init_id] {
                    for sub in ["merged", "work"] {
                        replace_with_symlink(&layout.layer_dir(id).join(sub), &outside);
                    }
                }
                let lower_id = layout.layer_dir(&c.mount_id).join("lower-id");
                fs::write(lower_id, climb(&outside.join("fake-layer"))).expect("write lower-id");
            }
            // aufs and devicemapper: `mnt/<id>`.
            _ => {
                for id in [&c.mount_id, &c.init_id] {
                    replace_with_symlink(&root.join(driver).join("mnt").join(id), &outside);
                }
            }
        },
        Case::MountIdEscape => {
            fs::write(mounts.join("mount-id"), "../../../etc").expect("write mount-id");
            info_error = Some("mount-id".into());
        }
        Case::CacheIdEscape => {
            let chain = &fixture.layer(base_layer).chain_id;
            fs::write(
                layerdb(chain).join("cache-id"),
                climb(&outside.join("fake-layer")),
            )
            .expect("write cache-id");
            info_error = Some("cache-id".into());
        }
        Case::HugeLower => {
            let base_id = &fixture.layer(base_layer).cache_id;
            let text = if driver == "aufs" {
                format!("{base_id}\n").repeat(10_000)
            } else {
                let link = &fixture.layer(base_layer).link;
                vec![format!("l/{link}"); 10_000].join(":")
            };
            let parents = layout.parents_file(&c.mount_id).expect("a parents file");
            fs::write(parents, text).expect("write the parents");
            info_error = Some(if driver == "aufs" { "layers/" } else { "lower" }.into());
        }
        Case::Fifos => {
            let cdir = root.join("containers").join(&c.id);
            mkfifo(&cdir.join("hostconfig.json"));
            mkfifo(&cdir.join(format!("{}-json.log", c.id)));
            let broken_dir = root.join("containers").join(&fixture.container(broken).id);
            mkfifo(&broken_dir.join("config.v2.json"));
            mkfifo(&layout.image_store().join("repositories.json"));
            let other = fixture.layer(other_top).clone();
            let own = layout
                .parents_file(&other.cache_id)
                .or_else(|| layout.files_dir(&other.cache_id))
                .unwrap_or_else(|| layout.layer_dir(&other.cache_id));
            mkfifo(&own);
            mkfifo(&layerdb(&other.chain_id).join("tar-split.json.gz"));
            mkfifo(&layerdb(&other.chain_id).join("size"));
            mkfifo(&layerdb(&fixture.layer(image_top).chain_id).join("tar-split.json.gz"));
        }
        Case::LayerSymlink => {
            let base_id = fixture.layer(base_layer).cache_id.clone();
            let fake = outside.join("fake-layer");
            let target = match driver {
                "aufs" | "vfs" | "btrfs" => fake.join("diff"),
                "devicemapper" => fake.join("dm-metadata"),
                _ => fake,
            };
            replace_with_symlink(&layout.layer_dir(&base_id), &target);
            // And the rw layer's own files: a symlink to the host's /etc.
            let rw = layout
                .files_dir(&c.mount_id)
                .unwrap_or_else(|| layout.layer_dir(&c.mount_id));
            replace_with_symlink(&rw, Path::new("/etc"));
            info_error = Some(c.mount_id.clone());
        }
        Case::ConfigPaths => {
            let cdir = root.join("containers").join(&c.id);
            let path = cdir.join("config.v2.json");
            let mut v: serde_json::Value =
                serde_json::from_slice(&fs::read(&path).expect("read config")).expect("json");
            let secret = outside.join("secret").to_string_lossy().into_owned();
            v["LogPath"] = secret.clone().into();
            v["HostnamePath"] = secret.clone().into();
            v["HostsPath"] = climb(&outside.join("secret")).into();
            v["ResolvConfPath"] = secret.clone().into();
            let mp = &mut v["MountPoints"]["/data"];
            mp["Source"] = outside.to_string_lossy().into_owned().into();
            mp["Name"] = "../../../../outside".into();
            v["MountPoints"]["/etc/shadow"] = serde_json::json!({
                "Source": "/etc/shadow", "Destination": "/etc/shadow", "RW": false,
                "Name": "", "Driver": "", "Type": "bind",
            });
            fs::write(&path, serde_json::to_vec(&v).expect("json")).expect("write config");
            let hpath = cdir.join("hostconfig.json");
            let mut h: serde_json::Value =
                serde_json::from_slice(&fs::read(&hpath).expect("read")).expect("json");
            h["Binds"] = serde_json::json!([
                format!("{}:/mnt:ro", outside.display()),
                "/etc/shadow:/etc/shadow",
                "../../../etc:/up"
            ]);
            fs::write(&hpath, serde_json::to_vec(&h).expect("json")).expect("write hostconfig");
        }
        Case::DmPoolFifo => {
            mkfifo(&layout.pool("metadata"));
            info_error = Some("devicemapper/devicemapper/metadata".into());
        }
        Case::DmPoolSymlink => {
            let pool = outside.join("pool");
            fs::create_dir(&pool).expect("mkdir outside/pool");
            for file in ["metadata", "data"] {
                fs::rename(layout.pool(file), pool.join(file)).expect("move the pool out");
                replace_with_symlink(&layout.pool(file), &pool.join(file));
            }
            info_error = Some("devicemapper/devicemapper/metadata".into());
        }
        Case::DmDevices => {
            let record = |id: &str, json: &str| {
                fs::write(layout.layer_dir(id), json).expect("write a device record");
            };
            // A device the pool does not hold (the largest 24-bit id).
            record(&c.mount_id, r#"{"device_id":16777215,"size":67108864}"#);
            // A size smaller than what the device maps.
            record(
                &fixture.layer(image_top).cache_id,
                r#"{"device_id":3,"size":4096}"#,
            );
            // The wrong type, and a record far over the size limit.
            record(&fixture.layer(other_top).cache_id, r#"{"device_id":"7"}"#);
            let padded = format!(r#"{{"device_id":4,"pad":"{}"}}"#, "x".repeat(1 << 20));
            record(&fixture.container(broken).mount_id, &padded);
            info_error = Some("not in the pool".into());
        }
        Case::DmDeviceSet => {
            fs::write(
                layout.layer_dir("deviceset-metadata"),
                r#"{"next_device_id":3,"BaseDeviceFilesystem":"nfs4","BaseDeviceUUID":"../../../etc"}"#,
            )
            .expect("write deviceset-metadata");
            mkfifo(&layout.layer_dir("base"));
            replace_with_symlink(
                &layout.layer_dir("transaction-metadata"),
                Path::new("/etc/shadow"),
            );
        }
    }
    age_tree(&outside);
    Hostile {
        case,
        driver,
        root,
        outside,
        fixture,
        info_error,
    }
}

/// The result of one bounded run.
#[derive(Debug)]
pub struct Bounded {
    /// `None` when killed (time limit) or ended by a signal.
    pub status: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
    pub timed_out: bool,
    /// What the JSON printed breaks of its published schema
    /// ([`crate::cli::check_json`]).
    pub schema_problem: Option<String>,
}

/// The stack of every run: a debug build needs under 1 MiB, while walks
/// that recursed once per directory level needed 3 MiB for the 2,040-deep
/// trees of [`Case::LongNames`].
pub const STACK_LIMIT: libc::rlim_t = 2 << 20;

/// Runs `docker-mount --root <root> <args>` (stdin closed, a stack of
/// [`STACK_LIMIT`]), killing it after `limit`. Output is read on threads
/// so a full pipe cannot stall it.
pub fn run_bounded(root: &Path, args: &[&std::ffi::OsStr], limit: Duration) -> Bounded {
    use std::os::unix::process::CommandExt;
    let start = Instant::now();
    let mut cmd = Command::new(crate::cli::binary());
    cmd.arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: getrlimit and setrlimit are async-signal-safe, and touch
    // nothing but the child's own limits.
    unsafe {
        cmd.pre_exec(|| {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_STACK, &mut lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            lim.rlim_cur = STACK_LIMIT.min(lim.rlim_max);
            if libc::setrlimit(libc::RLIMIT_STACK, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("start docker-mount");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    // Bounded too: a runaway output must not fill the memory.
    let cap = 64 << 20;
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = (&mut out).take(cap).read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = (&mut err).take(cap).read_to_end(&mut v);
        v
    });
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > limit {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    let stdout = out_t.join().unwrap_or_default();
    let schema_problem = (!timed_out)
        .then(|| crate::cli::check_json(args, status.code(), &stdout).err())
        .flatten();
    Bounded {
        status: status.code(),
        stdout,
        schema_problem,
        stderr: String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned(),
        elapsed,
        timed_out,
    }
}

/// Whether `hay` contains `needle`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Every regular file below `dir` (symlinks not followed), content
/// checked for the canary: for mounted views.
pub fn tree_leaks(dir: &Path, needles: &[Vec<u8>]) -> Vec<PathBuf> {
    let mut leaks = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    let mut seen = 0usize;
    while let Some(d) = pending.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            seen += 1;
            if seen > 100_000 {
                return leaks;
            }
            let p = e.path();
            let Ok(meta) = fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                pending.push(p);
            } else if meta.is_file() {
                let Ok(f) = fs::File::open(&p) else { continue };
                let mut buf = Vec::new();
                let _ = f.take(1 << 20).read_to_end(&mut buf);
                if needles.iter().any(|n| contains(&buf, n)) {
                    leaks.push(p);
                }
            }
        }
    }
    leaks
}
