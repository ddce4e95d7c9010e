//! Benches of the commands that walk a whole view (`find`, `timeline`)
//! on the 100,000-file container of `export-100k`, against a plain
//! `find -printf` walk of the same layers printing what they report.

use super::export::{EXPORT_100K, EXPORT_CONTAINER};
use super::*;

/// Walking benches.
pub const BENCHES: &[MakeBench] = &[
    || {
        Box::new(Walk {
            command: Walker::Find,
        })
    },
    || {
        Box::new(Walk {
            command: Walker::Timeline,
        })
    },
];

#[derive(Clone, Copy, PartialEq)]
enum Walker {
    /// `find '/srv/**' --json`: every path's provenance.
    Find,
    /// `timeline <ctr> --format jsonl`: every entry's times, sorted.
    Timeline,
}

/// One walking command against `find <root>/overlay2 -printf`, which
/// visits every layer directory of the root (the container's three
/// layers and its init layer) and prints each entry's metadata.
struct Walk {
    command: Walker,
}

impl Walk {
    fn root(ctx: &Ctx) -> PathBuf {
        ctx.dir.join(EXPORT_100K.name).join("root")
    }
}

impl Bench for Walk {
    fn name(&self) -> &'static str {
        match self.command {
            Walker::Find => "find-100k",
            Walker::Timeline => "timeline-100k",
        }
    }
    fn description(&self) -> &'static str {
        match self.command {
            Walker::Find => {
                "find '/srv/**' --json, 100,000 files over 2 image layers, vs find -printf of every layer dir"
            }
            Walker::Timeline => {
                "timeline --format jsonl, 100,000 files over 2 image layers, vs find -printf (a/m/ctimes, mode, owners) of every layer dir"
            }
        }
    }
    fn setup(&mut self, ctx: &Ctx) -> Result<()> {
        cached_root(
            &ctx.dir.join(EXPORT_100K.name),
            EXPORT_100K.version,
            EXPORT_100K.build,
        )
    }
    fn ours(&self, ctx: &Ctx) -> Command {
        let root = Self::root(ctx);
        match self.command {
            Walker::Find => ctx.ours(&root, &["find", "/srv/**", "--json", "--limit", "1000000"]),
            Walker::Timeline => {
                ctx.ours(&root, &["timeline", EXPORT_CONTAINER, "--format", "jsonl"])
            }
        }
    }
    fn baseline(&self, ctx: &Ctx) -> Command {
        let format = match self.command {
            Walker::Find => "%P\t%y\t%s\n",
            Walker::Timeline => "%P\t%y\t%s\t%A@\t%T@\t%C@\t%m\t%U\t%G\n",
        };
        let mut cmd = Command::new("find");
        cmd.arg(Self::root(ctx).join("overlay2"))
            .args(["-printf", format]);
        cmd
    }
    fn check_ours(&self, stdout: &[u8]) -> Result<()> {
        let files = super::export::MANY_FILES;
        let lines = match self.command {
            Walker::Find => {
                let v: serde_json::Value =
                    serde_json::from_slice(stdout).context("find --json printed no JSON")?;
                let text = v.to_string();
                text.matches("\"/srv/d").count()
            }
            Walker::Timeline => stdout
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count(),
        };
        ensure!(
            lines >= files,
            "{} reported {lines} entries, expected at least {files}",
            self.name()
        );
        Ok(())
    }
}
