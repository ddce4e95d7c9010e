//! Roots of docker < 1.10 (aufs, no layerdb): images in `graph/`, tags in
//! `repositories-aufs`, containers in `config.json`, layers named by image
//! and container id.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::fs;
use std::path::Path;

use docker_mount_tests::{cli, integrity, manifest};
use serde_json::json;

const BASE: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const TOP: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const CTR: &str = "3333333333333333333333333333333333333333333333333333333333333333";

fn write(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

/// A docker 1.9-style aufs root: two image layers and one container.
fn legacy_root(root: &Path) {
    let graph = |id: &str, parent: Option<&str>| {
        let mut j =
            json!({"id": id, "created": "2015-06-01T10:00:00Z", "config": {"Cmd": ["/bin/sh"]}});
        if let Some(p) = parent {
            j["parent"] = json!(p);
        }
        write(
            &root.join("graph").join(id).join("json"),
            j.to_string().as_bytes(),
        );
    };
    graph(BASE, None);
    graph(TOP, Some(BASE));
    write(
        &root.join("repositories-aufs"),
        json!({"Repositories": {"legacy": {"1.0": TOP}}})
            .to_string()
            .as_bytes(),
    );
    let diff = root.join("aufs/diff");
    write(
        &diff.join(BASE).join("etc/passwd"),
        b"root:x:0:0::/root:/bin/sh\n",
    );
    write(&diff.join(BASE).join("etc/old/file"), b"old\n");
    write(&diff.join(BASE).join("bin/sh"), b"#!fake\n");
    write(&diff.join(TOP).join("etc/.wh.passwd"), b"");
    write(&diff.join(TOP).join("etc/old/.wh..wh..opq"), b"");
    write(&diff.join(TOP).join("etc/old/new"), b"new\n");
    write(&diff.join(format!("{CTR}-init")).join(".dockerenv"), b"");
    write(&diff.join(format!("{CTR}-init")).join(".wh..wh.aufs"), b"");
    write(
        &diff.join(CTR).join("root/evil"),
        b"dropped by the attacker\n",
    );
    write(&diff.join(CTR).join("bin/.wh.sh"), b"");
    fs::create_dir_all(diff.join(CTR).join(".wh..wh.plnk")).unwrap();
    let layers = root.join("aufs/layers");
    write(&layers.join(BASE), b"");
    write(&layers.join(TOP), format!("{BASE}\n").as_bytes());
    write(
        &layers.join(format!("{CTR}-init")),
        format!("{TOP}\n{BASE}\n").as_bytes(),
    );
    write(
        &layers.join(CTR),
        format!("{CTR}-init\n{TOP}\n{BASE}\n").as_bytes(),
    );
    let config = json!({
        "ID": CTR, "Name": "/old-web", "Created": "2015-06-02T10:00:00Z", "Path": "/bin/sh", "Args": ["-c", "sleep 1d"],
        "Config": {"Image": "legacy:1.0", "Cmd": ["/bin/sh"]}, "Image": TOP, "Driver": "aufs",
        "State": {"Running": true, "StartedAt": "2015-06-02T10:00:01Z", "FinishedAt": "0001-01-01T00:00:00Z", "Pid": 42}
    });
    write(
        &root.join("containers").join(CTR).join("config.json"),
        config.to_string().as_bytes(),
    );
    write(
        &root.join("containers").join(CTR).join("hostconfig.json"),
        br#"{"Privileged":true}"#,
    );
}

#[test]
fn legacy_roots_list_show_and_export() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("docker");
    legacy_root(&root);
    let before = integrity::snapshot(&root);

    let list = cli::run(&root, &["list", "--json"]).json();
    let c = &list[0];
    assert_eq!(c["id"], CTR);
    assert_eq!(c["name"], "old-web");
    assert_eq!(c["state"], "running");
    assert_eq!(c["driver"], "aufs");
    assert_eq!(c["image_id"], TOP);

    let images = cli::run(&root, &["images", "--all", "--json"]).json();
    let top = images
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == TOP)
        .unwrap();
    assert_eq!(top["tags"][0], "legacy:1.0");
    assert_eq!(top["layers"], 2);

    let info = cli::run(&root, &["info", "old-web", "--json"]).json();
    let roles: Vec<&str> = info["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["rw", "init", "image", "image"]);
    assert!(
        info["warnings"].as_array().unwrap().is_empty(),
        "{}",
        info["warnings"]
    );
    assert_eq!(info["host"]["privileged"], true);

    let tar = tmp.path().join("out.tar");
    cli::run(&root, &["export", "old-web", "-o", tar.to_str().unwrap()]).ok();
    let view = manifest::from_tar(&tar);
    let paths: Vec<String> = view
        .entries
        .keys()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    assert_eq!(
        paths,
        [
            ".dockerenv",
            "bin",
            "etc",
            "etc/old",
            "etc/old/new",
            "root",
            "root/evil"
        ],
        "whiteouts, opaque dirs and aufs bookkeeping applied"
    );
    let diff = cli::run(&root, &["diff", "old-web"]);
    assert_eq!(diff.ok(), "C /bin\nD /bin/sh\nA /root\nA /root/evil\n");
    let image_tar = tmp.path().join("image.tar");
    cli::run(
        &root,
        &[
            "export",
            "--image",
            "legacy:1.0",
            "-o",
            image_tar.to_str().unwrap(),
        ],
    )
    .ok();
    assert!(manifest::from_tar(&image_tar).get(b"bin/sh").is_some());
    before.assert_unchanged(&integrity::snapshot(&root));
}
