//! The driver over synthetic podman roots (json files written by hand).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::fs;
use std::path::Path;

use serde_json::json;

use super::*;
use docker_mount_core::driver_kit::base64;

const BASE: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const MID: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const RW: &str = "3333333333333333333333333333333333333333333333333333333333333333";
const CTR: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

fn write(p: &Path, data: impl AsRef<[u8]>) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

/// An overlay layer dir with its link, `l/` symlink and lower file.
fn layer_dir(root: &Path, id: &str, short: &str, lower: &[&str]) {
    let d = root.join("overlay").join(id);
    fs::create_dir_all(d.join("diff")).unwrap();
    write(&d.join("link"), short);
    fs::create_dir_all(root.join("overlay/l")).unwrap();
    std::os::unix::fs::symlink(format!("../{id}/diff"), root.join("overlay/l").join(short))
        .unwrap();
    if !lower.is_empty() {
        let l: Vec<String> = lower.iter().map(|s| format!("l/{s}")).collect();
        write(&d.join("lower"), l.join(":"));
    }
}

/// A root with a two-layer image and one container on it. Returns the image id.
fn podman_root(root: &Path) -> String {
    layer_dir(root, BASE, "AAAA", &[]);
    layer_dir(root, MID, "BBBB", &["AAAA"]);
    layer_dir(root, RW, "CCCC", &["BBBB", "AAAA"]);
    write(
        &root.join("overlay-layers/layers.json"),
        json!([
            {"id": BASE, "created": "2024-01-01T00:00:00Z", "diff-digest": format!("sha256:{BASE}")},
            {"id": MID, "parent": BASE, "diff-digest": format!("sha256:{MID}")},
            {"id": RW, "parent": MID, "names": ["c1-layer"]},
        ])
        .to_string(),
    );
    let config = json!({"created": "2024-01-01T00:00:00Z", "config": {"Cmd": ["/bin/sh"]}, "rootfs": {"type": "layers", "diff_ids": []}}).to_string();
    let image_id = hex::encode(Sha256::digest(config.as_bytes()));
    let key = format!("sha256:{image_id}");
    write(
        &root
            .join("overlay-images")
            .join(&image_id)
            .join(big_data_name(&key)),
        &config,
    );
    write(
        &root.join("overlay-images/images.json"),
        json!([{"id": image_id, "names": ["localhost/base:latest"], "layer": MID,
                "created": "2024-01-01T00:00:01Z", "big-data-names": [key, "manifest"]}])
        .to_string(),
    );
    write(
        &root.join("overlay-containers/containers.json"),
        json!([{"id": CTR, "names": ["c1"], "image": image_id, "layer": RW,
                "metadata": json!({"image-name": "localhost/base:latest", "name": "c1"}).to_string(),
                "created": "2024-01-02T00:00:00Z"}])
        .to_string(),
    );
    write(
        &root
            .join("overlay-containers")
            .join(CTR)
            .join("userdata/config.json"),
        json!({"process": {"args": ["sh", "-c", "echo hi"]}}).to_string(),
    );
    image_id
}

#[test]
fn base64_names_big_data_like_containers_storage() {
    // A file name from a real podman 4.3 root.
    assert_eq!(
        big_data_name("sha256:b46161d4d6c5d0054d6b232b2965a7b810f88170fd2adcccc7746a207811a497"),
        "=c2hhMjU2OmI0NjE2MWQ0ZDZjNWQwMDU0ZDZiMjMyYjI5NjVhN2I4MTBmODgxNzBmZDJhZGNjY2M3NzQ2YTIwNzgxMWE0OTc="
    );
    assert_eq!(big_data_name("manifest"), "manifest");
    assert_eq!(base64(b"ab"), "YWI=");
    assert_eq!(base64(b"a"), "YQ==");
    assert_eq!(base64(b""), "");
}

#[test]
fn detects_podman_roots_only() {
    let t = tempfile::tempdir().unwrap();
    assert_eq!(Podman.detect(t.path()), Confidence::NONE);
    fs::create_dir(t.path().join("containers")).unwrap();
    assert_eq!(Podman.detect(t.path()), Confidence::NONE, "a docker root");
    podman_root(t.path());
    assert_eq!(Podman.detect(t.path()), Confidence::CERTAIN);
    assert_eq!(Podman.detect(&t.path().join("missing")), Confidence::NONE);
}

