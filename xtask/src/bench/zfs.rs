//! zfs bench: exporting a container straight from a pool's disk image.

use super::*;
use docker_mount_tests::real_zfs;

/// zfs benches: [`ZfsExport`].
pub const BENCHES: &[MakeBench] = &[|| Box::new(ZfsExport::default())];

/// `export -o - | wc -c` of the biggest container of the real `dmpool`
/// (read in userspace from `dmpool.img`: labels, MOS, datasets, every
/// file's blocks decompressed and checksummed, served through the
/// in-process FUSE server), against `cat dmpool.img | wc -c`, a
/// sequential read of the whole pool image.
#[derive(Default)]
struct ZfsExport {
    disk: PathBuf,
    container: String,
    /// Bytes docker's own export of it holds.
    export_bytes: u64,
}

impl Bench for ZfsExport {
    fn name(&self) -> &'static str {
        "zfs-export"
    }
    fn description(&self) -> &'static str {
        "export -o - | wc -c of the biggest container of the real zfs pool dmpool \
         (--root dmpool.img, read in userspace), vs cat dmpool.img | wc -c (the 1 GiB \
         sparse pool image read sequentially)"
    }
    fn unavailable(&self) -> Option<String> {
        real_zfs::available()
            .err()
            .map(|e| format!("needs the cached real zfs pools: {e}"))
    }
    fn setup(&mut self, _ctx: &Ctx) -> Result<()> {
        let pools = real_zfs::pools().map_err(|e| anyhow::anyhow!(e))?;
        self.disk = pools.docker_disk();
        let mut biggest: Option<(u64, String)> = None;
        for c in pools.ps().map_err(|e| anyhow::anyhow!(e))? {
            let name = c["Names"].as_str().unwrap_or_default().to_string();
            let bytes = std::fs::metadata(pools.export_tar(&name))?.len();
            if biggest.as_ref().is_none_or(|(b, _)| bytes > *b) {
                biggest = Some((bytes, name));
            }
        }
        let (bytes, name) = biggest.context("the pool's oracle lists no container")?;
        self.container = name;
        self.export_bytes = bytes;
        Ok(())
    }
    fn ours(&self, ctx: &Ctx) -> Command {
        into_wc(
            r#""$1" --root "$2" export "$3" -o - 2>/dev/null"#,
            &[
                ctx.bin.as_os_str(),
                self.disk.as_os_str(),
                self.container.as_ref(),
            ],
        )
    }
    fn baseline(&self, _ctx: &Ctx) -> Command {
        into_wc(r#"cat "$1""#, &[self.disk.as_os_str()])
    }
    fn check_ours(&self, stdout: &[u8]) -> Result<()> {
        let text = String::from_utf8_lossy(stdout);
        let n: u64 = text.trim().parse().unwrap_or(0);
        // Tar padding and header details may differ from docker's; the
        // content is compared entry by entry by the tests.
        ensure!(
            n * 10 >= self.export_bytes * 9,
            "export of {} wrote {n} bytes; docker's export holds {}",
            self.container,
            self.export_bytes
        );
        Ok(())
    }
}
