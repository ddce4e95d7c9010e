//! `info`: everything known about one container.

use std::collections::BTreeMap;

use anyhow::Result;
use docker_mount_engine::evidence::host::HostFs;
use docker_mount_engine::evidence::userns::IdMap;
use docker_mount_engine::evidence::volumes;
use docker_mount_engine::model::stack::{self, Role};
use serde::Serialize;

use crate::commands::list::{summarize, ContainerSummary};
use crate::context::{self, Context};
use crate::Cli;
use docker_mount_engine::model::filter::SupportList;

#[derive(Serialize, schemars::JsonSchema)]
pub struct Info {
    #[serde(flatten)]
    summary: ContainerSummary,
    /// The platform manifest run (`ImageManifest`, containerd image store).
    image_manifest: Option<String>,
    hostname: String,
    user: String,
    working_dir: String,
    env: Vec<String>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    labels: BTreeMap<String, String>,
    restart_count: i64,
    pid: i64,
    oom_killed: bool,
    state_error: String,
    log_path: String,
    host: HostFacts,
    mounts: Vec<MountFact>,
    /// Layers top first: rw, init, then the image's.
    layers: Vec<LayerFact>,
    layer_error: Option<String>,
    /// How ids on disk map to the container's (userns-remap, rootless, --uid-map).
    id_map: Option<IdMap>,
    /// `User` as the container saw it, and as stored on disk.
    user_on_disk: Option<String>,
    warnings: Vec<String>,
}

