//! `deleted` and `cat`: what each layer deleted, and the recovery of a
//! deleted file from the layer that held it, on the synthetic scene and on
//! a root made by a real dockerd. Every test hashes the evidence before and
//! after.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use docker_mount_tests::{cli, integrity, manifest, real, scene};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Runs `docker-mount --root <root> <args>`, returning the exit status and raw stdout.
fn run_bytes(root: &Path, args: &[&str]) -> (bool, Vec<u8>, String) {
    let out = Command::new(cli::binary())
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `cat` that must succeed.
fn cat(root: &Path, args: &[&str]) -> Vec<u8> {
    let mut all = vec!["cat"];
    all.extend_from_slice(args);
    let (ok, out, err) = run_bytes(root, &all);
    assert!(ok, "cat {args:?} failed: {err}");
    out
}

/// `cat` that must fail; returns its message.
fn cat_fails(root: &Path, args: &[&str]) -> String {
    let mut all = vec!["cat"];
    all.extend_from_slice(args);
    let (ok, out, err) = run_bytes(root, &all);
    assert!(!ok, "cat {args:?} should fail, printed {} bytes", out.len());
    assert!(out.is_empty(), "a failed cat prints nothing on stdout");
    err
}

fn find<'a>(list: &'a Value, path: &str, kind: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"] == path && d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} {path} in {list:#}"))
}

fn hidden_paths(d: &Value) -> Vec<&str> {
    d["hidden"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["path"].as_str().unwrap())
        .collect()
}

fn bare(digest: &str) -> &str {
    digest.trim_start_matches("sha256:")
}

