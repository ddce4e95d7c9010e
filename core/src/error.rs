//! Errors of the docker model. Each names the file it is about.

use std::path::PathBuf;

use crate::driver::DriverError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {cause}{}", permission_hint(.cause))]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path} is not valid JSON for {what}: {cause}")]
    Json {
        path: PathBuf,
        what: &'static str,
        cause: serde_json::Error,
    },
    #[error("{path} is larger than the {limit}-byte limit for {what}")]
    TooLarge {
        path: PathBuf,
        what: &'static str,
        limit: u64,
    },
    #[error("{path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
    #[error("{0}")]
    Driver(#[from] DriverError),
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// Whether the file it is about does not exist: for files that are
    /// tried rather than probed first (one system call fewer).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { cause, .. } if cause.kind() == std::io::ErrorKind::NotFound)
    }

    /// An I/O failure on `path`.
    pub fn io(path: impl Into<PathBuf>, cause: impl Into<std::io::Error>) -> Error {
        Error::Io {
            path: path.into(),
            cause: cause.into(),
        }
    }

    pub fn invalid(path: impl Into<PathBuf>, problem: impl Into<String>) -> Error {
        Error::Invalid {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

/// What to do about a permission error, when not root.
fn permission_hint(cause: &std::io::Error) -> &'static str {
    if cause.kind() == std::io::ErrorKind::PermissionDenied && !nix::unistd::geteuid().is_root() {
        "; run docker-mount as root, or on a copy of the evidence you can read"
    } else {
        ""
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
