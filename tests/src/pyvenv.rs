//! Python virtual environments holding packages from PyPI (Turbinia,
//! Timesketch's import client), for tests that run those projects' own
//! code against docker-mount.
//!
//! [`cached`] makes one per requirements list with Debian's
//! `/usr/bin/python3 -m venv` and `pip install`, at
//! `/var/cache/docker-mount-tests/venv-<name>-<hash of the requirements and
//! the python version>` (outside the clone: it costs minutes and up to a
//! GB). It is built in a sibling `<key>.tmp` and renamed when complete,
//! under an exclusive flock on `<key>.lock`, so an interrupted build never
//! looks complete and parallel test processes build it once. After the
//! rename the venv's console scripts name the old path: run its modules
//! with [`Venv::python`] (`python -m pip`, `python script.py`).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

use crate::trixie::CACHE;

/// The interpreter venvs are made from (xtask installs python3-venv).
pub const PYTHON: &str = "/usr/bin/python3";
/// Written last into a complete venv: its requirements and `pip freeze`.
const MARKER: &str = "docker-mount-venv.txt";

/// A complete cached venv.
#[derive(Debug, Clone)]
pub struct Venv {
    pub dir: PathBuf,
}

impl Venv {
    /// The venv's interpreter.
    pub fn python(&self) -> PathBuf {
        self.dir.join("bin/python")
    }

    /// A command running the venv's interpreter with `args`.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(self.python());
        cmd.args(args).env("PYTHONDONTWRITEBYTECODE", "1");
        cmd
    }
}

/// Whether venvs can be made here: Debian's python3 with venv and
/// ensurepip (the python3-venv package).
pub fn available() -> Result<(), String> {
    let out = Command::new(PYTHON)
        .args(["-c", "import venv, ensurepip"])
        .output()
        .map_err(|e| format!("{PYTHON}: {e} (apt-get install python3 python3-venv)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{PYTHON} cannot make venvs (apt-get install python3-venv): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The cache key of `name` with `requirements` under this python.
fn key(name: &str, requirements: &[&str]) -> Result<String, String> {
    let version = Command::new(PYTHON)
        .arg("--version")
        .output()
        .map_err(|e| format!("{PYTHON} --version: {e}"))?;
    let mut h = Sha256::new();
    h.update(&version.stdout);
    for r in requirements {
        h.update(r.as_bytes());
        h.update(b"\n");
    }
    Ok(format!("venv-{name}-{}", &hex::encode(h.finalize())[..16]))
}

/// The venv `venv-<name>-<hash>` with `requirements` (pip requirement
/// specifiers) installed, made on first use.
pub fn cached(name: &str, requirements: &[&str]) -> Result<Venv, String> {
    available()?;
    fs::create_dir_all(CACHE).map_err(|e| format!("mkdir {CACHE}: {e}"))?;
    let key = key(name, requirements)?;
    let base = Path::new(CACHE);
    let dir = base.join(&key);
    let lock_path = base.join(format!("{key}.lock"));
    let lock = File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    let _lock = Flock::lock(lock, FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("flock {}: {e}", lock_path.display()))?;
    if dir.join(MARKER).is_file() {
        return Ok(Venv { dir });
    }
    let tmp = base.join(format!("{key}.tmp"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| format!("rm -rf {}: {e}", tmp.display()))?;
    }
    prune_other_venvs(base, name, &key);
    build(&tmp, requirements)?;
    fs::rename(&tmp, &dir)
        .map_err(|e| format!("rename {} {}: {e}", tmp.display(), dir.display()))?;
    Ok(Venv { dir })
}

/// Removes venvs of `name` with other requirements whose lock no process
/// holds (a changed requirements list leaves its old venv behind).
fn prune_other_venvs(base: &Path, name: &str, key: &str) {
    let prefix = format!("venv-{name}-");
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let file_name = e.file_name().to_string_lossy().into_owned();
        let Some(hash) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        let hash = hash.strip_suffix(".tmp").unwrap_or(hash);
        let other = format!("{prefix}{hash}");
        if other == key || hash.len() != 16 || !e.path().is_dir() {
            continue;
        }
        let Ok(lock) = File::create(base.join(format!("{other}.lock"))) else {
            continue;
        };
        if let Ok(_held) = Flock::lock(lock, FlockArg::LockExclusiveNonblock) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// `python3 -m venv`, `pip install`, then the marker, into `dir`.
fn build(dir: &Path, requirements: &[&str]) -> Result<(), String> {
    let path = dir.to_str().ok_or("venv path is not UTF-8")?;
    run(Command::new(PYTHON).args(["-m", "venv", path]))?;
    let venv = Venv {
        dir: dir.to_path_buf(),
    };
    let pip = ["-m", "pip", "--disable-pip-version-check", "--no-input"];
    run(venv
        .command(pip)
        .args(["install", "--quiet"])
        .args(requirements))?;
    let freeze = run(venv.command(pip).arg("freeze"))?;
    let marker = format!("{}\n---\n{freeze}", requirements.join("\n"));
    fs::write(dir.join(MARKER), marker).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Runs `cmd`, returning its stdout, or an error with its stderr.
fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
