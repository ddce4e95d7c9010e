//! Timelines of a docker root: the file times (atime, mtime, ctime) of
//! every entry of a container's or image's view, each marked with the
//! layer it comes from, and the events docker recorded (container created,
//! started, finished; image created and its history). Written as a Sleuth
//! Kit 3.x bodyfile (`mactime -b`) or as Timesketch-style JSON lines.
//!
//! Only metadata is read: entries are `fstatat`ed and symlinks read
//! through the view, nothing is opened for content.
//!
//! Memory: a [`Timeline`] keeps every entry it was given, compactly (about
//! 150 bytes plus the path per entry), because JSON lines are sorted by
//! time over the whole output; sorting uses a 24-byte key per (entry,
//! time kind). A few million entries fit in a few hundred megabytes. The
//! bodyfile needs no order, so a caller may write and [`Timeline::clear`]
//! after each container to bound memory by the largest view.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use docker_mount_core::time::{format_rfc3339, parse_rfc3339};
use serde::Serialize;

use crate::analysis::owner_names::OwnerNames;
use crate::evidence::pathfmt;
use crate::evidence::userns::{ContainerIds, IdMap};
use crate::model::container::{is_zero_time, Container};
use crate::model::image::Image;
use crate::model::parallel;
use crate::model::stack::Role;
use crate::union::view::View;
use crate::union::{FileKind, Node, Time, Union};
use docker_mount_core::error::Result;

/// JSON lines formatted together before being written.
const JSONL_BATCH: usize = 16 * 1024;

/// Characters of a driver id shown in names.
const SHORT_ID: usize = 12;

/// What a timeline is about: a container or an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    Container,
    Image,
}

/// A layer of a scope's view.
#[derive(Debug, Clone)]
pub struct ScopeLayer {
    pub driver_id: String,
    pub role: Role,
    /// The layer's directory in the evidence.
    pub dir: PathBuf,
}

/// A container or an image, with the layers of its view (if read).
#[derive(Debug, Clone)]
pub struct Scope {
    pub kind: ScopeKind,
    /// Container name, or the image's first tag (its short id if untagged).
    pub name: String,
    /// Full container id or image id.
    pub id: String,
    /// The image: the container's `Config.Image` and image id, or the image itself.
    pub image: String,
    pub image_id: String,
    /// Top first, as in the view.
    pub layers: Vec<ScopeLayer>,
    /// Owner names from the view's own `/etc/passwd` and `/etc/group`
    /// (none without a view).
    pub names: OwnerNames,
}

impl Scope {
    pub fn container(c: &Container) -> Scope {
        Scope {
            kind: ScopeKind::Container,
            name: c.name().to_string(),
            id: c.id.clone(),
            image: c.config.config.image.clone(),
            image_id: c.image_id().to_string(),
            layers: Vec::new(),
            names: OwnerNames::default(),
        }
    }

    pub fn image(img: &Image) -> Scope {
        let name = img
            .tags
            .first()
            .cloned()
            .unwrap_or_else(|| short(&img.id).to_string());
        Scope {
            kind: ScopeKind::Image,
            name: name.clone(),
            id: img.id.clone(),
            image: name,
            image_id: img.id.clone(),
            layers: Vec::new(),
            names: OwnerNames::default(),
        }
    }

    /// The view's layers and owner names (warnings about the names go to
    /// `warnings`).
    fn with_layers(mut self, view: &View, warnings: &mut Vec<String>) -> Scope {
        self.layers = view
            .layers
            .iter()
            .zip(&view.union.trees)
            .map(|(l, t)| ScopeLayer {
                driver_id: l.driver_id.clone(),
                role: l.role,
                dir: t.path().to_path_buf(),
            })
            .collect();
        let (names, name_warnings) = OwnerNames::of_view(&view.union);
        self.names = names;
        let tag = self.tag();
        warnings.extend(name_warnings.into_iter().map(|w| format!("{tag}: {w}")));
        self
    }

    /// `[container web]` or `[image small:1]`.
    fn tag(&self) -> String {
        match self.kind {
            ScopeKind::Container => format!("[container {}]", self.name),
            ScopeKind::Image => format!("[image {}]", self.name),
        }
    }
}

fn short(id: &str) -> &str {
    id.get(..SHORT_ID).unwrap_or(id)
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Rw => "rw",
        Role::Init => "init",
        Role::Image => "image",
    }
}

