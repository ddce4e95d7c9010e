//! The crate's one error type: every variant names what failed (pool,
//! dataset, object, block, device and offset) in `what`, which callers
//! extend with [`Error::context`] as the error travels up.

use std::path::PathBuf;

/// What went wrong reading a pool.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A device could not be opened or read (`what` starts as its path).
    #[error("{what}: read at {offset}: {source}")]
    Io {
        what: String,
        path: PathBuf,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    /// The devices hold no (usable) ZFS vdev label.
    #[error("{what}: not a ZFS vdev: {reason}")]
    NotZfs { what: String, reason: String },
    /// On-disk data is malformed.
    #[error("{what}: corrupt: {reason}")]
    Corrupt { what: String, reason: String },
    /// No copy of a block verified against its checksum.
    #[error("{what}: checksum mismatch on every copy ({copies} tried)")]
    Checksum { what: String, copies: usize },
    /// A feature this reader does not implement (named).
    #[error("{what}: unsupported: {feature}")]
    Unsupported { what: String, feature: String },
    /// The dataset (or block) is encrypted: no key is ever asked for.
    #[error("{what}: encrypted")]
    Encrypted { what: String },
    /// A dataset, object or name that does not exist.
    #[error("{what}: not found")]
    NotFound { what: String },
    /// A bound of [`crate::limits`] was exceeded (hostile or absurd input).
    #[error("{what}: over the limit of {limit}")]
    Limit { what: String, limit: u64 },
    /// A device the vdev tree needs is missing and no redundancy covers it.
    #[error("{what}: vdev {guid:#x} is missing and nothing reconstructs it")]
    MissingDevice { what: String, guid: u64 },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Prefixes the error's subject with `ctx` ("dataset x: object 5").
    pub fn context(mut self, ctx: impl std::fmt::Display) -> Self {
        let add = |w: &mut String| *w = format!("{ctx}: {w}");
        match &mut self {
            Error::Io { what, .. }
            | Error::NotZfs { what, .. }
            | Error::Corrupt { what, .. }
            | Error::Checksum { what, .. }
            | Error::Unsupported { what, .. }
            | Error::Encrypted { what }
            | Error::NotFound { what }
            | Error::Limit { what, .. }
            | Error::MissingDevice { what, .. } => add(what),
        }
        self
    }

    /// Whether the error says "encrypted".
    pub fn is_encrypted(&self) -> bool {
        matches!(self, Error::Encrypted { .. })
    }

    /// Whether the error says "not found".
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    pub(crate) fn corrupt(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(what: impl Into<String>, feature: impl Into<String>) -> Self {
        Error::Unsupported {
            what: what.into(),
            feature: feature.into(),
        }
    }

    pub(crate) fn limit(what: impl Into<String>, limit: u64) -> Self {
        Error::Limit {
            what: what.into(),
            limit,
        }
    }

    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }
}

/// Adds context to the error of a result.
pub(crate) trait ResultExt<T> {
    /// Prefixes the error's subject with what `f` returns.
    fn ctx<D: std::fmt::Display>(self, f: impl FnOnce() -> D) -> Result<T>;
}

impl<T> ResultExt<T> for Result<T> {
    fn ctx<D: std::fmt::Display>(self, f: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| e.context(f()))
    }
}
