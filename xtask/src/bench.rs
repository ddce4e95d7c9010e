//! `cargo xtask bench [--runs N] [NAME...]`: speed as ratios against a
//! baseline measured side by side in the same run.
//!
//! Each bench prepares its input once (cached under `target/bench/<name>/`),
//! then times two commands with `Instant`: ours (the release `docker-mount`)
//! and a baseline doing comparable work with standard tools. Each gets one
//! untimed warm-up run, then `N` timed runs (default 5), interleaved so that
//! drift in the machine's load hits both alike; the median is reported. The
//! ratio is baseline/ours: above 1 we are faster. Nothing here asserts an
//! absolute time; a table is printed and the numbers are written to
//! `target/bench/results.json`.
//!
//! To add a bench: implement [`Bench`] and list its constructor in
//! [`LIST_BENCHES`] or [`EXPORT_BENCHES`] (or a new list in [`all`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::json;

use crate::build;
use docker_mount_tests::fixture::{ContainerOpts, ContainerState, ImageOpts, Node, RootBuilder};

const DEFAULT_RUNS: usize = 5;

/// What a bench gets from the harness.
pub struct Ctx {
    /// The release `docker-mount` (its plugins in `drivers/` beside it).
    pub bin: PathBuf,
    /// `target/bench`; a bench keeps its inputs in `dir.join(name)`.
    pub dir: PathBuf,
}

impl Ctx {
    /// `docker-mount --root <root> <args>`.
    fn ours(&self, root: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root").arg(root).args(args);
        cmd
    }
}

/// One benchmark: ours against a baseline on the same input.
pub trait Bench {
    fn name(&self) -> &'static str;
    /// One line for the table.
    fn description(&self) -> &'static str;
    /// Prepares the input (reusing a cached one when complete).
    fn setup(&mut self, ctx: &Ctx) -> Result<()>;
    /// The command timed as ours. Its stdout goes to /dev/null.
    fn ours(&self, ctx: &Ctx) -> Command;
    /// The command timed as the baseline. Its stdout goes to /dev/null.
    fn baseline(&self, ctx: &Ctx) -> Command;
    /// Checks ours' stdout of the warm-up run, so that a fast failure is
    /// not mistaken for speed.
    fn check_ours(&self, _stdout: &[u8]) -> Result<()> {
        Ok(())
    }
    /// Undoes what `setup` did that must not outlive the run (mounts).
    fn teardown(&mut self, _ctx: &Ctx) -> Result<()> {
        Ok(())
    }
}

type MakeBench = fn() -> Box<dyn Bench>;

/// Listing benches.
const LIST_BENCHES: &[MakeBench] = &[|| Box::new(List5000)];

// ---------------------------------------------------------------------------
// EXPORT BENCHES (a later issue; not implemented yet).
//
// To go here, each measured against `tar -C <kernel overlay mount> -cf - .`
// to /dev/null, the overlay mounted read-only in `setup` from the
// container's layers and unmounted in `teardown` (needs root):
// - `export-1gib`: a container with one 1 GiB file;
// - `export-100k`: a container with 100,000 small files.
// ---------------------------------------------------------------------------
const EXPORT_BENCHES: &[MakeBench] = &[];

/// Every bench, in run order.
fn all() -> Vec<Box<dyn Bench>> {
    [LIST_BENCHES, EXPORT_BENCHES]
        .concat()
        .into_iter()
        .map(|make| make())
        .collect()
}

// --------------------------------------------------------------- list-5000

const LIST_CONTAINERS: usize = 5000;

/// `list --all --json` on a root of 5,000 containers, against reading each
/// container's config.v2.json with `find -exec cat`.
struct List5000;

impl List5000 {
    fn root(ctx: &Ctx) -> PathBuf {
        ctx.dir.join("list-5000/root")
    }
}

