//! `attribute` (issue 20): host paths → container, image, layer and
//! in-container path, on the synthetic scene (overlay2, and converted to
//! aufs, overlay and vfs), hostile paths, a bodyfile, and every file of
//! every container of the real overlay2 root in diff, merged and short-name
//! forms. Every run hashes the evidence before and after.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use docker_mount_tests::scene::{self, Scene};
use docker_mount_tests::{cli, integrity, manifest, real};
use serde_json::Value;

/// `attribute --json` of `paths` (given on standard input, one a line, and
/// those holding a newline as arguments) on `root`, checked to leave it
/// unchanged; one answer per path, in order.
fn attribute(root: &Path, paths: &[OsString]) -> Vec<Value> {
    let before = integrity::snapshot(root);
    let out = run_attribute(root, paths);
    before.assert_unchanged(&integrity::snapshot(root));
    out
}

fn run_attribute(root: &Path, paths: &[OsString]) -> Vec<Value> {
    use std::io::Write;
    let (args, lines): (Vec<&OsString>, Vec<&OsString>) =
        paths.iter().partition(|p| p.as_bytes().contains(&b'\n'));
    let mut cmd = Command::new(cli::binary());
    cmd.arg("--root").arg(root).arg("--json").arg("attribute");
    cmd.args(&args);
    cmd.arg("-");
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = Vec::new();
    for l in &lines {
        input.extend_from_slice(l.as_bytes());
        input.push(b'\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "attribute failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    cli::check_json(
        &["--json", "attribute"].map(OsStr::new),
        out.status.code(),
        &out.stdout,
    )
    .unwrap();
    let all: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(all.len(), paths.len());
    // Arguments come first: put the answers back in the callers' order.
    let mut by_path: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for v in all {
        by_path
            .entry(v["path"].as_str().unwrap().to_string())
            .or_default()
            .push(v);
    }
    paths
        .iter()
        .map(|p| {
            let list = by_path.get_mut(&escape(p.as_bytes())).unwrap();
            list.remove(0)
        })
        .collect()
}

/// The engine's path text: UTF-8 as is, other bytes `\xNN`, `\` as `\\`.
fn escape(b: &[u8]) -> String {
    let mut out = String::new();
    for chunk in b.utf8_chunks() {
        out.push_str(&chunk.valid().replace('\\', "\\\\"));
        for x in chunk.invalid() {
            out.push_str(&format!("\\x{x:02x}"));
        }
    }
    out
}

fn os(s: impl AsRef<[u8]>) -> OsString {
    OsString::from_vec(s.as_ref().to_vec())
}

/// The entry for container `name`.
fn user<'a>(a: &'a Value, name: &str) -> &'a Value {
    a["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name} in {a:#}"))
}