#[derive(Serialize, Default, schemars::JsonSchema)]
struct HostFacts {
    privileged: bool,
    cap_add: Vec<String>,
    cap_drop: Vec<String>,
    network_mode: String,
    pid_mode: String,
    ipc_mode: String,
    uts_mode: String,
    userns_mode: String,
    readonly_rootfs: bool,
    security_opt: Vec<String>,
    /// `container_port/proto -> host_ip:host_port`.
    ports: Vec<String>,
    binds: Vec<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct MountFact {
    destination: String,
    kind: String,
    /// Host path (bind) or the volume's data directory.
    source: String,
    name: String,
    driver: String,
    rw: bool,
    /// Where the data is on the analyst's system (a volume's `_data`, a
    /// bind's source in the host tree), when it is in the evidence.
    local_path: Option<String>,
    note: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct LayerFact {
    role: Role,
    driver_id: String,
    chain_id: Option<String>,
    diff_id: Option<String>,
    size: Option<u64>,
    path: Option<String>,
}

fn host_facts(h: &docker_mount_engine::model::container::HostConfig) -> HostFacts {
    let ports = h
        .port_bindings
        .iter()
        .flatten()
        .flat_map(|(port, bindings)| {
            bindings
                .iter()
                .flatten()
                .map(move |b| format!("{port} -> {}:{}", b.host_ip, b.host_port))
        })
        .collect();
    HostFacts {
        privileged: h.privileged,
        cap_add: h.cap_add.clone().unwrap_or_default(),
        cap_drop: h.cap_drop.clone().unwrap_or_default(),
        network_mode: h.network_mode.clone(),
        pid_mode: h.pid_mode.clone(),
        ipc_mode: h.ipc_mode.clone(),
        uts_mode: h.uts_mode.clone(),
        userns_mode: h.userns_mode.clone(),
        readonly_rootfs: h.readonly_rootfs,
        security_opt: h.security_opt.clone().unwrap_or_default(),
        ports,
        binds: h.binds.clone().unwrap_or_default(),
    }
}

/// The user of `user` (`uid[:gid]`, numeric only) as stored on disk.
fn user_on_disk(user: &str, map: &IdMap) -> Option<String> {
    let (u, g) = user.split_once(':').unwrap_or((user, ""));
    let uid: u32 = if u.is_empty() { 0 } else { u.parse().ok()? };
    let host_uid = map.uid.to_host(uid)?;
    if g.is_empty() {
        return Some(host_uid.to_string());
    }
    let host_gid = map.gid.to_host(g.parse().ok()?)?;
    Some(format!("{host_uid}:{host_gid}"))
}

fn gather(ctx: &Context, id_map: Option<IdMap>, query: &str) -> Result<Info> {
    let c = ctx.root.find_container(query)?;
    let (layers, layer_error, mut warnings) =
        match stack::container_stack(&ctx.root, &ctx.drivers, &c) {
            Ok(s) => (
                s.layers
                    .into_iter()
                    .map(|l| LayerFact {
                        role: l.role,
                        path: l.source.dir().map(|d| d.display().to_string()),
                        driver_id: l.driver_id,
                        chain_id: l.chain_id,
                        diff_id: l.diff_id,
                        size: l.size,
                    })
                    .collect(),
                None,
                s.warnings,
            ),
            Err(e) => (Vec::new(), Some(e.to_string()), Vec::new()),
        };
    warnings.extend(c.warnings.iter().cloned());
    let cfg = &c.config.config;
    let host = ctx.host().and_then(|h| HostFs::open(h).ok());
    let mounts = volumes::mounts(&ctx.root, host.as_ref(), &c)
        .into_iter()
        .map(|m| MountFact {
            destination: m.destination,
            kind: m.kind,
            source: m.source,
            name: m.name,
            driver: m.driver,
            rw: m.rw,
            local_path: m.local_path.map(|p| p.display().to_string()),
            note: m.note,
        })
        .collect();
    Ok(Info {
        summary: ContainerSummary {
            support: SupportList::builtin().matches(&c).map(String::from),
            ..summarize(ctx, &c)
        },
        image_manifest: c.config.image_manifest_digest().map(str::to_string),
        hostname: cfg.hostname.clone(),
        user: cfg.user.clone(),
        working_dir: cfg.working_dir.clone(),
        env: cfg.env.clone().unwrap_or_default(),
        entrypoint: cfg.entrypoint.clone().unwrap_or_default(),
        cmd: cfg.cmd.clone().unwrap_or_default(),
        labels: cfg.labels.clone().unwrap_or_default(),
        restart_count: c.config.restart_count,
        pid: c.config.state.pid,
        oom_killed: c.config.state.oom_killed,
        state_error: c.config.state.error.clone(),
        log_path: c.config.log_path.clone(),
        host: c.host.as_ref().map(host_facts).unwrap_or_default(),
        mounts,
        layers,
        layer_error,
        user_on_disk: id_map.as_ref().and_then(|m| user_on_disk(&cfg.user, m)),
        id_map,
        warnings,
    })
}

fn field(label: &str, value: impl std::fmt::Display) {
    println!("{label:<20}{value}");
}

fn list(label: &str, values: &[String]) {
    if !values.is_empty() {
        field(
            label,
            values
                .iter()
                .map(|v| v.escape_debug().to_string())
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
}

pub fn run(cli: &Cli, query: &str) -> Result<()> {
    let ctx = context::open(cli)?;
    let id_map = context::id_map(cli, &ctx)?;
    let info = gather(&ctx, id_map, query)?;
    if cli.json {
        return context::print_json(&info);
    }
    let s = &info.summary;
    field("ID", &s.id);
    field("Name", s.name.escape_debug());
    field(
        "Image",
        format!("{} (sha256:{})", s.image.escape_debug(), s.image_id),
    );
    if let Some(m) = &info.image_manifest {
        field("Image manifest", m);
    }
    let shutdown = if s.running_at_shutdown {
        " — was running when the host went down"
    } else {
        ""
    };
    field(
        "State",
        format!("{} (exit code {}){shutdown}", s.state, s.exit_code),
    );
    field("Created", &s.created);
    field("Started", s.started_at.as_deref().unwrap_or("-"));
    field("Finished", s.finished_at.as_deref().unwrap_or("-"));
    field("Command", s.command.escape_debug());
    field("Driver", &s.driver);
    if let Some(engine) = &s.engine {
        field("Engine", engine);
    }
    if let Some(note) = &s.note {
        field("Note", note);
    }
    field("Config", &s.config_path);
    field("Log", &info.log_path);
    list("Entrypoint", &info.entrypoint);
    list("Cmd", &info.cmd);
    field(
        "User",
        if info.user.is_empty() {
            "(image default)"
        } else {
            &info.user
        },
    );
    if let Some(m) = &info.id_map {
        let ranges = |r: &[docker_mount_engine::evidence::userns::IdRange]| {
            r.iter()
                .map(|r| format!("{}:{}:{}", r.container, r.host, r.count))
                .collect::<Vec<_>>()
                .join(",")
        };
        field(
            "Id map",
            format!(
                "uid {} gid {} (container:disk:count; {})",
                ranges(&m.uid.0),
                ranges(&m.gid.0),
                m.source
            ),
        );
        if let Some(u) = &info.user_on_disk {
            field("User on disk", u);
        }
    }
    list("Env", &info.env);
    let h = &info.host;
    field("Privileged", h.privileged);
    list("Cap add", &h.cap_add);
    list("Cap drop", &h.cap_drop);
    field(
        "Network/PID/IPC",
        format!("{} / {} / {}", h.network_mode, h.pid_mode, h.ipc_mode),
    );
    list("Security opt", &h.security_opt);
    list("Ports", &h.ports);
    list("Binds", &h.binds);
    for m in &info.mounts {
        let rw = if m.rw { "rw" } else { "ro" };
        let at = match (&m.local_path, &m.note) {
            (Some(p), _) => format!(", data at {p}"),
            (None, Some(n)) => format!(", {n}"),
            (None, None) => String::new(),
        };
        field(
            "Mount",
            format!(
                "{} <- {} {} ({rw}){at}",
                m.destination,
                m.kind,
                if m.name.is_empty() {
                    &m.source
                } else {
                    &m.name
                }
            ),
        );
    }
    println!("Layers (top first):");
    for l in &info.layers {
        let role = format!("{:?}", l.role).to_lowercase();
        let chain = l
            .chain_id
            .as_deref()
            .map(|c| format!(" chain sha256:{}", &c[..12.min(c.len())]))
            .unwrap_or_default();
        println!(
            "  {role:<6}{}{chain}  {}",
            l.driver_id,
            l.path.as_deref().unwrap_or("")
        );
    }
    if let Some(e) = &info.layer_error {
        println!("  layers unavailable: {e}");
    }
    for w in &info.warnings {
        println!("warning: {w}");
    }
    Ok(())
}