#[test]
fn scene_deletions_and_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let sc = scene::build(&dir.path().join("docker"));
    let root = sc.fixture.root.clone();
    let before = integrity::snapshot(&root);
    let fx = &sc.fixture;
    let img = fx.image(sc.small_image);
    let base = fx.layer(img.layers[0]);
    let second = fx.layer(img.layers[1]);
    let web = fx.container(sc.web);

    let list = cli::run(&root, &["deleted", "web", "--json"]).json();
    // The container deleted /etc/keep: the base layer's file.
    let keep = find(&list, "/etc/keep", "whiteout");
    assert_eq!(keep["layer"], web.mount_id.as_str());
    assert_eq!(keep["layer_role"], "rw");
    assert!(keep["chain_id"].is_null());
    let hid = keep["hidden"].as_array().unwrap();
    assert_eq!(hid.len(), 1, "{keep:#}");
    assert_eq!(hid[0]["path"], "/etc/keep");
    assert_eq!(hid[0]["kind"], "file");
    assert_eq!(hid[0]["size"], 5);
    assert_eq!(hid[0]["sha256"], sha256(b"base\n"));
    assert_eq!(hid[0]["layer"], base.cache_id.as_str());
    assert!(hid[0]["mtime"].as_str().unwrap().ends_with('Z'));
    assert!(hid[0]["mtime_unix"].is_i64());
    // An image layer deleted /etc/passwd.
    let passwd = find(&list, "/etc/passwd", "whiteout");
    assert_eq!(passwd["layer"], second.cache_id.as_str());
    assert_eq!(passwd["layer_role"], "image");
    assert_eq!(passwd["chain_id"], bare(&second.chain_id));
    assert_eq!(
        passwd["hidden"][0]["sha256"],
        sha256(b"root:x:0:0::/root:/bin/sh\n")
    );
    // And made /var/d opaque, hiding what the base layer had in it.
    let d = find(&list, "/var/d", "opaque");
    assert_eq!(d["layer"], second.cache_id.as_str());
    assert_eq!(hidden_paths(d), ["/var/d/old", "/var/d/olddir"]);
    assert_eq!(d["hidden"][0]["sha256"], sha256(b"old\n"));
    assert_eq!(d["hidden"][1]["kind"], "dir");
    assert!(d["hidden"][1]["sha256"].is_null());
    // The awkward layer's whiteout hid nothing: still reported.
    let gone = find(&list, "/gone", "whiteout");
    assert!(gone["hidden"].as_array().unwrap().is_empty());
    // The rw layer comes first.
    assert_eq!(list[0]["layer_role"], "rw");

    // The table: one line per deletion.
    let table = cli::run(&root, &["deleted", "web"]);
    let lines: Vec<&str> = table.ok().lines().collect();
    assert_eq!(lines.len(), list.as_array().unwrap().len());
    let keep_line = lines.iter().find(|l| l.contains("/etc/keep")).unwrap();
    assert!(keep_line.starts_with(&web.mount_id[..12]), "{keep_line}");
    assert!(keep_line.contains("rw") && keep_line.contains("whiteout"));
    assert!(keep_line.contains(&sha256(b"base\n")[..12]), "{keep_line}");
    assert!(keep_line.contains(&base.cache_id[..12]), "{keep_line}");

    // With an id map (a userns-remap root, or --uid-map) each owner also
    // shows as the container saw it; the ids on disk stay as they are.
    let map = ["--uid-map", "7:0:1", "--gid-map", "9:0:1"];
    let mapped = cli::run(&root, &[&map[..], &["deleted", "web", "--json"]].concat()).json();
    let h = &find(&mapped, "/etc/keep", "whiteout")["hidden"][0];
    let seen = |disk: &serde_json::Value, zero_is: u64| match disk.as_u64().unwrap() {
        0 => zero_is,
        _ => 65534,
    };
    assert_eq!(h["uid"], hid[0]["uid"]);
    assert_eq!(h["container_ids"]["uid"], seen(&hid[0]["uid"], 7));
    assert_eq!(h["container_ids"]["gid"], seen(&hid[0]["gid"], 9));
    assert!(
        hid[0].get("container_ids").is_none(),
        "no map, no container ids"
    );
    let table = cli::run(&root, &[&map[..], &["deleted", "web"]].concat());
    assert!(table.ok().contains("(disk "), "{}", table.stdout);
    let found = cli::run(
        &root,
        &[&map[..], &["find", "/etc/keep", "--json"]].concat(),
    )
    .json();
    let versions = found["paths"][0]["layers"].as_array().unwrap();
    let present = versions.iter().find(|v| v["state"] == "present").unwrap();
    assert_eq!(present["container_ids"]["uid"], seen(&present["uid"], 7));

    // The image alone: its own deletions, no rw layer.
    let image = cli::run(&root, &["deleted", "--image", "small:1", "--json"]).json();
    assert!(image
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["layer_role"] == "image"));
    find(&image, "/etc/passwd", "whiteout");

    // Recovery: the base layer still holds the deleted /etc/keep.
    assert_eq!(
        cat(&root, &["--layer", &base.cache_id, "web", "/etc/keep"]),
        b"base\n"
    );
    assert_eq!(
        cat(&root, &["--layer", &base.cache_id[..10], "web", "etc/keep"]),
        b"base\n"
    );
    assert_eq!(
        cat(&root, &["--layer", &base.chain_id, "web", "/etc/keep"]),
        b"base\n"
    );
    assert_eq!(
        cat(&root, &["--layer", &base.cache_id, "web", "/var/d/old"]),
        b"old\n"
    );
    assert_eq!(
        cat(&root, &["--layer", &second.cache_id, "web", "/var/d/new"]),
        b"new\n"
    );
    // The view: deleted is deleted, the container's version wins.
    let err = cat_fails(&root, &["web", "/etc/keep"]);
    assert!(
        err.contains("/etc/keep") && err.contains("no such file"),
        "{err}"
    );
    cat_fails(&root, &["web", "/var/d/old"]);
    assert_eq!(
        cat(&root, &["web", "/var/d/new"]),
        b"changed by the container\n"
    );
    assert_eq!(cat(&root, &["web", "/root/added"]), b"by the container\n");
    // Clear errors.
    let err = cat_fails(&root, &["--layer", &web.mount_id, "web", "/etc/passwd"]);
    assert!(
        err.contains(&format!("layer {} does not hold /etc/passwd", web.mount_id)),
        "{err}"
    );
    let err = cat_fails(&root, &["--layer", &second.cache_id, "web", "/etc/passwd"]);
    assert!(err.contains("does not hold /etc/passwd"), "{err}");
    let err = cat_fails(&root, &["web", "/etc"]);
    assert!(err.contains("/etc is a directory"), "{err}");
    let err = cat_fails(&root, &["--layer", "nosuchlayer", "web", "/etc/keep"]);
    assert!(err.contains("nosuchlayer"), "{err}");
    // -o: to a file outside the evidence, never inside it.
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("keep");
    cat(
        &root,
        &[
            "--layer",
            &base.cache_id,
            "web",
            "/etc/keep",
            "-o",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"base\n");
    let inside = root.join("recovered");
    let err = cat_fails(&root, &["web", "/bin/sh", "-o", inside.to_str().unwrap()]);
    assert!(err.contains("refusing to write"), "{err}");
    assert!(!inside.exists());
    // --image reads the image's view.
    assert_eq!(cat(&root, &["--image", "small:1", "/var/d/new"]), b"new\n");

    before.assert_unchanged(&integrity::snapshot(&root));
}

/// The content of one member of a tar file.
fn tar_member(tar: &Path, name: &str) -> Vec<u8> {
    let mut ar = tar::Archive::new(std::fs::File::open(tar).unwrap());
    for entry in ar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let p = path.to_string_lossy();
        if p.trim_start_matches("./").trim_start_matches('/') == name {
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            return data;
        }
    }
    panic!("{name} not in {}", tar.display());
}

