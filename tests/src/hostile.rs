//! Hostile docker roots (issue 9): a small root made by the fixture
//! builder, then damaged the way a crafted or corrupted image would be —
//! symlinks out of a layer, `l/` links pointing outside, a `mount-id` of
//! `../../../etc`, a 10,000-entry `lower`, whiteouts that are directories,
//! 255-byte names and 4,096-byte paths, FIFOs where files are expected, a
//! layer directory replaced by a symlink, and configs naming paths
//! outside the root — for overlay2, and for aufs (converted from it).
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
    ContainerOpts, ContainerState, Fixture, ImageOpts, Node, RootBuilder, Volume,
};

/// The content of every file outside the root: must never be printed.
pub const CANARY: &str = "CANARY-outside-the-evidence-9f31c2";

/// The ways a root is hostile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// Symlinks in layers to `/etc/shadow`, `../../..`, and outside files.
    Symlinks,
    /// `l/` links (overlay2) or `mnt/` entries (aufs) pointing outside.
    LinksOutside,
    /// `mount-id` of `../../../etc`.
    MountIdEscape,
    /// A rw layer with 10,000 parents (`lower` / `layers`).
    HugeLower,
    /// Whiteouts that are directories; whiteouts over directories.
    WhiteoutDir,
    /// Names of 255 bytes and paths of 4,096 bytes.
    LongNames,
    /// FIFOs where files are expected: config.v2.json, hostconfig.json,
    /// repositories.json, a log, a `lower`, a tar-split, a file in a layer.
    Fifos,
    /// A layer directory replaced by a symlink to outside.
    LayerSymlink,
    /// config.v2.json and hostconfig.json naming paths outside the root
    /// (log, volumes, bind sources, hostname).
    ConfigPaths,
}

impl Case {
    pub const ALL: [Case; 9] = [
        Case::Symlinks,
        Case::LinksOutside,
        Case::MountIdEscape,
        Case::HugeLower,
        Case::WhiteoutDir,
        Case::LongNames,
        Case::Fifos,
        Case::LayerSymlink,
        Case::ConfigPaths,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Case::Symlinks => "symlinks",
            Case::LinksOutside => "links-outside",
            Case::MountIdEscape => "mount-id-escape",
            Case::HugeLower => "huge-lower",
            Case::WhiteoutDir => "whiteout-dir",
            Case::LongNames => "long-names",
            Case::Fifos => "fifos",
            Case::LayerSymlink => "layer-symlink",
            Case::ConfigPaths => "config-paths",
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

/// `outside/`: the canary, a fake layer the symlinks lead to, all aged.
fn build_outside(outside: &Path) {
    let fake = outside.join("fake-layer/diff/etc");
    fs::create_dir_all(&fake).expect("mkdir outside");
    fs::write(outside.join("secret"), CANARY).expect("write canary");
    fs::write(fake.join("passwd"), CANARY).expect("write canary");
    fs::write(fake.join("shadow"), CANARY).expect("write canary");
    fs::write(outside.join("fake-layer/link"), CANARY).expect("write canary");
    fs::write(outside.join("fake-layer/lower"), CANARY).expect("write canary");
    for p in [
        "fake-layer/diff/etc/passwd",
        "fake-layer/diff/etc/shadow",
        "fake-layer/diff/etc",
        "fake-layer/diff",
        "fake-layer/link",
        "fake-layer/lower",
        "fake-layer",
        "secret",
        "",
    ] {
        age(&outside.join(p));
    }
}

/// `../` enough times to climb from anywhere in the root to `/`, then `to`.
fn climb(to: &Path) -> String {
    format!(
        "{}{}",
        "../".repeat(64),
        to.to_string_lossy().trim_start_matches('/')
    )
}

fn mkfifo(path: &Path) {
    let _ = fs::remove_file(path);
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644))
        .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
}

fn replace_with_symlink(path: &Path, target: &Path) {
    if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        fs::remove_dir_all(path).unwrap_or_else(|e| panic!("rm {}: {e}", path.display()));
    } else {
        let _ = fs::remove_file(path);
    }
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

