//! Tier 2, written once and run per driver: roots made by a real dockerd
//! (overlay v1, vfs, btrfs; overlay2 and aufs have their own files with more
//! cases). `docker export` and `docker diff`, taken before the crash, are
//! the oracles; `RealRoot::evidence` hashes the root (every btrfs
//! subvolume and the btrfs image file too) before and after.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;

use docker_mount_tests::mounts::{assert_read_only_mount, MountPoint};
use docker_mount_tests::{cli, manifest, real};
use serde_json::Value;

macro_rules! real_conformance {
    ($name:ident, $driver:expr, $root:path) => {
        mod $name {
            use super::*;

#[test]
            fn containers_list_export_diff_and_mount_like_docker() {
    if !real::require_driver($driver) {
        return;
    }
    let r = $root();
    let before = r.evidence();
    let listed = cli::run(&r.root, &["list", "--all", "--json"]).json();
    assert_eq!(listed.as_array().unwrap().len(), r.containers.len());
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["driver"] == $driver && c["driver_loaded"] == true),
        "{listed}"
    );
    let out = tempfile::tempdir().unwrap();
    for c in &r.containers {
        let want = manifest::from_tar(&c.export_tar);
        let tar = out.path().join(format!("{}.tar", c.name));
        cli::run(&r.root, &["export", &c.name, "-o", tar.to_str().unwrap()]).ok();
        let diffs = manifest::compare(&want, &manifest::from_tar(&tar), &[]);
        assert!(
            diffs.is_empty(),
            "{}: export differs from docker export:\n{}",
            c.name,
            diffs.join("\n")
        );
        let ours = cli::run(&r.root, &["diff", &c.name]);
        assert_eq!(
            real::diff_lines(ours.ok()),
            real::diff_lines(&c.diff),
            "{}: diff",
            c.name
        );
        let mnt = MountPoint::new();
        cli::run(&r.root, &["mount", &c.name, mnt.path().to_str().unwrap()]).ok();
        assert_read_only_mount(mnt.path());
        let diffs = manifest::compare(&want, &manifest::from_dir(mnt.path()), &[]);
        assert!(
            diffs.is_empty(),
            "{}: mount differs from docker export:\n{}",
            c.name,
            diffs.join("\n")
        );
        cli::run(&r.root, &["umount", mnt.path().to_str().unwrap()]).ok();
    }
    let after = r.evidence();
    eprintln!(
        "evidence: {} trees, {} entries{}",
        after.trees(),
        after.entries(),
        if after.has_image() {
            ", and the image file"
        } else {
            ""
        }
    );
    before.assert_unchanged(&after);
}

/// What `deleted` should list for full trees, which have no whiteouts: the
/// entries a layer's parent held and the layer does not, found by comparing
/// the two trees. For a container's rw layer these are exactly docker
/// diff's `D` lines.
#[test]
            fn deleted_lists_what_docker_diff_deleted() {
    if !real::require_driver($driver) {
        return;
    }
    let r = $root();
    let before = r.evidence();
    let mut failures = Vec::new();
    for c in &r.containers {
        let found: Value = cli::run(&r.root, &["deleted", &c.name, "--json"]).json();
        let rw: Vec<&Value> = found
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["layer_role"] == "rw")
            .collect();
        let ours: BTreeSet<&str> = rw.iter().filter_map(|d| d["path"].as_str()).collect();
        let docker: BTreeSet<&str> = c
            .diff
            .lines()
            .filter_map(|l| l.strip_prefix("D "))
            .collect();
        if ours != docker {
            failures.push(format!(
                "{}: rw-layer deletions {} (kinds {:?}), docker diff deleted {docker:?}",
                c.name,
                ours.len(),
                rw.iter()
                    .filter_map(|d| d["kind"].as_str())
                    .collect::<BTreeSet<_>>()
            ));
        }
        for d in rw
            .iter()
            .filter(|d| docker.contains(d["path"].as_str().unwrap_or("")))
        {
            let first = d["hidden"].get(0).map(|h| &h["path"]);
            if first != Some(&d["path"]) {
                failures.push(format!("{}: {} hid {}", c.name, d["path"], d["hidden"]));
            }
        }
    }
    before.assert_unchanged(&r.evidence());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
        }
    };
}

real_conformance!(overlay, "overlay", real::overlay_root);
real_conformance!(vfs, "vfs", real::vfs_root);
real_conformance!(btrfs, "btrfs", real::btrfs_root);
