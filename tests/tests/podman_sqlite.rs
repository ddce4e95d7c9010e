//! A synthetic podman 5 root (no privilege, no podman): containers/storage's
//! JSON records and overlay layers written here, libpod's state in a
//! SQLite `db.sql` whose rows are only in its `-wal` (as a host left it
//! whose podman never checkpointed), and a `k8s-file` `ctr.log`. The CLI
//! must read state, command, log and history from them without writing a
//! byte: no `-shm` index, no checkpoint, the evidence hashing the same.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::fs;
use std::path::Path;

use docker_mount_tests::{cli, integrity};
use serde_json::json;
use sha2::{Digest, Sha256};

const BASE: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const RW: &str = "3333333333333333333333333333333333333333333333333333333333333333";
const CTR: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

fn write(p: &Path, data: impl AsRef<[u8]>) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

/// An overlay layer with its short link and parents.
fn layer(root: &Path, id: &str, short: &str, lower: &[&str]) {
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

/// libpod's SQLite state with `rows` (`(id, config, state)`) in `root`:
/// `db.sql` and `db.sql-wal` copied while the database is open, the rows
/// in the log only.
fn libpod_state(root: &Path, rows: &[(&str, String, String)]) {
    let live = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(live.path().join("db.sql")).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
         CREATE TABLE ContainerConfig(ID TEXT PRIMARY KEY NOT NULL, Name TEXT UNIQUE NOT NULL,
                                      PodID TEXT, JSON TEXT NOT NULL);
         CREATE TABLE ContainerState(ID TEXT PRIMARY KEY NOT NULL, State INTEGER NOT NULL,
                                     ExitCode INTEGER, JSON TEXT NOT NULL);",
    )
    .unwrap();
    for (id, config, state) in rows {
        conn.execute(
            "INSERT INTO ContainerConfig VALUES (?1, ?1, NULL, ?2)",
            [id, config.as_str()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO ContainerState VALUES (?1, 6, NULL, ?2)",
            [id, state.as_str()],
        )
        .unwrap();
    }
    for name in ["db.sql", "db.sql-wal"] {
        fs::copy(live.path().join(name), root.join(name)).unwrap();
    }
    drop(conn);
}

/// The root; returns the image id.
fn podman5_root(root: &Path) -> String {
    layer(root, BASE, "AAAA", &[]);
    write(
        &root.join("overlay").join(BASE).join("diff/hello"),
        "hello\n",
    );
    layer(root, RW, "CCCC", &["AAAA"]);
    write(&root.join("overlay").join(RW).join("diff/added"), "added\n");
    write(
        &root.join("overlay-layers/layers.json"),
        json!([
            {"id": BASE, "diff-digest": format!("sha256:{BASE}")},
            {"id": RW, "parent": BASE},
        ])
        .to_string(),
    );
    let config = json!({
        "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{BASE}")]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "/bin/sh -c echo hello > /hello"},
                    {"created_by": "/bin/sh -c #(nop) CMD [\"/bin/sh\"]", "empty_layer": true}],
    })
    .to_string();
    let image = hex::encode(Sha256::digest(config.as_bytes()));
    let key = format!("sha256:{image}");
    let name = format!("={}", docker_mount_core::driver_kit::base64(key.as_bytes()));
    write(
        &root.join("overlay-images").join(&image).join(name),
        &config,
    );
    write(
        &root.join("overlay-images/images.json"),
        json!([{"id": image, "names": ["localhost/base:1"], "layer": BASE,
                "big-data-names": [key]}])
        .to_string(),
    );
    write(
        &root.join("overlay-containers/containers.json"),
        json!([{"id": CTR, "names": ["quitter"], "image": image, "layer": RW,
                "created": "2024-01-02T00:00:00Z"}])
        .to_string(),
    );
    let userdata = format!("/var/lib/containers/storage/overlay-containers/{CTR}/userdata");
    write(
        &root
            .join("overlay-containers")
            .join(CTR)
            .join("userdata/ctr.log"),
        "2024-01-02T00:00:01.000000001+00:00 stdout F out 1\n\
         2024-01-02T00:00:01.000000002+00:00 stderr F err 1\n\
         2024-01-02T00:00:01.000000003+00:00 stdout F \n\
         2024-01-02T00:00:01.000000004+00:00 stdout P no newline\n",
    );
    libpod_state(
        root,
        &[(
            CTR,
            json!({"spec": {"process": {"args": ["sh", "-c", "exit 7"]}},
                   "rootfsImageName": "localhost/base:1", "logDriver": "k8s-file",
                   "logPath": format!("{userdata}/ctr.log"), "staticDir": userdata})
            .to_string(),
            json!({"state": 6, "exitCode": 7, "exited": true,
                   "startedTime": "2024-01-02T00:00:01Z", "finishedTime": "2024-01-02T00:00:02Z"})
            .to_string(),
        )],
    );
    image
}

