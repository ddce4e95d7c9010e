//! `find`: which layers hold a path (or the paths matching a glob), which
//! images are built on them, which version each container and image sees,
//! and where the path was deleted or hidden. The JSON form is documented in
//! `docker_mount_engine::analysis::provenance`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use std::ops::ControlFlow;

use anyhow::{Context as _, Result};
use docker_mount_engine::analysis::provenance::{
    self, HiddenBy, ImageName, LayerVersion, PathReport, Report, Search, Sight, Version,
};
use docker_mount_engine::evidence::pathfmt;
use docker_mount_engine::evidence::userns::IdMap;
use docker_mount_engine::model::ids;
use docker_mount_engine::model::stack::Role;
use docker_mount_engine::union::{FileKind, Time};

use crate::context;
use crate::{table, Cli};

/// Most owners named in one table cell.
const MAX_OWNERS: usize = 4;

pub fn run(cli: &Cli, query: &OsStr, limit: usize, hash: bool) -> Result<()> {
    let ctx = context::open(cli)?;
    let map = context::id_map(cli, &ctx)?;
    if cli.json && !context::pretty_json() {
        let search = Search::open(&ctx.root, &ctx.drivers, query.as_bytes(), limit, hash)?;
        let report = stream_json(search, map.as_ref())?;
        warn(&report);
        return Ok(());
    }
    let mut report = provenance::find(&ctx.root, &ctx.drivers, query.as_bytes(), limit, hash)?;
    if let Some(map) = &map {
        report.map_ids(map);
    }
    warn(&report);
    if cli.json {
        return context::print_json(&report);
    }
    if report.paths.is_empty() {
        println!("no path of any layer matches {}", one_line(&report.query));
    }
    for (i, p) in report.paths.iter().enumerate() {
        if i > 0 {
            println!();
        }
        print_path(p, report.hashed);
    }
    if report.truncated {
        println!(
            "\n(more paths match; only the first {} are shown: raise --limit)",
            report.limit
        );
    }
    Ok(())
}

/// Column of the hash (or of why the content could not be read).
const CONTENT_COLUMN: usize = 7;

fn warn(report: &Report) {
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if report.truncated {
        eprintln!(
            "warning: more than {} paths match; only the first {} are shown (see --limit)",
            report.limit, report.limit
        );
    }
}

