//! What a host's docker daemon was told to do, from every place it can be
//! told: `etc/docker/daemon.json`, `DOCKER_OPTS` in `etc/default/docker`,
//! `OPTIONS` in `etc/sysconfig/docker`, the systemd unit's `ExecStart` (unit
//! files and drop-ins under `etc/systemd/system`, `lib/systemd/system`,
//! `usr/lib/systemd/system`, `run/systemd/system`), and rootless users'
//! `~/.config/docker/daemon.json` and user units. Every setting keeps the
//! file it came from. All paths are resolved inside the host tree.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::evidence::host::HostFs;

/// Configuration files are small; anything bigger is not one.
const CONFIG_LIMIT: u64 = 1024 * 1024;

/// Where a setting was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    DaemonJson,
    DefaultDocker,
    Sysconfig,
    SystemdUnit,
    SystemdDropIn,
    RootlessDaemonJson,
    RootlessUnit,
}

/// The daemon settings one file gives.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct Flags {
    /// `data-root` / `graph` / `-g` / `--data-root`.
    pub data_root: Option<String>,
    /// `hosts` / `-H` / `--host`, in order.
    pub hosts: Vec<String>,
    pub tls: Option<bool>,
    pub tlsverify: Option<bool>,
    pub userns_remap: Option<String>,
    pub storage_driver: Option<String>,
    pub insecure_registries: Vec<String>,
    /// `DOCKER_TLS_VERIFY` set in the unit's environment.
    pub env_tls_verify: bool,
}

/// One configuration file of the host.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ConfigSource {
    pub kind: SourceKind,
    /// As on the host (`/etc/docker/daemon.json`), before symlinks.
    pub host_path: String,
    /// On the analyst's system.
    pub file: std::path::PathBuf,
    /// The rootless user it belongs to.
    pub user: Option<String>,
    /// The command line or settings text the flags come from (one per
    /// `ExecStart`, `DOCKER_OPTS` line, or the JSON keys).
    pub lines: Vec<String>,
    pub flags: Flags,
    /// A systemd unit that reads `etc/default/docker` (`EnvironmentFile=`)
    /// and passes `$DOCKER_OPTS`.
    pub uses_default_docker: bool,
    /// What could not be read or understood.
    pub problems: Vec<String>,
}

impl ConfigSource {
    fn new(fs: &HostFs, kind: SourceKind, host_path: &str, user: Option<&str>) -> ConfigSource {
        let file = fs
            .resolve(host_path)
            .map(|r| fs.local(&r))
            .unwrap_or_else(|_| fs.path().join(host_path.trim_start_matches('/')));
        ConfigSource {
            kind,
            host_path: host_path.to_string(),
            file,
            user: user.map(str::to_string),
            lines: Vec::new(),
            flags: Flags::default(),
            uses_default_docker: false,
            problems: Vec::new(),
        }
    }
}

/// Splits a command line the way a shell (or systemd) would, well enough
/// for flags: quotes and backslash escapes; `$VARS` are kept as words.
pub fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    in_word = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "" | "1" | "true" | "t" | "yes" => Some(true),
        "0" | "false" | "f" | "no" => Some(false),
        _ => None,
    }
}

/// Reads dockerd's flags from a command line (`dockerd ...`, `docker daemon
/// ...`, `docker -d ...` or a bare `DOCKER_OPTS` value) into `flags`.
pub fn parse_args(words: &[String], flags: &mut Flags) {
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        let (name, inline) = match w.split_once('=') {
            Some((n, v)) if n.starts_with('-') => (n, Some(v.to_string())),
            _ => (w, None),
        };
        // Short flags may carry their value attached: `-Htcp://...`, `-g/data`.
        let (name, inline) = match (name, inline) {
            (n, None)
                if n.len() > 2
                    && (n.starts_with("-H") || n.starts_with("-g") || n.starts_with("-s"))
                    && !n.starts_with("--") =>
            {
                (&n[..2], Some(n[2..].to_string()))
            }
            other => other,
        };
        let value = |i: &mut usize| -> Option<String> {
            if let Some(v) = inline.clone() {
                return Some(v);
            }
            *i += 1;
            words.get(*i).cloned()
        };
        match name {
            "-H" | "--host" => {
                if let Some(v) = value(&mut i) {
                    flags.hosts.push(v);
                }
            }
            "-g" | "--graph" | "--data-root" => flags.data_root = value(&mut i),
            "-s" | "--storage-driver" => flags.storage_driver = value(&mut i),
            "--userns-remap" => flags.userns_remap = value(&mut i),
            "--insecure-registry" => {
                if let Some(v) = value(&mut i) {
                    flags.insecure_registries.push(v);
                }
            }
            "--tls" => flags.tls = parse_bool(inline.as_deref().unwrap_or("")),
            "--tlsverify" => flags.tlsverify = parse_bool(inline.as_deref().unwrap_or("")),
            _ => {}
        }
        i += 1;
    }
}

