//! The SQLite state reader on databases written here in podman 5's layout,
//! and on hostile ones.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::*;

/// The two tables read, in the layout podman 5 gives them (other tables
/// and columns are left out: the reader does not use them).
const SCHEMA: &str = "
    CREATE TABLE ContainerConfig(ID TEXT PRIMARY KEY NOT NULL, Name TEXT UNIQUE NOT NULL,
                                 PodID TEXT, JSON TEXT NOT NULL);
    CREATE TABLE ContainerState(ID TEXT PRIMARY KEY NOT NULL, State INTEGER NOT NULL,
                                ExitCode INTEGER, JSON TEXT NOT NULL);";

const EXITED_CONFIG: &str = r#"{"spec":{"process":{"args":["sh","-c","exit 3"]}},"name":"quit","labels":{"a":"b"},"rootfsImageName":"localhost/x:1","logDriver":"k8s-file","logPath":"/var/lib/containers/storage/overlay-containers/aaaa/userdata/ctr.log","staticDir":"/var/lib/containers/storage/overlay-containers/aaaa/userdata"}"#;
const EXITED_STATE: &str = r#"{"state":6,"startedTime":"2024-01-02T03:04:05.123456789Z","finishedTime":"2024-01-02T03:04:06Z","exitCode":3,"exited":true}"#;
const RUNNING_STATE: &str = r#"{"state":3,"startedTime":"2024-01-02T03:04:05Z","pid":77}"#;

/// Rows `(table, id, json)` into a WAL-mode `db.sql` under `root`,
/// left open: the rows are in `db.sql-wal` only, as on a host whose
/// podman never checkpointed.
fn live_db(root: &Path, rows: &[(&str, &str, &str)]) -> Connection {
    let conn = Connection::open(root.join(SQLITE_DB)).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;")
        .unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    for (table, id, json) in rows {
        match *table {
            "config" => conn
                .execute(
                    "INSERT INTO ContainerConfig VALUES (?1, ?1, NULL, ?2)",
                    [id, json],
                )
                .unwrap(),
            _ => conn
                .execute(
                    "INSERT INTO ContainerState VALUES (?1, 1, NULL, ?2)",
                    [id, json],
                )
                .unwrap(),
        };
    }
    conn
}

/// The seized form of a live database: `db.sql` and `db.sql-wal` copied
/// while podman had it open, without the `-shm` index.
fn seized(rows: &[(&str, &str, &str)]) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    seize_into(t.path(), rows);
    t
}

/// Writes the seized form of a live database with `rows` (`("config" |
/// "state", id, json)`) into `root`.
pub(crate) fn seize_into(root: &Path, rows: &[(&str, &str, &str)]) {
    let live = tempfile::tempdir().unwrap();
    let conn = live_db(live.path(), rows);
    for name in ["db.sql", "db.sql-wal"] {
        fs::copy(live.path().join(name), root.join(name)).unwrap();
    }
    drop(conn);
}

/// Every file under `dir` with its bytes.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        out.insert(
            e.file_name().to_string_lossy().into_owned(),
            fs::read(e.path()).unwrap_or_default(),
        );
    }
    out
}

fn read_dir(dir: &Path) -> (HashMap<String, Libpod>, Vec<DriverError>) {
    let mut problems = Vec::new();
    let m = read(&Beneath::open(dir).unwrap(), &mut problems);
    (m, problems)
}

