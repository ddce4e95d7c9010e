//! Checks that the synthetic docker roots of `docker_mount_tests::fixture`
//! hold together the way a real overlay2 root does: ids recompute, tar-split
//! reassembles the layer tars, `l/` links and `lower` files agree, the kernel
//! mounts a container, and two builds of one description are identical.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use docker_mount_tests::fixture::{
    awkward_layer, chain_id, hex_of, sha256_digest, ContainerOpts, ContainerRef, ContainerState,
    Fixture, ImageOpts, Node, RootBuilder, Volume,
};

/// A base layer, a layer deleting and hiding parts of it, and one container
/// that changes more: the merged view is known exactly.
fn small(dir: &Path) -> (Fixture, ContainerRef) {
    let mut b = RootBuilder::new(dir);
    let base = b.layer(&[
        Node::file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
        Node::file("etc/keep", b"base\n"),
        Node::file("var/d/old", b"old\n"),
        Node::dir("var/d/olddir"),
    ]);
    let second = b.layer_on(
        base,
        &[
            Node::whiteout("etc/passwd"),
            Node::opaque("var/d"),
            Node::file("var/d/new", b"new\n"),
        ],
    );
    let third = b.layer_on(second, &awkward_layer());
    let image = b.image(&["small:1"], third, ImageOpts::default());
    let c = b.container(
        "web",
        image,
        ContainerOpts {
            rw: vec![
                Node::file("root/added", b"by the container\n"),
                Node::whiteout("etc/keep"),
            ],
            volumes: vec![Volume {
                name: "data".into(),
                destination: "/data".into(),
                files: vec![Node::file("db", b"x")],
            }],
            binds: vec!["/srv:/host:ro".into()],
            ..ContainerOpts::default()
        },
    );
    b.container(
        "stopped",
        image,
        ContainerOpts {
            state: ContainerState::Exited(137),
            ..ContainerOpts::default()
        },
    );
    (b.finish(), c)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

#[test]
fn chain_ids_recompute_from_diff_ids() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (fx, _) = small(tmp.path());
    let image = &fx.images[0];
    let config_path = fx
        .image_dir()
        .join("imagedb/content/sha256")
        .join(hex_of(&image.id));
    let bytes = fs::read(&config_path).expect("image config");
    assert_eq!(sha256_digest(&bytes), image.id);
    let config: serde_json::Value = serde_json::from_slice(&bytes).expect("config json");
    let diff_ids = config["rootfs"]["diff_ids"].as_array().expect("diff_ids");
    assert_eq!(diff_ids.len(), 3);
    let mut parent: Option<String> = None;
    for diff_id in diff_ids {
        let diff_id = diff_id.as_str().expect("string");
        let chain = chain_id(parent.as_deref(), diff_id);
        let db = fx.layerdb_dir(&chain);
        assert_eq!(read(&db.join("diff")), diff_id);
        assert_eq!(fs::read_to_string(db.join("parent")).ok(), parent);
        let cache_id = read(&db.join("cache-id"));
        assert!(fx.overlay2().join(&cache_id).join("diff").is_dir());
        read(&db.join("size")).parse::<u64>().expect("decimal size");
        parent = Some(chain);
    }
    let repos = json(&fx.image_dir().join("repositories.json"));
    assert_eq!(repos["Repositories"]["small"]["small:1"], image.id.as_str());
    let mounts = fx.mounts_dir(ContainerRef(0));
    assert_eq!(read(&mounts.join("parent")), parent.expect("top chain"));
    assert_eq!(
        read(&mounts.join("init-id")),
        format!("{}-init", read(&mounts.join("mount-id")))
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = s.bytes().filter(|&c| c != b'=').map(value).collect();
    let mut out = Vec::new();
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &d)| n | u32::from(d) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// Rebuilds a layer tar from tar-split and the files of `diff/`, the way
/// docker does for `docker save`.
fn reassemble(fx: &Fixture, chain: &str, diff: &Path) -> Vec<u8> {
    let gz = fs::File::open(fx.layerdb_dir(chain).join("tar-split.json.gz")).expect("tar-split");
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_string(&mut text)
        .expect("gzip of json");
    let mut tar = Vec::new();
    for (position, line) in text.lines().enumerate() {
        let entry: serde_json::Value = serde_json::from_str(line).expect("json line");
        assert_eq!(entry["position"], position);
        match entry["type"].as_u64() {
            Some(2) => tar.extend(base64_decode(
                entry["payload"].as_str().expect("segment payload"),
            )),
            Some(1) => {
                let name = match entry["name"].as_str() {
                    Some(name) => name.as_bytes().to_vec(),
                    None => base64_decode(entry["name_raw"].as_str().expect("name or name_raw")),
                };
                if entry["size"].as_u64().unwrap_or(0) > 0 {
                    let path = diff.join(std::ffi::OsStr::from_bytes(&name));
                    tar.extend(fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}")));
                }
            }
            other => panic!("unknown tar-split entry type {other:?}"),
        }
    }
    tar
}

#[test]
fn tar_split_reassembles_every_layer_tar() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (fx, _) = small(tmp.path());
    for layer in &fx.layers {
        let rebuilt = reassemble(
            &fx,
            &layer.chain_id,
            &fx.overlay2().join(&layer.cache_id).join("diff"),
        );
        assert!(
            rebuilt == layer.tar,
            "tar-split of {} does not rebuild its tar",
            layer.chain_id
        );
        assert_eq!(sha256_digest(&rebuilt), layer.diff_id);
    }
    // The awkward layer, as any tar reader sees it.
    let mut archive = tar::Archive::new(&fx.layers[2].tar[..]);
    let entries: Vec<(Vec<u8>, tar::EntryType, u32)> = archive
        .entries()
        .expect("tar")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.path_bytes().into_owned(),
                e.header().entry_type(),
                e.header().mode().expect("mode"),
            )
        })
        .collect();
    let find = |name: &[u8]| {
        entries
            .iter()
            .find(|e| e.0 == name)
            .unwrap_or_else(|| panic!("{name:?} missing"))
    };
    assert_eq!(find(b".wh.gone").1, tar::EntryType::Regular);
    assert_eq!(find(b"opaque/.wh..wh..opq").1, tar::EntryType::Regular);
    assert_eq!(find(b"names/latin1-\xe9t\xe9").1, tar::EntryType::Regular);
    assert_eq!(find(b"hardlinks/second").1, tar::EntryType::Link);
    assert_eq!(find(b"bin/setuid").2, 0o104_755);
    assert!(entries.iter().any(|e| e.0.len() > 150));
}

