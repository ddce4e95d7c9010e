//! `list`: the containers of the root, like `docker ps`.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use docker_mount_engine::model::container::Container;
use docker_mount_engine::model::detect;
use docker_mount_engine::model::filter::{self, Filters, SupportList};
use docker_mount_engine::model::ids;
use serde::Serialize;

use crate::context::{self, Context};
use crate::{table, Cli};

/// `list`'s options: which containers to show.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Show every container, not only those running at shutdown.
    #[arg(short, long)]
    pub all: bool,
    /// Keep containers matching KEY=VALUE (repeatable, or comma-separated): name=SUBSTRING,
    /// image=REF|ID, label=KEY[=VALUE], since=CONTAINER|TIME (created after it),
    /// status=created|running|paused|restarting|removing|exited|dead|unknown (lists every state).
    /// A key given twice matches either value; different keys must all match.
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Only the N most recently created containers (every state, like docker ps -n).
    #[arg(short = 'n', long, value_name = "N")]
    pub last: Option<usize>,
    /// Only containers that expose or publish ports.
    #[arg(long)]
    pub ports: bool,
    /// Leave out Kubernetes and system support containers (pod sandboxes, kube-system
    /// pods, pause and control-plane images). By default they are listed, marked in
    /// `support` (--json).
    #[arg(long)]
    pub skip_support: bool,
    /// The support-container rules to use instead of the built-in ones (JSON:
    /// {"rules": [{"why": "...", "label": "K=V", "image": "repo", "name_prefix": "p"}]}).
    #[arg(long, value_name = "FILE")]
    pub support_list: Option<PathBuf>,
    /// Always list these containers (id, unique prefix or name), whatever the other
    /// options leave out.
    #[arg(long, value_name = "ID", num_args = 1.., value_delimiter = ',')]
    pub include: Vec<String>,
}

/// One container, as `list --json` prints it (a stable format).
#[derive(Debug, Serialize, schemars::JsonSchema)]
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
    /// Why it is a Kubernetes or system support container (the rule that
    /// matched), if it is one.
    pub support: Option<String>,
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
        support: None,
        error: None,
    }
}

fn broken_row(name: String, error: String) -> ContainerSummary {
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
        support: None,
        error: Some(error),
    }
}

/// The most bytes a `--support-list` file may hold.
const SUPPORT_LIST_LIMIT: u64 = 1 << 20;

fn support_list(file: Option<&Path>) -> Result<SupportList> {
    let Some(file) = file else {
        return Ok(SupportList::builtin());
    };
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(SUPPORT_LIST_LIMIT + 1).read_to_end(&mut bytes))
        .with_context(|| format!("cannot read the support list {}", file.display()))?;
    if bytes.len() as u64 > SUPPORT_LIST_LIMIT {
        anyhow::bail!(
            "{} is larger than {SUPPORT_LIST_LIMIT} bytes: not a support list",
            file.display()
        );
    }
    Ok(SupportList::parse(&bytes, file)?)
}

/// Whether `--include` names the container: its id, an id prefix, its name.
fn included(args: &ListArgs, c: &Container) -> bool {
    args.include
        .iter()
        .any(|x| c.id.starts_with(x.as_str()) || c.name() == x.trim_start_matches('/'))
}

pub fn run(cli: &Cli, args: &ListArgs) -> Result<()> {
    let mut filters =
        Filters::parse(&args.filter).map_err(|e| context::UsageError(e.to_string()))?;
    let support = support_list(args.support_list.as_deref())?;
    let Some(ctx) = context::open_listing(cli)? else {
        return if cli.json {
            context::print_json(&Vec::<ContainerSummary>::new())
        } else {
            Ok(())
        };
    };
    filters.resolve(&ctx.root)?;
    let every_state = args.all || args.last.is_some() || filters.has_status();
    let mut kept: Vec<(bool, ContainerSummary)> = Vec::new();
    let mut broken: Vec<ContainerSummary> = Vec::new();
    let mut skipped = 0usize;
    for item in ctx.root.containers() {
        match item {
            Ok(mut c) => {
                let include = included(args, &c);
                let mut row = summarize(&ctx, &c);
                row.support = support.matches(&c).map(String::from);
                if args.ports {
                    c.load_host_config(ctx.root.dir());
                }
                let keep = (every_state || row.running_at_shutdown)
                    && filters.matches(&c)
                    && (!args.ports || !filter::ports(&c).is_empty());
                if args.skip_support && keep && row.support.is_some() && !include {
                    skipped += 1;
                } else if keep || include {
                    kept.push((include, row));
                }
            }
            Err(e) => {
                context::unreadable(format_args!("container {}: {}", e.name, e.error));
                broken.push(broken_row(e.name, e.error.to_string()));
            }
        }
    }
    // Newest first, like docker ps; unreadable ones last.
    kept.sort_by(|a, b| b.1.created.cmp(&a.1.created));
    if let Some(n) = args.last {
        let mut newer = 0usize;
        // Included containers are kept besides the N newest.
        kept.retain(|(include, _)| {
            if *include {
                return true;
            }
            newer += 1;
            newer <= n
        });
    }
    for x in &args.include {
        if !kept
            .iter()
            .any(|(_, r)| r.id.starts_with(x.as_str()) || r.name == x.trim_start_matches('/'))
        {
            eprintln!("warning: --include {x}: no such container");
        }
    }
    if skipped > 0 {
        eprintln!(
            "note: {skipped} Kubernetes/system support container(s) left out (--skip-support); --include ID lists one"
        );
    }
    let mut rows: Vec<ContainerSummary> = kept.into_iter().map(|(_, r)| r).collect();
    rows.extend(broken);
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