/// Writes the report as compact JSON as the walk goes on, each path as
/// soon as it is found rather than all at the end. The parts around the
/// paths are the report's own serialization, cut at its empty `paths` (so
/// the walk's result, `truncated`, comes last).
fn stream_json(search: Search, map: Option<&IdMap>) -> Result<Report> {
    use std::io::Write as _;
    const PATHS: &str = "\"paths\":[]";
    let around = |r: &Report| -> Result<(String, String)> {
        let text = serde_json::to_string(r)?;
        let (before, after) = text
            .split_once(PATHS)
            .context("the find report has no empty paths to fill")?;
        Ok((format!("{before}\"paths\":["), format!("]{after}\n")))
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    out.write_all(around(search.head())?.0.as_bytes())?;
    let mut failed = None;
    let mut first = true;
    let report = search.run(&mut |mut p| {
        if let Some(map) = map {
            p.map_ids(map);
        }
        let comma = if first { &b""[..] } else { b"," };
        first = false;
        let written = out
            .write_all(comma)
            .map_err(anyhow::Error::from)
            .and_then(|()| Ok(serde_json::to_writer(&mut out, &p)?));
        match written {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    out.write_all(around(&report)?.1.as_bytes())?;
    out.flush()?;
    Ok(report)
}

fn print_path(p: &PathReport, hashed: bool) {
    let path = one_line(&pathfmt::escape(&p.path));
    if p.layers.is_empty() {
        println!("{path}: in no layer of any container or image");
        return;
    }
    println!("{path}");
    let mut rows: Vec<Vec<String>> = p.layers.iter().map(|l| layer_row(l, &path)).collect();
    let mut header = vec![
        "LAYER",
        "ROLE",
        "WHAT",
        "SIZE",
        "MODE",
        "OWNER",
        "MTIME (UTC)",
        if hashed { "SHA256" } else { "ERROR" },
        "USED BY",
    ];
    // Without --hash the column only ever holds errors: shown when one is.
    if !hashed && rows.iter().all(|r| r[CONTENT_COLUMN].is_empty()) {
        header.remove(CONTENT_COLUMN);
        for r in &mut rows {
            r.remove(CONTENT_COLUMN);
        }
    }
    table::print(&header, &rows);
    let mut seen = Vec::new();
    for c in &p.containers {
        seen.push(vec![
            format!("container {}", table::cell(&c.container.name)),
            sight(&c.sight),
        ]);
    }
    // Untagged images (build steps, mostly) grouped by what they see.
    let mut untagged: Vec<(String, Vec<&str>)> = Vec::new();
    for i in &p.images {
        let sees = sight(&i.sight);
        let i = &i.image;
        if !i.tags.is_empty() {
            seen.push(vec![format!("image {}", image_name(&i.id, &i.tags)), sees]);
        } else if let Some((_, ids)) = untagged.iter_mut().find(|(s, _)| *s == sees) {
            ids.push(&i.id);
        } else {
            untagged.push((sees, vec![&i.id]));
        }
    }
    for (sees, ids) in untagged {
        let who = match ids.as_slice() {
            [one] => format!("image {}", image_name(one, &[])),
            many => format!("{} untagged images", many.len()),
        };
        seen.push(vec![who, sees]);
    }
    if !seen.is_empty() {
        println!();
        table::print(&["SEEN BY", "SEES"], &seen);
    }
}

fn role(r: Role) -> &'static str {
    match r {
        Role::Rw => "rw",
        Role::Init => "init",
        Role::Image => "image",
    }
}

fn layer_row(l: &LayerVersion, path: &str) -> Vec<String> {
    let mut row = vec![
        ids::short(&l.layer.driver_id).to_string(),
        if l.layer.orphan {
            "orphan"
        } else {
            role(l.layer.role)
        }
        .to_string(),
    ];
    match &l.version {
        Version::Present(e) => {
            let what = match (&e.kind, &e.link_target, e.device) {
                (FileKind::Symlink, Some(t), _) => format!("symlink -> {}", one_line(t)),
                (_, _, Some((major, minor))) => format!("{} {major},{minor}", kind(e.kind)),
                _ => kind(e.kind).to_string(),
            };
            row.extend([
                what,
                e.size.to_string(),
                e.mode.clone(),
                context::owner(e.uid, e.gid, e.container_ids),
                utc(e.mtime),
                e.sha256
                    .clone()
                    .or_else(|| e.error.clone())
                    .unwrap_or_default(),
            ]);
        }
        other => {
            row.push(removal(other, path));
            row.extend(vec![String::new(); 5]);
        }
    }
    row.push(owners(l));
    row
}

fn kind(k: FileKind) -> &'static str {
    match k {
        FileKind::File => "file",
        FileKind::Dir => "dir",
        FileKind::Symlink => "symlink",
        FileKind::Fifo => "fifo",
        FileKind::CharDev => "chardev",
        FileKind::BlockDev => "blockdev",
        FileKind::Socket => "socket",
    }
}

/// "deleted (whiteout /a)", "hidden (opaque dir /var/d)", ...
fn removal(v: &Version, path: &str) -> String {
    match v {
        Version::Present(_) => "present".into(),
        Version::Deleted { at } => {
            let at = one_line(&pathfmt::escape(at));
            if at == path {
                "deleted (whiteout)".into()
            } else {
                format!("deleted (whiteout {at})")
            }
        }
        Version::Hidden { at, by } => {
            let at = one_line(&pathfmt::escape(at));
            match by {
                HiddenBy::OpaqueDir => format!("hidden (opaque dir {at})"),
                HiddenBy::NonDirectory => format!("hidden ({at} is not a directory)"),
                HiddenBy::FullTree => "hidden (absent from this full tree)".into(),
            }
        }
    }
}

fn image_name(id: &str, tags: &[String]) -> String {
    match tags {
        [] => format!("<none> {}", ids::short(id)),
        [one] => table::cell(one),
        [first, rest @ ..] => format!("{} (+{})", table::cell(first), rest.len()),
    }
}

/// "containers: web" or "images: small:1 (+1), base:3, +2 more, 5 untagged".
fn owners(l: &LayerVersion) -> String {
    let l = &l.layer;
    let (what, names, untagged) = if l.containers.is_empty() {
        let names: Vec<String> = l
            .images
            .iter()
            .filter(|i| !i.tags.is_empty())
            .map(|ImageName { id, tags }| image_name(id, tags))
            .collect();
        let untagged = l.images.len() - names.len();
        ("images", names, untagged)
    } else {
        let names = l.containers.iter().map(|c| table::cell(&c.name)).collect();
        ("containers", names, 0)
    };
    let mut rest = Vec::new();
    if names.len() > MAX_OWNERS {
        rest.push(format!("+{} more", names.len() - MAX_OWNERS));
    }
    match untagged {
        0 => {}
        1 if names.is_empty() => {
            let id = l.images.first().map_or("", |i| i.id.as_str());
            return format!("{what}: {}", image_name(id, &[]));
        }
        n => rest.push(format!("{n} untagged")),
    }
    let shown: Vec<String> = names.into_iter().take(MAX_OWNERS).chain(rest).collect();
    if shown.is_empty() {
        return String::new();
    }
    format!("{what}: {}", shown.join(", "))
}

fn sight(s: &Sight) -> String {
    let layer = s.layer.as_deref().map(ids::short).unwrap_or("?");
    let role = s.role.map(role).unwrap_or("?");
    if s.visible {
        return format!("layer {layer} ({role})");
    }
    let at =
        s.at.as_deref()
            .map(|a| one_line(&pathfmt::escape(a)))
            .unwrap_or_default();
    match s.state {
        Some("deleted") => format!("not visible: deleted in layer {layer} ({role}), whiteout {at}"),
        Some("hidden") => format!("not visible: hidden by layer {layer} ({role}) at {at}"),
        _ => "not visible".into(),
    }
}

/// Control characters (a newline in a name) escaped, so one entry stays on
/// one line; backslashes are already escaped by `pathfmt`.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `YYYY-MM-DD hh:mm:ss` in UTC.
fn utc(t: Time) -> String {
    let days = t.sec.div_euclid(86_400);
    let secs = t.sec.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(Time { sec: 0, nsec: 0 }), "1970-01-01 00:00:00");
        assert_eq!(
            utc(Time {
                sec: 1_614_834_367,
                nsec: 0
            }),
            "2021-03-04 05:06:07"
        );
        assert_eq!(
            utc(Time {
                sec: 951_782_400,
                nsec: 0
            }),
            "2000-02-29 00:00:00"
        );
        assert_eq!(utc(Time { sec: -1, nsec: 0 }), "1969-12-31 23:59:59");
    }
}
