//! Benches of the commands that walk a whole container (`find`,
//! `timeline`, `diff`) on 100,000 files, each against the same baseline:
//! `find -printf` of every layer directory of its root, printing each
//! entry's metadata (what a metadata walk of the same layers costs).
//! `find --hash` is measured against that walk followed by `sha256sum` of
//! every regular file of the layers.

use super::export::{many_dir, many_layer, EXPORT_100K, EXPORT_CONTAINER, MANY_DIRS};
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
            command: Walker::FindHash,
        })
    },
    || {
        Box::new(Walk {
            command: Walker::Timeline,
        })
    },
    || {
        Box::new(Walk {
            command: Walker::TimelineJsonl,
        })
    },
    || {
        Box::new(Walk {
            command: Walker::Diff,
        })
    },
];

/// The baseline's `-printf`: path, type, size, times, mode, owners.
const BASELINE_FORMAT: &str = "%P\t%y\t%s\t%A@\t%T@\t%C@\t%m\t%U\t%G\n";

#[derive(Clone, Copy, PartialEq)]
enum Walker {
    /// `find '/srv/**' --json`: every path's provenance, metadata only.
    Find,
    /// The same with `--hash`: every regular file read and hashed.
    FindHash,
    /// `timeline <ctr>`: every entry's times, sorted, one bodyfile line
    /// each (the default format: a metadata line per entry, as the baseline).
    Timeline,
    /// `timeline <ctr> --format jsonl`: one JSON line per entry and time
    /// (Timesketch's shape, about 20 times the bytes of the bodyfile).
    TimelineJsonl,
    /// `diff <ctr>` of a container that changed 60,000 of its files.
    Diff,
}

/// One walking command against `find <root>/overlay2 -printf`, which
/// visits every layer directory of the root (the container's layers and
/// its init layer) and prints each entry's metadata.
struct Walk {
    command: Walker,
}

/// The root of `diff-100k`: the image of `export-100k` (2 layers of 50
/// files in each of 1,000 directories), and a container that, in every
/// directory, rewrote 20 files of the lower layer (new content, new
/// mtime), deleted 20 of the upper one and added 20: 60,000 entries in its
/// rw layer, 100,000 files in its view.
const DIFF_100K: &str = "diff-100k";
/// Its cache key: a change to what `build_diff_100k` writes changes it.
const DIFF_100K_VERSION: &str = "files=2x1000x50 rw=1000x(20C+20D+20A) v1";

/// Entries `diff-100k`'s container rewrote, deleted and added, each, per directory.
const DIFF_PER_KIND: usize = 20;

fn build_diff_100k(root: &Path) -> Result<()> {
    let mut b = RootBuilder::new(root);
    let lower = b.layer(&many_layer(0));
    let top = b.layer_on(lower, &many_layer(1));
    let image = b.image(&["bench-diff:1"], top, ImageOpts::default());
    let mut rw = Vec::with_capacity(MANY_DIRS * DIFF_PER_KIND * 3);
    for d in 0..MANY_DIRS {
        let dir = many_dir(d);
        for f in 0..DIFF_PER_KIND {
            // Layer 0 holds f000..f049, layer 1 f050..f099.
            rw.push(
                Node::file(format!("{dir}/f{f:03}"), format!("rewritten {d} {f}\n"))
                    .mtime(DEFAULT_MTIME + 3600),
            );
            rw.push(Node::whiteout(format!("{dir}/f{:03}", 50 + f)));
            rw.push(Node::file(
                format!("{dir}/n{f:03}"),
                format!("added {d} {f}\n"),
            ));
        }
    }
    b.container(
        EXPORT_CONTAINER,
        image,
        ContainerOpts {
            rw,
            ..ContainerOpts::default()
        },
    );
    b.finish();
    Ok(())
}

impl Walk {
    fn dir(&self, ctx: &Ctx) -> PathBuf {
        match self.command {
            Walker::Diff => ctx.dir.join(DIFF_100K),
            _ => ctx.dir.join(EXPORT_100K.name),
        }
    }
    fn root(&self, ctx: &Ctx) -> PathBuf {
        self.dir(ctx).join("root")
    }
}

