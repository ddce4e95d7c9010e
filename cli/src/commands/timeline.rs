//! `timeline`: file times of a container's (or image's) view, marked with
//! their layer, and docker's container and image events, as a Sleuth Kit
//! bodyfile (for `mactime -b`) or Timesketch JSON lines.

use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, Result};
use docker_mount_engine::analysis::timeline::Timeline;
use docker_mount_engine::model::container::Container;
use docker_mount_engine::model::stack;
use docker_mount_engine::union::view::{self, View};

use crate::context::{self, Context};
use crate::Cli;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The Sleuth Kit 3.x bodyfile, for `mactime -b FILE`.
    Bodyfile,
    /// One JSON object a line, sorted by time (Timesketch's CSV/JSONL import).
    Jsonl,
}

/// What to put in the timeline.
pub enum Target<'a> {
    Container(&'a str),
    Image(&'a str),
    All,
}

impl<'a> Target<'a> {
    /// From the command line (clap makes the three exclusive).
    pub fn new(
        container: Option<&'a str>,
        all: bool,
        image: Option<&'a str>,
    ) -> Result<Target<'a>> {
        match (container, image) {
            _ if all => Ok(Target::All),
            (_, Some(image)) => Ok(Target::Image(image)),
            (Some(c), None) => Ok(Target::Container(c)),
            (None, None) => anyhow::bail!("name a container, or give --all or --image REF"),
        }
    }
}

/// Where the records go, and how.
struct Output {
    out: Box<dyn Write>,
    format: Format,
}

impl Output {
    /// Writes what the timeline holds. A bodyfile needs no order, so it is
    /// written as it comes and the timeline emptied; JSON lines are sorted
    /// over the whole output, so they wait for `last`.
    fn flush(&mut self, timeline: &mut Timeline, last: bool) -> Result<()> {
        for w in timeline.warnings.drain(..) {
            eprintln!("warning: {w}");
        }
        match self.format {
            Format::Bodyfile => {
                timeline.write_bodyfile(&mut self.out)?;
                timeline.clear();
            }
            Format::Jsonl if last => timeline.write_jsonl(&mut self.out)?,
            Format::Jsonl => {}
        }
        if last {
            self.out.flush()?;
        }
        Ok(())
    }
}

fn open_output(ctx: &Context, output: Option<&Path>, format: Format) -> Result<Output> {
    let out: Box<dyn Write> = match output {
        Some(path) if path != Path::new("-") => {
            context::check_output(ctx, path)?;
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            Box::new(std::io::BufWriter::with_capacity(1 << 20, file))
        }
        _ => Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            std::io::stdout().lock(),
        )),
    };
    Ok(Output { out, format })
}

/// A container's view, or why it cannot be read.
fn container_view(ctx: &Context, c: &Container) -> Result<View> {
    let stack = stack::container_stack(&ctx.root, &ctx.drivers, c)
        .with_context(|| format!("cannot resolve the layers of container {}", c.name()))?;
    for w in &stack.warnings {
        eprintln!("warning: container {}: {w}", c.name());
    }
    let view = view::open(&ctx.root, &stack)
        .with_context(|| format!("cannot open the layers of container {}", c.name()))?;
    for w in &view.warnings {
        eprintln!("warning: container {}: {w}", c.name());
    }
    Ok(view)
}

pub fn run(cli: &Cli, target: Target<'_>, format: Format, output: Option<&Path>) -> Result<()> {
    let ctx = match target {
        // A disk without docker has no events: an empty timeline.
        Target::All => match context::open_listing(cli)? {
            Some(ctx) => ctx,
            None => return Ok(()),
        },
        _ => context::open(cli)?,
    };
    let mut out = open_output(&ctx, output, format)?;
    let mut timeline = Timeline::new();
    timeline.id_map = context::id_map(cli, &ctx)?;
    match target {
        Target::Container(name) => {
            let c = ctx.root.find_container(name)?;
            let view = container_view(&ctx, &c)?;
            timeline
                .add_container(&c, Some(&view))
                .with_context(|| format!("cannot read the files of container {}", c.name()))?;
            // The image's build history explains the layers below.
            match ctx.root.find_image(c.image_id()) {
                Ok(img) => timeline.add_image(&img, None)?,
                Err(e) => eprintln!(
                    "warning: container {}: its image's events are left out: {e}",
                    c.name()
                ),
            }
        }
        Target::Image(reference) => {
            let (what, view) = context::open_view(&ctx, reference, true)?;
            let img = ctx.root.find_image(reference)?;
            timeline
                .add_image(&img, Some(&view))
                .with_context(|| format!("cannot read the files of {what}"))?;
        }
        Target::All => {
            for c in ctx.root.containers() {
                let c = match c {
                    Ok(c) => c,
                    Err(e) => {
                        context::unreadable(format_args!(
                            "container {} skipped: {}",
                            e.name, e.error
                        ));
                        continue;
                    }
                };
                match container_view(&ctx, &c) {
                    Ok(view) => {
                        if let Err(e) = timeline.add_container(&c, Some(&view)) {
                            eprintln!(
                                "warning: container {}: files left out after an error: {e}",
                                c.name()
                            );
                        }
                    }
                    Err(e) => {
                        eprintln!("warning: container {}: files skipped: {e:#}", c.name());
                        timeline.add_container(&c, None)?;
                    }
                }
                out.flush(&mut timeline, false)?;
            }
            for img in ctx.root.images() {
                match img {
                    Ok(img) => timeline.add_image(&img, None)?,
                    Err(e) => {
                        context::unreadable(format_args!("image {} skipped: {}", e.name, e.error))
                    }
                }
            }
        }
    }
    out.flush(&mut timeline, true)
}
