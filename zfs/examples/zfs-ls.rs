//! Lists a pool's datasets, or walks one: `zfs-ls <dev>... [-d dataset]`;
//! `zfs-ls <dev>... --read-all <prefix>` reads every file of every
//! filesystem whose name starts with `prefix` and prints the throughput.
//! A debugging and measuring aid for the reader (never writes).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use docker_mount_zfs::{FileKind, Fs, OpenOptions, Pool};

fn walk(fs: &Fs, dir: u64, path: &str, depth: usize) {
    let mut ents = match fs.read_dir(dir) {
        Ok(e) => e,
        Err(e) => return println!("{path}: {e}"),
    };
    ents.sort_by(|a, b| a.name.cmp(&b.name));
    for e in ents {
        let p = format!("{path}/{}", String::from_utf8_lossy(&e.name));
        match fs.stat(e.obj) {
            Ok(s) => {
                let extra = match s.kind {
                    FileKind::Symlink => format!(
                        " -> {}",
                        String::from_utf8_lossy(&fs.read_link(e.obj).unwrap_or_default())
                    ),
                    FileKind::File => {
                        let mut b = vec![0u8; s.size.min(1 << 26) as usize];
                        match fs.read_at(e.obj, 0, &mut b) {
                            Ok(n) => format!(" read {n}"),
                            Err(e) => format!(" READ ERROR {e}"),
                        }
                    }
                    _ => String::new(),
                };
                let x = fs.xattrs(e.obj).map(|x| x.len()).unwrap_or(999);
                println!(
                    "{p} {:?} {:o} {}:{} size {} nlink {} mtime {} xattrs {x}{extra}",
                    s.kind, s.mode, s.uid, s.gid, s.size, s.nlink, s.mtime.secs
                );
                if s.kind == FileKind::Dir && depth < 64 {
                    walk(fs, e.obj, &p, depth + 1);
                }
            }
            Err(err) => println!("{p}: {err}"),
        }
    }
}

/// Reads every file under `dir`; returns bytes read.
fn read_all(fs: &Fs, dir: u64, buf: &mut [u8]) -> u64 {
    let mut total = 0;
    for e in fs.read_dir(dir).unwrap() {
        match e.kind {
            FileKind::Dir => total += read_all(fs, e.obj, buf),
            FileKind::File => {
                let mut off = 0;
                loop {
                    let n = fs.read_at(e.obj, off, buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    off += n as u64;
                }
                total += off;
            }
            _ => {}
        }
    }
    total
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--read-all") {
        let prefix = args[i + 1].clone();
        args.truncate(i);
        let devs: Vec<PathBuf> = args.iter().map(PathBuf::from).collect();
        let t = std::time::Instant::now();
        let pool = Pool::open(&devs, &OpenOptions::default()).unwrap();
        let mut buf = vec![0u8; 128 << 10];
        let mut total = 0;
        let mut n = 0;
        for d in pool.datasets().unwrap() {
            if d.name.starts_with(&prefix)
                && d.kind == docker_mount_zfs::DatasetKind::Filesystem
                && !d.encrypted
            {
                let fs = pool.open_fs(&d.name).unwrap();
                total += read_all(&fs, fs.root(), &mut buf);
                n += 1;
            }
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "{n} datasets, {total} bytes in {s:.3} s: {:.1} MB/s",
            total as f64 / s / 1e6
        );
        return;
    }
    let (devs, ds): (Vec<&String>, Option<&String>) = match args.iter().position(|a| a == "-d") {
        Some(i) => (args[..i].iter().collect(), args.get(i + 1)),
        None => (args.iter().collect(), None),
    };
    let devs: Vec<PathBuf> = devs.into_iter().map(PathBuf::from).collect();
    let pool = Pool::open(&devs, &OpenOptions::default()).unwrap();
    println!(
        "pool {} guid {} txg {}",
        pool.name(),
        pool.guid(),
        pool.txg()
    );
    match ds {
        None => {
            for u in pool.uberblocks().iter().take(5) {
                println!("uberblock {u:?}");
            }
            println!("features for read: {:?}", pool.features_for_read());
            for d in pool.datasets().unwrap() {
                println!("{d:?}");
            }
        }
        Some(ds) => {
            let fs = pool.open_fs(ds).unwrap();
            walk(&fs, fs.root(), "", 0);
        }
    }
}
