//! btrfs-specific tier 2: the evidence check itself must see changes
//! inside subvolumes (the shared suite is in real_drivers.rs).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::process::Command;

use docker_mount_tests::mounts::MountPoint;
use docker_mount_tests::{integrity, real};
use serde_json::Value;

const DRIVER: &str = "btrfs";

/// One integrity snapshot stops at every btrfs subvolume (each has its own
/// `st_dev`), so it cannot see a change inside one; the evidence check
/// snapshots each subvolume as well and must see it.
#[test]
fn evidence_check_sees_changes_inside_subvolumes() {
    if !real::require_driver(DRIVER) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let run = |c: &mut Command| {
        let out = c.output().unwrap();
        assert!(out.status.success(), "{c:?}: {out:?}");
    };
    run(Command::new(real::mkfs_btrfs().unwrap())
        .args(["-q", "-f"])
        .arg(&img));
    let mnt = MountPoint::new();
    run(Command::new("mount")
        .args(["-t", "btrfs", "-o", "loop"])
        .arg(&img)
        .arg(mnt.path()));
    run(Command::new("btrfs")
        .args(["subvolume", "create"])
        .arg(mnt.path().join("sv")));
    std::fs::create_dir(mnt.path().join("sv/d")).unwrap();
    std::fs::write(mnt.path().join("sv/d/f"), "before\n").unwrap();
    let r = real::RealRoot {
        driver: DRIVER.into(),
        root: mnt.path().to_path_buf(),
        dir: tmp.path().to_path_buf(),
        containers: Vec::new(),
        inspect: Value::Null,
        ps: Vec::new(),
        images: Value::Null,
        build_seconds: 0.0,
        deep_layers: 0,
        image: None,
        image_sha256: None,
    };
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
