//! `cargo xtask bench [--runs N] [--cold N] [NAME...]`: speed as ratios
//! against a baseline measured side by side in the same run.
//!
//! Each bench prepares its input once (cached under `target/bench/<name>/`),
//! then times two commands with `Instant`: ours (the release `docker-mount`)
//! and a baseline doing comparable work with standard tools. Each gets one
//! untimed warm-up run, then `N` timed runs (default 5), interleaved so that
//! drift in the machine's load hits both alike; the median (with min and
//! max) is reported, and ours' peak RSS (one more run under GNU time). As root, `--cold N` (default 3)
//! more runs of each follow with the caches dropped before every run: the
//! cold ratio, as when evidence is read once. The ratio is baseline/ours:
//! above 1 we are faster. Nothing here asserts an
//! absolute time; a table is printed and the numbers are written to
//! `target/bench/results.json`.
//!
//! To add a bench: implement [`Bench`] and list its constructor in
//! the `BENCHES` list of its module (`list`, `export`, `walk`, `dm`,
//! `full_tree_diff`), or add a module to [`all`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::json;

mod dm;
mod export;
mod full_tree_diff;
mod list;
mod walk;
mod zfs;

use crate::build;
use docker_mount_tests::fixture::{
    ContainerOpts, ContainerState, ImageOpts, Node, RootBuilder, DEFAULT_MTIME,
};
use docker_mount_tests::full_tree;

const DEFAULT_RUNS: usize = 5;
/// Runs with caches dropped first, beside the warm ones (root only).
const DEFAULT_COLD_RUNS: usize = 3;

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
    /// Why the bench cannot run here (e.g. it needs root); it is then
    /// skipped with this message rather than failed.
    fn unavailable(&self) -> Option<String> {
        None
    }
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
    /// Called after every `setup`, also a failed one.
    fn teardown(&mut self, _ctx: &Ctx) -> Result<()> {
        Ok(())
    }
}

type MakeBench = fn() -> Box<dyn Bench>;

/// Every bench, in run order.
fn all() -> Vec<Box<dyn Bench>> {
    [
        list::BENCHES,
        export::BENCHES,
        walk::BENCHES,
        dm::BENCHES,
        full_tree_diff::BENCHES,
        zfs::BENCHES,
    ]
    .concat()
    .into_iter()
    .map(|make| make())
    .collect()
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// One timed run.
#[derive(Debug, Clone, Copy)]
struct Run {
    took: Duration,
}

/// Runs `cmd` once with stdout to /dev/null, failing on a non-zero exit.
fn time_once(mut cmd: Command) -> Result<Run> {
    let what = describe(&cmd);
    let start = Instant::now();
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {what}"))?;
    let took = start.elapsed();
    ensure!(status.success(), "{what} failed ({status})");
    Ok(Run { took })
}

/// Peak resident memory of one more run of `cmd`, in KiB, measured by GNU
/// time (`/usr/bin/time -f %M`): a child forked by this process would
/// count this process's own memory as its peak (Linux keeps the peak
/// across `exec`), while `time` forks from a small process. `None` when
/// GNU time is not installed.
fn peak_rss_kib(cmd: &Command) -> Result<Option<u64>> {
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        return Ok(None);
    }
    let out_file = tempfile_path("rss");
    let mut wrapped = Command::new(time);
    wrapped
        .args(["-f", "%M", "-o"])
        .arg(&out_file)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    time_once(wrapped)?;
    let text = std::fs::read_to_string(&out_file)
        .with_context(|| format!("cannot read {}", out_file.display()))?;
    let _ = std::fs::remove_file(&out_file);
    Ok(text
        .trim()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok()))
}

/// A fresh file name in the temporary directory.
fn tempfile_path(tag: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("xtask-bench-{tag}-{}-{n}", std::process::id()))
}

/// Drops the page, dentry and inode caches (root only), so that the next
/// run reads from the disk like a first look at evidence does.
fn drop_caches() -> Result<()> {
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").context("cannot drop caches")
}

/// Whether caches can be dropped here (root, and /proc/sys writable).
fn can_drop_caches() -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/sys/vm/drop_caches")
        .is_ok()
}

/// Min, median and max of runs, in seconds.
#[derive(Debug, Clone, Copy)]
struct Stats {
    min: f64,
    median: f64,
    max: f64,
}

fn stats(runs: &[Run]) -> Stats {
    let mut s: Vec<f64> = runs.iter().map(|r| r.took.as_secs_f64()).collect();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    Stats {
        min: s[0],
        median,
        max: s[n - 1],
    }
}

