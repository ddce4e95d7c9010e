//! The forensic commands, over the model and the union views.
//!
//! - [`attribute`]: which container, layer and in-container path a host path is;
//! - [`journal`]: names deleted in rw layers, from an ext4 partition's journal;
//! - [`export`]: a view as a tar stream, like `docker export`;
//! - [`diff`]: what a container changed, like `docker diff`, with content checks;
//! - [`dataset_shortcut`]: the files a zfs clone provably shares with its origin;
//! - [`deleted`]: what the layers deleted, and where an older copy survives;
//! - [`provenance`]: `find` — which layer, image and container provide a path;
//! - [`timeline`]: file times and docker's events as bodyfile or JSON lines;
//! - [`logs`]: container logs as docker kept them;
//! - [`history`]: an image's history joined with its layers;
//! - [`audit`]: how exposed the daemon and its containers were;
//! - [`orphans`]: every layer directory on disk and who uses it;
//! - [`usage`]: what an evidence directory holds, like `du`.

pub mod attribute;
pub mod audit;
pub mod dataset_shortcut;
pub mod deleted;
pub mod diff;
pub mod export;
pub mod history;
pub mod journal;
pub mod logs;
pub mod orphans;
pub mod owner_names;
pub mod provenance;
pub mod sink;
pub mod timeline;
pub mod usage;