#[test]
fn state_logs_and_history_of_a_podman_5_root_without_writing() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let image = podman5_root(root);
    let before = integrity::snapshot(root);

    let list = cli::run(root, &["list", "--all", "--json"]);
    assert_eq!(list.stderr, "", "a healthy root");
    let list = list.json();
    let c = &list[0];
    assert_eq!(c["name"], "quitter", "{list:#}");
    assert_eq!(c["state"], "exited", "{c:#}");
    assert_eq!(c["exit_code"], 7, "{c:#}");
    assert_eq!(c["command"], "sh -c exit 7", "{c:#}");
    assert_eq!(c["image"], "localhost/base:1", "{c:#}");

    let logs = cli::run(root, &["logs", "--raw", "quitter"]);
    assert_eq!(logs.stdout, "out 1\n\nno newline");
    assert_eq!(logs.stderr, "err 1\n");

    let history = cli::run(root, &["history", &image[..12], "--json"]).json();
    assert!(
        history["warnings"].as_array().unwrap().is_empty(),
        "{history:#}"
    );
    let steps = history["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{history:#}");
    assert_eq!(steps[1]["created_by"], "/bin/sh -c echo hello > /hello");
    assert_eq!(steps[1]["layer"]["cache_id"], BASE, "{history:#}");
    assert_eq!(steps[1]["layer"]["present"], true, "{history:#}");

    let cat = cli::run(root, &["cat", "quitter", "/hello"]);
    assert_eq!(cat.ok(), "hello\n");

    // Nothing written: no `-shm` index beside the database, no checkpoint.
    assert!(!root.join("db.sql-shm").exists());
    before.assert_unchanged(&integrity::snapshot(root));
}

/// `attribute` on a podman root: the layer's `diff/`, its `l/` short name
/// and the rw layer's `merged/` name podman's container and its path.
#[test]
fn attribute_names_the_podman_container() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    podman5_root(root);
    let s = "/var/lib/containers/storage/overlay";
    let paths = [
        format!("{s}/{RW}/diff/added"),
        format!("{s}/l/AAAA/hello"),
        format!("{s}/{RW}/merged/hello"),
    ];
    let before = integrity::snapshot(root);
    let mut args = vec!["--json", "attribute"];
    args.extend(paths.iter().map(String::as_str));
    let run = cli::run(root, &args);
    before.assert_unchanged(&integrity::snapshot(root));
    let a = run.json();
    let a = a.as_array().unwrap();
    assert_eq!(a[0]["kind"], "layer-file", "{:#}", a[0]);
    assert_eq!(a[0]["driver"], "podman");
    assert_eq!(a[0]["layer"], RW);
    assert_eq!(a[0]["containers"][0]["name"], "quitter");
    assert_eq!(a[0]["containers"][0]["id"], CTR);
    assert_eq!(a[0]["containers"][0]["path"], "/added");
    assert_eq!(a[0]["containers"][0]["seen"], "visible");
    assert_eq!(a[1]["kind"], "layer-file", "{:#}", a[1]);
    assert_eq!(a[1]["layer"], BASE);
    assert_eq!(a[1]["role"], "image");
    assert_eq!(a[1]["containers"][0]["seen"], "visible");
    assert_eq!(a[2]["kind"], "view-file", "{:#}", a[2]);
    assert_eq!(a[2]["layer"], BASE);
    assert_eq!(a[2]["containers"][0]["seen_layer"], BASE);
}
