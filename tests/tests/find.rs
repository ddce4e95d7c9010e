//! `find`: which layers hold a path, which version each container and image
//! sees, and where it was deleted, on synthetic roots and a real dockerd
//! root; every run hashes the evidence before and after.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;

use docker_mount_tests::fixture::{
    ContainerOpts, ContainerRef, Fixture, ImageOpts, ImageRef, LayerRef, Node, RootBuilder,
};
use docker_mount_tests::scene::{self, Scene};
use docker_mount_tests::{cli, integrity, real};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `find <args> --json` on `root`, checked to leave it unchanged.
fn find_json(root: &Path, args: &[&str]) -> (Value, String) {
    let before = integrity::snapshot(root);
    let mut all = vec!["find"];
    all.extend(args);
    all.push("--json");
    let run = cli::run(root, &all);
    let json = run.json();
    before.assert_unchanged(&integrity::snapshot(root));
    (json, run.stderr)
}

/// The only path of a report, checked to be `path`.
fn only_path<'a>(report: &'a Value, path: &str) -> &'a Value {
    let paths = report["paths"].as_array().unwrap();
    assert_eq!(paths.len(), 1, "{report:#}");
    assert_eq!(paths[0]["path"], path);
    &paths[0]
}

/// The record of layer `driver_id` for a path.
fn layer<'a>(p: &'a Value, driver_id: &str) -> &'a Value {
    p["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["driver_id"] == driver_id)
        .unwrap_or_else(|| panic!("no layer {driver_id} in {p:#}"))
}

/// The sight of container `name` for a path.
fn container<'a>(p: &'a Value, name: &str) -> &'a Value {
    p["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name} in {p:#}"))
}

/// The sight of the image with `id` (`sha256:` or not) for a path.
fn image<'a>(p: &'a Value, id: &str) -> &'a Value {
    let id = id.trim_start_matches("sha256:");
    p["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no image {id} in {p:#}"))
}

fn ids_of(list: &Value) -> Vec<&str> {
    let mut ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids
}

fn bare(id: &str) -> &str {
    id.trim_start_matches("sha256:")
}

fn cache_id(fx: &Fixture, image: ImageRef, index: usize) -> String {
    let layer: LayerRef = fx.image(image).layers[index];
    fx.layer(layer).cache_id.clone()
}

fn scene_in(dir: &tempfile::TempDir) -> Scene {
    scene::build(&dir.path().join("docker"))
}