#[test]
fn overlay2_layout_is_consistent() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (fx, c) = small(tmp.path());
    let overlay2 = fx.overlay2();
    let check = |id: &str, lower: &[String]| {
        let dir = overlay2.join(id);
        let link = read(&dir.join("link"));
        assert_eq!(link.len(), 26);
        assert!(link
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        let l = overlay2.join("l").join(&link);
        assert_eq!(
            fs::read_link(&l).expect("l/ link"),
            PathBuf::from(format!("../{id}/diff"))
        );
        assert_eq!(
            fs::canonicalize(&l).expect("resolves"),
            fs::canonicalize(dir.join("diff")).expect("diff")
        );
        if lower.is_empty() {
            assert!(!dir.join("lower").exists() && !dir.join("work").exists());
        } else {
            let want: Vec<String> = lower.iter().map(|l| format!("l/{l}")).collect();
            assert_eq!(read(&dir.join("lower")), want.join(":"));
            assert!(dir.join("work").is_dir());
        }
    };
    for layer in &fx.layers {
        let mut parents = Vec::new();
        let mut p = layer.parent;
        while let Some(l) = p {
            parents.push(fx.layer(l).link.clone());
            p = fx.layer(l).parent;
        }
        check(&layer.cache_id, &parents);
        assert!(overlay2.join(&layer.cache_id).join("committed").exists());
    }
    let links = fx.container_links(c);
    let info = fx.container(c);
    check(&info.mount_id, &links[1..]);
    check(&info.init_id, &links[2..]);
    let init = overlay2.join(&info.init_id).join("diff");
    assert_eq!(
        fs::read_link(init.join("etc/mtab")).expect("mtab"),
        PathBuf::from("/proc/mounts")
    );
    assert!(init.join(".dockerenv").is_file() && init.join("dev/pts").is_dir());

    let cdir = fx.container_dir(c);
    let v2 = json(&cdir.join("config.v2.json"));
    assert_eq!(v2["ID"], info.id.as_str());
    assert_eq!(v2["Name"], "/web");
    assert_eq!(v2["Driver"], "overlay2");
    assert_eq!(v2["State"]["Running"], true);
    assert_eq!(v2["MountPoints"]["/data"]["Name"], "data");
    assert_eq!(v2["MountPoints"]["/host"]["RW"], false);
    assert_eq!(
        json(&cdir.join("hostconfig.json"))["Binds"][1],
        "/srv:/host:ro"
    );
    assert_eq!(
        read(&cdir.join(format!("{}-json.log", info.id)))
            .lines()
            .count(),
        2
    );
    assert_eq!(read(&fx.root.join("volumes/data/_data/db")), "x");
    let stopped = json(&fx.container_dir(ContainerRef(1)).join("config.v2.json"));
    assert_eq!(stopped["State"]["ExitCode"], 137);
}

