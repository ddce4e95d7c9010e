//! docker-mount-core: read a docker root offline, without ever writing to it.
//!
//! - [`driver`] and [`abi`]: the storage driver contract and its stable FFI form;
//! - [`loader`]: finds driver plugins in trusted directories;
//! - [`model`] and [`root`]: what docker wrote about containers, images, layers;
//! - [`detect`] and [`stack`]: which driver holds a container, and its layers;
//! - [`mount`]: read-only kernel mounts of a stack;
//! - [`capabilities`]: what this machine can do (root, overlay, FUSE, loop);
//! - [`beneath`]: the only way evidence files are opened.
//!
//! Core never names a storage driver: drivers are plugins.

pub mod abi;
pub mod audit;
pub mod beneath;
pub mod blockimage;
pub mod blockmount;
pub mod capabilities;
pub mod daemon_config;
pub mod deleted;
pub mod detect;
pub mod diff;
pub mod discover;
pub mod driver;
pub mod driver_kit;
pub mod error;
pub mod export;
pub mod fuse;
pub mod history;
pub mod host;
pub mod loader;
pub mod logs;
pub mod model;
pub mod mount;
pub mod orphans;
pub mod pathfmt;
pub mod provenance;
pub mod root;
pub mod stack;
pub mod timeline;
pub mod union;
pub mod usage;
pub mod userns;
pub mod view;
pub mod volumes;

pub use driver::{
    Confidence, Driver, DriverError, DriverInfo, ErrorKind, LayerEntry, LayerSource, WhiteoutStyle,
    ABI_VERSION,
};
pub use error::{Error, Result};