struct Measured {
    ours: Vec<Run>,
    baseline: Vec<Run>,
    /// Runs each preceded by dropping the caches (empty when not possible).
    cold_ours: Vec<Run>,
    cold_baseline: Vec<Run>,
    /// Ours' peak resident memory (KiB), when GNU time is there.
    ours_rss_kib: Option<u64>,
    ours_cmd: String,
    baseline_cmd: String,
}

/// Interleaves `runs` runs of ours and the baseline, so that drift in the
/// machine's load hits both alike; with `cold`, caches are dropped first.
fn interleaved(
    bench: &dyn Bench,
    ctx: &Ctx,
    runs: usize,
    cold: bool,
) -> Result<(Vec<Run>, Vec<Run>)> {
    let (mut ours, mut baseline) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        if cold {
            drop_caches()?;
        }
        ours.push(time_once(bench.ours(ctx))?);
        if cold {
            drop_caches()?;
        }
        baseline.push(time_once(bench.baseline(ctx))?);
    }
    Ok((ours, baseline))
}

fn measure(bench: &mut dyn Bench, ctx: &Ctx, opts: &Options) -> Result<Measured> {
    let result = bench.setup(ctx).and_then(|()| {
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
        let (ours, baseline) = interleaved(bench, ctx, opts.runs, false)?;
        let (cold_ours, cold_baseline) = if opts.cold_runs > 0 && can_drop_caches() {
            interleaved(bench, ctx, opts.cold_runs, true)?
        } else {
            (Vec::new(), Vec::new())
        };
        let ours_rss_kib = peak_rss_kib(&bench.ours(ctx))?;
        Ok(Measured {
            ours,
            baseline,
            cold_ours,
            cold_baseline,
            ours_rss_kib,
            ours_cmd: what,
            baseline_cmd: describe(&bench.baseline(ctx)),
        })
    });
    let down = bench.teardown(ctx);
    match (result, down) {
        (Ok(m), Ok(())) => Ok(m),
        (Err(e), Ok(())) | (Ok(_), Err(e)) => Err(e),
        (Err(e), Err(down)) => {
            eprintln!(
                "xtask bench: {}: teardown failed too: {down:#}",
                bench.name()
            );
            Err(e)
        }
    }
}

/// `cargo xtask bench` options.
struct Options {
    runs: usize,
    cold_runs: usize,
    names: Vec<String>,
}

const USAGE: &str = "usage: cargo xtask bench [--runs N] [--cold N] [NAME...]";

fn parse_args(args: &[String]) -> Result<Options> {
    let mut opts = Options {
        runs: DEFAULT_RUNS,
        cold_runs: DEFAULT_COLD_RUNS,
        names: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f, Some(v)),
            None => (a.as_str(), None),
        };
        let target = match flag {
            "--runs" => &mut opts.runs,
            "--cold" => &mut opts.cold_runs,
            _ if a.starts_with('-') => bail!("bench: unknown option {a} ({USAGE})"),
            _ => {
                opts.names.push(a.clone());
                continue;
            }
        };
        let v = match inline {
            Some(v) => v,
            None => it
                .next()
                .with_context(|| format!("{flag} needs a number"))?,
        };
        *target = v
            .parse()
            .with_context(|| format!("{flag} {v}: not a number"))?;
    }
    ensure!(opts.runs > 0, "--runs must be at least 1");
    Ok(opts)
}

