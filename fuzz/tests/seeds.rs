//! The fuzz targets on stable, under `cargo test`: every seed
//! (`fuzz/seeds/<target>/`) and every input that once crashed or hung
//! (`fuzz/regressions/<target>/`), then bounded deterministic mutations of
//! each seed. Every call runs under a time limit: a hang is a failure
//! naming its input. `DM_FUZZ_MUTATIONS=N` changes the mutations per seed.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use docker_mount_fuzz_targets::{max_len, target, Mutator, TARGETS};

/// Longest any one input may take (a debug build on a busy 2-core box).
const LIMIT: Duration = Duration::from_secs(20);

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The files of `fuzz/<kind>/<name>/`, sorted.
fn inputs(kind: &str, name: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(name);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Runs `name` on `data` in a thread; the panic message, or a hang, as an error.
fn run(name: &'static str, data: Vec<u8>) -> Result<(), String> {
    let f = target(name).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("fuzz-{name}"))
        .spawn(move || {
            let result = std::panic::catch_unwind(|| f(&data)).map_err(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into())
            });
            let _ = tx.send(result);
        })
        .unwrap();
    match rx.recv_timeout(LIMIT) {
        Ok(r) => r,
        Err(_) => Err(format!("no result within {LIMIT:?}: a hang")),
    }
}

fn replay(name: &'static str) {
    let seeds = inputs("seeds", name);
    assert!(
        !seeds.is_empty(),
        "fuzz/seeds/{name}/ has no seed: every target needs at least one"
    );
    let mut failures = Vec::new();
    let fixed = inputs("regressions", name);
    for (path, data) in seeds.iter().chain(&fixed) {
        if let Err(e) = run(name, data.clone()) {
            failures.push(format!("{}: {e}", path.display()));
        }
    }
    let per_seed: usize = std::env::var("DM_FUZZ_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    let salt = name
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31) ^ u64::from(b));
    for (i, (path, data)) in seeds.iter().enumerate() {
        let mut m = Mutator::new(salt ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut current = data.clone();
        for round in 0..per_seed {
            // Stack mutations for a while, then start again from the seed.
            if round % 8 == 0 {
                current = data.clone();
            }
            current = m.mutate(&current, max_len(name));
            if let Err(e) = run(name, current.clone()) {
                failures.push(format!(
                    "mutation {round} of {}: {e}\n  input: {:?}",
                    path.display(),
                    String::from_utf8_lossy(&current)
                ));
                break;
            }
        }
    }
    assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n"));
}

macro_rules! targets {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                replay(stringify!($name));
            }
        )*

        #[test]
        fn every_target_is_tested() {
            let tested = [$(stringify!($name)),*];
            for (name, _) in TARGETS {
                assert!(tested.contains(name), "target {name} has no test here");
            }
        }
    };
}

targets!(
    container,
    image,
    legacy,
    layerdb,
    tarsplit,
    overlay2_lower,
    aufs_layers,
    union_lookup,
    logs,
    dm_thin,
    bolt,
    podman_sqlite,
    ext4_journal,
    bodyfile,
    zfs_nvlist,
    zfs_label,
    zfs_block,
    zfs_zap,
    zfs_sa,
    zfs_object,
);
