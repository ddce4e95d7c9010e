//! One module per subcommand.

pub mod cat;
pub mod deleted;
pub mod diff;
pub mod drivers;
pub mod export;
pub mod find;
pub mod images;
pub mod info;
pub mod list;
pub mod mount;
pub mod timeline;

use anyhow::Result;

use crate::{Cli, Command};

pub fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::List { all } => list::run(cli, *all),
        Command::Images { all } => images::run(cli, *all),
        Command::Info { container } => info::run(cli, container),
        Command::Mount(args) => mount::run(cli, args),
        Command::Export {
            target,
            output,
            image,
        } => export::run(cli, target, output.as_deref(), *image),
        Command::Diff { container, layers } => diff::run(cli, container, *layers),
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
            timeline::run(cli, target, *format, output.as_deref())
        }
        Command::Find { query, limit } => find::run(cli, query, *limit),
        Command::Umount(args) => mount::unmount(args),
        Command::Drivers => drivers::run(cli),
    }
}
