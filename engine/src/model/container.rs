//! A container as docker stored it: `containers/<id>/config.v2.json` and
//! `hostconfig.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::ids;
use crate::model::record::CatalogRecord;
use docker_mount_core::beneath::Beneath;
use docker_mount_core::error::{Error, Result};

/// config.v2.json and hostconfig.json can be large (env, labels) but not huge.
const CONFIG_LIMIT: u64 = 16 * 1024 * 1024;

/// The subset of `config.v2.json` an analyst needs, under docker's own names.
#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default)]
pub struct ContainerConfigFile {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Created")]
    pub created: String,
    #[serde(rename = "Path")]
    pub path: String,
    #[serde(rename = "Args")]
    pub args: Vec<String>,
    #[serde(rename = "Config")]
    pub config: RunConfig,
    #[serde(rename = "Image")]
    pub image: String,
    #[serde(rename = "State")]
    pub state: State,
    #[serde(rename = "Driver")]
    pub driver: String,
    #[serde(rename = "MountPoints")]
    pub mount_points: BTreeMap<String, MountPoint>,
    #[serde(rename = "LogPath")]
    pub log_path: String,
    #[serde(rename = "RestartCount")]
    pub restart_count: i64,
    #[serde(rename = "HostnamePath")]
    pub hostname_path: String,
    /// The descriptor of the platform manifest the container runs (docker
    /// 25+ with the containerd image store, whose `Image` is the image's
    /// target: for a multi-platform image, an index). Kept as written;
    /// see [`ContainerConfigFile::image_manifest_digest`].
    #[serde(rename = "ImageManifest")]
    pub image_manifest: Option<serde_json::Value>,
}

impl ContainerConfigFile {
    /// The `sha256:<hex>` digest of [`image_manifest`](Self::image_manifest),
    /// when it names a well-formed one.
    pub fn image_manifest_digest(&self) -> Option<&str> {
        let d = self.image_manifest.as_ref()?.get("digest")?.as_str()?;
        (d.starts_with("sha256:") && ids::parse_digest(d).is_some()).then_some(d)
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default)]
pub struct RunConfig {
    #[serde(rename = "Hostname")]
    pub hostname: String,
    #[serde(rename = "User")]
    pub user: String,
    #[serde(rename = "Env")]
    pub env: Option<Vec<String>>,
    #[serde(rename = "Cmd")]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "Entrypoint")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Image")]
    pub image: String,
    #[serde(rename = "WorkingDir")]
    pub working_dir: String,
    #[serde(rename = "Labels")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `{"80/tcp": {}}`: the ports the image or `--expose`/`-p` declared.
    #[serde(rename = "ExposedPorts", skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default)]
pub struct State {
    #[serde(rename = "Running")]
    pub running: bool,
    #[serde(rename = "Paused")]
    pub paused: bool,
    #[serde(rename = "Restarting")]
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    #[serde(rename = "RemovalInProgress")]
    pub removal_in_progress: bool,
    #[serde(rename = "Dead")]
    pub dead: bool,
    #[serde(rename = "Pid")]
    pub pid: i64,
    #[serde(rename = "ExitCode")]
    pub exit_code: i64,
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "StartedAt")]
    pub started_at: String,
    #[serde(rename = "FinishedAt")]
    pub finished_at: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default)]
pub struct MountPoint {
    #[serde(rename = "Source")]
    pub source: String,
    #[serde(rename = "Destination")]
    pub destination: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Driver")]
    pub driver: String,
    #[serde(rename = "Type")]
    pub kind: String,
}

/// The subset of `hostconfig.json` that matters for triage.
#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default)]
pub struct HostConfig {
    #[serde(rename = "Binds")]
    pub binds: Option<Vec<String>>,
    #[serde(rename = "Privileged")]
    pub privileged: bool,
    #[serde(rename = "CapAdd")]
    pub cap_add: Option<Vec<String>>,
    #[serde(rename = "CapDrop")]
    pub cap_drop: Option<Vec<String>>,
    #[serde(rename = "NetworkMode")]
    pub network_mode: String,
    #[serde(rename = "PidMode")]
    pub pid_mode: String,
    #[serde(rename = "IpcMode")]
    pub ipc_mode: String,
    #[serde(rename = "UTSMode")]
    pub uts_mode: String,
    #[serde(rename = "UsernsMode")]
    pub userns_mode: String,
    #[serde(rename = "PortBindings")]
    pub port_bindings: Option<BTreeMap<String, Option<Vec<PortBinding>>>>,
    #[serde(rename = "SecurityOpt")]
    pub security_opt: Option<Vec<String>>,
    #[serde(rename = "ReadonlyRootfs")]
    pub readonly_rootfs: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default)]
pub struct PortBinding {
    #[serde(rename = "HostIp")]
    pub host_ip: String,
    #[serde(rename = "HostPort")]
    pub host_port: String,
}

/// A container read from the root, with the files it came from.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    pub config: ContainerConfigFile,
    /// `None` until [`Container::load_host_config`], or when hostconfig.json
    /// is missing (its problems are then in `warnings`).
    pub host: Option<HostConfig>,
    pub config_path: PathBuf,
    /// Written by docker < 1.10 (`config.json`, no layerdb): its layers are
    /// named by container and image id.
    pub legacy: bool,
    /// Non-fatal problems met while reading (a bad hostconfig.json, say).
    pub warnings: Vec<String>,
    /// Set when an engine's own metadata, not docker's, recorded it.
    pub catalog: Option<CatalogRecord>,
}

