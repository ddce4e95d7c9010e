//! Where a container's mounts are on disk: a named volume of the `local`
//! driver is `ROOT/volumes/<name>/_data` (or, for a volume created with
//! `-o type=none -o o=bind -o device=/path`, that host path); a bind mount is
//! its host path, found in the host tree when there is one.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::evidence::host::HostFs;
use crate::model::container::{Container, MountPoint};
use crate::model::root::DockerRoot;
use docker_mount_core::beneath::is_safe_component;

/// One mount of a container, with where its data is now.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct MountData {
    pub destination: String,
    /// `volume`, `bind`, `tmpfs`, ...
    pub kind: String,
    pub name: String,
    pub driver: String,
    pub rw: bool,
    /// The source docker recorded (a host path).
    pub source: String,
    /// The data on the analyst's system, when it is in the evidence.
    pub local_path: Option<PathBuf>,
    /// Why there is no local path, or what is special about it.
    pub note: Option<String>,
}

/// `volumes/<name>/opts.json` of a local volume with mount options.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct VolumeOpts {
    #[serde(rename = "MountType")]
    mount_type: String,
    #[serde(rename = "MountOpts")]
    mount_opts: String,
    #[serde(rename = "MountDevice")]
    mount_device: String,
}

fn in_host(host: Option<&HostFs>, path: &str) -> (Option<PathBuf>, Option<String>) {
    let Some(fs) = host else {
        return (
            None,
            Some("a host path: give the host's mount point as --root to find it".into()),
        );
    };
    match fs.resolve(path) {
        Ok(r) => (Some(fs.local(&r)), None),
        Err(_) => (None, Some("not in the host image".into())),
    }
}

fn volume_data(
    root: &DockerRoot,
    host: Option<&HostFs>,
    m: &MountPoint,
) -> (Option<PathBuf>, Option<String>) {
    if !m.driver.is_empty() && m.driver != "local" {
        return (
            None,
            Some(format!(
                "volume driver {}: its data is not in the docker root",
                m.driver
            )),
        );
    }
    if !is_safe_component(&m.name) {
        return (None, Some("volume name is not a plain name".into()));
    }
    let base = Path::new("volumes").join(&m.name);
    if let Ok(opts) =
        root.dir()
            .read_json::<VolumeOpts>(&base.join("opts.json"), 64 * 1024, "volume options")
    {
        let bind = opts
            .mount_opts
            .split(',')
            .any(|o| o == "bind" || o == "rbind");
        if bind && opts.mount_device.starts_with('/') {
            let (p, n) = in_host(host, &opts.mount_device);
            let note = format!(
                "local volume bound to the host's {}{}",
                opts.mount_device,
                n.map(|n| format!(" ({n})")).unwrap_or_default()
            );
            return (p, Some(note));
        }
        if !opts.mount_type.is_empty() && opts.mount_type != "none" {
            return (
                None,
                Some(format!(
                    "local volume mounted from {} ({}): its data is not in the docker root",
                    opts.mount_device, opts.mount_type
                )),
            );
        }
    }
    let data = base.join("_data");
    if root.dir().is_dir(&data) {
        (Some(root.join(&data)), None)
    } else {
        (
            None,
            Some(format!("{} is missing", root.join(&data).display())),
        )
    }
}

/// The mounts of a container with where each one's data is.
pub fn mounts(root: &DockerRoot, host: Option<&HostFs>, c: &Container) -> Vec<MountData> {
    c.config
        .mount_points
        .values()
        .map(|m| {
            let kind = if m.kind.is_empty() {
                if m.name.is_empty() { "bind" } else { "volume" }.to_string()
            } else {
                m.kind.clone()
            };
            let (local_path, note) = match kind.as_str() {
                "volume" => volume_data(root, host, m),
                "bind" => in_host(host, &m.source),
                "tmpfs" => (
                    None,
                    Some("tmpfs: in memory only, gone with the host".into()),
                ),
                "npipe" => (None, None),
                other => (None, Some(format!("{other} mount"))),
            };
            MountData {
                destination: m.destination.clone(),
                kind,
                name: m.name.clone(),
                driver: m.driver.clone(),
                rw: m.rw,
                source: m.source.clone(),
                local_path,
                note,
            }
        })
        .collect()
}