#[test]
fn catalogs_images_and_containers_with_their_layers() {
    let t = tempfile::tempdir().unwrap();
    let image_id = podman_root(t.path());
    let c = Podman.catalog(t.path()).unwrap();
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    assert_eq!(c.images.len(), 1);
    let img = &c.images[0];
    assert_eq!(img.id, format!("sha256:{image_id}"));
    assert_eq!(img.layers, [MID, BASE]);
    assert_eq!(img.names, ["localhost/base:latest"]);
    assert_eq!(img.config.as_ref().unwrap()["config"]["Cmd"][0], "/bin/sh");
    assert_eq!(c.containers.len(), 1);
    let ctr = &c.containers[0];
    assert_eq!(ctr.id, CTR);
    assert_eq!(ctr.name, "c1");
    assert_eq!(ctr.image, "localhost/base:latest");
    assert_eq!(ctr.image_id, format!("sha256:{image_id}"));
    assert_eq!(ctr.command, ["sh", "-c", "echo hi"]);
    assert_eq!(ctr.state, "unknown", "no libpod database");
    assert_eq!(ctr.engine, "podman");
    let roles: Vec<(&str, Role)> = ctr.layers.iter().map(|l| (l.id.as_str(), l.role)).collect();
    assert_eq!(
        roles,
        [(RW, Role::Rw), (MID, Role::Image), (BASE, Role::Image)]
    );
    assert_eq!(
        ctr.source,
        t.path().join("overlay-containers/containers.json")
    );
}

#[test]
fn layers_are_diff_dirs_with_parents_from_lower_files() {
    let t = tempfile::tempdir().unwrap();
    podman_root(t.path());
    let LayerSource::Diff {
        dir,
        whiteouts,
        parent_ids,
    } = Podman.layer(t.path(), RW).unwrap()
    else {
        panic!("not a diff layer");
    };
    assert_eq!(dir, t.path().join("overlay").join(RW).join("diff"));
    assert_eq!(whiteouts, WhiteoutStyle::Overlay);
    assert_eq!(parent_ids, [MID, BASE]);
    for bad in ["../x", "l", "", "nope"] {
        assert!(Podman.layer(t.path(), bad).is_err(), "{bad}");
    }
    let mut ids: Vec<String> = Podman
        .layers(t.path())
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    ids.sort();
    assert_eq!(ids, [BASE, MID, RW]);
}

#[test]
fn a_mount_program_unpacks_image_layers_with_aufs_whiteouts() {
    let t = tempfile::tempdir().unwrap();
    podman_root(t.path());
    write(&t.path().join("overlay/.has-mount-program"), "true");
    let style = |id| match Podman.layer(t.path(), id).unwrap() {
        LayerSource::Diff { whiteouts, .. } => whiteouts,
        other => panic!("{other:?}"),
    };
    assert_eq!(style(MID), WhiteoutStyle::Aufs);
    assert_eq!(style(RW), WhiteoutStyle::Overlay);
}

#[test]
fn broken_records_are_problems_naming_their_file_and_hide_nothing_else() {
    let t = tempfile::tempdir().unwrap();
    let image_id = podman_root(t.path());
    let ctrs = t.path().join("overlay-containers/containers.json");
    write(
        &ctrs,
        json!([
            {"id": CTR, "names": ["c1"], "image": image_id, "layer": RW},
            {"id": "../../etc", "layer": RW},
            {"id": "dddd", "layer": "../../etc"},
            {"id": "eeee", "layer": "ffff"},
            {"id": 7},
            {"id": CTR, "layer": RW},
            {"id": "gggg", "layer": RW, "metadata": "{not json"},
        ])
        .to_string(),
    );
    write(&t.path().join("overlay-images/images.json"), "[{\"id\": ");
    let c = Podman.catalog(t.path()).unwrap();
    let ids: Vec<&str> = c.containers.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, [CTR, "eeee", "gggg"]);
    assert!(c.images.is_empty());
    let msgs: Vec<String> = c.problems.iter().map(ToString::to_string).collect();
    let count = |needle: &str| msgs.iter().filter(|m| m.contains(needle)).count();
    assert_eq!(count("containers.json"), 5, "{msgs:#?}");
    assert_eq!(count("images.json"), 1, "{msgs:#?}");
    assert_eq!(count("ffff is not in layers.json"), 1, "{msgs:#?}");
    // The container on a missing layer still lists it: using it fails, loudly.
    let e = c.containers.iter().find(|c| c.id == "eeee").unwrap();
    assert_eq!(e.layers.len(), 1);
    assert!(Podman.layer(t.path(), "ffff").is_err());
}

#[test]
fn an_image_config_that_does_not_match_its_id_is_reported() {
    let t = tempfile::tempdir().unwrap();
    let image_id = podman_root(t.path());
    let key = format!("sha256:{image_id}");
    write(
        &t.path()
            .join("overlay-images")
            .join(&image_id)
            .join(big_data_name(&key)),
        "{\"tampered\": true}",
    );
    let c = Podman.catalog(t.path()).unwrap();
    assert_eq!(c.problems.len(), 1, "{:?}", c.problems);
    assert!(c.problems[0].message.contains("hashes to"));
    assert_eq!(c.images.len(), 1);
}

#[test]
fn cycles_in_layers_json_are_reported_not_followed() {
    let t = tempfile::tempdir().unwrap();
    podman_root(t.path());
    write(
        &t.path().join("overlay-layers/layers.json"),
        json!([{"id": BASE, "parent": RW}, {"id": MID, "parent": BASE}, {"id": RW, "parent": MID}])
            .to_string(),
    );
    let c = Podman.catalog(t.path()).unwrap();
    assert_eq!(c.containers[0].layers.len(), 3);
    assert!(c
        .problems
        .iter()
        .any(|p| p.message.contains("own ancestor")));
}

