//! Every line of real `timeline --format jsonl` output passes Timesketch's
//! import rules, checked by Timesketch's own import client from PyPI (in a
//! cached venv, tests/src/pyvenv.rs) and the server's required-field rules
//! reproduced beside it (tests/python/timesketch_check.py says which is
//! which); and the lines carry the fields an analyst filters on, owners
//! both as ids and as the container's own names.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};

use docker_mount_tests::pyvenv::{self, Venv};
use docker_mount_tests::real_triage::triage_root;
use docker_mount_tests::{cli, integrity, real};
use serde_json::Value;

/// The import client's last release, and six, which its `utils` module
/// imports without declaring it (20261014).
const REQUIREMENTS: &[&str] = &["timesketch-import-client==20261014", "six"];

/// Fields every file line carries (besides Timesketch's three).
const FILE_FIELDS: &[&str] = &[
    "container",
    "container_id",
    "image",
    "image_id",
    "layer",
    "layer_role",
    "path",
    "uid",
    "gid",
    "user",
    "group",
];

fn venv() -> Option<Venv> {
    let check = real::privileged_available().and_then(|()| pyvenv::available());
    real::require("timesketch", check).then(|| pyvenv::cached("timesketch", REQUIREMENTS).unwrap())
}

/// `timeline <args> --format jsonl` of `root` into `dir/<name>.jsonl`; its records.
fn timeline(root: &Path, args: &[&str], dir: &Path, name: &str) -> (PathBuf, Vec<Value>) {
    let mut all = vec!["timeline"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "jsonl"]);
    let out = cli::run(root, &all);
    let text = out.ok();
    let path = dir.join(format!("{name}.jsonl"));
    std::fs::write(&path, text).unwrap();
    let records = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (path, records)
}

/// Runs the checker on `files`; its summary, after asserting no failure.
fn timesketch_accepts(venv: &Venv, files: &[&Path]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/timesketch_check.py");
    let out = venv.command([script]).args(files).output().unwrap();
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the checker printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        out.status.success() && summary["failures"] == 0,
        "Timesketch would refuse lines:\n{summary:#}"
    );
    summary
}

#[test]
fn real_timelines_pass_timesketch_import_rules() {
    let Some(venv) = venv() else { return };
    let dir = tempfile::tempdir().unwrap();
    let r = real::overlay2_root();
    let before = integrity::snapshot(&r.root);
    let (all, all_records) = timeline(&r.root, &["--all"], dir.path(), "all");
    let (one, records) = timeline(&r.root, &["c-mounts"], dir.path(), "c-mounts");
    let (image, image_records) =
        timeline(&r.root, &["--image", "dm-awkward:1"], dir.path(), "image");
    before.assert_unchanged(&integrity::snapshot(&r.root));
    let t = triage_root();
    let triage_before = integrity::snapshot(&t.data_root);
    let (remap, remap_records) = timeline(&t.root, &["c-remap"], dir.path(), "c-remap");
    triage_before.assert_unchanged(&integrity::snapshot(&t.data_root));

    let summary = timesketch_accepts(&venv, &[&all, &one, &image, &remap]);
    let total = all_records.len() + records.len() + image_records.len() + remap_records.len();
    assert_eq!(summary["lines"], total, "{summary:#}");
    assert!(total > 1000, "{total} lines: too few to mean anything");

    // Files: every filter field present (null only where unknown).
    let c = r.container("c-mounts");
    let files: Vec<&Value> = records.iter().filter(|x| x["kind"] != "event").collect();
    assert!(!files.is_empty());
    for x in &files {
        for f in FILE_FIELDS {
            assert!(x.get(f).is_some(), "{f} missing from {x}");
        }
        assert_eq!(x["container_id"], c.id.as_str());
        assert_eq!(x["container"], "c-mounts");
        assert_eq!(x["image"], "dm-awkward:1");
        assert!(x["layer"].is_string() && x["path"].is_string(), "{x}");
    }
    // Owners both ways: ids as on disk and names from the container's own
    // /etc/passwd and /etc/group (root:x:0:0 there; 12345 is in neither).
    let by_path = |path: &str| files.iter().find(|x| x["path"] == path).copied();
    let passwd = by_path("/etc/passwd").unwrap();
    assert_eq!(
        (passwd["uid"].as_u64(), passwd["gid"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        (&passwd["user"], &passwd["group"]),
        (&"root".into(), &"root".into())
    );
    let odd: Vec<&&Value> = files.iter().filter(|x| x["uid"] == 12345).collect();
    assert!(!odd.is_empty(), "c-mounts has no file owned by 12345");
    for x in odd {
        assert_eq!(
            (&x["user"], &x["group"]),
            (&Value::Null, &Value::Null),
            "{x}"
        );
    }
    // A userns-remapped container: names are looked up by the ids it saw.
    let owned = remap_records
        .iter()
        .find(|x| x["path"] == "/owned")
        .unwrap();
    assert_eq!(owned["container_ids"]["uid"], 1000, "{owned}");
    let root_file = remap_records
        .iter()
        .find(|x| x["path"] == "/etc/passwd")
        .unwrap();
    assert_eq!(root_file["container_ids"]["uid"], 0, "{root_file}");
    assert_eq!(root_file["user"], "root", "{root_file}");
}
