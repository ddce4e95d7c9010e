//! One module per subcommand.

pub mod attribute;
pub mod audit;
pub mod cat;
pub mod completions;
pub mod deleted;
pub mod diff;
pub mod doctor;
pub mod drivers;
pub mod export;
pub mod extract;
pub mod find;
pub mod history;
pub mod images;
pub mod info;
pub mod layers;
pub mod list;
pub mod logs;
pub mod man;
pub mod mount;
pub mod roots;
pub mod timeline;

use anyhow::Result;

use crate::{Cli, Command};

pub fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::List(args) => list::run(cli, args),
        Command::Images { all } => images::run(cli, *all),
        Command::Info { container } => info::run(cli, container),
        Command::Mount(args) => mount::run(cli, args),
        Command::Export {
            target,
            output,
            image,
            disk_ids,
            with_volumes,
        } => export::run(
            cli,
            target,
            output.as_deref(),
            *image,
            *disk_ids,
            *with_volumes,
        ),
        Command::Diff {
            container,
            layers,
            content,
        } => diff::run(cli, container, *layers, *content),
        Command::Deleted { target, image } => deleted::run(cli, target, *image),
        Command::Cat {
            target,
            path,
            layer,
            output,
            image,
        } => cat::run(
            cli,
            target,
            path,
            layer.as_deref(),
            output.as_deref(),
            *image,
        ),
        Command::Timeline {
            container,
            all,
            image,
            format,
            output,
        } => {
            let target = timeline::Target::new(container.as_deref(), *all, image.as_deref())?;
            let format = format.unwrap_or(if cli.json {
                timeline::Format::Jsonl
            } else {
                timeline::Format::Bodyfile
            });
            timeline::run(cli, target, format, output.as_deref())
        }
        Command::Find { query, limit, hash } => find::run(cli, query, *limit, *hash),
        Command::Umount(args) => mount::unmount(cli, args),
        Command::Logs {
            container,
            since,
            until,
            raw,
            timestamps,
            files,
        } => logs::run(
            cli,
            &logs::LogsArgs {
                container,
                since: since.as_deref(),
                until: until.as_deref(),
                raw: *raw,
                timestamps: *timestamps,
                files: *files,
            },
        ),
        Command::History {
            image,
            no_trunc,
            disk_usage,
        } => history::run(cli, image, *no_trunc, *disk_usage),
        Command::Layers {
            orphans,
            sizes,
            export: Some(id),
            output,
        } => {
            if *orphans || *sizes {
                anyhow::bail!(
                    "--export takes no --orphans or --sizes: run `layers --export ID` alone"
                );
            }
            layers::export(cli, id, output.as_deref())
        }
        Command::Layers { orphans, sizes, .. } => layers::run(cli, *orphans, *sizes),
        Command::Audit => audit::run(cli),
        Command::Attribute {
            journal: Some(image),
            offset,
            partition_root,
            ..
        } => attribute::journal(cli, image, *offset, partition_root),
        Command::Attribute {
            paths, bodyfile, ..
        } => attribute::run(cli, paths, bodyfile.as_deref()),
        Command::Roots => roots::run(cli),
        Command::Extract(args) => extract::run(cli, args),
        Command::Drivers => drivers::run(cli),
        Command::Doctor => doctor::run(cli),
        Command::Completions { shell } => completions::run(*shell),
        Command::Schemas { out } => crate::schemas::write(out),
        Command::Man => man::run(),
    }
}