#[test]
fn scene_file_changed_by_a_container() {
    let dir = tempfile::tempdir().unwrap();
    let s = scene_in(&dir);
    let fx = &s.fixture;
    let (report, _) = find_json(&fx.root, &["/var/d/new", "--hash"]);
    assert_eq!(report["glob"], false);
    assert_eq!(report["hashed"], true);
    assert_eq!(report["truncated"], false);
    let p = only_path(&report, "/var/d/new");
    assert_eq!(p["layers"].as_array().unwrap().len(), 2, "{p:#}");

    let second = cache_id(fx, s.small_image, 1);
    let img = layer(p, &second);
    assert_eq!(img["role"], "image");
    assert_eq!(img["state"], "present");
    assert_eq!(img["type"], "file");
    assert_eq!(img["size"], 4);
    assert_eq!(img["mode"], "0644");
    assert_eq!(img["sha256"], sha(b"new\n"));
    assert_eq!(
        img["chain_id"],
        bare(&fx.layer(fx.image(s.small_image).layers[1]).chain_id)
    );
    let small = bare(&fx.image(s.small_image).id);
    let untagged = bare(&fx.image(s.untagged_image).id);
    let mut want = vec![small, untagged];
    want.sort();
    assert_eq!(ids_of(&img["images"]), want);
    assert!(img["containers"].as_array().unwrap().is_empty());

    let web = fx.container(s.web);
    let rw = layer(p, &web.mount_id);
    assert_eq!(rw["role"], "rw");
    assert_eq!(rw["state"], "present");
    assert_eq!(rw["sha256"], sha(b"changed by the container\n"));
    assert_eq!(ids_of(&rw["containers"]), [web.id.as_str()]);
    // Base first: the image layer, then the container's.
    assert_eq!(p["layers"][0]["driver_id"], second.as_str());

    let sees = container(p, "web");
    assert_eq!(sees["visible"], true);
    assert_eq!(sees["layer"], web.mount_id.as_str());
    assert_eq!(sees["role"], "rw");
    let stopped = container(p, "stopped");
    assert_eq!(stopped["visible"], true);
    assert_eq!(stopped["layer"], second.as_str());
    assert_eq!(stopped["role"], "image");
    assert_eq!(image(p, small)["layer"], second.as_str());
    // deep's stack never holds /var/d/new.
    assert!(p["containers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["name"] != "deep"));

    let table = cli::run(&fx.root, &["find", "/var/d/new", "--hash"]);
    let out = table.ok();
    assert!(out.contains(&second[..12]) && out.contains(&web.mount_id[..12]));
    assert!(out.contains(&sha(b"new\n")));
}

#[test]
fn scene_file_deleted_in_an_image_layer() {
    let dir = tempfile::tempdir().unwrap();
    let s = scene_in(&dir);
    let fx = &s.fixture;
    let (report, _) = find_json(&fx.root, &["/etc/passwd", "--hash"]);
    let p = only_path(&report, "/etc/passwd");
    let base = cache_id(fx, s.small_image, 0);
    let second = cache_id(fx, s.small_image, 1);
    assert_eq!(p["layers"].as_array().unwrap().len(), 2, "{p:#}");
    let held = layer(p, &base);
    assert_eq!(held["state"], "present");
    assert_eq!(held["sha256"], sha(b"root:x:0:0::/root:/bin/sh\n"));
    let deleted = layer(p, &second);
    assert_eq!(deleted["state"], "deleted");
    assert_eq!(deleted["at"], "/etc/passwd");
    assert!(deleted.get("sha256").is_none());
    // No container sees it: each names the layer that deleted it.
    let containers = p["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 4, "{p:#}");
    for c in containers {
        assert_eq!(c["visible"], false, "{c}");
        assert_eq!(c["layer"], second.as_str());
        assert_eq!(c["state"], "deleted");
        assert_eq!(c["at"], "/etc/passwd");
    }
    for i in p["images"].as_array().unwrap() {
        assert_eq!(i["visible"], false, "{i}");
    }
    let out = cli::run(&fx.root, &["find", "/etc/passwd"]);
    assert!(out.ok().contains("deleted (whiteout)"));
    assert!(out.ok().contains("not visible: deleted in layer"));

    // An opaque directory hides what was below it.
    let (report, _) = find_json(&fx.root, &["/var/d/old"]);
    let p = only_path(&report, "/var/d/old");
    assert_eq!(layer(p, &base)["state"], "present");
    let hidden = layer(p, &second);
    assert_eq!(hidden["state"], "hidden");
    assert_eq!(hidden["by"], "opaque_dir");
    assert_eq!(hidden["at"], "/var/d");
    assert_eq!(container(p, "web")["state"], "hidden");
    assert_eq!(container(p, "web")["visible"], false);

    // A path no layer holds.
    let (report, _) = find_json(&fx.root, &["/no/such/file"]);
    let p = only_path(&report, "/no/such/file");
    assert!(p["layers"].as_array().unwrap().is_empty());
    assert!(p["containers"].as_array().unwrap().is_empty());
}

#[test]
fn scene_glob_matches_awkward_names() {
    let dir = tempfile::tempdir().unwrap();
    let s = scene_in(&dir);
    let fx = &s.fixture;
    let (report, _) = find_json(&fx.root, &["/names/*", "--hash"]);
    assert_eq!(report["glob"], true);
    assert_eq!(report["truncated"], false);
    let mut paths: Vec<&str> = report["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    paths.sort();
    let mut want = vec![
        "/names/new\nline",
        "/names/back\\\\slash",
        "/names/latin1-\\xe9t\\xe9",
        "/names/utf8-\u{e9}t\u{e9}",
        "/names/<angle & amp>",
    ];
    want.sort();
    assert_eq!(paths, want);
    let third = cache_id(fx, s.small_image, 2);
    for p in report["paths"].as_array().unwrap() {
        assert_eq!(p["layers"].as_array().unwrap().len(), 1);
        assert_eq!(p["layers"][0]["driver_id"], third.as_str());
        assert_eq!(container(p, "web")["layer"], third.as_str());
    }
    let latin1 = report["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"] == "/names/latin1-\\xe9t\\xe9")
        .unwrap();
    assert_eq!(latin1["layers"][0]["sha256"], sha(b"not utf-8\n"));

    // The query takes the output's escaping back.
    let (report, _) = find_json(&fx.root, &["/names/latin1-\\xe9t\\xe9"]);
    let p = only_path(&report, "/names/latin1-\\xe9t\\xe9");
    assert_eq!(p["layers"][0]["state"], "present");

    // `**` crosses directories; --limit bounds the output and says so.
    let (report, stderr) = find_json(&fx.root, &["/**/*", "--limit", "3"]);
    assert_eq!(report["truncated"], true);
    assert_eq!(report["paths"].as_array().unwrap().len(), 3);
    assert!(stderr.contains("--limit"), "{stderr}");
    let (report, _) = find_json(&fx.root, &["/**/deep.txt"]);
    let p = &report["paths"][0];
    assert!(p["path"].as_str().unwrap().ends_with("/segment/deep.txt"));

    let table = cli::run(&fx.root, &["find", "/names/*"]);
    assert!(table.ok().contains("/names/latin1-\\xe9t\\xe9"));
    assert!(table.ok().contains("/names/new\\nline"));
}

#[test]
fn broken_containers_are_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let s = scene_in(&dir);
    let fx = &s.fixture;
    fx.remove_mount_id(s.web);
    let (report, stderr) = find_json(&fx.root, &["/var/d/new"]);
    assert!(
        stderr.contains("warning:") && stderr.contains("web"),
        "{stderr}"
    );
    let p = only_path(&report, "/var/d/new");
    assert!(p["containers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["name"] != "web"));
    assert_eq!(container(p, "stopped")["visible"], true);
}

#[test]
fn relative_queries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = scene_in(&dir);
    let run = cli::run(&s.fixture.root, &["find", "etc/passwd"]);
    assert_ne!(run.status, 0);
    assert!(run.stderr.contains("absolute"), "{}", run.stderr);
}

/// The case: a file present in three image layers, deleted in one
/// container and modified in another.
#[test]
fn file_in_three_layers_deleted_in_one_container() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = RootBuilder::new(&dir.path().join("docker"));
    let l1 = b.layer(&[
        Node::file("app/config", b"v1\n"),
        Node::file("bin/sh", b"#!fake\n").mode(0o755),
    ]);
    let l2 = b.layer_on(
        l1,
        &[Node::file("app/config", b"version two\n").owner(1000, 1000)],
    );
    let l3 = b.layer_on(
        l2,
        &[Node::file("app/config", b"third\n")
            .mode(0o600)
            .mtime(1_700_000_000)],
    );
    let app2 = b.image(&["app:2"], l2, ImageOpts::default());
    let app3 = b.image(&["app:3"], l3, ImageOpts::default());
    let deleter: ContainerRef = b.container(
        "deleter",
        app3,
        ContainerOpts {
            rw: vec![Node::whiteout("app/config")],
            ..ContainerOpts::default()
        },
    );
    let modifier = b.container(
        "modifier",
        app3,
        ContainerOpts {
            rw: vec![Node::file("app/config", b"modified in the container\n")],
            ..ContainerOpts::default()
        },
    );
    let plain = b.container("plain", app3, ContainerOpts::default());
    let on_two = b.container("on-two", app2, ContainerOpts::default());
    let fx = b.finish();

    let (report, _) = find_json(&fx.root, &["/app/config", "--hash"]);
    let p = only_path(&report, "/app/config");
    let layers = p["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 5, "{p:#}");
    let id = |l: LayerRef| fx.layer(l).cache_id.clone();
    // Image layers base first, then the containers' rw layers.
    let order: Vec<&str> = layers
        .iter()
        .map(|l| l["driver_id"].as_str().unwrap())
        .collect();
    assert_eq!(order[..3], [id(l1), id(l2), id(l3)]);
    let ids = |images: &[ImageRef]| {
        let mut v: Vec<&str> = images.iter().map(|i| bare(&fx.image(*i).id)).collect();
        v.sort();
        v
    };
    for (l, content, images) in [
        (l1, &b"v1\n"[..], ids(&[app2, app3])),
        (l2, &b"version two\n"[..], ids(&[app2, app3])),
        (l3, &b"third\n"[..], ids(&[app3])),
    ] {
        let rec = layer(p, &id(l));
        assert_eq!(rec["role"], "image");
        assert_eq!(rec["state"], "present");
        assert_eq!(rec["sha256"], sha(content), "{rec}");
        assert_eq!(rec["size"], content.len());
        assert_eq!(rec["chain_id"], bare(&fx.layer(l).chain_id));
        assert_eq!(rec["diff_id"], bare(&fx.layer(l).diff_id));
        assert_eq!(ids_of(&rec["images"]), images);
    }
    assert_eq!(layer(p, &id(l2))["uid"], 1000);
    assert_eq!(layer(p, &id(l3))["mode"], "0600");
    assert_eq!(layer(p, &id(l3))["mtime"]["sec"], 1_700_000_000);

    let del = fx.container(deleter);
    let rec = layer(p, &del.mount_id);
    assert_eq!(rec["role"], "rw");
    assert_eq!(rec["state"], "deleted");
    assert_eq!(rec["at"], "/app/config");
    assert_eq!(ids_of(&rec["containers"]), [del.id.as_str()]);
    let modi = fx.container(modifier);
    let rec = layer(p, &modi.mount_id);
    assert_eq!(rec["state"], "present");
    assert_eq!(rec["sha256"], sha(b"modified in the container\n"));
    assert_eq!(ids_of(&rec["containers"]), [modi.id.as_str()]);

    // Who sees which version.
    let c = container(p, "deleter");
    assert_eq!(c["visible"], false);
    assert_eq!(c["layer"], del.mount_id.as_str());
    assert_eq!(c["state"], "deleted");
    assert_eq!(c["id"], del.id.as_str());
    let c = container(p, "modifier");
    assert_eq!(c["visible"], true);
    assert_eq!(c["layer"], modi.mount_id.as_str());
    assert_eq!(c["role"], "rw");
    let c = container(p, "plain");
    assert_eq!(c["visible"], true);
    assert_eq!(c["layer"], id(l3).as_str());
    assert_eq!(container(p, "on-two")["layer"], id(l2).as_str());
    assert_eq!(fx.container(plain).image, app3);
    assert_eq!(fx.container(on_two).image, app2);
    assert_eq!(image(p, &fx.image(app3).id)["layer"], id(l3).as_str());
    assert_eq!(image(p, &fx.image(app2).id)["layer"], id(l2).as_str());
    assert_eq!(image(p, &fx.image(app2).id)["visible"], true);

    // The same through a glob, and in the table.
    let (globbed, _) = find_json(&fx.root, &["/app/conf?g", "--hash"]);
    assert_eq!(globbed["paths"], report["paths"]);
    let table = cli::run(&fx.root, &["find", "/app/config", "--hash"]);
    let out = table.ok();
    for l in [l1, l2, l3] {
        assert!(out.contains(&id(l)[..12]));
    }
    assert!(out.contains("deleted (whiteout)"));
    assert!(out.contains(&sha(b"modified in the container\n")));
}

/// Every `present` layer record of a report, with its path.
fn each_present(report: &Value) -> impl Iterator<Item = (&str, &Value)> {
    report["paths"].as_array().unwrap().iter().flat_map(|p| {
        let path = p["path"].as_str().unwrap();
        p["layers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["state"] == "present")
            .map(move |l| (path, l))
    })
}

/// Without `--hash`, the same report but for the hashes: every `sha256`
/// null, metadata and link targets as with it; with it, each regular
/// file's hash is that of the file in its layer directory.
#[test]
fn hashes_only_with_hash() {
    let dir = tempfile::tempdir().unwrap();
    let s = scene_in(&dir);
    let fx = &s.fixture;
    let (plain, _) = find_json(&fx.root, &["/**", "--limit", "100000"]);
    let (hashed, _) = find_json(&fx.root, &["/**", "--limit", "100000", "--hash"]);
    assert_eq!(
        (&plain["hashed"], &hashed["hashed"]),
        (&false.into(), &true.into())
    );
    assert_eq!(plain["truncated"], false);

    let (mut files, mut links) = (0, 0);
    for (path, l) in each_present(&plain) {
        assert!(l["sha256"].is_null(), "{path}: {l}");
        assert!(l["error"].is_null(), "{path}: {l}");
        links += usize::from(l["type"] == "symlink" && l["link_target"].is_string());
    }
    for (path, l) in each_present(&hashed) {
        if l["type"] != "file" {
            assert!(l["sha256"].is_null(), "{path}: {l}");
            continue;
        }
        // Escaped names (`\xNN`, `\\`) are checked by the glob test.
        if path.contains('\\') {
            continue;
        }
        let id = l["driver_id"].as_str().unwrap();
        let on_disk = fx.overlay2().join(id).join("diff").join(&path[1..]);
        let want = sha(&std::fs::read(&on_disk).unwrap());
        assert_eq!(l["sha256"], want, "{path} in layer {id}");
        files += 1;
    }
    assert!(files >= 20 && links >= 1, "{files} files, {links} symlinks");

    // The rest is the same, field for field.
    let mut stripped = hashed.clone();
    for p in stripped["paths"].as_array_mut().unwrap() {
        for l in p["layers"].as_array_mut().unwrap() {
            if l["state"] == "present" {
                l["sha256"] = Value::Null;
            }
        }
    }
    stripped["hashed"] = false.into();
    assert_eq!(stripped, plain);

    // The table has no hash column without --hash.
    let table = cli::run(&fx.root, &["find", "/var/d/new"]);
    assert!(!table.ok().contains("SHA256"), "{}", table.stdout);
    assert!(!table.ok().contains(&sha(b"new\n")), "{}", table.stdout);
    let table = cli::run(&fx.root, &["find", "/var/d/new", "--hash"]);
    assert!(table.ok().contains("SHA256"), "{}", table.stdout);
}

/// Without `--hash` no file content is opened: a file only its owner may
/// read, its mode 0000, searched by root without CAP_DAC_OVERRIDE and
/// CAP_DAC_READ_SEARCH, is reported without an error; `--hash` says it
/// cannot be read.
#[test]
fn without_hash_no_content_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = RootBuilder::new(&dir.path().join("docker"));
    let l = b.layer(&[
        Node::file("etc/sealed", b"no one may read this\n").mode(0),
        Node::file("etc/open", b"anyone\n"),
        Node::symlink("etc/link", "sealed"),
    ]);
    let img = b.image(&["sealed:1"], l, ImageOpts::default());
    b.container("web", img, ContainerOpts::default());
    let fx = b.finish();
    let no_dac = |args: &[&str]| {
        let before = integrity::snapshot(&fx.root);
        let out = std::process::Command::new("setpriv")
            .args([
                "--inh-caps",
                "-all",
                "--bounding-set",
                "-dac_override,-dac_read_search",
            ])
            .arg(cli::binary())
            .arg("--root")
            .arg(&fx.root)
            .args(["find", "/etc/*", "--json"])
            .args(args)
            .output()
            .expect("setpriv");
        before.assert_unchanged(&integrity::snapshot(&fx.root));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let sealed = only_record(&report, "/etc/sealed");
        (report, sealed, stderr)
    };
    let (report, sealed, stderr) = no_dac(&[]);
    assert_eq!(sealed["state"], "present", "{report:#}");
    assert_eq!(sealed["mode"], "0000");
    assert_eq!(sealed["size"], 21);
    assert!(
        sealed["sha256"].is_null() && sealed["error"].is_null(),
        "{sealed}"
    );
    assert!(!stderr.contains("sealed"), "{stderr}");
    assert_eq!(only_record(&report, "/etc/link")["link_target"], "sealed");

    let (report, sealed, _) = no_dac(&["--hash"]);
    assert!(sealed["sha256"].is_null(), "{sealed}");
    let error = sealed["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{sealed}"));
    assert!(error.contains("cannot read the content"), "{error}");
    assert_eq!(
        only_record(&report, "/etc/open")["sha256"],
        sha(b"anyone\n"),
        "{report:#}"
    );
}

/// The one layer record of `path` in a report.
fn only_record(report: &Value, path: &str) -> Value {
    let p = report["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"] == path)
        .unwrap_or_else(|| panic!("no {path} in {report:#}"));
    assert_eq!(p["layers"].as_array().unwrap().len(), 1, "{p:#}");
    p["layers"][0].clone()
}

/// A root made by a real dockerd: c-running ran `rm /etc/group`.
#[test]
fn real_root_file_deleted_in_a_running_container() {
    if !real::require_privileged() {
        return;
    }
    let r = real::overlay2_root();
    let (report, _) = find_json(&r.root, &["/etc/group", "--hash"]);
    let p = only_path(&report, "/etc/group");
    let layers = p["layers"].as_array().unwrap();
    let present: Vec<&Value> = layers.iter().filter(|l| l["state"] == "present").collect();
    assert_eq!(present.len(), 1, "{p:#}");
    let base = present[0];
    assert_eq!(base["role"], "image");
    assert_eq!(base["sha256"], sha(b"root:x:0:\nnogroup:x:65534:\n"));
    assert!(base["images"].as_array().unwrap().iter().any(|i| i["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "dm-base:latest")));
    let running = r.container("c-running");
    let deleted: Vec<&Value> = layers.iter().filter(|l| l["state"] == "deleted").collect();
    assert_eq!(deleted.len(), 1, "{p:#}");
    assert_eq!(deleted[0]["role"], "rw");
    assert_eq!(deleted[0]["at"], "/etc/group");
    assert_eq!(ids_of(&deleted[0]["containers"]), [running.id.as_str()]);
    let c = container(p, "c-running");
    assert_eq!(c["visible"], false);
    assert_eq!(c["layer"], deleted[0]["driver_id"]);
    assert_eq!(c["state"], "deleted");
    for other in ["c-stopped", "c-exited", "c-deep", "c-mounts"] {
        let c = container(p, other);
        assert_eq!(c["visible"], true, "{other}");
        assert_eq!(c["layer"], base["driver_id"], "{other}");
    }

    // Removed and recreated in a later build step: hidden by an opaque directory.
    let (report, _) = find_json(&r.root, &["/awk/opaque/old1"]);
    let p = only_path(&report, "/awk/opaque/old1");
    let hidden: Vec<&Value> = p["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["state"] == "hidden")
        .collect();
    assert_eq!(hidden.len(), 1, "{p:#}");
    assert_eq!(hidden[0]["by"], "opaque_dir");
    assert_eq!(hidden[0]["at"], "/awk/opaque");
    assert_eq!(container(p, "c-stopped")["visible"], false);
    // A directory replaced by a file.
    let (report, _) = find_json(&r.root, &["/awk/dir-becomes-file/x"]);
    let p = only_path(&report, "/awk/dir-becomes-file/x");
    assert!(p["layers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["state"] == "deleted" || l["by"] == "non_directory"));
    assert_eq!(container(p, "c-stopped")["visible"], false);
}