/// `daemon.json`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct DaemonJson {
    hosts: Option<Vec<String>>,
    tls: Option<bool>,
    tlsverify: Option<bool>,
    #[serde(rename = "data-root")]
    data_root: Option<String>,
    graph: Option<String>,
    #[serde(rename = "userns-remap")]
    userns_remap: Option<String>,
    #[serde(rename = "storage-driver")]
    storage_driver: Option<String>,
    #[serde(rename = "insecure-registries")]
    insecure_registries: Option<Vec<String>>,
}

fn read_text(fs: &HostFs, src: &mut ConfigSource, what: &'static str) -> Option<String> {
    match fs.read(&src.host_path, CONFIG_LIMIT, what) {
        Ok(Some((r, bytes))) => {
            src.file = fs.local(&r);
            Some(String::from_utf8_lossy(&bytes).into_owned())
        }
        Ok(None) => None,
        Err(e) => {
            src.problems.push(e.to_string());
            Some(String::new())
        }
    }
}

fn daemon_json(
    fs: &HostFs,
    host_path: &str,
    kind: SourceKind,
    user: Option<&str>,
) -> Option<ConfigSource> {
    let mut src = ConfigSource::new(fs, kind, host_path, user);
    let text = read_text(fs, &mut src, "daemon.json")?;
    if !src.problems.is_empty() {
        return Some(src);
    }
    // Parse leniently: the file may hold keys of any type.
    let value: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            src.problems
                .push(format!("{}: not valid JSON: {e}", src.file.display()));
            return Some(src);
        }
    };
    let cfg: DaemonJson = match serde_json::from_value(value.clone()) {
        Ok(c) => c,
        Err(e) => {
            src.problems
                .push(format!("{}: unexpected value: {e}", src.file.display()));
            DaemonJson::default()
        }
    };
    if let Some(obj) = value.as_object() {
        for key in [
            "hosts",
            "tls",
            "tlsverify",
            "data-root",
            "graph",
            "userns-remap",
            "storage-driver",
            "insecure-registries",
        ] {
            if let Some(v) = obj.get(key) {
                src.lines.push(format!("\"{key}\": {v}"));
            }
        }
    }
    src.flags = Flags {
        data_root: cfg.data_root.or(cfg.graph),
        hosts: cfg.hosts.unwrap_or_default(),
        tls: cfg.tls,
        tlsverify: cfg.tlsverify,
        userns_remap: cfg.userns_remap,
        storage_driver: cfg.storage_driver,
        insecure_registries: cfg.insecure_registries.unwrap_or_default(),
        env_tls_verify: false,
    };
    Some(src)
}

/// A shell-style environment file: the value of `var` (last assignment wins
/// for the flags; every assignment is kept as a line).
fn env_file(fs: &HostFs, host_path: &str, kind: SourceKind, vars: &[&str]) -> Option<ConfigSource> {
    let mut src = ConfigSource::new(fs, kind, host_path, None);
    let text = read_text(fs, &mut src, "an environment file")?;
    for line in logical_lines(&text) {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let assignment = line.strip_prefix("export ").unwrap_or(line).trim();
        let Some((name, value)) = assignment.split_once('=') else {
            continue;
        };
        let name = name.trim().trim_end_matches('+');
        if !vars.contains(&name) {
            continue;
        }
        src.lines.push(line.to_string());
        let words: Vec<String> = split_words(value)
            .into_iter()
            .flat_map(|w| split_words(&w))
            .collect();
        parse_args(&words, &mut src.flags);
    }
    Some(src)
}

/// Lines with backslash-newline continuations joined.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        if let Some(head) = line.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
        } else {
            cur.push_str(line);
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A systemd unit file or drop-in: `ExecStart=`, `Environment=` and
/// `EnvironmentFile=` of its `[Service]` section.
fn systemd_file(
    fs: &HostFs,
    host_path: &str,
    kind: SourceKind,
    user: Option<&str>,
) -> Option<ConfigSource> {
    let mut src = ConfigSource::new(fs, kind, host_path, user);
    let text = read_text(fs, &mut src, "a systemd unit")?;
    let mut env_files = Vec::new();
    let mut mentions_opts = false;
    for line in logical_lines(&text) {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "ExecStart" => {
                if value.is_empty() {
                    // A reset of the unit's ExecStart; keep it visible.
                    src.lines.push(line.to_string());
                    continue;
                }
                let cmd = value.trim_start_matches(['-', '@', ':', '+', '!']);
                let words = split_words(cmd);
                let is_docker = words.first().is_some_and(|w| {
                    let base = w.rsplit('/').next().unwrap_or(w);
                    base.starts_with("dockerd") || base == "docker"
                });
                if !is_docker {
                    continue;
                }
                mentions_opts |= words.iter().any(|w| {
                    w.contains("$DOCKER_OPTS")
                        || w.contains("${DOCKER_OPTS}")
                        || w.contains("$OPTIONS")
                });
                src.lines.push(line.to_string());
                parse_args(&words, &mut src.flags);
            }
            "Environment" => {
                for assignment in split_words(value) {
                    if let Some(("DOCKER_TLS_VERIFY", v)) = assignment.split_once('=') {
                        src.lines.push(line.to_string());
                        src.flags.env_tls_verify = !v.is_empty() && v != "0";
                    } else if let Some(("DOCKER_OPTS" | "OPTIONS", v)) = assignment.split_once('=')
                    {
                        src.lines.push(line.to_string());
                        parse_args(&split_words(v), &mut src.flags);
                    }
                }
            }
            "EnvironmentFile" => env_files.push(value.trim_start_matches('-').to_string()),
            _ => {}
        }
    }
    src.uses_default_docker = mentions_opts
        && env_files
            .iter()
            .any(|f| f.ends_with("/default/docker") || f.ends_with("/sysconfig/docker"));
    (!src.lines.is_empty() || !src.problems.is_empty()).then_some(src)
}

