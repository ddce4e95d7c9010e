//! btrfs-specific tier 2: the evidence check itself must see changes
//! inside subvolumes, and `diff` must trust snapshot inodes only where the
//! driver declares them (the shared suite is in real_drivers.rs).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::Write;
use std::path::Path;
use std::process::Command;

use docker_mount_tests::fixture::{ContainerOpts, ImageOpts, Node, RootBuilder};
use docker_mount_tests::mounts::MountPoint;
use docker_mount_tests::{cli, full_tree, integrity, real};
use serde_json::Value;

const DRIVER: &str = "btrfs";

/// A fresh btrfs of `bytes` in `dir/img`, mounted read-write.
fn mounted_btrfs(dir: &Path, bytes: u64) -> MountPoint {
    let img = dir.join("img");
    std::fs::File::create(&img).unwrap().set_len(bytes).unwrap();
    run(Command::new(real::mkfs_btrfs().unwrap())
        .args(["-q", "-f"])
        .arg(&img));
    let mnt = MountPoint::new();
    run(Command::new("mount")
        .args(["-t", "btrfs", "-o", "loop"])
        .arg(&img)
        .arg(mnt.path()));
    mnt
}

fn run(c: &mut Command) {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{c:?}: {out:?}");
}

/// A root to take the evidence state of: every subvolume below `root`.
fn evidence_root(root: &Path, dir: &Path) -> real::RealRoot {
    real::RealRoot {
        driver: DRIVER.into(),
        root: root.to_path_buf(),
        dir: dir.to_path_buf(),
        containers: Vec::new(),
        inspect: Value::Null,
        ps: Vec::new(),
        images: Value::Null,
        build_seconds: 0.0,
        deep_layers: 0,
        image: None,
        image_sha256: None,
    }
}

/// One integrity snapshot stops at every btrfs subvolume (each has its own
/// `st_dev`), so it cannot see a change inside one; the evidence check
/// snapshots each subvolume as well and must see it.
#[test]
fn evidence_check_sees_changes_inside_subvolumes() {
    if !real::require_driver(DRIVER) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mnt = mounted_btrfs(tmp.path(), 256 << 20);
    run(Command::new("btrfs")
        .args(["subvolume", "create"])
        .arg(mnt.path().join("sv")));
    std::fs::create_dir(mnt.path().join("sv/d")).unwrap();
    std::fs::write(mnt.path().join("sv/d/f"), "before\n").unwrap();
    let r = evidence_root(mnt.path(), tmp.path());
    let before = r.evidence();
    assert_eq!(before.trees(), 2, "the root and the subvolume");
    let one = integrity::snapshot(mnt.path());
    std::fs::write(mnt.path().join("sv/d/f"), "after!\n").unwrap();
    assert!(
        one.diff(&integrity::snapshot(mnt.path())).is_empty(),
        "a single snapshot was expected to stop at the subvolume"
    );
    let diff = before.diff(&r.evidence());
    assert!(
        diff.iter()
            .any(|d| d.starts_with("/sv: ") && d.contains("d/f")),
        "the evidence check missed a change in a subvolume: {diff:?}"
    );
}

/// Regular files of the image in [`snapshot_root`].
const FILES: usize = 200;

/// A container `web` on an image of [`FILES`] files (and `/etc/passwd`),
/// as a btrfs root (every layer a snapshot of its parent) at `mnt/docker`
/// and as a vfs layout of the same snapshots at `mnt/vfs`. The container
/// added `/root/note` and rewrote `/etc/passwd` in place (same inode),
/// putting its mtime back as `touch -r` does.
fn snapshot_root(tmp: &Path, mnt: &Path) {
    let src = tmp.join("overlay2");
    let mut b = RootBuilder::new(&src);
    let mut files: Vec<Node> = (0..FILES)
        .map(|i| Node::file(format!("srv/f{i:03}"), format!("file {i}\n")))
        .collect();
    files.push(Node::file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"));
    let base = b.layer(&files);
    let image = b.image(&["snap:1"], base, ImageOpts::default());
    let web = b.container(
        "web",
        image,
        ContainerOpts {
            rw: vec![Node::file("root/note", "written by the container\n")],
            ..ContainerOpts::default()
        },
    );
    let fx = b.finish();
    let mount_id = fx.container(web).mount_id.clone();
    let mut vfs_named = full_tree::BTRFS;
    vfs_named.name = "vfs";
    vfs_named.store = "vfs/dir";
    for (driver, dir) in [(full_tree::BTRFS, "docker"), (vfs_named, "vfs")] {
        let root = mnt.join(dir);
        full_tree::overlay2_to_full(&src, &root, driver);
        let passwd = root.join(driver.store).join(&mount_id).join("etc/passwd");
        let mtime = std::fs::symlink_metadata(&passwd)
            .unwrap()
            .modified()
            .unwrap();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&passwd)
            .unwrap();
        f.write_all(b"r00t").unwrap();
        f.set_modified(mtime).unwrap();
    }
    run(Command::new("mount").args(["-o", "remount,ro"]).arg(mnt));
}

/// btrfs declares snapshot inodes: a file with the inode number, ctime and
/// birth time of the parent's copy is not read, and a file rewritten in
/// place (same inode, new ctime) still is, and differs. `--content full`
/// and a driver without the feature (vfs) read every file, and agree.
#[test]
fn diff_reads_only_what_snapshot_inodes_do_not_prove_unchanged() {
    if !real::require_driver(DRIVER) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mnt = mounted_btrfs(tmp.path(), 512 << 20);
    snapshot_root(tmp.path(), mnt.path());
    let r = evidence_root(mnt.path(), tmp.path());
    let before = r.evidence();
    let root = mnt.path().join("docker");
    let want =
        "C /etc\nC /etc/passwd\t(content only: metadata and mtime equal)\nA /root\nA /root/note\n";

    let auto = cli::run(&root, &["-v", "diff", "web"]);
    assert_eq!(auto.ok(), want);
    // The image's files and the init layer's (`.dockerenv`, `etc/hosts`, ...).
    let (compared, proved) = cli::diff_counts(&auto.stderr);
    // Symlink targets are always compared (one readlink): the init layer's `/etc/mtab`.
    assert_eq!(
        compared, 2,
        "only the rewritten file and the symlink are read"
    );
    assert!(proved as usize >= FILES, "{proved} proved unchanged");

    let full = cli::run(&root, &["-v", "diff", "web", "--content", "full"]);
    assert_eq!(full.ok(), want);
    assert_eq!(cli::diff_counts(&full.stderr), (compared + proved, 0));

    let vfs = cli::run(&mnt.path().join("vfs"), &["-v", "diff", "web"]);
    assert_eq!(vfs.ok(), want);
    assert_eq!(
        cli::diff_counts(&vfs.stderr),
        (compared + proved, 0),
        "vfs declares no snapshot inodes"
    );

    before.assert_unchanged(&r.evidence());
}