#[test]
fn an_empty_or_foreign_directory_has_an_empty_catalog() {
    let t = tempfile::tempdir().unwrap();
    let c = Podman.catalog(t.path()).unwrap();
    assert!(c.containers.is_empty() && c.images.is_empty() && c.problems.is_empty());
    assert!(Podman.catalog(&t.path().join("missing")).is_err());
}

#[test]
fn podman_5_state_and_k8s_file_log_come_from_sqlite() {
    let t = tempfile::tempdir().unwrap();
    podman_root(t.path());
    let userdata = format!("/var/lib/containers/storage/overlay-containers/{CTR}/userdata");
    let config = json!({"spec": {"process": {"args": ["sh", "-c", "exit 4"]}},
                        "logDriver": "k8s-file", "logPath": format!("{userdata}/ctr.log"),
                        "staticDir": userdata})
    .to_string();
    let state = json!({"state": 6, "exitCode": 4, "exited": true,
                       "startedTime": "2024-01-02T00:00:01Z", "finishedTime": "2024-01-02T00:00:02Z"})
    .to_string();
    super::sqlite::tests::seize_into(
        t.path(),
        &[("config", CTR, &config), ("state", CTR, &state)],
    );
    let c = Podman.catalog(t.path()).unwrap();
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    let ctr = &c.containers[0];
    assert_eq!(ctr.state, "exited");
    assert_eq!(ctr.exit_code, Some(4));
    assert_eq!(ctr.finished, "2024-01-02T00:00:02Z");
    assert_eq!(ctr.command, ["sh", "-c", "exit 4"]);
    assert_eq!(ctr.log, None, "no ctr.log written yet");
    let log = Path::new("overlay-containers")
        .join(CTR)
        .join("userdata/ctr.log");
    write(&t.path().join(&log), "2024-01-02T00:00:01.5Z stdout F hi\n");
    let c = Podman.catalog(t.path()).unwrap();
    let got = c.containers[0].log.as_ref().unwrap();
    assert_eq!(
        (got.path.as_path(), got.format.as_str()),
        (log.as_path(), "k8s-file")
    );
}

#[test]
fn logs_elsewhere_or_of_other_drivers_are_not_claimed() {
    let t = tempfile::tempdir().unwrap();
    podman_root(t.path());
    let log = Path::new("overlay-containers")
        .join(CTR)
        .join("userdata/ctr.log");
    write(&t.path().join(&log), "x");
    let userdata = format!("/s/overlay-containers/{CTR}/userdata");
    for (driver, path) in [
        ("journald", format!("{userdata}/ctr.log")),
        ("k8s-file", "/var/log/elsewhere.log".to_string()),
        ("k8s-file", format!("{userdata}/../../../etc/shadow")),
    ] {
        let config =
            json!({"logDriver": driver, "logPath": path, "staticDir": userdata}).to_string();
        for f in ["db.sql", "db.sql-wal"] {
            fs::remove_file(t.path().join(f)).ok();
        }
        super::sqlite::tests::seize_into(t.path(), &[("config", CTR, &config)]);
        let c = Podman.catalog(t.path()).unwrap();
        assert_eq!(c.containers[0].log, None, "{driver} {path}");
    }
}

#[test]
fn sizes_are_podmans_diff_sizes_and_big_data() {
    let t = tempfile::tempdir().unwrap();
    let image_id = podman_root(t.path());
    let layers = json!([
        {"id": BASE, "diff-size": 1000},
        {"id": MID, "parent": BASE, "diff-size": 24},
        {"id": RW, "parent": MID},
    ]);
    write(
        &t.path().join("overlay-layers/layers.json"),
        layers.to_string(),
    );
    let images = t.path().join("overlay-images/images.json");
    let mut records: serde_json::Value =
        serde_json::from_slice(&fs::read(&images).unwrap()).unwrap();
    records[0]["big-data-sizes"] = json!({"manifest": 300, format!("sha256:{image_id}"): 76});
    write(&images, records.to_string());
    let c = Podman.catalog(t.path()).unwrap();
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    let facts = &c.image_facts[0];
    assert_eq!(facts.id, format!("sha256:{image_id}"));
    assert_eq!(facts.size, Some(1400));
    assert_eq!(
        facts.layer_sizes,
        [(MID.to_string(), 24), (BASE.to_string(), 1000)]
    );
    // A layer without its size (or a negative one) leaves the image's unknown.
    write(
        &t.path().join("overlay-layers/layers.json"),
        json!([{"id": BASE, "diff-size": -1}, {"id": MID, "parent": BASE, "diff-size": 24}])
            .to_string(),
    );
    let c = Podman.catalog(t.path()).unwrap();
    assert_eq!(c.image_facts[0].size, None);
    assert_eq!(c.image_facts[0].layer_sizes.len(), 1);
}