#[test]
fn real_root_deletions_and_recovery() {
    if !real::require_privileged() {
        return;
    }
    let r = real::overlay2_root();
    let root = &r.root;
    let before = integrity::snapshot(root);
    // c-created never ran: its export is the image's view, before any deletion.
    let image_view = manifest::from_tar(&r.container("c-created").export_tar);

    let list = cli::run(root, &["deleted", "c-exited", "--json"]).json();
    let all = list.as_array().unwrap();
    let rw: BTreeSet<(&str, &str)> = all
        .iter()
        .filter(|d| d["layer_role"] == "rw")
        .map(|d| (d["path"].as_str().unwrap(), d["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rw,
        BTreeSet::from([
            ("/awk/deep", "whiteout"),
            ("/awk/hardlink-b", "whiteout"),
            ("/awk/name with spaces", "whiteout"),
        ])
    );
    let image: BTreeSet<(&str, &str)> = all
        .iter()
        .filter(|d| d["layer_role"] == "image")
        .map(|d| (d["path"].as_str().unwrap(), d["kind"].as_str().unwrap()))
        .collect();
    for want in [
        ("/bin/head", "whiteout"),
        ("/awk/doomed-file", "whiteout"),
        ("/awk/doomed-dir", "whiteout"),
        ("/awk/opaque", "opaque"),
    ] {
        assert!(image.contains(&want), "{want:?} not in {image:?}");
    }
    let opaque = find(&list, "/awk/opaque", "opaque");
    assert_eq!(
        hidden_paths(opaque),
        ["/awk/opaque/old1", "/awk/opaque/old2"]
    );
    let doomed = find(&list, "/awk/doomed-dir", "whiteout");
    assert_eq!(
        hidden_paths(doomed),
        [
            "/awk/doomed-dir",
            "/awk/doomed-dir/sub",
            "/awk/doomed-dir/sub/x"
        ]
    );
    assert_eq!(doomed["hidden"][2]["sha256"], sha256(b"x\n"));
    // What the container deleted is what the image showed, per docker export.
    for d in all.iter().filter(|d| d["layer_role"] == "rw") {
        let hidden = d["hidden"].as_array().unwrap();
        assert!(!hidden.is_empty(), "{d:#}");
        for h in hidden {
            let path = h["path"].as_str().unwrap();
            let want = image_view
                .get(path.trim_start_matches('/').as_bytes())
                .unwrap_or_else(|| panic!("{path} not in the image's export"));
            if h["kind"] == "file" {
                assert_eq!(h["sha256"], want.sha256.as_deref().unwrap(), "{path}");
                assert_eq!(h["size"], want.size, "{path}");
            }
            assert_eq!(h["mode"], want.mode, "{path}");
            assert_eq!(h["uid"], want.uid, "{path}");
            assert_eq!(h["gid"], want.gid, "{path}");
            assert_eq!(h["mtime_unix"], want.mtime, "{path}");
        }
        // And each deleted file can be read back from the layer that held it.
        for h in hidden.iter().filter(|h| h["kind"] == "file") {
            let path = h["path"].as_str().unwrap();
            let got = cat(
                root,
                &["--layer", h["layer"].as_str().unwrap(), "c-exited", path],
            );
            assert_eq!(sha256(&got), h["sha256"].as_str().unwrap(), "{path}");
        }
    }
    let spaces = find(&list, "/awk/name with spaces", "whiteout");
    assert_eq!(spaces["hidden"][0]["sha256"], sha256(b"spaces\n"));
    let deep = find(&list, "/awk/deep", "whiteout");
    assert!(hidden_paths(deep).contains(&"/awk/deep/a/b/c/d/e/f/g/h/i/j/leaf"));

    // c-running deleted /etc/group: gone from the view, recovered from its layer.
    let running = cli::run(root, &["deleted", "c-running", "--json"]).json();
    let group = find(&running, "/etc/group", "whiteout");
    assert_eq!(group["layer_role"], "rw");
    let held_by = group["hidden"][0]["layer"].as_str().unwrap();
    let err = cat_fails(root, &["c-running", "/etc/group"]);
    assert!(err.contains("/etc/group"), "{err}");
    let recovered = cat(
        root,
        &["--layer", &held_by[..12], "c-running", "/etc/group"],
    );
    let exported = tar_member(&r.container("c-created").export_tar, "etc/group");
    assert_eq!(recovered, exported);
    assert_eq!(group["hidden"][0]["sha256"], sha256(&exported));
    // The view's own files read like docker export's.
    assert_eq!(
        cat(root, &["c-exited", "/awk/modify-me"]),
        tar_member(&r.container("c-exited").export_tar, "awk/modify-me")
    );
    // The rw layer's short id is a prefix of its init layer's id too: it names the rw layer.
    let rw_layer = group["layer"].as_str().unwrap();
    let err = cat_fails(
        root,
        &["--layer", &rw_layer[..12], "c-running", "/etc/passwd"],
    );
    assert!(
        err.contains(&format!("layer {rw_layer} does not hold")),
        "{err}"
    );

    before.assert_unchanged(&integrity::snapshot(root));
}