/// The directories systemd reads units from, most specific first.
const UNIT_DIRS: [&str; 5] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];

/// Units that can start dockerd.
const UNITS: [&str; 2] = ["docker.service", "snap.docker.dockerd.service"];

/// Every configuration of the host's system daemon and of its rootless
/// daemons, in a stable order.
pub fn read_all(fs: &HostFs) -> Vec<ConfigSource> {
    let mut out = Vec::new();
    out.extend(daemon_json(
        fs,
        "/etc/docker/daemon.json",
        SourceKind::DaemonJson,
        None,
    ));
    out.extend(env_file(
        fs,
        "/etc/default/docker",
        SourceKind::DefaultDocker,
        &["DOCKER_OPTS"],
    ));
    out.extend(env_file(
        fs,
        "/etc/sysconfig/docker",
        SourceKind::Sysconfig,
        &["OPTIONS", "DOCKER_OPTS"],
    ));
    // /lib is often a symlink to /usr/lib: report each real file once.
    let mut seen = BTreeMap::new();
    for dir in UNIT_DIRS {
        for unit in UNITS {
            let path = format!("{dir}/{unit}");
            if let Some(src) = systemd_file(fs, &path, SourceKind::SystemdUnit, None) {
                if seen.insert(src.file.clone(), ()).is_none() {
                    out.push(src);
                }
            }
            for (name, r) in fs.list(&format!("{path}.d")) {
                if !name.ends_with(".conf") {
                    continue;
                }
                if let Some(src) = systemd_file(fs, &r.host_path, SourceKind::SystemdDropIn, None) {
                    if seen.insert(src.file.clone(), ()).is_none() {
                        out.push(src);
                    }
                }
            }
        }
    }
    for (user, home) in homes(fs) {
        out.extend(daemon_json(
            fs,
            &format!("{home}/.config/docker/daemon.json"),
            SourceKind::RootlessDaemonJson,
            Some(&user),
        ));
        let unit = format!("{home}/.config/systemd/user/docker.service");
        out.extend(systemd_file(
            fs,
            &unit,
            SourceKind::RootlessUnit,
            Some(&user),
        ));
        for (name, r) in fs.list(&format!("{unit}.d")) {
            if name.ends_with(".conf") {
                out.extend(systemd_file(
                    fs,
                    &r.host_path,
                    SourceKind::RootlessUnit,
                    Some(&user),
                ));
            }
        }
    }
    out
}

/// Home directories of the host: `/home/*`, as (user, host path).
pub fn homes(fs: &HostFs) -> Vec<(String, String)> {
    fs.list("/home")
        .into_iter()
        .filter(|(_, r)| fs.is_dir(r))
        .map(|(name, _)| {
            let home = format!("/home/{name}");
            (name, home)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        split_words(s)
    }

    #[test]
    fn flags_in_every_spelling() {
        let mut f = Flags::default();
        parse_args(
            &words("/usr/bin/dockerd -H fd:// -H=tcp://0.0.0.0:2375 --host unix:///x -Htcp://1.2.3.4:2376 -g /data/docker --tlsverify=false --userns-remap default"),
            &mut f,
        );
        assert_eq!(
            f.hosts,
            [
                "fd://",
                "tcp://0.0.0.0:2375",
                "unix:///x",
                "tcp://1.2.3.4:2376"
            ]
        );
        assert_eq!(f.data_root.as_deref(), Some("/data/docker"));
        assert_eq!(f.tlsverify, Some(false));
        assert_eq!(f.userns_remap.as_deref(), Some("default"));
        let mut f = Flags::default();
        parse_args(&words("--data-root=/srv/d --tlsverify --tls"), &mut f);
        assert_eq!(f.data_root.as_deref(), Some("/srv/d"));
        assert_eq!((f.tls, f.tlsverify), (Some(true), Some(true)));
    }

    #[test]
    fn shell_words() {
        assert_eq!(
            words(r#"a "b c" 'd e' f\ g "h\"i""#),
            ["a", "b c", "d e", "f g", "h\"i"]
        );
    }
}