fn names(a: &Value) -> Vec<String> {
    let mut n: Vec<String> = a["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

fn scene_in(dir: &tempfile::TempDir) -> Scene {
    scene::build(&dir.path().join("docker"))
}

#[test]
fn scene_every_path_form() {
    let dir = tempfile::tempdir().unwrap();
    let s = scene_in(&dir);
    let fx = &s.fixture;
    let web = fx.container(s.web);
    let base = fx.layer(fx.image(s.small_image).layers[0]);
    let second = fx.layer(fx.image(s.small_image).layers[1]);
    let root_text = fx.root.to_str().unwrap();
    let paths: Vec<OsString> = vec![
        // 0: the rw layer's diff, as fls on the host would list it.
        os(format!(
            "/var/lib/docker/overlay2/{}/diff/var/d/new",
            web.mount_id
        )),
        // 1: the same through the --root path and the short link.
        os(format!("{root_text}/overlay2/l/{}/var/d/new", web.rw_link)),
        // 2: the merged view, under a mount point of the host image.
        os(format!(
            "/mnt/host/var/lib/docker/overlay2/{}/merged/var/d/new",
            web.mount_id
        )),
        // 3: an image layer's file, deleted by the second layer above it.
        os(format!(
            "/var/lib/docker/overlay2/{}/diff/etc/passwd",
            base.cache_id
        )),
        // 4: docker's own files about the container.
        os(format!(
            "/var/lib/docker/containers/{}/config.v2.json",
            web.id
        )),
        // 5
        os(format!(
            "/var/lib/docker/containers/{}/{}-json.log",
            web.id, web.id
        )),
        // 6: the layerdb record of an image layer.
        os(format!(
            "/var/lib/docker/image/overlay2/layerdb/sha256/{}/cache-id",
            second.chain_id.trim_start_matches("sha256:")
        )),
        // 7: a volume's file.
        os("/var/lib/docker/volumes/data/_data/db"),
        // 8: the driver's bookkeeping beside the files.
        os(format!("/var/lib/docker/overlay2/{}/work/x", web.mount_id)),
        // 9: hostile: `..`, an id of `../../etc`, non-UTF-8, nothing at all.
        os("/var/lib/docker/overlay2/../../etc/shadow"),
        // 10
        os(b"/var/lib/docker/overlay2/\xff\xfe/diff/x"),
        // 11
        os("/etc/passwd"),
        // 12: a root inside a container's layer is the layer's data.
        os(format!(
            "/var/lib/docker/overlay2/{}/diff/var/lib/docker/containers/{}/config.v2.json",
            web.mount_id, web.id
        )),
        // 13: a name with a newline and a non-UTF-8 byte, in the rw layer.
        os([
            format!("/var/lib/docker/overlay2/{}/diff/tmp/a\nb", web.mount_id).as_bytes(),
            b"\xe9",
        ]
        .concat()),
        // 14: the image layer through its short link.
        os(format!(
            "/var/lib/docker/overlay2/l/{}/etc/passwd",
            base.link
        )),
        // 15: the init layer, through its short link.
        os(format!(
            "/var/lib/docker/overlay2/l/{}/etc/hosts",
            web.init_link
        )),
    ];
    let a = attribute(&fx.root, &paths);

    for i in [0, 1] {
        assert_eq!(a[i]["kind"], "layer-file", "{:#}", a[i]);
        assert_eq!(a[i]["driver"], "overlay2");
        assert_eq!(a[i]["layer"], web.mount_id.as_str());
        assert_eq!(a[i]["role"], "container-rw");
        assert_eq!(a[i]["inner_path"], "/var/d/new");
        assert_eq!(names(&a[i]), ["web"]);
        let u = user(&a[i], "web");
        assert_eq!(u["id"], web.id.as_str());
        assert_eq!(u["path"], "/var/d/new");
        assert_eq!(u["seen"], "visible");
        assert_eq!(u["seen_layer"], web.mount_id.as_str());
    }
    assert_eq!(a[2]["kind"], "view-file", "{:#}", a[2]);
    assert_eq!(a[2]["layer"], web.mount_id.as_str());
    assert_eq!(user(&a[2], "web")["seen"], "visible");

    assert_eq!(a[3]["kind"], "layer-file", "{:#}", a[3]);
    assert_eq!(a[3]["role"], "image");
    assert_eq!(
        a[3]["chain_id"],
        base.chain_id.trim_start_matches("sha256:")
    );
    assert!(a[3]["images"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i.as_str().unwrap().starts_with("small")));
    for c in a[3]["containers"].as_array().unwrap() {
        assert_eq!(c["seen"], "deleted", "{c}");
        assert_eq!(c["path"], "/etc/passwd");
    }
    assert!(names(&a[3]).contains(&"web".to_string()));
    assert_eq!(a[14]["layer"], base.cache_id.as_str());
    assert_eq!(a[15]["kind"], "layer-file", "{:#}", a[15]);
    assert_eq!(a[15]["layer"], web.init_id.as_str());
    assert_eq!(a[15]["role"], "container-init");
    assert_eq!(names(&a[15]), ["web"]);
    assert_eq!(user(&a[15], "web")["path"], "/etc/hosts");
    assert_eq!(a[14]["inner_path"], "/etc/passwd");

    for i in [4, 5] {
        assert_eq!(a[i]["kind"], "container-file", "{:#}", a[i]);
        assert_eq!(names(&a[i]), ["web"]);
    }
    assert!(a[5]["note"].as_str().unwrap().contains("json-file"));
    assert_eq!(a[6]["kind"], "layerdb");
    assert_eq!(a[6]["layer"], second.cache_id.as_str());
    assert_eq!(a[7]["kind"], "volume-file", "{:#}", a[7]);
    assert_eq!(user(&a[7], "web")["path"], "/data/db");
    assert_eq!(a[8]["kind"], "layer-metadata");
    assert_eq!(a[8]["layer"], web.mount_id.as_str());
    for i in [9, 10, 11] {
        assert_eq!(a[i]["kind"], "none", "{:#}", a[i]);
        assert!(a[i]["containers"].as_array().unwrap().is_empty());
    }
    assert!(a[9]["note"].as_str().unwrap().contains(".."));
    assert_eq!(a[12]["kind"], "layer-file");
    assert_eq!(a[12]["layer"], web.mount_id.as_str());
    assert_eq!(a[13]["kind"], "layer-file");
    assert_eq!(a[13]["inner_path"], "/tmp/a\nb\\xe9");
    assert_eq!(user(&a[13], "web")["seen"], "absent");

    // The table names the layer and the container's path.
    let run = cli::run(
        &fx.root,
        &["attribute", paths[0].to_str().unwrap(), "/etc/passwd"],
    );
    let out = run.ok();
    assert!(out.contains(&web.mount_id[..12]) && out.contains("web:/var/d/new (visible)"));
    assert!(out.contains("2 paths, 1 attributed"));
}

/// The scene converted to another driver: its layer files attributed.
fn converted(driver: &str) {
    if !real::require_privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = scene_in(&dir);
    let fx = &s.fixture;
    let web = fx.container(s.web);
    let base = fx.layer(fx.image(s.small_image).layers[0]);
    let root = dir.path().join(format!("{driver}-root"));
    let (rw, view, image_file, want) = match driver {
        "aufs" => {
            docker_mount_tests::convert::overlay2_to_aufs(&fx.root, &root);
            (
                format!("aufs/diff/{}/var/d/new", web.mount_id),
                Some(format!("aufs/mnt/{}/var/d/new", web.mount_id)),
                format!("aufs/diff/{}/etc/passwd", base.cache_id),
                "deleted",
            )
        }
        "overlay" => {
            docker_mount_tests::convert::overlay2_to_overlay(&fx.root, &root);
            (
                format!("overlay/{}/upper/var/d/new", web.mount_id),
                Some(format!("overlay/{}/merged/var/d/new", web.mount_id)),
                format!("overlay/{}/root/etc/passwd", base.cache_id),
                "deleted",
            )
        }
        _ => {
            docker_mount_tests::full_tree::overlay2_to_full(
                &fx.root,
                &root,
                docker_mount_tests::full_tree::VFS,
            );
            (
                format!("vfs/dir/{}/var/d/new", web.mount_id),
                None,
                format!("vfs/dir/{}/etc/passwd", base.cache_id),
                "deleted",
            )
        }
    };
    let mut paths = vec![
        os(format!("/var/lib/docker/{rw}")),
        os(format!("/var/lib/docker/{image_file}")),
    ];
    if let Some(v) = &view {
        paths.push(os(format!("/var/lib/docker/{v}")));
    }
    let a = attribute(&root, &paths);
    assert_eq!(a[0]["kind"], "layer-file", "{driver}: {:#}", a[0]);
    assert_eq!(a[0]["driver"], driver);
    assert_eq!(a[0]["layer"], web.mount_id.as_str());
    assert_eq!(a[0]["inner_path"], "/var/d/new");
    assert_eq!(user(&a[0], "web")["seen"], "visible");
    assert_eq!(user(&a[0], "web")["path"], "/var/d/new");
    assert_eq!(a[1]["kind"], "layer-file", "{driver}: {:#}", a[1]);
    assert_eq!(a[1]["layer"], base.cache_id.as_str());
    assert_eq!(a[1]["role"], "image");
    if !want.is_empty() {
        assert_eq!(user(&a[1], "web")["seen"], want, "{driver}: {:#}", a[1]);
    }
    if view.is_some() {
        assert_eq!(a[2]["kind"], "view-file", "{driver}: {:#}", a[2]);
        assert_eq!(user(&a[2], "web")["seen"], "visible");
    }
    // A base file every layer above keeps: aufs reads the base layer
    // itself; full trees are copies, the container's own named.
    let sh = os(format!(
        "/var/lib/docker/{}",
        image_file.replace("etc/passwd", "bin/sh")
    ));
    let a = attribute(&root, &[sh]);
    let web_sees = user(&a[0], "web");
    if driver == "aufs" {
        assert_eq!(web_sees["seen"], "visible", "{:#}", a[0]);
        assert_eq!(web_sees["seen_layer"], base.cache_id.as_str());
    } else {
        assert_eq!(web_sees["seen"], "copied", "{driver}: {:#}", a[0]);
        assert_ne!(web_sees["seen_layer"], base.cache_id.as_str());
    }
}

#[test]
fn scene_as_aufs() {
    converted("aufs");
}

#[test]
fn scene_as_overlay() {
    converted("overlay");
}

#[test]
fn scene_as_vfs() {
    converted("vfs");
}

/// The scene as a devicemapper root (one thin device per layer): a path
/// under `mnt/<id>/rootfs` is the container's view, read from its device.
#[test]
fn scene_as_devicemapper() {
    if !privileged_with(
        "devicemapper",
        &["/usr/sbin/thin_restore", "/usr/sbin/mkfs.ext4"],
        "thin-provisioning-tools e2fsprogs",
    ) {
        return;
    }
    use docker_mount_tests::fixture::{ContainerOpts, ImageOpts, Node, RootBuilder};
    let dir = tempfile::tempdir().unwrap();
    // A small root: the scene's 150-layer image overflows the conversion's mounts.
    let mut b = RootBuilder::new(&dir.path().join("docker"));
    let base = b.layer(&[
        Node::file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
        Node::file("var/d/old", b"old\n"),
    ]);
    let image = b.image(&["small:1"], base, ImageOpts::default());
    let web_ref = b.container(
        "web",
        image,
        ContainerOpts {
            rw: vec![Node::file("var/d/new", b"by the container\n")],
            ..ContainerOpts::default()
        },
    );
    let fx = &b.finish();
    let web = fx.container(web_ref);
    docker_mount_tests::convert_dm::devicemapper_in_place(
        &fx.root,
        &dir.path().join("work"),
        docker_mount_tests::convert_dm::Fs::Ext4,
    );
    let paths = [
        os(format!(
            "/var/lib/docker/devicemapper/mnt/{}/rootfs/var/d/new",
            web.mount_id
        )),
        os(format!(
            "/var/lib/docker/devicemapper/metadata/{}",
            web.mount_id
        )),
        os(format!(
            "/var/lib/docker/containers/{}/hostconfig.json",
            web.id
        )),
    ];
    let a = attribute(&fx.root, &paths);
    assert_eq!(a[0]["kind"], "view-file", "{:#}", a[0]);
    assert_eq!(a[0]["driver"], "devicemapper");
    assert_eq!(a[0]["layer"], web.mount_id.as_str());
    let u = user(&a[0], "web");
    assert_eq!(u["path"], "/var/d/new");
    assert_eq!(u["seen"], "visible", "{:#}", a[0]);
    assert_eq!(a[1]["kind"], "layer-metadata", "{:#}", a[1]);
    assert_eq!(a[1]["layer"], web.mount_id.as_str());
    assert_eq!(a[2]["kind"], "container-file");
    assert_eq!(names(&a[2]), ["web"]);
}

#[test]
fn bodyfile_lines_annotated() {
    let dir = tempfile::tempdir().unwrap();
    let s = scene_in(&dir);
    let fx = &s.fixture;
    let web = fx.container(s.web);
    let body = dir.path().join("body");
    let lines = [
        format!("0|/var/lib/docker/overlay2/{}/diff/var/d/new|1234|r/rrw-r--r--|0|0|25|1|2|3|4", web.mount_id),
        format!("0|/var/lib/docker/overlay2/{}/diff/root/gone (deleted)|1235|r/rrw-r--r--|0|0|0|1|2|3|4", web.mount_id),
        "0|/etc/passwd|12|r/rrw-r--r--|0|0|25|1|2|3|4".to_string(),
        "# not a record".to_string(),
    ];
    std::fs::write(&body, lines.join("\n") + "\n").unwrap();
    let before = integrity::snapshot(&fx.root);
    let run = cli::run(
        &fx.root,
        &["attribute", "--bodyfile", body.to_str().unwrap()],
    );
    before.assert_unchanged(&integrity::snapshot(&fx.root));
    let out: Vec<&str> = run.ok().lines().collect();
    assert_eq!(out.len(), lines.len(), "{out:#?}");
    for (o, l) in out.iter().zip(&lines) {
        assert!(o.starts_with(l.as_str()), "{o} does not keep {l}");
    }
    assert_eq!(
        &out[0][lines[0].len()..],
        format!(
            "|layer-file|overlay2|{}|container-rw|web:/var/d/new:visible|",
            web.mount_id
        )
    );
    assert!(out[1].contains("|layer-file|overlay2|") && out[1].contains("web:/root/gone:absent"));
    assert!(out[2].ends_with("|none|||||"), "{}", out[2]);
    assert_eq!(out[3], lines[3]);
    assert!(run.stderr.contains("3 bodyfile records, 2 attributed"));

    let run = cli::run(
        &fx.root,
        &["--json", "attribute", "--bodyfile", body.to_str().unwrap()],
    );
    let json: Vec<Value> = run
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(json.len(), 4);
    assert_eq!(json[0]["line"], lines[0].as_str());
    assert_eq!(json[0]["attribution"]["layer"], web.mount_id.as_str());
    assert!(json[3]["attribution"].is_null());

    // `--bodyfile -`: the same from standard input.
    let piped = Command::new(cli::binary())
        .arg("--root")
        .arg(&fx.root)
        .args(["attribute", "--bodyfile", "-"])
        .stdin(std::fs::File::open(&body).unwrap())
        .output()
        .unwrap();
    assert!(piped.status.success());
    let annotated = cli::run(
        &fx.root,
        &["attribute", "--bodyfile", body.to_str().unwrap()],
    );
    assert_eq!(String::from_utf8(piped.stdout).unwrap(), annotated.ok());
}

/// Docker's overlay2 stack of a real container, top first, from the
/// evidence's own files (the oracle's, not the engine's, reading).
fn real_stack(root: &Path, id: &str) -> Vec<String> {
    let read = |p: PathBuf| {
        let b = integrity::read_noatime(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        String::from_utf8(b).unwrap().trim().to_string()
    };
    let mounts = root.join("image/overlay2/layerdb/mounts").join(id);
    let mut out = vec![read(mounts.join("mount-id")), read(mounts.join("init-id"))];
    let mut chain = Some(read(mounts.join("parent")));
    while let Some(c) = chain {
        let dir = root
            .join("image/overlay2/layerdb/sha256")
            .join(c.trim_start_matches("sha256:"));
        out.push(read(dir.join("cache-id")));
        chain = dir
            .join("parent")
            .is_file()
            .then(|| read(dir.join("parent")));
    }
    out
}

#[test]
fn real_overlay2_every_file_of_every_container() {
    if !real::require_privileged() {
        return;
    }
    let r = real::overlay2_root();
    // Taken before the oracle reads anything: it too must leave no trace.
    let before = r.evidence();
    let mut paths: Vec<OsString> = Vec::new();
    // (container name, in-container path, layer holding the version seen, form)
    let mut want: Vec<(String, Vec<u8>, String, &str)> = Vec::new();
    for c in &r.containers {
        let stack = real_stack(&r.root, &c.id);
        let links: Vec<String> = stack
            .iter()
            .map(|l| {
                let b = integrity::read_noatime(&r.root.join("overlay2").join(l).join("link"));
                String::from_utf8(b.unwrap()).unwrap().trim().to_string()
            })
            .collect();
        let m = manifest::from_tar(&r.dir.join(&c.export_tar));
        for path in m.entries.keys().filter(|p| !p.is_empty()) {
            let inner = [b"/".as_slice(), path].concat();
            // The topmost layer holding the path is the one the container sees.
            let Some(k) = stack.iter().position(|l| {
                let p = r
                    .root
                    .join("overlay2")
                    .join(l)
                    .join("diff")
                    .join(manifest::os(path));
                std::fs::symlink_metadata(p).is_ok()
            }) else {
                panic!("{}: no layer holds {}", c.name, escape(&inner));
            };
            let host = |form: &str| -> OsString {
                let mid: Vec<u8> = match form {
                    "diff" => format!("overlay2/{}/diff", stack[k]).into_bytes(),
                    "merged" => format!("overlay2/{}/merged", stack[0]).into_bytes(),
                    _ => format!("overlay2/l/{}", links[k]).into_bytes(),
                };
                os([b"/var/lib/docker/".as_slice(), &mid, &inner].concat())
            };
            for form in ["diff", "merged", "short"] {
                paths.push(host(form));
                want.push((c.name.clone(), inner.clone(), stack[k].clone(), form));
            }
        }
    }
    assert!(paths.len() > 300, "only {} paths", paths.len());
    let answers = run_attribute(&r.root, &paths);
    before.assert_unchanged(&r.evidence());
    let mut checked = 0;
    for ((name, inner, layer, form), a) in want.iter().zip(&answers) {
        let ctx = format!("{name} {} ({form}): {a:#}", escape(inner));
        let kind = if *form == "merged" {
            "view-file"
        } else {
            "layer-file"
        };
        assert_eq!(a["kind"], kind, "{ctx}");
        assert_eq!(a["driver"], "overlay2", "{ctx}");
        assert_eq!(a["layer"], layer.as_str(), "{ctx}");
        assert_eq!(a["inner_path"], escape(inner).as_str(), "{ctx}");
        let u = user(a, name);
        assert_eq!(u["id"], r.container(name).id.as_str(), "{ctx}");
        assert_eq!(u["path"], escape(inner).as_str(), "{ctx}");
        assert_eq!(u["seen"], "visible", "{ctx}");
        assert_eq!(u["seen_layer"], layer.as_str(), "{ctx}");
        checked += 1;
    }
    eprintln!(
        "attribute: {checked} host paths of {} containers checked",
        r.containers.len()
    );

    // c-running deleted the image's /etc/group (a whiteout in its rw
    // layer): the image layer's copy is deleted for it, visible to others.
    let stack = real_stack(&r.root, &r.container("c-running").id);
    let holder = stack[1..]
        .iter()
        .find(|l| {
            r.root
                .join("overlay2")
                .join(l)
                .join("diff/etc/group")
                .is_file()
        })
        .unwrap();
    let a = &run_attribute(
        &r.root,
        &[os(format!(
            "/var/lib/docker/overlay2/{holder}/diff/etc/group"
        ))],
    )[0];
    assert_eq!(user(a, "c-running")["seen"], "deleted", "{a:#}");
    assert_eq!(user(a, "c-running")["seen_layer"], Value::Null);
    assert_eq!(user(a, "c-stopped")["seen"], "visible", "{a:#}");
    assert_eq!(user(a, "c-stopped")["seen_layer"], holder.as_str());
    before.assert_unchanged(&r.evidence());
}

/// `fls -r -m /var/lib/docker` of an ext4 image holding (a copy of) the
/// real overlay2 root, annotated line by line.
#[test]
fn real_overlay2_fls_bodyfile() {
    if !privileged_with(
        "sleuthkit",
        &["/usr/bin/fls", "/usr/sbin/mkfs.ext4"],
        "sleuthkit e2fsprogs",
    ) {
        return;
    }
    let r = real::overlay2_root();
    let before = r.evidence();
    let work = tempfile::tempdir().unwrap();
    let img = work.path().join("var-lib-docker.ext4");
    {
        // The copy is read through a read-only noatime bind.
        let view = docker_mount_tests::mounts::noatime_bind(&r.root);
        mkfs_ext4_from(view.path(), &img, "512M");
    }
    let fls = Command::new("fls")
        .args(["-r", "-m", "/var/lib/docker"])
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        fls.status.success(),
        "fls: {}",
        String::from_utf8_lossy(&fls.stderr)
    );
    let body = work.path().join("body");
    std::fs::write(&body, &fls.stdout).unwrap();
    let lines: Vec<&[u8]> = fls
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert!(lines.len() > 500, "only {} fls lines", lines.len());

    let text = Command::new(cli::binary())
        .arg("--root")
        .arg(&r.root)
        .args(["attribute", "--bodyfile"])
        .arg(&body)
        .output()
        .unwrap();
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let out: Vec<&[u8]> = text
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(out.len(), lines.len());
    for (o, l) in out.iter().zip(&lines) {
        assert!(
            o.starts_with(l),
            "{} does not keep {}",
            escape(o),
            escape(l)
        );
        // Eleven fields of the record, six of the attribution.
        assert!(o.len() > l.len() && o[l.len()] == b'|', "{}", escape(o));
    }

    let json = Command::new(cli::binary())
        .arg("--root")
        .arg(&r.root)
        .args(["--json", "attribute", "--bodyfile"])
        .arg(&body)
        .output()
        .unwrap();
    assert!(json.status.success());
    cli::check_json(
        &["--json", "attribute", "--bodyfile"].map(OsStr::new),
        json.status.code(),
        &json.stdout,
    )
    .unwrap();
    before.assert_unchanged(&r.evidence());
    let answers: Vec<Value> = json
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(answers.len(), lines.len());
    let by_id: BTreeMap<&str, &str> = r
        .containers
        .iter()
        .map(|c| (c.id.as_str(), c.name.as_str()))
        .collect();
    let (mut layer_files, mut container_files) = (0, 0);
    for (l, v) in lines.iter().zip(&answers) {
        let a = &v["attribution"];
        let name = docker_mount_engine_name(l);
        let rest = name.strip_prefix("/var/lib/docker/".as_bytes()).unwrap();
        let parts: Vec<&[u8]> = rest.split(|&b| b == b'/').collect();
        if parts.len() > 3 && parts[0] == b"overlay2" && parts[2] == b"diff" {
            let id = std::str::from_utf8(parts[1]).unwrap();
            assert_eq!(a["kind"], "layer-file", "{}: {a:#}", escape(l));
            assert_eq!(a["layer"], id, "{}", escape(l));
            let inner = [b"/".as_slice(), &parts[3..].join(&b'/')].concat();
            assert_eq!(a["inner_path"], escape(&inner).as_str(), "{}", escape(l));
            layer_files += 1;
        }
        if parts.len() > 2 && parts[0] == b"containers" {
            let id = std::str::from_utf8(parts[1]).unwrap();
            assert_eq!(a["kind"], "container-file", "{}: {a:#}", escape(l));
            assert_eq!(names(a), [by_id[id]], "{}", escape(l));
            container_files += 1;
        }
    }
    assert!(
        layer_files > 300 && container_files > 20,
        "{layer_files} {container_files}"
    );
    eprintln!(
        "attribute: {} fls lines annotated; {layer_files} layer files, {container_files} container files checked",
        lines.len()
    );
}

/// The name field of a bodyfile line, as the oracle reads it: between the
/// first `|` and the last nine, ` (deleted)` and ` -> target` taken off.
fn docker_mount_engine_name(line: &[u8]) -> Vec<u8> {
    let fields: Vec<&[u8]> = line.split(|&b| b == b'|').collect();
    let mut name = fields[1..fields.len() - 9].join(&b'|');
    if let Some(at) = name.windows(10).position(|w| w == b" (deleted)") {
        name.truncate(at);
    }
    if fields[fields.len() - 8].starts_with(b"l") {
        if let Some(at) = name.windows(4).position(|w| w == b" -> ") {
            name.truncate(at);
        }
    }
    name
}

/// `attribute --journal`: the scene's root on an ext4 partition where a
/// file was created in web's rw layer and deleted; the name is gone from
/// the directory, the journal's copy of the block still holds it.
#[test]
fn journal_recovers_a_name_deleted_in_a_rw_layer() {
    if !journal_tools() {
        return;
    }
    use nix::mount::umount;
    let dir = tempfile::tempdir().unwrap();
    let s = scene_in(&dir);
    let fx = &s.fixture;
    let web = fx.container(s.web);
    let img = dir.path().join("part.ext4");
    mkfs_ext4_from(&fx.root, &img, "256M");
    // The container's deed, on a loop mount of the partition.
    let mnt = docker_mount_tests::mounts::MountPoint::new();
    // `mount -o loop`: the loop device goes with the mount (autoclear).
    let ok = Command::new("mount")
        .args(["-t", "ext4", "-o", "loop"])
        .arg(&img)
        .arg(mnt.path())
        .status()
        .unwrap();
    assert!(ok.success());
    let victim = mnt
        .path()
        .join("overlay2")
        .join(&web.mount_id)
        .join("diff/root/stolen-data");
    std::fs::write(&victim, "secret\n").unwrap();
    nix::unistd::sync();
    std::fs::remove_file(&victim).unwrap();
    nix::unistd::sync();
    umount(mnt.path()).unwrap();

    let before = integrity::snapshot(&fx.root);
    let (report, found) = journal_report(&fx.root, &img, "/root/stolen-data");
    before.assert_unchanged(&integrity::snapshot(&fx.root));
    assert_eq!(found.len(), 1, "{report:#}");
    let r = &found[0];
    assert!(r["inode"].as_u64().unwrap() > 11, "{r:#}");
    let a = &r["attribution"];
    assert_eq!(a["kind"], "layer-file");
    assert_eq!(a["layer"], web.mount_id.as_str());
    assert_eq!(a["role"], "container-rw");
    assert_eq!(user(a, "web")["path"], "/root/stolen-data");
    // Deleted: the layer no longer holds it.
    assert_eq!(user(a, "web")["seen"], "absent");
    // Nothing still in the directory is reported.
    assert!(report["recovered"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["attribution"]["inner_path"] != "/root/added"));
}

/// `attribute --journal` on a real dockerd's root: an ext4 partition
/// where container c-deleter wrote a file in its rw layer, then deleted it.
#[test]
fn real_ext4_journal_names_a_file_a_container_deleted() {
    use docker_mount_tests::real_journal::{self, CONTAINER, DELETED};
    if !journal_tools() {
        return;
    }
    let case = real_journal::build();
    // The partition, read-only and without log replay, as the root.
    let mnt = docker_mount_tests::mounts::MountPoint::new();
    // Parallel tests race for free loop devices ("already mounted or mount
    // point busy"): a few tries.
    let ok = (0..5).any(|try_no| {
        if try_no > 0 {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        Command::new("mount")
            .args(["-t", "ext4", "-o", "loop,ro,noload"])
            .arg(&case.image)
            .arg(mnt.path())
            .status()
            .unwrap()
            .success()
    });
    assert!(ok, "cannot mount {}", case.image.display());
    let (report, found) = journal_report(mnt.path(), &case.image, DELETED);
    drop(mnt);
    assert!(!found.is_empty(), "{report:#}");
    let a = &found[0]["attribution"];
    assert_eq!(a["kind"], "layer-file", "{a:#}");
    assert_eq!(a["role"], "container-rw");
    let u = user(a, CONTAINER);
    assert_eq!(u["id"], case.container_id.as_str());
    assert_eq!(u["path"], DELETED);
    assert_eq!(u["seen"], "absent");
    assert!(found[0]["inode"].as_u64().unwrap() > 11);
    eprintln!(
        "attribute --journal: {} names recovered; {DELETED} of {CONTAINER} at inode {}",
        report["recovered"].as_array().unwrap().len(),
        found[0]["inode"]
    );
}

/// A layer directory nothing records: an orphan, said so.
#[test]
fn orphan_layer_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = scene_in(&dir);
    let fx = &s.fixture;
    let id = "0rphan0000000000000000000000000000000000000000000000000000000000";
    let diff = fx.root.join("overlay2").join(id).join("diff/tmp");
    std::fs::create_dir_all(&diff).unwrap();
    std::fs::write(diff.join("dropper"), "x").unwrap();
    let a = attribute(
        &fx.root,
        &[os(format!(
            "/var/lib/docker/overlay2/{id}/diff/tmp/dropper"
        ))],
    );
    assert_eq!(a[0]["kind"], "layer-file", "{:#}", a[0]);
    assert_eq!(a[0]["layer"], id);
    assert_eq!(a[0]["role"], "orphan");
    assert!(a[0]["containers"].as_array().unwrap().is_empty());
    assert!(a[0]["note"].as_str().unwrap().starts_with("orphan layer"));
}

/// Privileged, with The Sleuth Kit and mkfs.ext4.
fn journal_tools() -> bool {
    privileged_with(
        "sleuthkit",
        &[
            "/usr/bin/icat",
            "/usr/bin/ifind",
            "/usr/bin/istat",
            "/usr/sbin/mkfs.ext4",
        ],
        "sleuthkit e2fsprogs",
    )
}

/// Privileged, with `programs` (from Debian's `packages`); fails in CI
/// when not ([`real::require`]).
fn privileged_with(what: &str, programs: &[&str], packages: &str) -> bool {
    real::require_privileged() && real::require(what, real::programs_available(programs, packages))
}

fn sha_file(p: &Path) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(p).unwrap(),
    ))
}

/// `attribute --journal image --partition-root /` on `root`, checked to
/// leave the image unchanged; the recovered names at `inner`.
fn journal_report(root: &Path, image: &Path, inner: &str) -> (Value, Vec<Value>) {
    let before = sha_file(image);
    let run = Command::new(cli::binary())
        .arg("--root")
        .arg(root)
        .args(["--json", "attribute", "--journal"])
        .arg(image)
        .args(["--partition-root", "/"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(sha_file(image), before, "the partition image changed");
    cli::check_json(
        &["--json", "attribute", "--journal"].map(OsStr::new),
        run.status.code(),
        &run.stdout,
    )
    .unwrap();
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    let found = report["recovered"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["attribution"]["inner_path"] == inner)
        .cloned()
        .collect();
    (report, found)
}

/// An ext4 image `img` of `size` holding a copy of the tree `from`.
fn mkfs_ext4_from(from: &Path, img: &Path, size: &str) {
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-b", "4096", "-d"])
        .arg(from)
        .arg(img)
        .arg(size)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mkfs.ext4: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
