//! `extract`: a block image layer (a devicemapper thin device) written as a
//! sparse raw image, zeros where nothing is mapped, with its sha256.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use docker_mount_core::driver::{Confidence, LayerSource};
use docker_mount_engine::model::detect;
use docker_mount_engine::mounts::blockimage::BlockImage;

use crate::context::{self, Context};
use crate::Cli;

/// Layer ids of pool devices no layer names (devicemapper's `device-<n>`).
const DEVICE_PREFIX: &str = "device-";

#[derive(Debug, clap::Args)]
pub struct ExtractArgs {
    /// Container name, full id or unique id prefix: its own device (the
    /// merged view); with --image, an image: its top layer's device.
    #[arg(required_unless_present_any = ["device", "layer"])]
    pub target: Option<String>,
    /// Extract an image's device (name:tag or id) instead of a container's.
    #[arg(long, conflicts_with_all = ["device", "layer"])]
    pub image: bool,
    /// A thin device of the pool by its device id, whether or not a layer
    /// still names it (recovering deleted containers); same as --layer device-N.
    #[arg(long, value_name = "N", conflicts_with_all = ["target", "layer"])]
    pub device: Option<u64>,
    /// A layer by its driver id (cache id, mount id, or an id listed by
    /// `layers --orphans`).
    #[arg(long, value_name = "ID", conflicts_with = "target")]
    pub layer: Option<String>,
    /// The image file to write (a new sparse file), `-` for standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

/// The storage driver of the root: the most confident vote.
fn root_driver(ctx: &Context) -> Result<String> {
    detect::votes(&ctx.root, &ctx.drivers)
        .into_iter()
        .find(|v| v.confidence.is_some_and(|c| c > Confidence::NONE))
        .map(|v| v.driver)
        .context("no loaded driver recognises this root (`docker-mount drivers`)")
}

/// The layer to extract: its driver id, what it is, and its source.
fn resolve(ctx: &Context, args: &ExtractArgs) -> Result<(String, String, LayerSource)> {
    let layer_id = match (&args.layer, args.device) {
        (Some(id), _) => Some(id.clone()),
        (None, Some(n)) => Some(format!("{DEVICE_PREFIX}{n}")),
        _ => None,
    };
    if let Some(id) = layer_id {
        let name = root_driver(ctx)?;
        let driver = detect::require(&ctx.drivers, &name)?;
        let source = driver
            .layer(ctx.root.path(), &id)
            .with_context(|| format!("cannot describe layer {id} ({name})"))?;
        return Ok((id.clone(), format!("layer {id}"), source));
    }
    let Some(target) = args.target.as_deref() else {
        bail!("extract needs a container, --image REF, --device N or --layer ID");
    };
    let (what, stack) = context::resolve_stack(ctx, target, args.image)?;
    for w in &stack.warnings {
        eprintln!("warning: {w}");
    }
    let top = stack
        .layers
        .first()
        .with_context(|| format!("{what} has no layers"))?;
    Ok((top.driver_id.clone(), what, top.source.clone()))
}

pub fn run(cli: &Cli, args: &ExtractArgs) -> Result<()> {
    let ctx = context::open(cli)?;
    if args.output != Path::new("-") {
        context::check_output(&ctx, &args.output)?;
    }
    let (id, what, source) = resolve(&ctx, args)?;
    if !matches!(source, LayerSource::BlockImage { .. }) {
        bail!("{what} is a directory layer, not a block device image: use `docker-mount export`");
    }
    let noatime = ctx.root.dir().noatime_clone();
    let base = noatime.as_ref().unwrap_or(ctx.root.dir());
    let image = BlockImage::open(&ctx.root, base, &id, &source)
        .with_context(|| format!("cannot open the device of {what}"))?;
    for w in &image.warnings {
        eprintln!("warning: {w}");
    }
    let report = image
        .extract(&args.output)
        .with_context(|| format!("cannot extract {what} to {}", args.output.display()))?;
    if cli.json && args.output == Path::new("-") {
        // Standard output holds the image: the report goes to stderr.
        eprintln!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    if cli.json {
        return context::print_json(&report);
    }
    let out = if args.output == Path::new("-") {
        eprintln!(
            "extracted {what}: {} bytes ({} mapped in {} extents, {}), sha256 {}",
            report.size,
            report.mapped_bytes,
            report.extents,
            if report.fs.is_empty() {
                "unknown filesystem"
            } else {
                &report.fs
            },
            report.sha256
        );
        return Ok(());
    } else {
        args.output.display().to_string()
    };
    println!(
        "extracted {what} to {out}: {} bytes, {} mapped in {} extents ({}), {:.1} s",
        report.size,
        report.mapped_bytes,
        report.extents,
        if report.fs.is_empty() {
            "unknown filesystem"
        } else {
            &report.fs
        },
        report.seconds
    );
    println!("sha256 {}", report.sha256);
    Ok(())
}