fn kind_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::File => "file",
        FileKind::Dir => "dir",
        FileKind::Symlink => "symlink",
        FileKind::Fifo => "fifo",
        FileKind::CharDev => "chardev",
        FileKind::BlockDev => "blockdev",
        FileKind::Socket => "socket",
    }
}

/// `ls -l` style mode: `-rw-r--r--`, `drwxrwxrwt`, `-rwsr-xr-x`.
pub fn mode_string(kind: FileKind, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(kind.letter());
    let triads = [
        (0o400, 0o200, 0o100, libc::S_ISUID, 's'),
        (0o040, 0o020, 0o010, libc::S_ISGID, 's'),
        (0o004, 0o002, 0o001, libc::S_ISVTX, 't'),
    ];
    for (r, w, x, special, letter) in triads {
        s.push(if mode & r != 0 { 'r' } else { '-' });
        s.push(if mode & w != 0 { 'w' } else { '-' });
        s.push(match (mode & x != 0, mode & special != 0) {
            (true, true) => letter,
            (false, true) => letter.to_ascii_uppercase(),
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// Microseconds since the epoch.
fn micros(t: Time) -> i64 {
    t.sec
        .saturating_mul(1_000_000)
        .saturating_add(t.nsec.clamp(0, 999_999_999) / 1000)
}

/// A name for a bodyfile: as [`pathfmt::escape`] (non-UTF-8 bytes as
/// `\xNN`, `\` as `\\`), plus `|` as `\|` (as `fls` does) and control
/// characters as `\xNN`, so that every record stays on one line.
pub fn bodyfile_escape(bytes: &[u8]) -> String {
    let text = pathfmt::escape(Path::new(std::ffi::OsStr::from_bytes(bytes)));
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' => out.push_str("\\|"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// What a time of a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeKind {
    Modified,
    Accessed,
    Changed,
    ContainerCreated,
    ContainerStarted,
    ContainerFinished,
    ImageCreated,
    ImageHistory,
}

impl TimeKind {
    /// Timesketch's `timestamp_desc`.
    pub fn description(self) -> &'static str {
        match self {
            TimeKind::Modified => "Modification Time",
            TimeKind::Accessed => "Access Time",
            TimeKind::Changed => "Metadata Change Time",
            TimeKind::ContainerCreated => "Container Created",
            TimeKind::ContainerStarted => "Container Started",
            TimeKind::ContainerFinished => "Container Finished",
            TimeKind::ImageCreated => "Image Created",
            TimeKind::ImageHistory => "Image History",
        }
    }
}

/// One entry of a view, with the metadata a timeline shows.
#[derive(Debug, Clone)]
pub struct FileEntry {
    scope: u32,
    /// Index in the scope's layers.
    layer: u32,
    /// Absolute inside the view, raw bytes.
    path: Box<[u8]>,
    target: Option<Box<[u8]>>,
    kind: FileKind,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    ino: u64,
    atime: Time,
    mtime: Time,
    ctime: Time,
}

/// Something docker recorded that is not a file.
#[derive(Debug, Clone)]
pub struct Event {
    scope: u32,
    pub kind: TimeKind,
    pub time: Time,
    /// What happened, without the scope (`started`, `history: RUN ...`).
    pub text: String,
    /// The evidence file the time was read from.
    pub source_file: PathBuf,
}

/// File times and events, from any number of containers and images.
#[derive(Debug, Default)]
pub struct Timeline {
    scopes: Vec<Scope>,
    files: Vec<FileEntry>,
    events: Vec<Event>,
    /// Times that could not be read, symlinks that could not be resolved.
    pub warnings: Vec<String>,
    /// How the root's ids on disk map to the containers' (userns-remap,
    /// rootless): the bodyfile then shows container ids, JSON lines both.
    pub id_map: Option<IdMap>,
}

/// A sort key: a time and what it belongs to.
#[derive(Clone, Copy)]
struct Key {
    time: Time,
    item: u32,
    what: What,
}

#[derive(Clone, Copy)]
enum What {
    Event,
    File(TimeKind),
}

fn index(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| {
        crate::Error::Usage("more than 4 billion timeline records; split the timeline".into())
    })
}

/// A part of a view's walk: one entry, or everything below a directory.
enum Unit {
    Visit(Node),
    Walk(Node),
}

/// What one [`Unit`] gave.
#[derive(Default)]
struct Walked {
    files: Vec<FileEntry>,
    warnings: Vec<String>,
    error: Option<crate::Error>,
}

/// Directories below which the walk is split into [`Unit`]s, at most.
const SPLIT_LEVELS: usize = 3;
/// Enough units to keep every core busy whatever their sizes.
const SPLIT_UNITS: usize = 64;

/// The walk of `union` as units in its order: the root, then its first
/// levels expanded (each directory's `Walk` replaced by its children's
/// `Visit` and `Walk`) until there are enough.
fn split(union: &Union) -> Result<Vec<Unit>> {
    let root = union.root()?;
    let mut units = vec![Unit::Visit(root.clone()), Unit::Walk(root)];
    for _ in 0..SPLIT_LEVELS {
        let walks = units.iter().filter(|u| matches!(u, Unit::Walk(_))).count();
        if walks == 0 || walks >= SPLIT_UNITS {
            break;
        }
        let mut next = Vec::with_capacity(units.len() * 2);
        for unit in units {
            match unit {
                Unit::Walk(dir) => {
                    for child in union.children(&dir)? {
                        let is_dir = child.stat.is_dir();
                        next.push(Unit::Visit(child.clone()));
                        if is_dir {
                            next.push(Unit::Walk(child));
                        }
                    }
                }
                visit => next.push(visit),
            }
        }
        units = next;
    }
    Ok(units)
}

/// The timeline entry of one node of a view (a symlink's target read).
fn file_entry(
    scope: u32,
    union: &Union,
    node: &Node,
    warnings: &mut Vec<String>,
) -> Result<FileEntry> {
    let mut path = Vec::with_capacity(node.path.as_os_str().len() + 1);
    path.push(b'/');
    path.extend_from_slice(node.path.as_os_str().as_bytes());
    let target = if node.stat.kind == FileKind::Symlink {
        match union.tree(node).readlink(&node.path) {
            Ok(t) => Some(t.into_boxed_slice()),
            Err(e) => {
                warnings.push(format!(
                    "cannot read the symlink {}: {e}",
                    union.tree(node).path().join(&node.path).display()
                ));
                None
            }
        }
    } else {
        None
    };
    let st = &node.stat;
    Ok(FileEntry {
        scope,
        layer: index(node.layer)?,
        path: path.into_boxed_slice(),
        target,
        kind: st.kind,
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        size: st.size,
        ino: st.ino,
        atime: st.atime,
        mtime: st.mtime,
        ctime: st.ctime,
    })
}

impl Timeline {
    pub fn new() -> Timeline {
        Timeline::default()
    }

    /// Number of entries and events held.
    pub fn len(&self) -> usize {
        self.files.len() + self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets everything (after writing a bodyfile, to bound memory).
    pub fn clear(&mut self) {
        self.scopes.clear();
        self.files.clear();
        self.events.clear();
    }

    fn push_scope(&mut self, scope: Scope) -> Result<u32> {
        let i = index(self.scopes.len())?;
        self.scopes.push(scope);
        Ok(i)
    }

    fn event(
        &mut self,
        scope: u32,
        kind: TimeKind,
        field: &str,
        value: &str,
        text: String,
        source: &Path,
    ) {
        if is_zero_time(value) {
            return;
        }
        match parse_rfc3339(value) {
            Some(time) => self.events.push(Event {
                scope,
                kind,
                time,
                text,
                source_file: source.to_path_buf(),
            }),
            None => self.warnings.push(format!(
                "{}: {field} {value:?} is not an RFC 3339 time; event left out",
                source.display()
            )),
        }
    }

    /// A container's events (created, started, finished) and, given its
    /// view, the times of every entry of it. On an error while walking the
    /// view, what was read so far stays in the timeline.
    pub fn add_container(&mut self, c: &Container, view: Option<&View>) -> Result<()> {
        let mut scope = Scope::container(c);
        if let Some(v) = view {
            scope = scope.with_layers(v, &mut self.warnings);
        }
        let s = self.push_scope(scope)?;
        let st = &c.config.state;
        let source = c.config_path.as_path();
        self.event(
            s,
            TimeKind::ContainerCreated,
            "Created",
            &c.config.created,
            "created".into(),
            source,
        );
        self.event(
            s,
            TimeKind::ContainerStarted,
            "State.StartedAt",
            &st.started_at,
            "started".into(),
            source,
        );
        let mut finished = format!("finished (exit code {})", st.exit_code);
        if st.oom_killed {
            finished.push_str(", OOM killed");
        }
        self.event(
            s,
            TimeKind::ContainerFinished,
            "State.FinishedAt",
            &st.finished_at,
            finished,
            source,
        );
        match view {
            Some(v) => self.add_files(s, &v.union),
            None => Ok(()),
        }
    }

    /// An image's events (created, each history entry) and, given its
    /// view, the times of every entry of it.
    pub fn add_image(&mut self, img: &Image, view: Option<&View>) -> Result<()> {
        let mut scope = Scope::image(img);
        if let Some(v) = view {
            scope = scope.with_layers(v, &mut self.warnings);
        }
        let s = self.push_scope(scope)?;
        let source = img.config_path.as_path();
        self.event(
            s,
            TimeKind::ImageCreated,
            "created",
            &img.config.created,
            "created".into(),
            source,
        );
        for (i, h) in img.config.history.iter().enumerate() {
            let by = if h.created_by.is_empty() {
                &h.comment
            } else {
                &h.created_by
            };
            let mut text = format!("history: {}", by.trim());
            if h.empty_layer {
                text.push_str(" (empty layer)");
            }
            let field = format!("history[{i}].created");
            self.event(s, TimeKind::ImageHistory, &field, &h.created, text, source);
        }
        match view {
            Some(v) => self.add_files(s, &v.union),
            None => Ok(()),
        }
    }

    /// The entries of `union`'s view, in the order of [`Union::walk`]. Its
    /// first levels are split into subtrees walked on every core and put
    /// back in order; when listing those levels fails, the view is walked
    /// on one thread, which keeps what was read before the failure.
    fn add_files(&mut self, scope: u32, union: &Union) -> Result<()> {
        let Ok(units) = split(union) else {
            let mut visit = |node: &Node| -> Result<()> {
                let f = file_entry(scope, union, node, &mut self.warnings)?;
                self.files.push(f);
                Ok(())
            };
            return union.walk(&mut visit);
        };
        let walked = parallel::map_units(&units, |unit| {
            let mut out = Walked::default();
            let mut visit = |node: &Node| -> Result<()> {
                let f = file_entry(scope, union, node, &mut out.warnings)?;
                out.files.push(f);
                Ok(())
            };
            out.error = match unit {
                Unit::Visit(node) => visit(node),
                Unit::Walk(dir) => union.walk_below(dir, &mut visit),
            }
            .err();
            out
        });
        for w in walked {
            self.files.extend(w.files);
            self.warnings.extend(w.warnings);
            if let Some(e) = w.error {
                return Err(e);
            }
        }
        Ok(())
    }

    fn scope(&self, i: u32) -> Option<&Scope> {
        self.scopes.get(i as usize)
    }

    fn layer_of(&self, f: &FileEntry) -> Option<&ScopeLayer> {
        self.scope(f.scope)?.layers.get(f.layer as usize)
    }

    /// `web:/etc/passwd -> target (layer 1a2b3c4d5e6f rw)`, unescaped.
    fn file_name(&self, f: &FileEntry) -> Vec<u8> {
        let mut name = Vec::with_capacity(f.path.len() + 40);
        if let Some(s) = self.scope(f.scope) {
            name.extend_from_slice(s.name.as_bytes());
            name.push(b':');
        }
        name.extend_from_slice(&f.path);
        if let Some(t) = &f.target {
            name.extend_from_slice(b" -> ");
            name.extend_from_slice(t);
        }
        if let Some(l) = self.layer_of(f) {
            name.extend_from_slice(b" (layer ");
            name.extend_from_slice(short(&l.driver_id).as_bytes());
            if l.role != Role::Image {
                name.push(b' ');
                name.extend_from_slice(role_name(l.role).as_bytes());
            }
            name.push(b')');
        }
        name
    }

    fn event_message(&self, e: &Event) -> String {
        match self.scope(e.scope) {
            Some(s) => format!("{} {}", s.tag(), e.text),
            None => e.text.clone(),
        }
    }

    /// The TSK 3.x bodyfile: `MD5|name|inode|mode|UID|GID|size|atime|mtime|ctime|crtime`,
    /// one line per entry (crtime 0: not available), then one per event
    /// with its time as mtime. In the order added; `mactime` sorts.
    pub fn write_bodyfile(&self, out: &mut dyn Write) -> std::io::Result<()> {
        for e in &self.events {
            writeln!(
                out,
                "0|{}|0|0|0|0|0|0|{}|0|0",
                bodyfile_escape(self.event_message(e).as_bytes()),
                e.time.sec
            )?;
        }
        for f in &self.files {
            writeln!(
                out,
                "0|{}|{}|{}|{}|{}|{}|{}|{}|{}|0",
                bodyfile_escape(&self.file_name(f)),
                f.ino,
                mode_string(f.kind, f.mode),
                self.shown_ids(f).0,
                self.shown_ids(f).1,
                f.size,
                f.atime.sec,
                f.mtime.sec,
                f.ctime.sec
            )?;
        }
        Ok(())
    }

    /// JSON lines, one per (entry, time kind) and per event, sorted by
    /// time (ties in the order added).
    pub fn write_jsonl(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let item = |i: usize| u32::try_from(i).map_err(std::io::Error::other);
        let mut keys = Vec::with_capacity(self.files.len() * 3 + self.events.len());
        for (i, e) in self.events.iter().enumerate() {
            keys.push(Key {
                time: e.time,
                item: item(i)?,
                what: What::Event,
            });
        }
        for (i, f) in self.files.iter().enumerate() {
            let i = item(i)?;
            for (time, kind) in [
                (f.mtime, TimeKind::Modified),
                (f.atime, TimeKind::Accessed),
                (f.ctime, TimeKind::Changed),
            ] {
                keys.push(Key {
                    time,
                    item: i,
                    what: What::File(kind),
                });
            }
        }
        keys.sort_by_key(|k| k.time);
        // Lines are formatted on every core, a batch at a time (bounded
        // memory), and written in order.
        for batch in keys.chunks(JSONL_BATCH) {
            let lines = parallel::map(batch, |k| self.jsonl_line(k));
            for line in lines {
                out.write_all(&line?)?;
            }
        }
        Ok(())
    }

    /// The JSON line of one key (empty if the key names nothing).
    fn jsonl_line(&self, k: &Key) -> std::io::Result<Vec<u8>> {
        let record = match k.what {
            What::Event => self
                .events
                .get(k.item as usize)
                .map(|e| self.event_record(e)),
            What::File(kind) => self
                .files
                .get(k.item as usize)
                .map(|f| self.file_record(f, kind, k.time)),
        };
        let mut line = Vec::new();
        if let Some(record) = record {
            line.reserve(1024);
            serde_json::to_writer(&mut line, &record)?;
            line.push(b'\n');
        }
        Ok(line)
    }

    /// The owner the bodyfile shows: the container's view when mapped.
    fn shown_ids(&self, f: &FileEntry) -> (u32, u32) {
        match &self.id_map {
            Some(m) => m.to_container(f.uid, f.gid),
            None => (f.uid, f.gid),
        }
    }

    fn base_record(&self, scope: u32, message: String, time: Time, kind: TimeKind) -> Record<'_> {
        let s = self.scope(scope);
        let is_container = s.is_some_and(|s| s.kind == ScopeKind::Container);
        Record {
            message,
            datetime: format_rfc3339(time),
            timestamp: micros(time),
            timestamp_desc: kind.description(),
            container: s.filter(|_| is_container).map(|s| s.name.as_str()),
            container_id: s.filter(|_| is_container).map(|s| s.id.as_str()),
            image: s.map(|s| s.image.as_str()).filter(|i| !i.is_empty()),
            image_id: s.map(|s| s.image_id.as_str()).filter(|i| !i.is_empty()),
            layer: None,
            layer_role: None,
            path: None,
            kind: "event",
            size: None,
            mode: None,
            uid: None,
            gid: None,
            user: None,
            group: None,
            container_ids: None,
            inode: None,
            symlink_target: None,
            source_file: String::new(),
        }
    }

    fn event_record(&self, e: &Event) -> Record<'_> {
        let mut r = self.base_record(e.scope, self.event_message(e), e.time, e.kind);
        r.source_file = pathfmt::escape(&e.source_file);
        r
    }

    fn file_record(&self, f: &FileEntry, kind: TimeKind, time: Time) -> Record<'_> {
        let message = pathfmt::escape(Path::new(std::ffi::OsStr::from_bytes(&self.file_name(f))));
        let mut r = self.base_record(f.scope, message, time, kind);
        let layer = self.layer_of(f);
        let rel = f.path.strip_prefix(b"/").unwrap_or(&f.path);
        r.layer = layer.map(|l| l.driver_id.as_str());
        r.layer_role = layer.map(|l| role_name(l.role));
        r.path = Some(pathfmt::escape(Path::new(std::ffi::OsStr::from_bytes(
            &f.path,
        ))));
        r.kind = kind_name(f.kind);
        r.size = Some(f.size);
        r.mode = Some(mode_string(f.kind, f.mode));
        r.uid = Some(f.uid);
        r.gid = Some(f.gid);
        r.container_ids = self.id_map.as_ref().map(|m| m.container_ids(f.uid, f.gid));
        if let Some(s) = self.scope(f.scope) {
            let (uid, gid) = self.shown_ids(f);
            r.user = s.names.user(uid);
            r.group = s.names.group(gid);
        }
        r.inode = Some(f.ino);
        r.symlink_target = f
            .target
            .as_deref()
            .map(|t| pathfmt::escape(Path::new(std::ffi::OsStr::from_bytes(t))));
        r.source_file = layer.map_or_else(String::new, |l| {
            pathfmt::escape(&l.dir.join(std::ffi::OsStr::from_bytes(rel)))
        });
        r
    }
}

