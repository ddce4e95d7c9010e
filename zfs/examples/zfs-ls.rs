//! Lists a pool's datasets, or walks one: `zfs-ls <dev>... [-d dataset]`.
//! A debugging aid for the reader (never writes).
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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
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