impl Bench for List5000 {
    fn name(&self) -> &'static str {
        "list-5000"
    }
    fn description(&self) -> &'static str {
        "list --all --json, 5,000 containers vs find -exec cat of each config.v2.json"
    }
    fn setup(&mut self, ctx: &Ctx) -> Result<()> {
        cached_root(
            &ctx.dir.join("list-5000"),
            &format!("containers={LIST_CONTAINERS} v1"),
            |root| {
                let mut b = RootBuilder::new(root);
                let layer = b.layer(&[
                    Node::file("bin/sh", b"#!fake shell\n").mode(0o755),
                    Node::file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
                ]);
                let image = b.image(&["bench:1"], layer, ImageOpts::default());
                for i in 0..LIST_CONTAINERS {
                    let state = match i % 5 {
                        0 | 1 => ContainerState::Running,
                        2 => ContainerState::Exited(0),
                        3 => ContainerState::Exited(137),
                        _ => ContainerState::Created,
                    };
                    b.container(
                        &format!("bench-{i:05}"),
                        image,
                        ContainerOpts {
                            state,
                            ..ContainerOpts::default()
                        },
                    );
                }
                b.finish();
            },
        )
    }
    fn ours(&self, ctx: &Ctx) -> Command {
        ctx.ours(&Self::root(ctx), &["list", "--all", "--json"])
    }
    fn baseline(&self, ctx: &Ctx) -> Command {
        let mut cmd = Command::new("find");
        cmd.arg(Self::root(ctx).join("containers")).args([
            "-name",
            "config.v2.json",
            "-exec",
            "cat",
            "{}",
            "+",
        ]);
        cmd
    }
    fn check_ours(&self, stdout: &[u8]) -> Result<()> {
        let rows: Vec<serde_json::Value> =
            serde_json::from_slice(stdout).context("list --json printed no JSON array")?;
        ensure!(
            rows.len() == LIST_CONTAINERS,
            "list printed {} containers, expected {LIST_CONTAINERS}",
            rows.len()
        );
        let broken = rows.iter().filter(|r| !r["error"].is_null()).count();
        ensure!(broken == 0, "list reported {broken} unreadable containers");
        Ok(())
    }
}

/// Builds a root at `dir/root` with `build` unless `dir/complete` holds
/// `version`; the marker is written last, so an interrupted build is redone.
fn cached_root(dir: &Path, version: &str, build: impl FnOnce(&Path)) -> Result<()> {
    let marker = dir.join("complete");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == version) {
        return Ok(());
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    eprintln!("xtask bench: building {}", dir.display());
    let start = Instant::now();
    build(&dir.join("root"));
    eprintln!(
        "xtask bench: built {} in {:.1} s",
        dir.display(),
        start.elapsed().as_secs_f64()
    );
    std::fs::write(&marker, version)?;
    Ok(())
}