/// One JSON line (Timesketch: `message`, `datetime`, `timestamp_desc`).
#[derive(Serialize, schemars::JsonSchema)]
struct Record<'a> {
    message: String,
    datetime: String,
    /// Microseconds since the epoch.
    timestamp: i64,
    timestamp_desc: &'static str,
    container: Option<&'a str>,
    container_id: Option<&'a str>,
    image: Option<&'a str>,
    image_id: Option<&'a str>,
    /// The driver's id of the layer the entry comes from.
    layer: Option<&'a str>,
    layer_role: Option<&'static str>,
    path: Option<String>,
    /// `file`, `dir`, `symlink`, ... or `event`.
    kind: &'static str,
    size: Option<u64>,
    mode: Option<String>,
    /// As stored on disk.
    uid: Option<u32>,
    gid: Option<u32>,
    /// The owner's names in the scope's own `/etc/passwd` and `/etc/group`,
    /// for the ids it saw (`container_ids` when mapped); null where unknown.
    user: Option<&'a str>,
    group: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_ids: Option<ContainerIds>,
    inode: Option<u64>,
    symlink_target: Option<String>,
    source_file: String,
}

/// The JSON schema of one `--format jsonl` line.
pub fn jsonl_schema() -> schemars::Schema {
    schemars::schema_for!(Record<'static>)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_of_a_time() {
        assert_eq!(
            micros(Time {
                sec: 2,
                nsec: 3_999
            }),
            2_000_003
        );
    }

    #[test]
    fn modes_like_ls() {
        assert_eq!(mode_string(FileKind::File, 0o644), "-rw-r--r--");
        assert_eq!(mode_string(FileKind::Dir, 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(FileKind::Symlink, 0o777), "lrwxrwxrwx");
        assert_eq!(mode_string(FileKind::File, 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(FileKind::File, 0o2644), "-rw-r-Sr--");
        assert_eq!(mode_string(FileKind::Dir, 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(FileKind::Dir, 0o1776), "drwxrwxrwT");
        assert_eq!(mode_string(FileKind::File, 0o4644), "-rwSr--r--");
    }

    #[test]
    fn bodyfile_names_stay_on_one_line() {
        assert_eq!(bodyfile_escape(b"a|b"), "a\\|b");
        assert_eq!(bodyfile_escape(b"new\nline"), "new\\x0aline");
        assert_eq!(bodyfile_escape(b"back\\slash"), "back\\\\slash");
        assert_eq!(bodyfile_escape(b"latin1-\xe9"), "latin1-\\xe9");
        assert_eq!(bodyfile_escape("caf\u{e9}".as_bytes()), "caf\u{e9}");
    }
}