#[test]
fn deep_chain_at_long_path() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp
        .path()
        .join(["a-rather-long-evidence-directory-name"; 6].join("/"));
    assert!(dir.as_os_str().len() > 200);
    let started = std::time::Instant::now();
    let mut b = RootBuilder::new(&dir);
    let image = b.deep_image(&["deep:150"], 150);
    let c = b.container("deep", image, ContainerOpts::default());
    let fx = b.finish();
    eprintln!("150-layer root built in {:?}", started.elapsed());
    assert_eq!(fx.image(image).layers.len(), 150);
    let top = fx.layer(*fx.image(image).layers.last().expect("top"));
    let lower = read(&fx.overlay2().join(&top.cache_id).join("lower"));
    assert_eq!(lower.split(':').count(), 149);
    assert_eq!(fx.container_links(c).len(), 152);
}

#[test]
fn same_description_same_root() {
    let (a, b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    small(a.path());
    small(b.path());
    assert_eq!(listing(a.path()), listing(b.path()));
}

/// Everything about a tree but inode numbers and ctimes.
fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let m = path.symlink_metadata().expect("lstat");
        let content = if m.is_file() {
            sha256_digest(&fs::read(&path).expect("read"))
        } else if m.file_type().is_symlink() {
            format!("{:?}", fs::read_link(&path).expect("readlink"))
        } else {
            String::new()
        };
        let xattrs: Vec<_> = xattr::list(&path).expect("xattrs").collect();
        out.push(format!(
            "{:?} {:o} {}:{} {} {} {} {content} {xattrs:?}",
            path.strip_prefix(root).expect("below root"),
            m.mode(),
            m.uid(),
            m.gid(),
            m.mtime(),
            m.rdev(),
            if m.is_dir() { 0 } else { m.size() },
        ));
        if m.is_dir() {
            stack.extend(
                fs::read_dir(&path)
                    .expect("readdir")
                    .map(|e| e.expect("entry").path()),
            );
        }
    }
    out.sort();
    out
}