// ------------------------------------------------------------------ harness

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` once with stdout to /dev/null, failing on a non-zero exit.
fn time_once(mut cmd: Command) -> Result<Duration> {
    let what = describe(&cmd);
    let start = Instant::now();
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {what}"))?;
    let took = start.elapsed();
    ensure!(status.success(), "{what} failed ({status})");
    Ok(took)
}

fn median(times: &[Duration]) -> f64 {
    let mut s: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

struct Measured {
    ours: Vec<Duration>,
    baseline: Vec<Duration>,
    ours_cmd: String,
    baseline_cmd: String,
}

fn measure(bench: &mut dyn Bench, ctx: &Ctx, runs: usize) -> Result<Measured> {
    bench.setup(ctx)?;
    let result = (|| {
        // Warm-up: fills the page cache, and checks that ours works.
        let mut warm = bench.ours(ctx);
        let what = describe(&warm);
        let out = warm
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("cannot run {what}"))?;
        ensure!(out.status.success(), "{what} failed ({})", out.status);
        bench
            .check_ours(&out.stdout)
            .with_context(|| format!("{what}: unexpected output"))?;
        time_once(bench.baseline(ctx))?;
        let mut m = Measured {
            ours: Vec::new(),
            baseline: Vec::new(),
            ours_cmd: what,
            baseline_cmd: describe(&bench.baseline(ctx)),
        };
        for _ in 0..runs {
            m.ours.push(time_once(bench.ours(ctx))?);
            m.baseline.push(time_once(bench.baseline(ctx))?);
        }
        Ok(m)
    })();
    let down = bench.teardown(ctx);
    let m = result?;
    down?;
    Ok(m)
}

fn parse_args(args: &[String]) -> Result<(usize, Vec<String>)> {
    let mut runs = DEFAULT_RUNS;
    let mut names = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = if a == "--runs" {
            Some(it.next().context("--runs needs a number")?.as_str())
        } else {
            a.strip_prefix("--runs=")
        };
        if let Some(v) = value {
            runs = v
                .parse()
                .with_context(|| format!("--runs {v}: not a number"))?;
            ensure!(runs > 0, "--runs must be at least 1");
        } else if a.starts_with('-') {
            bail!("bench: unknown option {a} (usage: cargo xtask bench [--runs N] [NAME...])");
        } else {
            names.push(a.clone());
        }
    }
    Ok((runs, names))
}

/// `cargo xtask bench [--runs N] [NAME...]`; `args` follow `bench`.
pub fn run(args: &[String]) -> Result<()> {
    let (runs, names) = parse_args(args)?;
    let mut benches = all();
    let known: Vec<&str> = benches.iter().map(|b| b.name()).collect();
    for n in &names {
        ensure!(
            known.contains(&n.as_str()),
            "no bench named {n} (known: {})",
            known.join(", ")
        );
    }
    benches.retain(|b| names.is_empty() || names.iter().any(|n| n == b.name()));

    let profile = build::build_drivers(true)?;
    let dir = build::target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let ctx = Ctx {
        bin: profile.join("docker-mount"),
        dir,
    };

    let mut rows = Vec::new();
    let mut json_rows = Vec::new();
    let mut failed = Vec::new();
    for bench in &mut benches {
        let name = bench.name();
        eprintln!("xtask bench: {name} ({runs} runs after 1 warm-up)");
        match measure(bench.as_mut(), &ctx, runs) {
            Ok(m) => {
                let (ours, base) = (median(&m.ours), median(&m.baseline));
                let ratio = base / ours;
                rows.push([
                    name.to_string(),
                    format!("{ours:.4}"),
                    format!("{base:.4}"),
                    format!("{ratio:.2}"),
                    bench.description().to_string(),
                ]);
                let secs = |v: &[Duration]| v.iter().map(Duration::as_secs_f64).collect::<Vec<_>>();
                json_rows.push(json!({
                    "name": name,
                    "description": bench.description(),
                    "ours_median_s": ours,
                    "baseline_median_s": base,
                    "ratio": ratio,
                    "ours_runs_s": secs(&m.ours),
                    "baseline_runs_s": secs(&m.baseline),
                    "ours_cmd": m.ours_cmd,
                    "baseline_cmd": m.baseline_cmd,
                }));
            }
            Err(e) => {
                eprintln!("xtask bench: {name} failed: {e:#}");
                failed.push(name);
            }
        }
    }

    print_table(&rows);
    let results = json!({
        "runs": runs,
        "warmup_runs": 1,
        "statistic": "median",
        "ratio": "baseline / ours (higher: we are faster)",
        "benches": json_rows,
    });
    let path = ctx.dir.join("results.json");
    let mut text = serde_json::to_string_pretty(&results)?;
    text.push('\n');
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("xtask bench: results in {}", path.display());
    if !failed.is_empty() {
        bail!("bench(es) failed: {}", failed.join(", "));
    }
    Ok(())
}

fn print_table(rows: &[[String; 5]]) {
    let header = ["BENCH", "OURS (s)", "BASELINE (s)", "RATIO", "DESCRIPTION"];
    let mut width = header.map(str::len);
    for r in rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    // Name left-aligned, numbers right-aligned, description last.
    let line = |c: [&str; 5]| {
        println!(
            "{:<w0$}  {:>w1$}  {:>w2$}  {:>w3$}  {}",
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            w0 = width[0],
            w1 = width[1],
            w2 = width[2],
            w3 = width[3],
        );
    };
    line(header);
    for r in rows {
        line(std::array::from_fn(|i| r[i].as_str()));
    }
}
