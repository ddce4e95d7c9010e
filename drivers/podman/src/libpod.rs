//! What podman itself (libpod, not containers/storage) records about its
//! containers: for each, a ContainerConfig (the OCI spec, name, command,
//! labels, created time, log driver and path) and a ContainerState (state
//! number, started and finished times, exit code, pid), both JSON. Podman 4
//! keeps them in `libpod/bolt_state.db` (a bucket `ctr` with one
//! sub-bucket per container id holding `config` and `state`); podman 5 in
//! `db.sql` in the storage root, SQLite ([`super::sqlite`]). Both give the same
//! [`Libpod`] records.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use docker_mount_core::beneath::Beneath;
use docker_mount_core::driver::{DriverError, ErrorKind};
use docker_mount_core::driver_kit::bolt::{self, BoltError, Db, Value};
use serde::Deserialize;

use super::store::problem;

pub const BOLT_DB: &str = "libpod/bolt_state.db";
/// A state database of a host with thousands of containers stays far below this.
const BOLT_LIMIT: u64 = 256 * 1024 * 1024;

/// One container as libpod records it.
#[derive(Debug, Clone, Default)]
pub struct Libpod {
    /// `running`, `exited`, ... (the state number as podman's word).
    pub state: String,
    pub started: String,
    pub finished: String,
    pub exit_code: Option<i64>,
    pub pid: Option<i64>,
    /// The process the container runs (the OCI spec's `process.args`).
    pub args: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub image_name: String,
    /// `k8s-file`, `journald`, `json-file`, `none`, ... (empty: unknown).
    pub log_driver: String,
    /// Where the log was written, as a path on the engine's host.
    pub log_path: String,
    /// The container's `userdata` directory on the engine's host.
    pub static_dir: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Config {
    spec: Spec,
    labels: BTreeMap<String, String>,
    #[serde(rename = "rootfsImageName")]
    image_name: String,
    #[serde(rename = "logDriver")]
    log_driver: String,
    #[serde(rename = "logPath")]
    log_path: String,
    #[serde(rename = "staticDir")]
    static_dir: String,
}

/// The part of an OCI runtime spec (libpod's `spec`, `userdata/config.json`) used here.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Spec {
    pub process: Process,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Process {
    pub args: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct State {
    state: i64,
    #[serde(rename = "startedTime")]
    started: String,
    #[serde(rename = "finishedTime")]
    finished: String,
    #[serde(rename = "exitCode")]
    exit_code: i64,
    exited: bool,
    pid: i64,
}

/// podman's `define.ContainerStatus` numbers as words.
fn state_word(n: i64) -> &'static str {
    match n {
        1 => "configured",
        2 => "created",
        3 | 8 => "running", // 8: stopping, still running
        4 => "stopped",
        5 => "paused",
        6 => "exited",
        7 => "removing",
        _ => "unknown",
    }
}

/// libpod's records by container id, from the bolt and the SQLite state
/// databases. A missing database holds none; an unreadable one, or
/// record, is a problem. When both are there, podman (5 as 4) uses the
/// bolt one unless configured otherwise: its records win.
pub fn read(root: &Beneath, problems: &mut Vec<DriverError>) -> HashMap<String, Libpod> {
    let mut records = super::sqlite::read(root, problems);
    records.extend(read_bolt(root, problems));
    records
}

fn read_bolt(root: &Beneath, problems: &mut Vec<DriverError>) -> HashMap<String, Libpod> {
    let rel = Path::new(BOLT_DB);
    let path = root.path().join(rel);
    if !root.exists(rel) {
        return HashMap::new();
    }
    let db = match bolt::open(root, rel, BOLT_LIMIT) {
        Ok(db) => db,
        Err(e) => {
            problems.push(e);
            return HashMap::new();
        }
    };
    match records(&db, &path, problems) {
        Ok(m) => m,
        Err(e) => {
            problems.push(e.at(&path));
            HashMap::new()
        }
    }
}

fn records(
    db: &Db,
    path: &Path,
    problems: &mut Vec<DriverError>,
) -> Result<HashMap<String, Libpod>, BoltError> {
    let mut out = HashMap::new();
    let Some(ctrs) = db.bucket(&db.root(), b"ctr")? else {
        return Ok(out);
    };
    for (id, value) in db.entries(&ctrs)? {
        let id = String::from_utf8_lossy(&id).into_owned();
        let Value::Bucket(bucket) = value else {
            continue;
        };
        let config = db.value(&bucket, b"config").map_err(|e| e.to_string());
        let state = db.value(&bucket, b"state").map_err(|e| e.to_string());
        let record = record(
            &id,
            config.as_ref().map(|c| c.as_deref()).map_err(String::clone),
            state.as_ref().map(|s| s.as_deref()).map_err(String::clone),
            &mut |message| problems.push(problem(ErrorKind::Invalid, message, path)),
        );
        out.insert(id, record);
    }
    Ok(out)
}

/// A container's record from its ContainerConfig and ContainerState JSON
/// (each missing: `Ok(None)`; unreadable: the reason). What cannot be read
/// is reported through `bad` and left empty; a container without a state
/// is in state `unknown`.
pub fn record(
    id: &str,
    config: Result<Option<&[u8]>, String>,
    state: Result<Option<&[u8]>, String>,
    bad: &mut dyn FnMut(String),
) -> Libpod {
    let config: Config = match config {
        Ok(Some(d)) => serde_json::from_slice(d).unwrap_or_else(|e| {
            bad(format!("container {id}: config: {e}"));
            Config::default()
        }),
        Ok(None) => Config::default(),
        Err(e) => {
            bad(format!("container {id}: config: {e}"));
            Config::default()
        }
    };
    let state: Option<State> = match state {
        Ok(Some(d)) => serde_json::from_slice(d)
            .map_err(|e| bad(format!("container {id}: state: {e}")))
            .ok(),
        Ok(None) => None,
        Err(e) => {
            bad(format!("container {id}: state: {e}"));
            None
        }
    };
    let record = match state {
        Some(s) => Libpod {
            state: state_word(s.state).to_string(),
            exit_code: (s.exited || s.state == 6 || s.state == 4).then_some(s.exit_code),
            pid: (s.pid > 0).then_some(s.pid),
            started: s.started,
            finished: s.finished,
            ..Default::default()
        },
        None => Libpod {
            state: "unknown".into(),
            ..Default::default()
        },
    };
    Libpod {
        args: config.spec.process.args,
        labels: config.labels.into_iter().collect(),
        image_name: config.image_name,
        log_driver: config.log_driver,
        log_path: config.log_path,
        static_dir: config.static_dir,
        ..record
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use docker_mount_core::driver_kit::bolt::writer::{Node, Writer};

    #[test]
    fn reads_state_and_config_of_each_container() {
        let state = br#"{"state":6,"startedTime":"2024-01-02T03:04:05Z","finishedTime":"2024-01-02T03:04:06Z","exitCode":3,"exited":true}"#;
        let config = br#"{"spec":{"process":{"args":["sh","-c","exit 3"]}},"labels":{"a":"b"},"rootfsImageName":"localhost/x:1"}"#;
        let running = br#"{"state":3,"startedTime":"2024-01-02T03:04:05Z","pid":77}"#;
        let mut root = Node::bucket();
        let ctr = root.child("ctr");
        ctr.child("aaaa")
            .put("config", config.as_slice())
            .put("state", state.as_slice());
        ctr.child("bbbb").put("state", running.as_slice());
        ctr.child("cccc").put("state", "{not json");
        // Buckets beside `ctr` (podman keeps several) are not containers,
        // nor is a plain value in `ctr`.
        root.child("pod").put("x", "y");
        root.child("ctr").put("stray", "not a bucket");
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("libpod")).unwrap();
        // Inline sub-buckets (small ones, as bbolt keeps them) and ones on
        // their own pages read the same.
        for inline in [true, false] {
            let bytes = Writer {
                inline,
                ..Writer::default()
            }
            .write(&root);
            std::fs::write(t.path().join(BOLT_DB), bytes).unwrap();
            let mut problems = Vec::new();
            let m = read(&Beneath::open(t.path()).unwrap(), &mut problems);
            assert_eq!(m.len(), 3, "{m:?}");
            let a = &m["aaaa"];
            assert_eq!(a.state, "exited");
            assert_eq!(a.exit_code, Some(3));
            assert_eq!(a.args, ["sh", "-c", "exit 3"]);
            assert_eq!(a.labels, [("a".to_string(), "b".to_string())]);
            assert_eq!(a.image_name, "localhost/x:1");
            assert_eq!(m["bbbb"].state, "running");
            assert_eq!(m["bbbb"].pid, Some(77));
            assert_eq!(m["bbbb"].exit_code, None);
            assert_eq!(m["cccc"].state, "unknown");
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].message.contains("container cccc: state"));
        }
    }

    #[test]
    fn a_damaged_database_is_one_problem() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("libpod")).unwrap();
        std::fs::write(t.path().join(BOLT_DB), b"garbage").unwrap();
        let mut problems = Vec::new();
        assert!(read(&Beneath::open(t.path()).unwrap(), &mut problems).is_empty());
        assert_eq!(problems.len(), 1);
        assert_eq!(
            problems[0].path.as_deref(),
            Some(t.path().join(BOLT_DB).as_path())
        );
    }
}
