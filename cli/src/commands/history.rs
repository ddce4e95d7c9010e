//! `history`: an image's build steps joined with its layers on disk.

use anyhow::Result;
use docker_mount_engine::analysis::history;
use docker_mount_engine::model::ids;

use crate::context;
use crate::{table, Cli};

/// Bytes as docker shows sizes (`1.23MB`, powers of 1000).
pub fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        let num = format!("{v:.3}");
        let num = num.trim_end_matches('0').trim_end_matches('.');
        format!("{num}{}", units[u])
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

pub fn run(cli: &Cli, image: &str, no_trunc: bool, disk_usage: bool) -> Result<()> {
    let ctx = context::open(cli)?;
    let img = ctx.root.find_image(image)?;
    let h = history::history(&ctx.root, &ctx.drivers, &img, disk_usage)?;
    if cli.json {
        return context::print_json(&h);
    }
    println!(
        "image sha256:{} {} ({} layers, {})",
        h.image,
        h.tags.join(" "),
        img.config.rootfs.diff_ids.len(),
        human(h.size)
    );
    let rows: Vec<Vec<String>> = h
        .steps
        .iter()
        .map(|s| {
            let by = if no_trunc {
                s.created_by.clone()
            } else {
                shorten(&s.created_by, 60)
            };
            let (size, layer, disk) = match &s.layer {
                None => ("0B".to_string(), "-".to_string(), "-".to_string()),
                Some(l) => {
                    let id = l.cache_id.as_deref().unwrap_or("?");
                    let id = if no_trunc { id } else { ids::short(id) };
                    let state = match (&l.problem, l.present) {
                        (Some(p), _) => format!("missing: {p}"),
                        (None, true) => match &l.disk {
                            Some(u) => format!("present, {} in {} files", human(u.bytes), u.files),
                            None => "present".into(),
                        },
                        (None, false) => "not checked".into(),
                    };
                    (
                        l.size.map(human).unwrap_or_else(|| "?".into()),
                        id.to_string(),
                        state,
                    )
                }
            };
            vec![
                if s.created.is_empty() {
                    "-".into()
                } else {
                    s.created.clone()
                },
                table::cell(&by),
                size,
                layer,
                table::cell(&disk),
                table::cell(&s.comment),
            ]
        })
        .collect();
    table::print(
        &[
            "CREATED",
            "CREATED BY",
            "SIZE",
            "LAYER",
            "ON DISK",
            "COMMENT",
        ],
        &rows,
    );
    for w in &h.warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(999), "999B");
        assert_eq!(human(1000), "1kB");
        assert_eq!(human(1_234_567), "1.235MB");
        assert_eq!(human(5_500_000_000), "5.5GB");
    }
}
