//! devicemapper benches: extracting a thin device and walking its tree.

use super::export::{write_pseudo_random, SplitMix};
use super::*;

/// devicemapper benches: [`DmExtract`] and [`DmTree`].
pub const BENCHES: &[MakeBench] = &[|| Box::new(DmExtract), || Box::new(DmTree)];

const THIN_RESTORE: &str = "thin_restore";
/// The pool's data block: docker's default 64 KiB (128 sectors).
const DM_BLOCK: u64 = 64 << 10;
/// Blocks per run of consecutive mappings.
const DM_RUN: u64 = 64;

/// The skeleton of a devicemapper root: `containers/`, `image/devicemapper/`
/// and the driver's directories; returns `devicemapper/`.
fn dm_skeleton(root: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(root.join("containers"))?;
    std::fs::create_dir_all(root.join("image/devicemapper/layerdb/sha256"))?;
    std::fs::create_dir_all(root.join("image/devicemapper/imagedb/content/sha256"))?;
    let store = root.join("devicemapper");
    std::fs::create_dir_all(store.join("devicemapper"))?;
    std::fs::create_dir_all(store.join("metadata"))?;
    std::fs::write(
        store.join("metadata/deviceset-metadata"),
        r#"{"next_device_id":1001,"BaseDeviceFilesystem":"ext4"}"#,
    )?;
    Ok(store)
}

/// Writes the pool metadata of `devices` (each a list of runs: virtual
/// block, data block, length) with thin_restore.
fn dm_restore(store: &Path, nr_data_blocks: u64, devices: &[Vec<(u64, u64, u64)>]) -> Result<()> {
    use std::fmt::Write as _;
    let mut xml = format!(
        "<superblock uuid=\"\" time=\"1\" transaction=\"1\" version=\"2\" data_block_size=\"{}\" nr_data_blocks=\"{nr_data_blocks}\">\n",
        DM_BLOCK / 512
    );
    for (i, runs) in devices.iter().enumerate() {
        let mapped: u64 = runs.iter().map(|r| r.2).sum();
        let _ = writeln!(
            xml,
            "<device dev_id=\"{}\" mapped_blocks=\"{mapped}\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">",
            i + 1
        );
        for (v, d, n) in runs {
            let _ = writeln!(
                xml,
                "<range_mapping origin_begin=\"{v}\" data_begin=\"{d}\" length=\"{n}\" time=\"0\"/>"
            );
        }
        xml.push_str("</device>\n");
    }
    xml.push_str("</superblock>\n");
    let xml_path = store.join("pool.xml");
    std::fs::write(&xml_path, xml)?;
    let meta = store.join("devicemapper/metadata");
    std::fs::File::create(&meta)?.set_len(256 << 20)?;
    let mut cmd = Command::new(find_tool(THIN_RESTORE).context("thin_restore is missing")?);
    cmd.arg("-i").arg(&xml_path).arg("-o").arg(&meta);
    run_checked(cmd)?;
    std::fs::remove_file(&xml_path)?;
    Ok(())
}

fn dm_unavailable() -> Option<String> {
    find_tool(THIN_RESTORE).is_none().then(|| {
        "needs thin_restore (Debian's thin-provisioning-tools) to write the pool".to_string()
    })
}

const DM_EXTRACT_SIZE: u64 = 1 << 30;
const DM_EXTRACT_LAYER: &str = "bench-layer";

/// `extract` of a fully mapped 1 GiB thin device (in 4 MiB runs scattered
/// over the pool's data), sha256 included, against `dd` reading the same
/// bytes of `data` sequentially; both from disk (the data file's page cache
/// dropped first) and into `wc -c`.
struct DmExtract;

impl DmExtract {
    fn dir(ctx: &Ctx) -> PathBuf {
        ctx.dir.join("dm-extract-1gib")
    }
    fn data(ctx: &Ctx) -> PathBuf {
        Self::dir(ctx).join("root/devicemapper/devicemapper/data")
    }
}