impl Bench for Walk {
    fn name(&self) -> &'static str {
        match self.command {
            Walker::Find => "find-100k",
            Walker::FindHash => "find-100k-hash",
            Walker::Timeline => "timeline-100k",
            Walker::TimelineJsonl => "timeline-100k-jsonl",
            Walker::Diff => "diff-100k",
        }
    }
    fn description(&self) -> &'static str {
        match self.command {
            Walker::Find => {
                "find '/srv/**' --json (metadata), 100,000 files over 2 image layers, \
                 vs find -printf (type, size, times, mode, owners) of every layer dir"
            }
            Walker::FindHash => {
                "find '/srv/**' --json --hash, 100,000 files over 2 image layers, \
                 vs find -printf of every layer dir, then sha256sum of its files (xargs)"
            }
            Walker::Timeline => {
                "timeline (bodyfile), 100,000 files over 2 image layers, vs find -printf \
                 (type, size, times, mode, owners) of every layer dir"
            }
            Walker::TimelineJsonl => {
                "timeline --format jsonl (a JSON line per time, 229 MB), 100,000 files over 2 \
                 image layers, vs find -printf (type, size, times, mode, owners) of every layer dir"
            }
            Walker::Diff => {
                "diff of a container that rewrote, deleted and added 60,000 of its 100,000 files, \
                 vs find -printf (type, size, times, mode, owners) of every layer dir"
            }
        }
    }
    fn setup(&mut self, ctx: &Ctx) -> Result<()> {
        match self.command {
            Walker::Diff => cached_root(&self.dir(ctx), DIFF_100K_VERSION, build_diff_100k),
            _ => cached_root(&self.dir(ctx), EXPORT_100K.version, EXPORT_100K.build),
        }
    }
    fn ours(&self, ctx: &Ctx) -> Command {
        let root = self.root(ctx);
        match self.command {
            Walker::Find => ctx.ours(&root, &["find", "/srv/**", "--json", "--limit", "1000000"]),
            Walker::FindHash => ctx.ours(
                &root,
                &["find", "/srv/**", "--json", "--hash", "--limit", "1000000"],
            ),
            Walker::Timeline => ctx.ours(&root, &["timeline", EXPORT_CONTAINER]),
            Walker::TimelineJsonl => {
                ctx.ours(&root, &["timeline", EXPORT_CONTAINER, "--format", "jsonl"])
            }
            Walker::Diff => ctx.ours(&root, &["diff", EXPORT_CONTAINER]),
        }
    }
    fn baseline(&self, ctx: &Ctx) -> Command {
        let layers = self.root(ctx).join("overlay2");
        if self.command == Walker::FindHash {
            let mut cmd = Command::new("bash");
            cmd.arg("-c")
                .arg(
                    "set -o pipefail; find \"$1\" -printf \"$2\" && \
                     find \"$1\" -type f -print0 | xargs -0 sha256sum",
                )
                .arg("xtask-bench")
                .arg(layers)
                .arg(BASELINE_FORMAT);
            return cmd;
        }
        let mut cmd = Command::new("find");
        cmd.arg(layers).args(["-printf", BASELINE_FORMAT]);
        cmd
    }
    fn check_ours(&self, stdout: &[u8]) -> Result<()> {
        let lines = |want: &str| {
            stdout
                .split(|b| *b == b'\n')
                .filter(|l| l.starts_with(want.as_bytes()))
                .count()
        };
        let (found, want) = match self.command {
            Walker::Find | Walker::FindHash => {
                let v: serde_json::Value =
                    serde_json::from_slice(stdout).context("find --json printed no JSON")?;
                let hashed = self.command == Walker::FindHash;
                // Every file of /srv/d*, with a hash exactly when asked.
                let n = v["paths"].as_array().map_or(0, |p| {
                    p.iter()
                        .filter(|p| p["path"].as_str().is_some_and(|s| s.starts_with("/srv/d")))
                        .filter(|p| {
                            let l = &p["layers"][0];
                            l["type"] != "file" || l["sha256"].is_string() == hashed
                        })
                        .count()
                });
                (n, super::export::MANY_FILES)
            }
            Walker::Timeline => {
                // A file's line names it `<container>:/path (layer …)`.
                let name = format!("|{EXPORT_CONTAINER}:/srv/d");
                let files = stdout
                    .split(|b| *b == b'\n')
                    .filter(|l| l.windows(name.len()).any(|w| w == name.as_bytes()))
                    .count();
                (files, super::export::MANY_FILES)
            }
            Walker::TimelineJsonl => (lines("{"), super::export::MANY_FILES),
            Walker::Diff => {
                let per_kind = MANY_DIRS * DIFF_PER_KIND;
                for (letter, want) in [("C /srv/d", per_kind + MANY_DIRS), ("D ", per_kind)] {
                    let n = lines(letter);
                    ensure!(n == want, "diff printed {n} lines {letter:?}, not {want}");
                }
                (lines("A /srv/d"), per_kind)
            }
        };
        ensure!(
            found >= want,
            "{} reported {found} entries, expected at least {want}",
            self.name()
        );
        Ok(())
    }
}