/// `cargo xtask bench [--runs N] [--cold N] [NAME...]`; `args` follow `bench`.
pub fn run(args: &[String]) -> Result<()> {
    let opts = parse_args(args)?;
    let mut benches = all();
    let known: Vec<&str> = benches.iter().map(|b| b.name()).collect();
    for n in &opts.names {
        ensure!(
            known.contains(&n.as_str()),
            "no bench named {n} (known: {})",
            known.join(", ")
        );
    }
    benches.retain(|b| opts.names.is_empty() || opts.names.iter().any(|n| n == b.name()));

    let profile = build::build_drivers(true)?;
    let dir = build::target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let ctx = Ctx {
        bin: profile.join("docker-mount"),
        dir,
    };
    if opts.cold_runs > 0 && !can_drop_caches() {
        eprintln!("xtask bench: cannot drop caches here (not root?): warm figures only");
    }

    let mut rows = Vec::new();
    let mut json_rows = Vec::new();
    let mut failed = Vec::new();
    let mut skipped = Vec::new();
    for bench in &mut benches {
        let name = bench.name();
        if let Some(why) = bench.unavailable() {
            eprintln!("xtask bench: {name} skipped: {why}");
            skipped.push(json!({ "name": name, "reason": why }));
            continue;
        }
        eprintln!(
            "xtask bench: {name} ({} runs after 1 warm-up, {} cold)",
            opts.runs, opts.cold_runs
        );
        match measure(bench.as_mut(), &ctx, &opts) {
            Ok(m) => {
                let (ours, base) = (stats(&m.ours), stats(&m.baseline));
                let ratio = base.median / ours.median;
                let cold = (!m.cold_ours.is_empty())
                    .then(|| (stats(&m.cold_ours), stats(&m.cold_baseline)));
                rows.push([
                    name.to_string(),
                    format!("{:.4} ({:.4}-{:.4})", ours.median, ours.min, ours.max),
                    format!("{:.4} ({:.4}-{:.4})", base.median, base.min, base.max),
                    format!("{ratio:.2}"),
                    cold.map_or("-".into(), |(o, b)| format!("{:.2}", b.median / o.median)),
                    m.ours_rss_kib
                        .map_or("-".into(), |k| format!("{:.0}", k as f64 / 1024.0)),
                    bench.description().to_string(),
                ]);
                let secs = |v: &[Run]| v.iter().map(|r| r.took.as_secs_f64()).collect::<Vec<_>>();
                let st = |s: Stats| json!({ "min": s.min, "median": s.median, "max": s.max });
                json_rows.push(json!({
                    "name": name,
                    "description": bench.description(),
                    "ours_median_s": ours.median,
                    "baseline_median_s": base.median,
                    "ratio": ratio,
                    "ours_s": st(ours),
                    "baseline_s": st(base),
                    "ours_runs_s": secs(&m.ours),
                    "baseline_runs_s": secs(&m.baseline),
                    "ours_peak_rss_kib": m.ours_rss_kib,
                    "cold": cold.map(|(o, b)| json!({
                        "ours_s": st(o),
                        "baseline_s": st(b),
                        "ratio": b.median / o.median,
                        "ours_runs_s": secs(&m.cold_ours),
                        "baseline_runs_s": secs(&m.cold_baseline),
                    })),
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
        "runs": opts.runs,
        "cold_runs": opts.cold_runs,
        "warmup_runs": 1,
        "statistic": "median (min-max)",
        "ratio": "baseline / ours (higher: we are faster)",
        "machine": machine(),
        "benches": json_rows,
        "skipped": skipped,
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

/// The machine the numbers were taken on: cores, memory, kernel, load.
fn machine() -> serde_json::Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let mem_kib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    json!({
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "memory_gib": mem_kib.map(|k| k / (1024 * 1024)),
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "load_average": read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    })
}

fn print_table(rows: &[[String; 7]]) {
    let header = [
        "BENCH",
        "OURS s (min-max)",
        "BASELINE s (min-max)",
        "RATIO",
        "COLD",
        "RSS MiB",
        "DESCRIPTION",
    ];
    let mut width = header.map(str::len);
    for r in rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    // Name left-aligned, numbers right-aligned, description last.
    let line = |c: [&str; 7]| {
        println!(
            "{:<w0$}  {:>w1$}  {:>w2$}  {:>w3$}  {:>w4$}  {:>w5$}  {}",
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            c[5],
            c[6],
            w0 = width[0],
            w1 = width[1],
            w2 = width[2],
            w3 = width[3],
            w4 = width[4],
            w5 = width[5],
        );
    };
    line(header);
    for r in rows {
        line(std::array::from_fn(|i| r[i].as_str()));
    }
}

/// Builds a root at `dir/root` with `build` unless `dir/complete` holds
/// `version`; the marker is written last, so an interrupted or failed build
/// is redone.
pub fn cached_root(
    dir: &Path,
    version: &str,
    build: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
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
    build(&dir.join("root")).with_context(|| format!("cannot build {}", dir.display()))?;
    eprintln!(
        "xtask bench: built {} in {:.1} s",
        dir.display(),
        start.elapsed().as_secs_f64()
    );
    std::fs::write(&marker, version)?;
    Ok(())
}

/// `bash -c 'set -o pipefail; <producer> | wc -c' <args>`: the producer
/// sees `$1`, `$2`, ... and its failure is the command's.
pub fn into_wc(producer: &str, args: &[&std::ffi::OsStr]) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!("set -o pipefail; {producer} | wc -c"))
        .arg("xtask-bench")
        .args(args);
    cmd
}

/// Runs `cmd` to completion, failing with its stderr on a non-zero exit.
pub fn run_checked(mut cmd: Command) -> Result<()> {
    let what = describe(&cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    ensure!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Whether `dir` is the root of a mount (on another device than its parent).
pub fn is_mount_point(dir: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let dev = |p: &Path| {
        std::fs::symlink_metadata(p)
            .map(|m| m.dev())
            .with_context(|| format!("cannot stat {}", p.display()))
    };
    Ok(dev(dir)? != dev(&dir.join(".."))?)
}

/// A program on PATH or in /usr/sbin, /sbin.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