impl Bench for DmExtract {
    fn name(&self) -> &'static str {
        "dm-extract-1gib"
    }
    fn description(&self) -> &'static str {
        "extract -o - | wc -c of a 1 GiB thin device (256 scattered 4 MiB runs, sha256 \
         computed), vs dd bs=4M of the same bytes of the pool's data | wc -c; the data's \
         page cache is dropped before each run (dd iflag=nocache), so both read the disk"
    }
    fn unavailable(&self) -> Option<String> {
        dm_unavailable()
    }
    fn setup(&mut self, ctx: &Ctx) -> Result<()> {
        cached_root(&Self::dir(ctx), "dm-extract 1GiB runs=64 v1", |root| {
            let store = dm_skeleton(root)?;
            let blocks = DM_EXTRACT_SIZE / DM_BLOCK;
            let runs = blocks / DM_RUN;
            let data = store.join("devicemapper/data");
            // The data, pseudo-random, with one run of slack.
            write_pseudo_random_new(&data, DM_EXTRACT_SIZE + DM_RUN * DM_BLOCK)?;
            // Run i of the device lives at data run order[i].
            let mut order: Vec<u64> = (0..runs).collect();
            let mut rng = SplitMix(0xd0c4_e700_0000_0001);
            for i in (1..order.len()).rev() {
                let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
            let device: Vec<(u64, u64, u64)> = order
                .iter()
                .enumerate()
                .map(|(i, &o)| (i as u64 * DM_RUN, o * DM_RUN, DM_RUN))
                .collect();
            dm_restore(&store, blocks + DM_RUN, &[device])?;
            std::fs::write(
                store.join("metadata").join(DM_EXTRACT_LAYER),
                format!(
                    r#"{{"device_id":1,"size":{DM_EXTRACT_SIZE},"transaction_id":1,"initialized":false,"deleted":false}}"#
                ),
            )?;
            Ok(())
        })
    }
    fn ours(&self, ctx: &Ctx) -> Command {
        into_wc(
            r#"dd if="$4" iflag=nocache count=0 status=none; "$1" --root "$2" extract --layer "$3" -o - 2>/dev/null"#,
            &[
                ctx.bin.as_os_str(),
                Self::dir(ctx).join("root").as_os_str(),
                DM_EXTRACT_LAYER.as_ref(),
                Self::data(ctx).as_os_str(),
            ],
        )
    }
    fn baseline(&self, ctx: &Ctx) -> Command {
        into_wc(
            r#"dd if="$1" iflag=nocache count=0 status=none; dd if="$1" bs=4M count=256 status=none"#,
            &[Self::data(ctx).as_os_str()],
        )
    }
    fn check_ours(&self, stdout: &[u8]) -> Result<()> {
        let text = String::from_utf8_lossy(stdout);
        ensure!(
            text.trim() == DM_EXTRACT_SIZE.to_string(),
            "extract -o - wrote {text:?} bytes, not {DM_EXTRACT_SIZE}"
        );
        Ok(())
    }
}

/// Creates `path` holding `len` pseudo-random bytes.
fn write_pseudo_random_new(path: &Path, len: u64) -> Result<()> {
    std::fs::File::create(path)?;
    write_pseudo_random(path, len)
}

const DM_TREE_DEVICES: u64 = 1000;
/// Runs of [`DM_RUN`] blocks per device (1,024 mappings: a 64 MiB filesystem's worth).
const DM_TREE_RUNS: u64 = 16;

/// `layers --orphans --json` over a pool of 1,000 thin devices that no
/// layer names (every device's mapping tree is read, and each device
/// described through the plugin boundary), against `thin_dump` of the
/// same metadata.
struct DmTree;

impl DmTree {
    fn dir(ctx: &Ctx) -> PathBuf {
        ctx.dir.join("dm-tree-1000")
    }
}

impl Bench for DmTree {
    fn name(&self) -> &'static str {
        "dm-tree-1000"
    }
    fn description(&self) -> &'static str {
        "layers --orphans --json, a thin pool of 1,000 devices of 1,024 mappings each \
         (every mapping tree read), vs thin_dump of its metadata"
    }
    fn unavailable(&self) -> Option<String> {
        dm_unavailable()
    }
    fn setup(&mut self, ctx: &Ctx) -> Result<()> {
        cached_root(
            &Self::dir(ctx),
            "dm-tree devices=1000 runs=16x64 v1",
            |root| {
                let store = dm_skeleton(root)?;
                let mut rng = SplitMix(0xd0c4_e700_0000_0002);
                let slots = 1u64 << 16;
                let devices: Vec<Vec<(u64, u64, u64)>> = (0..DM_TREE_DEVICES)
                    .map(|_| {
                        (0..DM_TREE_RUNS)
                            .map(|r| (r * 4 * DM_RUN, (rng.next_u64() % slots) * DM_RUN, DM_RUN))
                            .collect()
                    })
                    .collect();
                std::fs::File::create(store.join("devicemapper/data"))?
                    .set_len(slots * DM_RUN * DM_BLOCK)?;
                dm_restore(&store, slots * DM_RUN, &devices)
            },
        )
    }
    fn ours(&self, ctx: &Ctx) -> Command {
        ctx.ours(
            &Self::dir(ctx).join("root"),
            &["layers", "--orphans", "--json"],
        )
    }
    fn baseline(&self, ctx: &Ctx) -> Command {
        let mut cmd = Command::new(find_tool("thin_dump").unwrap_or_else(|| "thin_dump".into()));
        cmd.arg(Self::dir(ctx).join("root/devicemapper/devicemapper/metadata"));
        cmd
    }
    fn check_ours(&self, stdout: &[u8]) -> Result<()> {
        let text = String::from_utf8_lossy(stdout);
        let n = text.matches("\"device-").count();
        ensure!(
            n as u64 >= DM_TREE_DEVICES,
            "layers --orphans listed {n} thin devices, expected {DM_TREE_DEVICES}"
        );
        Ok(())
    }
}
