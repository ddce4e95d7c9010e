//! Podman 5's libpod state: `db.sql` at the top of the storage root (not
//! in `libpod/`, where the bolt database is), SQLite in WAL mode. Table
//! `ContainerConfig` holds one row per container (`ID`, `Name`, `JSON`: the
//! same ContainerConfig JSON as bolt's `config`), `ContainerState` its
//! state (`ID`, `State`, `ExitCode`, `JSON`: bolt's `state`).
//!
//! Opening the evidence with SQLite could write to it (a `-shm` index,
//! a checkpoint of the `-wal`, the recovery of a hot journal), and
//! `immutable=1` would ignore a `-wal` that holds the newest state. So
//! `db.sql` and its `-wal` (never the `-shm`, which SQLite rebuilds) are
//! copied, bounded, opened beneath the root with `O_NOATIME` and without
//! following symlinks, into a private temporary directory, and the copy is
//! opened read-only. Every query is bounded in time (a progress handler)
//! and every value in size (SQLite's length limit).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use docker_mount_core::beneath::Beneath;
use docker_mount_core::driver::{DriverError, ErrorKind};
use rusqlite::{limits::Limit, Connection, OpenFlags};

use super::libpod::{self, Libpod};
use super::store::problem;

pub const SQLITE_DB: &str = "db.sql";
/// The write-ahead log beside it: committed transactions not yet
/// checkpointed into the database file.
const WAL_SUFFIX: &str = "-wal";
/// Bound on the database and on its log, each (a host with thousands of
/// containers stays far below).
pub const SQLITE_LIMIT: u64 = 256 * 1024 * 1024;
/// Largest value read from a row (a ContainerConfig is a few KiB to a
/// few hundred).
const VALUE_LIMIT: i32 = 16 * 1024 * 1024;
/// Progress-handler calls (every 1,000 virtual machine steps) a query may
/// take: a few seconds' work, far beyond what a real state needs.
const MAX_PROGRESS: u64 = 200_000;
/// Most rows read from a table.
const MAX_ROWS: usize = 1_000_000;

/// libpod's records from `db.sql`, by container id. A missing
/// database holds none; one that cannot be copied or read is one problem
/// naming the file; an unreadable record is a problem and the others are
/// kept.
pub fn read(root: &Beneath, problems: &mut Vec<DriverError>) -> HashMap<String, Libpod> {
    let rel = Path::new(SQLITE_DB);
    let path = root.path().join(rel);
    if !root.exists(rel) {
        return HashMap::new();
    }
    let mut bad = |message: String| problems.push(problem(ErrorKind::Invalid, message, &path));
    match read_state(root, rel, &mut bad) {
        Ok(m) => m,
        Err(e) => {
            bad(e);
            HashMap::new()
        }
    }
}

fn read_state(
    root: &Beneath,
    rel: &Path,
    bad: &mut dyn FnMut(String),
) -> Result<HashMap<String, Libpod>, String> {
    let private = tempfile::Builder::new()
        .prefix("docker-mount-libpod-")
        .tempdir()
        .map_err(|e| format!("cannot make a private directory for a copy: {e}"))?;
    let copy = private.path().join("db.sql");
    copy_out(root, rel, &copy)?;
    let wal = PathBuf::from(format!("{}{WAL_SUFFIX}", rel.display()));
    if root.exists(&wal) {
        // Without its log the database may be older than what podman last
        // committed: said, and the database read all the same.
        let copy_wal = private.path().join("db.sql-wal");
        if let Err(e) = copy_out(root, &wal, &copy_wal) {
            // Not half of it either.
            let _ = std::fs::remove_file(&copy_wal);
            bad(format!(
                "{}: {e}; the state read may be older than podman's last",
                root.path().join(&wal).display()
            ));
        }
    }
    let conn = open(&copy).map_err(|e| format!("not a readable SQLite database: {e}"))?;
    let configs = rows(&conn, "SELECT ID, JSON FROM ContainerConfig")
        .map_err(|e| format!("table ContainerConfig: {e}"))?;
    let mut states = rows(&conn, "SELECT ID, JSON FROM ContainerState")
        .map_err(|e| format!("table ContainerState: {e}"))?;
    let mut out = HashMap::new();
    for (id, config) in configs {
        let state = states.remove(&id);
        let record = libpod::record(&id, Ok(Some(&config)), Ok(state.as_deref()), &mut |m| {
            bad(m)
        });
        out.insert(id, record);
    }
    // A state without a config: a container half created or half removed.
    for (id, state) in states {
        let record = libpod::record(&id, Ok(None), Ok(Some(&state)), &mut |m| bad(m));
        out.insert(id, record);
    }
    Ok(out)
}

/// Copies evidence file `rel` (a regular file of at most [`SQLITE_LIMIT`]
/// bytes) to `to`.
fn copy_out(root: &Beneath, rel: &Path, to: &Path) -> Result<(), String> {
    let fd = root
        .open_regular(rel)
        .map_err(|e| format!("cannot open: {e}"))?;
    let mut from = std::fs::File::from(fd);
    let len = from
        .metadata()
        .map_err(|e| format!("cannot stat: {e}"))?
        .len();
    if len > SQLITE_LIMIT {
        return Err(format!("{len} bytes is more than the {SQLITE_LIMIT} read"));
    }
    let mut out = std::fs::File::create_new(to)
        .map_err(|e| format!("cannot make a private copy at {}: {e}", to.display()))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut copied: u64 = 0;
    loop {
        let n = from
            .read(&mut buf)
            .map_err(|e| format!("cannot read: {e}"))?;
        if n == 0 {
            break;
        }
        copied += n as u64;
        if copied > SQLITE_LIMIT {
            return Err(format!("grew past {SQLITE_LIMIT} bytes while being read"));
        }
        out.write_all(&buf[..n])
            .map_err(|e| format!("cannot write a private copy at {}: {e}", to.display()))?;
    }
    Ok(())
}

/// The private copy, read-only, with every query bounded.
fn open(copy: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        copy,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, VALUE_LIMIT);
    conn.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, 4096);
    // A damaged page is an error, not a wrong answer; schema entries the
    // evidence brings (triggers, views) run nothing of theirs.
    conn.execute_batch("PRAGMA cell_size_check = ON; PRAGMA trusted_schema = OFF;")?;
    let mut steps = 0u64;
    conn.progress_handler(
        1000,
        Some(move || {
            steps += 1;
            steps > MAX_PROGRESS
        }),
    );
    Ok(conn)
}

/// `(id, json)` rows of a two-column query, by id. Ids and JSON may be
/// stored as text or blobs.
fn rows(conn: &Connection, sql: &str) -> Result<HashMap<String, Vec<u8>>, String> {
    let text = |e: rusqlite::Error| e.to_string();
    let mut stmt = conn.prepare(sql).map_err(text)?;
    let mut rows = stmt.query([]).map_err(text)?;
    let mut out = HashMap::new();
    while let Some(row) = rows.next().map_err(text)? {
        if out.len() >= MAX_ROWS {
            return Err(format!("more than {MAX_ROWS} rows"));
        }
        let bytes = |i: usize| -> rusqlite::Result<Vec<u8>> {
            Ok(match row.get_ref(i)? {
                rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                    t.to_vec()
                }
                _ => Vec::new(),
            })
        };
        let id = String::from_utf8_lossy(&bytes(0).map_err(text)?).into_owned();
        out.insert(id, bytes(1).map_err(text)?);
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests;
