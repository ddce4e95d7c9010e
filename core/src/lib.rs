//! docker-mount-core: the small, stable crate every storage driver plugin
//! depends on — the contract, the loader, and the helpers drivers need.
//! Nothing here mounts or analyses: that is `docker-mount-engine`.
//!
//! - [`driver`]: the storage driver contract in plain Rust;
//! - [`abi`]: its stable FFI form (abi_stable) and `export_driver!`;
//! - [`loader`]: finds driver plugins in trusted directories and loads them;
//! - [`beneath`]: the only way evidence files are opened (no symlinks, no atime);
//! - [`driver_kit`]: layouts and readers drivers share (stores, ids, the bbolt reader);
//! - [`error`]: errors that name the file they are about;
//! - [`stat`]: file metadata (kind, mode, owners, times);
//! - [`time`]: RFC 3339 times to and from [`stat::Time`].
//!
//! Core never names a storage driver: drivers are plugins.

pub mod abi;
pub mod beneath;
pub mod driver;
pub mod driver_kit;
pub mod error;
pub mod loader;
pub mod stat;
pub mod time;

pub use driver::{
    Confidence, Driver, DriverError, DriverInfo, ErrorKind, LayerEntry, LayerPath, LayerPathKind,
    LayerSource, WhiteoutStyle, ABI_VERSION,
};
pub use error::{Error, Result};