#[test]
fn damage_helpers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (fx, c) = small(tmp.path());
    fx.truncate_config(c);
    assert!(serde_json::from_slice::<serde_json::Value>(
        &fs::read(fx.container_dir(c).join("config.v2.json")).expect("read")
    )
    .is_err());
    fx.set_mount_id(c, "../../etc");
    assert_eq!(read(&fx.mounts_dir(c).join("mount-id")), "../../etc");
    fx.remove_mount_id(ContainerRef(1));
    assert!(!fx.mounts_dir(ContainerRef(1)).join("mount-id").exists());
    let (a, b) = (fx.images[0].layers[1], fx.images[0].layers[2]);
    fx.set_cache_id(a, "../../etc");
    assert_eq!(
        read(&fx.layerdb_dir(&fx.layer(a).chain_id).join("cache-id")),
        "../../etc"
    );
    fx.make_parent_cycle(a, b);
    assert_eq!(
        read(&fx.layerdb_dir(&fx.layer(a).chain_id).join("parent")),
        fx.layer(b).chain_id
    );
    assert_eq!(
        read(&fx.layerdb_dir(&fx.layer(b).chain_id).join("parent")),
        fx.layer(a).chain_id
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    let mut builder = RootBuilder::new(tmp.path());
    let top = builder.layer(&[Node::file("x", b"x")]);
    let bad = builder.mismatched_image(&["bad"], top, ImageOpts::default());
    let fx = builder.finish();
    let config = json(
        &fx.image_dir()
            .join("imagedb/content/sha256")
            .join(hex_of(&fx.image(bad).id)),
    );
    let diff_id = config["rootfs"]["diff_ids"][0].as_str().expect("diff id");
    assert!(!fx.layerdb_dir(diff_id).exists());
}

/// Unmounts (lazily) even when the test fails.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn kernel_overlay_mount_shows_merged_view() {
    if !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must run this test as root"
        );
        eprintln!("skipped: needs root for an overlay mount");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let (fx, c) = small(&tmp.path().join("root"));
    let target = tmp.path().join("merged");
    fs::create_dir(&target).expect("mountpoint");
    let lower: Vec<String> = fx
        .container_links(c)
        .iter()
        .map(|l| format!("l/{l}"))
        .collect();
    // Relative l/ names from ROOT/overlay2, as docker mounts, without a
    // process-wide chdir: the child mount(8) runs there.
    let status = Command::new("mount")
        .current_dir(fx.overlay2())
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!("ro,lowerdir={}", lower.join(":")))
        .arg(&target)
        .status()
        .expect("run mount");
    assert!(status.success(), "mount failed: {status}");
    let _mounted = Mounted(target.clone());

    assert!(
        !target.join("etc/passwd").exists(),
        "whiteout in layer 2 hides it"
    );
    assert!(
        !target.join("etc/keep").exists(),
        "whiteout in the rw layer hides it"
    );
    assert!(!target.join("gone").exists());
    let mut var_d: Vec<_> = fs::read_dir(target.join("var/d"))
        .expect("var/d")
        .map(|e| e.expect("entry").file_name())
        .collect();
    var_d.sort();
    assert_eq!(var_d, ["new"], "opaque var/d hides old and olddir");
    let opaque: Vec<_> = fs::read_dir(target.join("opaque"))
        .expect("opaque")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(opaque, ["kept"]);
    assert_eq!(read(&target.join("root/added")), "by the container\n");
    assert!(target.join(".dockerenv").is_file());
    assert_eq!(
        fs::read_link(target.join("etc/mtab")).expect("mtab"),
        PathBuf::from("/proc/mounts")
    );
    assert_eq!(
        fs::read(target.join(std::ffi::OsStr::from_bytes(b"names/latin1-\xe9t\xe9")))
            .expect("non-utf-8 name"),
        b"not utf-8\n"
    );
    let m = target
        .join("bin/setuid")
        .symlink_metadata()
        .expect("setuid");
    assert_eq!(m.mode() & 0o7777, 0o4755);
    let odd = target
        .join("home/odd/owned")
        .symlink_metadata()
        .expect("odd owner");
    assert_eq!((odd.uid(), odd.gid()), (12345, 54321));
}

#[test]
#[should_panic(expected = "is not a directory")]
fn nodes_never_write_through_symlinks() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).expect("outside dir");
    let mut b = RootBuilder::new(&tmp.path().join("root"));
    b.layer(&[
        Node::symlink("etc", outside.as_os_str().as_bytes()),
        Node::file("etc/escaped", b"x"),
    ]);
}