#[test]
fn reads_the_newest_state_from_the_log_without_writing() {
    let t = seized(&[
        ("config", "aaaa", EXITED_CONFIG),
        ("state", "aaaa", EXITED_STATE),
        ("config", "bbbb", r#"{"spec":{"process":{"args":["top"]}}}"#),
        ("state", "bbbb", RUNNING_STATE),
        ("config", "cccc", "{}"),
    ]);
    let wal = fs::metadata(t.path().join("db.sql-wal")).unwrap();
    assert!(wal.len() > 0, "the rows must be in the log for this test");
    let before = contents(t.path());
    let (m, problems) = read_dir(t.path());
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(m.len(), 3, "{m:?}");
    let a = &m["aaaa"];
    assert_eq!(a.state, "exited");
    assert_eq!(a.exit_code, Some(3));
    assert_eq!(a.started, "2024-01-02T03:04:05.123456789Z");
    assert_eq!(a.args, ["sh", "-c", "exit 3"]);
    assert_eq!(a.labels, [("a".to_string(), "b".to_string())]);
    assert_eq!(a.image_name, "localhost/x:1");
    assert_eq!(a.log_driver, "k8s-file");
    assert!(a.log_path.ends_with("aaaa/userdata/ctr.log"));
    assert_eq!(m["bbbb"].state, "running");
    assert_eq!(m["bbbb"].pid, Some(77));
    assert_eq!(m["bbbb"].exit_code, None);
    assert_eq!(m["cccc"].state, "unknown");
    // Not a byte written, no `-shm` or journal made beside the evidence.
    assert_eq!(contents(t.path()), before);
}

#[test]
fn reads_a_database_podman_has_open() {
    let t = tempfile::tempdir().unwrap();
    let conn = live_db(
        t.path(),
        &[
            ("config", "aaaa", EXITED_CONFIG),
            ("state", "aaaa", EXITED_STATE),
        ],
    );
    let before = contents(t.path());
    let (m, problems) = read_dir(t.path());
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(m["aaaa"].exit_code, Some(3));
    assert_eq!(contents(t.path()), before);
    drop(conn);
}

#[test]
fn damaged_records_are_problems_and_the_others_are_kept() {
    let t = seized(&[
        ("config", "aaaa", EXITED_CONFIG),
        ("state", "aaaa", EXITED_STATE),
        ("config", "dddd", "{not json"),
        ("state", "dddd", "[1,2]"),
        ("state", "eeee", RUNNING_STATE),
    ]);
    let (m, problems) = read_dir(t.path());
    assert_eq!(m["aaaa"].state, "exited");
    assert_eq!(m["dddd"].state, "unknown");
    // A state without its config is still a container.
    assert_eq!(m["eeee"].state, "running");
    assert_eq!(problems.len(), 2, "{problems:?}");
    for p in &problems {
        assert!(p.message.contains("container dddd"), "{p:?}");
        assert_eq!(p.path.as_deref(), Some(t.path().join(SQLITE_DB).as_path()));
    }
}

/// One problem naming `db.sql`, no records, no panic.
fn one_problem(t: &Path, says: &str) {
    let (m, problems) = read_dir(t);
    assert!(m.is_empty(), "{m:?}");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].message.contains(says), "{problems:?}");
    assert_eq!(
        problems[0].path.as_deref(),
        Some(t.join(SQLITE_DB).as_path())
    );
}

#[test]
fn hostile_databases_are_one_problem_naming_the_file() {
    // Garbage.
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join(SQLITE_DB), b"garbage, not SQLite").unwrap();
    one_problem(t.path(), "not a database");

    // Truncated: the first pages of a real database, its log dropped.
    let whole = seized(&[("config", "aaaa", EXITED_CONFIG)]);
    let live = tempfile::tempdir().unwrap();
    let conn = live_db(live.path(), &[("config", "aaaa", EXITED_CONFIG)]);
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    let bytes = fs::read(live.path().join(SQLITE_DB)).unwrap();
    drop(conn);
    for cut in [10, 100, bytes.len() / 2, bytes.len() - 1] {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join(SQLITE_DB), &bytes[..cut]).unwrap();
        let (_, problems) = read_dir(t.path());
        // A cut in the header is always seen; one at the end may only
        // lose free space.
        assert!(cut > 100 || !problems.is_empty(), "cut at {cut}");
        for p in problems {
            assert_eq!(p.path.as_deref(), Some(t.path().join(SQLITE_DB).as_path()));
        }
    }
    drop(whole);

    // Too large (sparse: nothing is read).
    let t = tempfile::tempdir().unwrap();
    fs::File::create(t.path().join(SQLITE_DB))
        .unwrap()
        .set_len(SQLITE_LIMIT + 1)
        .unwrap();
    one_problem(t.path(), "bytes is more than");

    // A symlink where the database should be is not followed.
    let t = tempfile::tempdir().unwrap();
    let elsewhere = seized(&[("config", "aaaa", EXITED_CONFIG)]);
    std::os::unix::fs::symlink(elsewhere.path().join(SQLITE_DB), t.path().join(SQLITE_DB)).unwrap();
    one_problem(t.path(), "symlink");

    // Another schema.
    let t = tempfile::tempdir().unwrap();
    Connection::open(t.path().join(SQLITE_DB))
        .unwrap()
        .execute_batch("CREATE TABLE other(x);")
        .unwrap();
    one_problem(t.path(), "table ContainerConfig");
}

#[test]
fn a_log_that_cannot_be_read_is_said_and_the_database_read() {
    let t = seized(&[("config", "aaaa", EXITED_CONFIG)]);
    let wal = t.path().join("db.sql-wal");
    fs::remove_file(&wal).unwrap();
    nix_mkfifo(&wal);
    // Its rows were all in the log: the database alone has no tables.
    let (m, problems) = read_dir(t.path());
    assert!(m.is_empty());
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].message.contains("db.sql-wal"), "{problems:?}");
    assert!(problems[0].message.contains("FIFO"), "{problems:?}");
}

fn nix_mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}