/// Builds the hostile root of `case` for `driver` (`overlay2` or `aufs`) in `dir`.
pub fn build(case: Case, driver: &'static str, dir: &Path) -> Hostile {
    let outside = dir.join("outside");
    build_outside(&outside);
    let root = dir.join("docker");
    let mut fixture = if driver == "aufs" {
        let src = dir.join("overlay2-source");
        let fx = build_base(&src.join("docker"), case, &outside);
        crate::convert::overlay2_to_aufs(&fx.root, &root);
        fs::remove_dir_all(&src).expect("remove the overlay2 source");
        fx
    } else {
        assert_eq!(driver, "overlay2", "no hostile builder for {driver}");
        build_base(&root, case, &outside)
    };
    fixture.root = root.clone();
    let web = crate::fixture::ContainerRef(0);
    let broken = crate::fixture::ContainerRef(1);
    let c = fixture.container(web).clone();
    let image_top = fixture.image(crate::fixture::ImageRef(0)).layers[1];
    let base_layer = fixture.image(crate::fixture::ImageRef(0)).layers[0];
    let other_top = fixture.image(crate::fixture::ImageRef(1)).layers[1];
    let layer_dir = |id: &str| match driver {
        "aufs" => root.join("aufs/diff").join(id),
        _ => root.join("overlay2").join(id),
    };
    let diff_dir = |id: &str| match driver {
        "aufs" => root.join("aufs/diff").join(id),
        _ => root.join("overlay2").join(id).join("diff"),
    };
    let parents_file = |id: &str| match driver {
        "aufs" => root.join("aufs/layers").join(id),
        _ => root.join("overlay2").join(id).join("lower"),
    };
    let store = if driver == "aufs" { "aufs" } else { "overlay2" };
    let mounts = root
        .join("image")
        .join(store)
        .join("layerdb/mounts")
        .join(&c.id);
    let mut info_error = None;
    match case {
        Case::Symlinks | Case::WhiteoutDir => {}
        Case::LinksOutside => {
            if driver == "aufs" {
                for id in [&c.mount_id, &c.init_id] {
                    replace_with_symlink(&root.join("aufs/mnt").join(id), &outside);
                }
            } else {
                for entry in fs::read_dir(root.join("overlay2/l")).expect("list l/") {
                    let p = entry.expect("entry").path();
                    replace_with_symlink(&p, &outside.join("fake-layer/diff"));
                }
                symlink(climb(&outside), root.join("overlay2/l/ESCAPE")).expect("symlink");
            }
        }
        Case::MountIdEscape => {
            fs::write(mounts.join("mount-id"), "../../../etc").expect("write mount-id");
            info_error = Some("mount-id".into());
        }
        Case::HugeLower => {
            let base_id = &fixture.layer(base_layer).cache_id;
            let text = if driver == "aufs" {
                format!("{base_id}\n").repeat(10_000)
            } else {
                let link = &fixture.layer(base_layer).link;
                vec![format!("l/{link}"); 10_000].join(":")
            };
            fs::write(parents_file(&c.mount_id), text).expect("write the parents");
            info_error = Some(if driver == "aufs" { "layers/" } else { "lower" }.into());
        }
        Case::LongNames => {
            let rw = diff_dir(&c.mount_id);
            fs::write(rw.join("n".repeat(255)), b"a 255-byte name\n").expect("write");
            deep_tree(&rw, 15, 255);
            // And as deep as a path allows: 2,040 one-byte names (4,088 bytes).
            let narrow = rw.join("narrow");
            fs::create_dir(&narrow).expect("mkdir");
            deep_tree(&narrow, 2040, 1);
        }
        Case::Fifos => {
            let cdir = root.join("containers").join(&c.id);
            mkfifo(&cdir.join("hostconfig.json"));
            mkfifo(&cdir.join(format!("{}-json.log", c.id)));
            let broken_dir = root.join("containers").join(&fixture.container(broken).id);
            mkfifo(&broken_dir.join("config.v2.json"));
            mkfifo(&root.join("image").join(store).join("repositories.json"));
            let other = fixture.layer(other_top).clone();
            mkfifo(&parents_file(&other.cache_id));
            let layerdb = |chain: &str| {
                root.join("image")
                    .join(store)
                    .join("layerdb/sha256")
                    .join(crate::fixture::hex_of(chain))
            };
            mkfifo(&layerdb(&other.chain_id).join("tar-split.json.gz"));
            mkfifo(&layerdb(&other.chain_id).join("size"));
            mkfifo(&layerdb(&fixture.layer(image_top).chain_id).join("tar-split.json.gz"));
        }
        Case::LayerSymlink => {
            let base_id = fixture.layer(base_layer).cache_id.clone();
            let target = if driver == "aufs" {
                outside.join("fake-layer/diff")
            } else {
                outside.join("fake-layer")
            };
            replace_with_symlink(&layer_dir(&base_id), &target);
            // And the rw layer's own diff: a symlink to the host's /etc.
            replace_with_symlink(&diff_dir(&c.mount_id), Path::new("/etc"));
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
    }
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
}

/// Runs `docker-mount --root <root> <args>` (stdin closed), killing it
/// after `limit`. Output is read on threads so a full pipe cannot stall it.
pub fn run_bounded(root: &Path, args: &[&std::ffi::OsStr], limit: Duration) -> Bounded {
    let start = Instant::now();
    let mut child = Command::new(crate::cli::binary())
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start docker-mount");
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
    Bounded {
        status: status.code(),
        stdout: out_t.join().unwrap_or_default(),
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
