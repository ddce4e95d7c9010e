//! The containerd image store (the `overlayfs` driver): containerd roots
//! made by a real containerd 1.6 and 1.7 (every real-root test runs on
//! both, `containerd16::` and `containerd17::`), where containerd's own mount of each
//! container's snapshot is the oracle, and synthetic docker roots whose
//! containers say `"Driver": "overlayfs"` (docker 24+), with containerd's
//! root inside them (dockerd-managed), beside them, or given with
//! `--containerd-root`.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::fs;
use std::path::{Path, PathBuf};

use docker_mount_driver_overlayfs::fixture::{digest, Fixture, KIND_ACTIVE, KIND_COMMITTED};
use docker_mount_driver_overlayfs::meta::chain_ids;
use docker_mount_tests::mounts::{assert_read_only_mount, BoundHost, MountPoint};
use docker_mount_tests::real_containerd as rc;
use docker_mount_tests::{cli, integrity, manifest};
use serde_json::Value;

fn listed<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c[key] == value)
        .unwrap_or_else(|| panic!("{key} {value} not listed: {list}"))
}

fn real_containerd_containers_list_export_and_mount_like_containerd(r: &rc::CtrRoot) {
    let before = integrity::snapshot(&r.root);

    // The container on the native snapshotter is unreadable: exit status 3.
    let list = cli::run(&r.root, &["list", "--all", "--json"]).partial_json();
    for c in r.containers.iter().filter(|c| c.snapshotter == "overlayfs") {
        let l = listed(&list, "name", &c.name);
        assert_eq!(l["id"], c.id.as_str(), "{l}");
        assert_eq!(l["image"], c.image.as_str(), "{l}");
        assert_eq!(l["driver"], "overlayfs", "{l}");
        assert_eq!(l["driver_loaded"], true, "{l}");
    }
    // Every listed container is one containerd made (the native one has a
    // problem row besides); a healthy root warns of nothing.
    let rows = list.as_array().unwrap();
    let containers = rows.iter().filter(|c| c["error"].is_null()).count();
    assert_eq!(containers, r.containers.len(), "{list:#}");
    assert_eq!(rows.len(), containers + 1, "{list:#}");
    // The one warning is the container on the native snapshotter.
    let images_text = cli::run(&r.root, &["images", "--all"]);
    for line in images_text.stderr.lines() {
        assert!(line.contains("c-native"), "{:?}: {line}", r.generation);
    }
    // Another snapshotter's container is named, not silently dropped.
    let text = cli::run(&r.root, &["list", "--all"]);
    let all = format!("{}{}", text.stdout, text.stderr);
    assert!(
        all.contains("c-native") && all.contains("\"native\""),
        "{all}"
    );

    let images = cli::run(&r.root, &["images", "--all", "--json"]).partial_json();
    for (ns, name, digest) in &r.images {
        let found = images.as_array().unwrap().iter().any(|i| {
            i["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == name.as_str())
                && digest.ends_with(i["id"].as_str().unwrap())
        });
        assert!(found, "{ns}/{name} ({digest}) not in images: {images}");
    }
    assert_eq!(
        images.as_array().unwrap().len(),
        r.images.len(),
        "as many images as `ctr images ls` in every namespace: {images:#}"
    );

    let out = tempfile::tempdir().unwrap();
    for c in r.containers.iter().filter(|c| c.snapshotter == "overlayfs") {
        let want = manifest::from_tar(c.oracle_tar.as_ref().unwrap());
        assert!(
            want.len() > 20,
            "{}: oracle has {} entries",
            c.name,
            want.len()
        );
        let tar = out.path().join(format!("{}-{}.tar", c.namespace, c.id));
        cli::run(&r.root, &["export", &c.name, "-o", tar.to_str().unwrap()]).ok();
        let diffs = manifest::compare(&want, &manifest::from_tar(&tar), &[]);
        assert!(
            diffs.is_empty(),
            "{}: export differs from containerd's mount:\n{}",
            c.name,
            diffs.join("\n")
        );
        let mnt = MountPoint::new();
        cli::run(&r.root, &["mount", &c.name, mnt.path().to_str().unwrap()]).ok();
        assert_read_only_mount(mnt.path());
        let diffs = manifest::compare(&want, &manifest::from_dir(mnt.path()), &[]);
        assert!(
            diffs.is_empty(),
            "{}: mount differs from containerd's mount:\n{}",
            c.name,
            diffs.join("\n")
        );
    }

    // One id in two namespaces: refused by id, found by qualified name.
    let twin = cli::run(&r.root, &["cat", "c-twin", "/twin"]);
    assert_ne!(twin.status, 0);
    assert!(
        twin.stderr.contains("default/c-twin") && twin.stderr.contains("other/c-twin"),
        "{}",
        twin.stderr
    );
    for ns in ["default", "other"] {
        let cat = cli::run(&r.root, &["cat", &format!("{ns}/c-twin"), "/twin"]);
        assert_eq!(cat.ok(), format!("{ns}\n"));
    }

    let after = integrity::snapshot(&r.root);
    before.assert_unchanged(&after);
}

fn real_containerd_diff_deleted_find_and_timeline(r: &rc::CtrRoot) {
    let before = integrity::snapshot(&r.root);

    let diff = cli::run(&r.root, &["diff", "c-changes"]);
    let lines: Vec<&str> = diff.ok().lines().collect();
    for want in [
        "A /added",
        "C /etc/motd",
        "D /ctr-rm",
        "D /data/abs-link",
        "A /ctr-link",
        "A /new-dir/sub/f",
        "C /etc/passwd",
        "A /ctr-fifo",
        "A /group-hardlink",
        "A /suid-copy",
        "D /data/name with spaces",
        "A /data/renamed",
        "A /vol",
    ] {
        assert!(
            lines.contains(&want),
            "{want} not in diff:\n{}",
            diff.stdout
        );
    }
    // The write whose mtime was put back is still found.
    assert!(
        lines.iter().any(|l| l.starts_with("C /etc/restored")),
        "{}",
        diff.stdout
    );
    let deleted = cli::run(&r.root, &["deleted", "c-changes"]);
    let text = deleted.ok();
    assert!(text.contains("/ctr-rm"), "{text}");
    // Layer 2 of the image deleted these (whiteouts containerd applied).
    let image_deleted = cli::run(&r.root, &["deleted", "c-exit3"]);
    let text = image_deleted.ok();
    assert!(
        text.contains("/doomed-dir") && text.contains("/etc"),
        "{text}"
    );

    let found = cli::run(&r.root, &["find", "/added", "--json"]).json();
    assert!(found.to_string().contains("c-changes"), "{found}");
    let body = cli::run(&r.root, &["timeline", "c-other"]);
    assert!(body.ok().contains("/other"), "{}", body.stdout);
    let cat = cli::run(&r.root, &["cat", "c-other", "/opaque/new"]);
    assert_eq!(cat.ok(), "only this is left\nx\n");

    before.assert_unchanged(&integrity::snapshot(&r.root));
}

// ---- synthetic docker roots with the containerd image store ---------------

const ID: &str = "4f1c3a0b8e2d47c6a9b5d3e1f0a2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d1e3f5a7";
const IMAGE: &str = "docker.io/library/busybox:latest";

/// A docker 24+ root: the container's config says `Driver: overlayfs`,
/// containerd (at `containerd`) holds the image and the snapshots
/// `<id>-init` and `<id>` in namespace `moby`. Returns the snapshot ids:
/// the image's, bottom first, then the init and rw layers'.
fn docker_root(root: &Path, containerd: &Path) -> (Vec<u64>, u64, u64) {
    let dir = root.join("containers").join(ID);
    fs::create_dir_all(&dir).unwrap();
    let config = serde_json::json!({
        "ID": ID,
        "Name": "/web",
        "Created": "2025-01-02T03:04:05.000000000Z",
        "Path": "sh",
        "Args": ["-c", "echo hi"],
        "Config": {"Image": "busybox", "Cmd": ["sh", "-c", "echo hi"]},
        "Image": "sha256:0000000000000000000000000000000000000000000000000000000000000001",
        "State": {"Running": false, "ExitCode": 0, "StartedAt": "2025-01-02T03:04:06Z", "FinishedAt": "2025-01-02T03:04:07Z"},
        "Driver": "overlayfs",
        "ImageManifest": null,
    });
    fs::write(dir.join("config.v2.json"), config.to_string()).unwrap();
    fs::write(dir.join("hostconfig.json"), "{}").unwrap();

    let mut f = Fixture::new(containerd);
    let diff_ids = [digest(b"busybox base"), digest(b"busybox etc")];
    let (_, ids) = f.image("moby", IMAGE, &diff_ids);
    let chain = chain_ids(&diff_ids);
    let init = f.snapshot(
        "moby",
        &format!("{ID}-init"),
        Some(&chain[1]),
        KIND_COMMITTED,
    );
    let rw = f.snapshot("moby", ID, Some(&format!("{ID}-init")), KIND_ACTIVE);
    f.write();

    let put = |id: u64, rel: &str, data: &str| {
        let p = f.fs(id).join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    };
    put(ids[0], "bin/busybox", "busybox\n");
    put(ids[0], "etc/passwd", "root:x:0:0::/root:/bin/sh\n");
    put(ids[0], "etc/doomed", "gone in the container\n");
    put(ids[1], "etc/os-release", "busybox\n");
    put(init, "etc/hostname", "");
    put(init, "etc/hosts", "");
    put(rw, "etc/hostname", "4f1c3a0b8e2d\n");
    put(rw, "root/.ash_history", "wget evil\n");
    // A whiteout (0/0 character device; unprivileged since Linux 5.8).
    nix::sys::stat::mknod(
        &f.fs(rw).join("etc/doomed"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o644),
        0,
    )
    .unwrap();
    (ids, init, rw)
}

fn check_docker_root(root: &Path, extra: &[&str]) {
    let before = integrity::snapshot(root);
    let args =
        |a: &[&str]| -> Vec<String> { extra.iter().chain(a).map(|s| s.to_string()).collect() };
    let run = |a: &[&str]| {
        let a = args(a);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        cli::run(root, &a)
    };
    let list = run(&["list", "--all", "--json"]).json();
    let web = listed(&list, "id", ID);
    assert_eq!(web["name"], "web");
    assert_eq!(web["driver"], "overlayfs");
    assert_eq!(web["driver_loaded"], true);
    let info = run(&["info", "web", "--json"]).json();
    let roles: Vec<&str> = info["layers"]
        .as_array()
        .or_else(|| info["stack"]["layers"].as_array())
        .unwrap_or_else(|| panic!("no layers in info: {info}"))
        .iter()
        .map(|l| l["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["rw", "init", "image", "image"], "{info}");

    let out = tempfile::tempdir().unwrap();
    let tar = out.path().join("web.tar");
    run(&["export", "web", "-o", tar.to_str().unwrap()]).ok();
    let m = manifest::from_tar(&tar);
    let content = |p: &str| m.get(p.as_bytes()).map(|e| e.size);
    assert_eq!(content("etc/hostname"), Some(13));
    assert_eq!(content("root/.ash_history"), Some(10));
    assert_eq!(content("etc/os-release"), Some(8));
    assert!(m.get(b"etc/doomed").is_none(), "the whiteout hides it");
    let diff = run(&["diff", "web"]);
    let lines: Vec<&str> = diff.ok().lines().collect();
    for want in ["D /etc/doomed", "A /root/.ash_history", "C /etc/hostname"] {
        assert!(lines.contains(&want), "{want} not in:\n{}", diff.stdout);
    }
    if nix::unistd::geteuid().is_root() {
        // A kernel mount of layers in containerd's root (beside the docker
        // root, or inside it): the export's view, read-only.
        let mnt = MountPoint::new();
        run(&["mount", "web", mnt.path().to_str().unwrap()]).ok();
        assert_read_only_mount(mnt.path());
        let diffs = manifest::compare(&m, &manifest::from_dir(mnt.path()), &[]);
        assert!(
            diffs.is_empty(),
            "mount differs from export:\n{}",
            diffs.join("\n")
        );
    }
    let images = run(&["images", "--json"]).json();
    assert!(
        images
            .to_string()
            .contains(IMAGE.trim_start_matches("docker.io/library/"))
            || images.to_string().contains(IMAGE),
        "{images}"
    );
    before.assert_unchanged(&integrity::snapshot(root));
}

#[test]
fn docker_root_with_dockerd_managed_containerd() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("docker");
    docker_root(&root, &root.join("containerd/daemon"));
    check_docker_root(&root, &[]);
}

#[test]
fn docker_root_with_sibling_containerd() {
    let t = tempfile::tempdir().unwrap();
    let lib = t.path().join("var/lib");
    let root = lib.join("docker");
    docker_root(&root, &lib.join("containerd"));
    check_docker_root(&root, &[]);
}

/// `attribute` on the containerd image store: host paths of containerd's
/// snapshots name docker's container, its layer and its path.
#[test]
fn docker_root_with_sibling_containerd_attributes_snapshot_paths() {
    let t = tempfile::tempdir().unwrap();
    let lib = t.path().join("var/lib");
    let root = lib.join("docker");
    let (ids, _, rw) = docker_root(&root, &lib.join("containerd"));
    let snap = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots";
    let history = format!("{snap}/{rw}/fs/root/.ash_history");
    let doomed = format!("{snap}/{}/fs/etc/doomed", ids[0]);
    let release = format!("{snap}/{}/fs/etc/os-release", ids[1]);
    let before = integrity::snapshot(t.path());
    let run = cli::run(
        &root,
        &[
            "--json",
            "attribute",
            &history,
            &doomed,
            &release,
            "/var/lib/containerd/x",
        ],
    );
    before.assert_unchanged(&integrity::snapshot(t.path()));
    let a = run.json();
    let a = a.as_array().unwrap();
    assert_eq!(a[0]["kind"], "layer-file", "{:#}", a[0]);
    assert_eq!(a[0]["driver"], "overlayfs");
    assert_eq!(a[0]["layer"], rw.to_string());
    assert_eq!(a[0]["role"], "container-rw");
    assert_eq!(a[0]["containers"][0]["name"], "web");
    assert_eq!(a[0]["containers"][0]["id"], ID);
    assert_eq!(a[0]["containers"][0]["path"], "/root/.ash_history");
    assert_eq!(a[0]["containers"][0]["seen"], "visible");
    assert_eq!(a[1]["layer"], ids[0].to_string(), "{:#}", a[1]);
    assert_eq!(a[1]["role"], "image");
    assert_eq!(a[1]["containers"][0]["seen"], "deleted");
    assert_eq!(a[2]["containers"][0]["seen"], "visible", "{:#}", a[2]);
    assert_eq!(a[2]["containers"][0]["seen_layer"], ids[1].to_string());
    assert_eq!(a[3]["kind"], "none");
}

#[test]
fn docker_root_with_containerd_root_given() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("docker");
    let elsewhere: PathBuf = t.path().join("copied-containerd-root");
    docker_root(&root, &elsewhere);
    // Without the option, the layers cannot be found: an error naming what
    // was tried, never a guess.
    let r = cli::run(&root, &["export", "web", "-o", "/dev/null"]);
    assert_ne!(r.status, 0);
    assert!(r.stderr.contains("containerd"), "{}", r.stderr);
    check_docker_root(&root, &["--containerd-root", elsewhere.to_str().unwrap()]);
}

#[test]
fn containerd_root_ids_shared_by_namespaces_need_the_qualified_name() {
    let t = tempfile::tempdir().unwrap();
    let mut f = Fixture::new(t.path());
    let diff_ids = [digest(b"base")];
    let chain = chain_ids(&diff_ids);
    for ns in ["default", "k8s.io"] {
        let (_, ids) = f.image(ns, IMAGE, &diff_ids);
        fs::write(f.fs(ids[0]).join("base"), "base\n").unwrap();
        let rw = f.snapshot(ns, "web", Some(&chain[0]), KIND_ACTIVE);
        fs::write(f.fs(rw).join("who"), format!("{ns}\n")).unwrap();
        f.container(ns, "web", IMAGE, "web", &["sh"], &[]);
    }
    f.write();
    let before = integrity::snapshot(t.path());
    let r = cli::run(t.path(), &["cat", "web", "/who"]);
    assert_ne!(r.status, 0);
    assert!(
        r.stderr.contains("default/web") && r.stderr.contains("k8s.io/web"),
        "{}",
        r.stderr
    );
    for ns in ["default", "k8s.io"] {
        let who = cli::run(t.path(), &["cat", &format!("{ns}/web"), "/who"]);
        assert_eq!(who.ok(), format!("{ns}\n"));
        let base = cli::run(t.path(), &["cat", &format!("{ns}/web"), "/base"]);
        assert_eq!(base.ok(), "base\n");
    }
    before.assert_unchanged(&integrity::snapshot(t.path()));
}

fn a_host_tree_holding_a_containerd_root_is_discovered(r: &rc::CtrRoot) {
    let before = integrity::snapshot(&r.root);
    let rel = "var/lib/containerd";
    let host = BoundHost::new(&[("hostname", "seized\n".into())], &[(rel, &r.root)]);
    let found = host.only_root();
    assert_eq!(found["kind"], "engine", "{found:#}");
    assert_eq!(found["engine"], "overlayfs");
    assert_eq!(found["host_path"], format!("/{rel}"));
    assert_eq!(found["containers"], r.containers.len(), "{found:#}");
    // An unused containerd (what docker 20.10 leaves) is not a root to choose.
    let empty = tempfile::tempdir().unwrap();
    fs::create_dir_all(empty.path().join("io.containerd.metadata.v1.bolt")).unwrap();
    let idle = BoundHost::new(&[("hostname", "idle\n".into())], &[(rel, empty.path())]);
    let roots = cli::run(idle.path(), &["roots", "--json"]).json();
    assert!(
        roots["roots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["present"] != true),
        "{roots:#}"
    );
    drop(host);
    before.assert_unchanged(&integrity::snapshot(&r.root));
}

/// The real-root tests above, on the root of each containerd.
macro_rules! tier {
    ($name:ident, $require:ident, $root:ident) => {
        mod $name {
            #[test]
            fn real_containerd_containers_list_export_and_mount_like_containerd() {
                if super::rc::$require() {
                    super::real_containerd_containers_list_export_and_mount_like_containerd(
                        super::rc::$root(),
                    );
                }
            }
            #[test]
            fn real_containerd_diff_deleted_find_and_timeline() {
                if super::rc::$require() {
                    super::real_containerd_diff_deleted_find_and_timeline(super::rc::$root());
                }
            }
            #[test]
            fn a_host_tree_holding_a_containerd_root_is_discovered() {
                if super::rc::$require() {
                    super::a_host_tree_holding_a_containerd_root_is_discovered(super::rc::$root());
                }
            }
        }
    };
}

tier!(containerd16, require_containerd, containerd_root);
tier!(containerd17, require_containerd17, containerd17_root);
