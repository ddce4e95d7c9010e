//! Tier 2 for the vfs driver: a root made by a real dockerd with
//! `--storage-driver vfs`, where every layer is a full copy of its parent
//! (no whiteouts: deletions exist only as differences between trees);
//! `docker export` and `docker diff` are the oracles.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use docker_mount_tests::mounts::{assert_read_only_mount, MountPoint};
use docker_mount_tests::{cli, manifest, real};
use serde_json::Value;
use std::collections::BTreeSet;

const DRIVER: &str = "vfs";

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    v.sort();
    v
}

#[test]
fn vfs_containers_list_export_diff_and_mount_like_docker() {
    if !real::require_driver(DRIVER) {
        return;
    }
    let r = real::vfs_root();
    let before = r.evidence();
    let listed = cli::run(&r.root, &["list", "--all", "--json"]).json();
    assert_eq!(listed.as_array().unwrap().len(), r.containers.len());
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["driver"] == DRIVER && c["driver_loaded"] == true),
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
            sorted_lines(ours.ok()),
            sorted_lines(&c.diff),
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
        // `deleted` must at least read full trees; what it should list is
        // vfs_deleted_lists_what_docker_diff_deleted's question.
        let deleted = cli::run(&r.root, &["deleted", &c.name, "--json"]).json();
        assert!(deleted.is_array(), "{}: deleted --json: {deleted}", c.name);
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
fn vfs_deleted_lists_what_docker_diff_deleted() {
    if !real::require_driver(DRIVER) {
        return;
    }
    let r = real::vfs_root();
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
