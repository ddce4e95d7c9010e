//! `list`: the containers of the root, like `docker ps`.

use anyhow::Result;
use docker_mount_engine::model::container::Container;
use docker_mount_engine::model::detect;
use docker_mount_engine::model::ids;
use serde::Serialize;

use crate::context::{self, Context};
use crate::{table, Cli};

/// One container, as `list --json` prints it (a stable format).
#[derive(Debug, Serialize)]
pub struct ContainerSummary {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub state: String,
    pub running_at_shutdown: bool,
    pub exit_code: i64,
    pub driver: String,
    /// Whether a plugin for `driver` is loaded.
    pub driver_loaded: bool,
    /// The engine that recorded it when not dockerd (`podman`,
    /// `containerd/<namespace>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    pub created: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub command: String,
    /// Why the container can only be listed (a missing driver), if so.
    pub note: Option<String>,
    pub config_path: String,
    /// Set when the container could not be read; the other fields are then empty.
    pub error: Option<String>,
}

fn time(t: &str) -> Option<String> {
    (!docker_mount_engine::model::container::is_zero_time(t)).then(|| t.to_string())
}

pub fn summarize(ctx: &Context, c: &Container) -> ContainerSummary {
    let driver = detect::container_driver_name(&ctx.root, &ctx.drivers, c).unwrap_or_default();
    let driver_loaded = ctx.drivers.by_name(&driver).is_some();
    let note = (!driver_loaded).then(|| {
        if driver.is_empty() {
            "no storage driver recorded and none recognised: filesystem unavailable".to_string()
        } else {
            format!(
                "needs driver {driver}: install the {driver} driver plugin to open its filesystem"
            )
        }
    });
    let s = &c.config.state;
    ContainerSummary {
        id: c.id.clone(),
        name: c.name().to_string(),
        image: c.config.config.image.clone(),
        image_id: c.image_id().to_string(),
        state: c.state().to_string(),
        running_at_shutdown: s.running,
        exit_code: s.exit_code,
        driver,
        driver_loaded,
        engine: c.catalog.as_ref().map(|r| r.engine.clone()),
        created: c.config.created.clone(),
        started_at: time(&s.started_at),
        finished_at: time(&s.finished_at),
        command: c.command(),
        note,
        config_path: c.config_path.display().to_string(),
        error: None,
    }
}

fn broken(name: String, error: String) -> ContainerSummary {
    ContainerSummary {
        id: name,
        name: String::new(),
        image: String::new(),
        image_id: String::new(),
        state: "unreadable".into(),
        running_at_shutdown: false,
        exit_code: 0,
        driver: String::new(),
        driver_loaded: false,
        engine: None,
        created: String::new(),
        started_at: None,
        finished_at: None,
        command: String::new(),
        note: None,
        config_path: String::new(),
        error: Some(error),
    }
}

pub fn run(cli: &Cli, all: bool) -> Result<()> {
    let ctx = context::open(cli)?;
    let mut rows: Vec<ContainerSummary> = Vec::new();
    for item in ctx.root.containers() {
        match item {
            Ok(c) => rows.push(summarize(&ctx, &c)),
            Err(e) => {
                eprintln!("warning: container {}: {}", e.name, e.error);
                rows.push(broken(e.name, e.error.to_string()));
            }
        }
    }
    rows.retain(|r| all || r.running_at_shutdown);
    // Newest first, like docker ps; unreadable ones last.
    rows.sort_by(|a, b| (a.error.is_some(), &b.created).cmp(&(b.error.is_some(), &a.created)));
    if cli.json {
        return context::print_json(&rows);
    }
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                ids::short(&r.id).to_string(),
                table::cell(&r.name),
                table::cell(&r.image),
                if r.running_at_shutdown {
                    format!("{} (at shutdown)", r.state)
                } else {
                    r.state.clone()
                },
                r.driver.clone(),
                r.created.get(..19).unwrap_or(&r.created).to_string(),
                table::cell(
                    &r.error
                        .clone()
                        .or(r.note.clone())
                        .unwrap_or_else(|| r.command.clone()),
                ),
            ]
        })
        .collect();
    table::print(
        &[
            "CONTAINER ID",
            "NAME",
            "IMAGE",
            "STATE",
            "DRIVER",
            "CREATED",
            "COMMAND / NOTE",
        ],
        &table_rows,
    );
    Ok(())
}