/// Docker's zero time, written for times that never happened.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Whether a docker timestamp is unset.
pub fn is_zero_time(t: &str) -> bool {
    t.is_empty() || t.starts_with("0001-01-01")
}

impl Container {
    /// Reads `containers/<dir>/` beneath the root.
    pub fn read(root: &Beneath, dir: &str) -> Result<Container> {
        let base = Path::new("containers").join(dir);
        if !ids::is_full_id(dir) {
            return Err(Error::invalid(
                root.path().join(&base),
                "container directory name is not a 64-hex container id",
            ));
        }
        // Docker < 1.10 wrote config.json, with the same fields that matter
        // here: tried only when config.v2.json is missing (no probe first).
        let v2 = base.join("config.v2.json");
        let what = "a container config (config.v2.json)";
        let (config_rel, legacy, config) =
            match root.read_json::<ContainerConfigFile>(&v2, CONFIG_LIMIT, what) {
                Err(missing) if missing.is_not_found() => {
                    let old = base.join("config.json");
                    match root.read_json(&old, CONFIG_LIMIT, what) {
                        Ok(config) => (old, true, config),
                        Err(e) if e.is_not_found() => return Err(missing),
                        Err(e) => return Err(e),
                    }
                }
                other => (v2, false, other?),
            };
        if config.id != dir {
            return Err(Error::invalid(
                root.path().join(&config_rel),
                format!("ID {:?} does not match its directory {dir}", config.id),
            ));
        }
        Ok(Container {
            id: dir.to_string(),
            config,
            host: None,
            config_path: root.path().join(config_rel),
            legacy,
            warnings: Vec::new(),
            catalog: None,
        })
    }

    /// Reads `containers/<id>/hostconfig.json` into [`Container::host`];
    /// a problem goes to `warnings`. Listings skip it (`list` shows nothing
    /// from it); `find_container` and `audit` read it. Nothing to read for
    /// a container an engine's catalog recorded.
    pub fn load_host_config(&mut self, root: &Beneath) {
        if self.catalog.is_some() || self.host.is_some() {
            return;
        }
        let rel = Path::new("containers")
            .join(&self.id)
            .join("hostconfig.json");
        match root.read_json::<HostConfig>(&rel, CONFIG_LIMIT, "a host config (hostconfig.json)") {
            Ok(h) => self.host = Some(h),
            Err(e) => self.warnings.push(e.to_string()),
        }
    }

    /// The name without docker's leading slash.
    pub fn name(&self) -> &str {
        self.config.name.trim_start_matches('/')
    }

    /// The state as `docker ps` shows it, from the stored State.
    pub fn state(&self) -> &'static str {
        if let Some(c) = &self.catalog {
            return c.state;
        }
        let s = &self.config.state;
        if s.running {
            if s.paused {
                "paused"
            } else if s.restarting {
                "restarting"
            } else {
                "running"
            }
        } else if s.removal_in_progress {
            "removing"
        } else if s.dead {
            "dead"
        } else if is_zero_time(&s.started_at) {
            "created"
        } else {
            "exited"
        }
    }

    /// The command line docker ps shows: path then args.
    pub fn command(&self) -> String {
        std::iter::once(self.config.path.as_str())
            .chain(self.config.args.iter().map(String::as_str))
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The image id without its `sha256:` prefix.
    pub fn image_id(&self) -> &str {
        ids::strip_sha256(&self.config.image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_manifest_is_read_leniently() {
        let digest = format!("sha256:{}", "c".repeat(64));
        let parse = |json: String| -> ContainerConfigFile { serde_json::from_str(&json).unwrap() };
        let c = parse(format!(
            r#"{{"ID":"x","ImageManifest":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","size":1394}}}}"#
        ));
        assert_eq!(c.image_manifest_digest(), Some(digest.as_str()));
        for odd in [
            r#"{"ImageManifest":"sha256:x"}"#,
            r#"{"ImageManifest":{"digest":"../../etc"}}"#,
            r#"{"ImageManifest":{"digest":7}}"#,
            r#"{"ImageManifest":null}"#,
            "{}",
        ] {
            assert_eq!(parse(odd.into()).image_manifest_digest(), None, "{odd}");
        }
        let bare = parse(format!(
            r#"{{"ImageManifest":{{"digest":"{}"}}}}"#,
            "c".repeat(64)
        ));
        assert_eq!(bare.image_manifest_digest(), None);
    }

    fn with_state(state: State) -> Container {
        Container {
            id: "a".repeat(64),
            config: ContainerConfigFile {
                state,
                ..Default::default()
            },
            host: None,
            config_path: PathBuf::new(),
            legacy: false,
            warnings: vec![],
            catalog: None,
        }
    }

    #[test]
    fn state_follows_docker_rules() {
        let started = "2024-01-01T00:00:00Z".to_string();
        let cases = [
            (State::default(), "created"),
            (
                State {
                    started_at: started.clone(),
                    ..Default::default()
                },
                "exited",
            ),
            (
                State {
                    running: true,
                    ..Default::default()
                },
                "running",
            ),
            (
                State {
                    running: true,
                    paused: true,
                    ..Default::default()
                },
                "paused",
            ),
            (
                State {
                    running: true,
                    restarting: true,
                    ..Default::default()
                },
                "restarting",
            ),
            (
                State {
                    dead: true,
                    started_at: started,
                    ..Default::default()
                },
                "dead",
            ),
        ];
        for (state, want) in cases {
            assert_eq!(with_state(state).state(), want);
        }
    }
}
