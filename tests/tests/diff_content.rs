//! `diff` compares contents where all metadata is equal: a write whose
//! mtime was put back (`touch -r`) is still a change. Tier 1: a synthetic
//! overlay2 root and the vfs root converted from it; the evidence is
//! hashed before and after.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;

use docker_mount_tests::fixture::{ContainerOpts, ImageOpts, Node, RootBuilder};
use docker_mount_tests::full_tree::{overlay2_to_full, VFS};
use docker_mount_tests::{cli, integrity};

/// An image and a container `web` whose rw layer rewrote `/etc/passwd`
/// and retargeted `/bin/link` keeping every piece of metadata, and copied
/// `/etc/same` up unchanged.
fn build(root: &Path) {
    let mut b = RootBuilder::new(root);
    let base = b.layer(&[
        Node::file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        Node::file("etc/same", "unchanged\n"),
        Node::file("bin/tool", "#!/bin/sh\n").mode(0o755),
        Node::symlink("bin/link", "tool-a"),
    ]);
    let image = b.image(&["content:1"], base, ImageOpts::default());
    b.container(
        "web",
        image,
        ContainerOpts {
            rw: vec![
                Node::file("etc/passwd", "r00t:x:0:0:root:/root:/bin/sh\n"),
                Node::file("etc/same", "unchanged\n"),
                Node::symlink("bin/link", "tool-b"),
            ],
            ..ContainerOpts::default()
        },
    );
    b.finish();
}

const NOTE: &str = "\t(content only: metadata and mtime equal)";

fn check(root: &Path) {
    let before = integrity::snapshot(root);
    let found = cli::run(root, &["diff", "web"]);
    assert_eq!(
        found.ok(),
        format!("C /bin\nC /bin/link{NOTE}\nC /etc\nC /etc/passwd{NOTE}\n")
    );
    let json = cli::run(root, &["diff", "web", "--json"]).json();
    let flagged: Vec<(&str, bool)> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["path"].as_str().unwrap(), c["content_only"] == true))
        .collect();
    assert_eq!(
        flagged,
        [
            ("/bin", false),
            ("/bin/link", true),
            ("/etc", false),
            ("/etc/passwd", true)
        ]
    );
    let full = cli::run(root, &["diff", "web", "--content", "full"]);
    assert_eq!(full.ok(), found.ok());
    let docker_like = cli::run(root, &["diff", "web", "--content", "off"]);
    assert_eq!(docker_like.ok(), "", "docker diff sees no change");
    before.assert_unchanged(&integrity::snapshot(root));
}

#[test]
fn overlay2_sees_a_rewrite_with_its_mtime_put_back() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("docker");
    build(&root);
    check(&root);
}

#[test]
fn vfs_sees_a_rewrite_with_its_mtime_put_back() {
    let dir = tempfile::tempdir().unwrap();
    build(&dir.path().join("overlay2"));
    let root = dir.path().join("vfs");
    overlay2_to_full(&dir.path().join("overlay2"), &root, VFS);
    let listed = cli::run(&root, &["list", "--all", "--json"]).json();
    assert_eq!(listed[0]["driver"], "vfs", "{listed}");
    check(&root);
}
