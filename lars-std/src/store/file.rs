//! File stores: the route file (lars-dns's embedded default) and a statistics file
//! (lars-reporter's store when no MySQL is configured; append-only, see [`StatsFile`]).
//!
//! Route file format, one host per line; `#` starts a comment:
//!
//! ```text
//! # modid  cmdid  host:port          [weight] [out]
//! 1001     1      127.0.0.1:9001
//! 1001     1      10.0.0.7:9001      3
//! 1001     1      10.0.0.8:9001      3        out
//! 1002     7      [2001:db8::5]:80
//! ```
//!
//! A line that ends in `out` keeps a host out of rotation, as MySQL's `RouteData.disabled`
//! does: lars-dns does not serve it, and it stays in the file with its weight, to be put
//! back by removing the word (the console and `lars route` keep such lines when they rewrite
//! the file). A file without the word reads as it always did.
//!
//! The version is the file's modification time, so an edit is noticed within a poll;
//! lars-dns also reloads every 10 s regardless. A line that does not parse fails the whole load
//! with an error naming the file, the line and the field, and lars-dns keeps serving what it
//! had.
//!
//! Edit the file by writing a new one and renaming it over the old (`lars route` does; so do
//! `mv new.conf routes.conf`, `sed -i` and most editors). A file rewritten in place is read
//! only once it has been still for [`SETTLE`] and did not change while it was read, so a reader
//! does not take half a file for the whole; what remains of that risk (a writer that pauses
//! for longer mid-write) is caught by lars-dns's shrink protection. Only a regular file of at
//! most [`MAX_ROUTE_FILE`] bytes is read (a FIFO would block the loader, `/dev/zero` would fill
//! memory).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use lars_core::wire::native::WeightedHost;

#[cfg(feature = "mysql")]
use super::console::{Actor, Edit, append_file_audit, file_audit_path};
use super::{HostEntry, RouteStore, RouteTable, StatKey, StatRow, StatsStore, StoreError};

/// How long a route file must have been still before it is read.
pub const SETTLE: std::time::Duration = std::time::Duration::from_millis(100);
/// The largest route file read: about a million hosts.
pub const MAX_ROUTE_FILE: u64 = 64 << 20;

/// Routes read from a text file.
#[derive(Debug, Clone)]
pub struct RouteFile {
    path: PathBuf,
    /// The file as last seen (modification time, inode, length) and the version given for it.
    seen: Option<((u64, u64, u64), u64)>,
    /// The file last loaded (modification time, inode, length): the same inode changed again
    /// is a file rewritten in place.
    loaded: Option<FileStamp>,
}

impl RouteFile {
    /// A store over `path` (read on each load).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RouteFile { path: path.into(), seen: None, loaded: None }
    }

    /// Parses route-file text, naming `path` in errors.
    pub fn parse(text: &str, path: &Path, version: u64) -> Result<RouteTable, StoreError> {
        RouteFile::parse_bytes(text.as_bytes(), path, version)
    }

    /// Parses a route file's bytes into the routes lars-dns serves: every host of the file but
    /// those out of rotation, and no route whose hosts are all out. Errors as
    /// [`RouteFile::parse_lines`].
    pub fn parse_bytes(bytes: &[u8], path: &Path, version: u64) -> Result<RouteTable, StoreError> {
        let mut table = RouteTable { version, routes: BTreeMap::new(), loaded: false };
        for (key, hosts) in RouteFile::parse_lines(bytes, path)? {
            for host in hosts.into_iter().filter(|h| h.in_rotation) {
                table.insert(key, WeightedHost { addr: host.addr, weight: host.weight });
            }
        }
        Ok(table)
    }

    /// Parses a route file's bytes into every host it names, out of rotation included, each
    /// route's sorted by address. Errors name `path` and the line. Comments may hold any bytes;
    /// the rest of a line must be UTF-8. A host given twice in a route the same way counts
    /// once; with another weight, or in rotation on one line and out on another, it is an
    /// error naming both lines, since no reading of the file can tell which the operator
    /// meant. A host that no caller can reach (port 0, an unspecified, broadcast or multicast
    /// address) is an error too.
    pub fn parse_lines(bytes: &[u8], path: &Path) -> Result<FileRoutes, StoreError> {
        let mut routes = FileRoutes::new();
        // Where each host was first given, for the error about a second weight.
        let mut first_line: BTreeMap<(super::RouteKey, SocketAddr), usize> = BTreeMap::new();
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let content = raw.split(|&b| b == b'#').next().unwrap_or_default();
            let number = index + 1;
            let Ok(content) = std::str::from_utf8(content) else {
                return Err(StoreError::Invalid(format!(
                    "{}:{number}: not UTF-8 (outside a comment)",
                    path.display()
                )));
            };
            let line = content.trim();
            if line.is_empty() {
                continue;
            }
            let at =
                |what: &str| StoreError::Invalid(format!("{}:{number}: {what} in `{line}`", path.display()));
            let mut fields: Vec<&str> = line.split_whitespace().collect();
            let in_rotation = fields.last() != Some(&OUT_OF_ROTATION);
            if !in_rotation {
                fields.pop();
            }
            if !(3..=4).contains(&fields.len()) {
                return Err(at("expected `modid cmdid host:port [weight] [out]`"));
            }
            let modid: i32 = fields[0].parse().map_err(|_| at("modid is not a 32-bit integer"))?;
            let cmdid: i32 = fields[1].parse().map_err(|_| at("cmdid is not a 32-bit integer"))?;
            let addr: SocketAddr = fields[2].parse().map_err(|_| at("host is not ip:port"))?;
            if let Some(why) = super::unreachable_host(addr) {
                return Err(at(&format!("host {why}")));
            }
            let weight: u32 = match fields.get(3) {
                Some(w) => w.parse().map_err(|_| at("weight is not a non-negative integer (or `out`)"))?,
                None => 1,
            };
            let key = (modid, cmdid);
            let hosts = routes.entry(key).or_default();
            match hosts.binary_search_by(|h| h.addr.cmp(&addr)) {
                Ok(at_host) => {
                    let given = hosts[at_host];
                    let first = first_line.get(&(key, addr)).copied().unwrap_or(0);
                    if given.weight != weight {
                        let weight = given.weight;
                        return Err(at(&format!(
                            "host given again with another weight (line {first} gives {weight})"
                        )));
                    }
                    if given.in_rotation != in_rotation {
                        return Err(at(&format!(
                            "host given again, in rotation on one line and out on the other (line {first})"
                        )));
                    }
                }
                Err(at_host) => {
                    first_line.insert((key, addr), number);
                    hosts.insert(at_host, HostEntry { addr, weight, in_rotation });
                }
            }
        }
        Ok(routes)
    }

    /// Renders a table in the route-file format.
    pub fn render(table: &RouteTable) -> String {
        let mut text = String::from(HEADER);
        for ((modid, cmdid), hosts) in &table.routes {
            for host in hosts.iter() {
                let _ = writeln!(text, "{modid} {cmdid} {} {}", host.addr, host.weight);
            }
        }
        text
    }

    /// Renders every host in the route-file format, those out of rotation marked `out`.
    pub fn render_lines(routes: &FileRoutes) -> String {
        let mut text = String::from(HEADER);
        for ((modid, cmdid), hosts) in routes {
            for host in hosts {
                let out = if host.in_rotation { "" } else { " out" };
                let _ = writeln!(text, "{modid} {cmdid} {} {}{out}", host.addr, host.weight);
            }
        }
        text
    }

    /// Every host in the file, out of rotation included, and the file's version (none and 0
    /// if there is no file yet).
    pub fn read_lines(&mut self) -> Result<(FileRoutes, u64), StoreError> {
        if !self.path.exists() {
            return Ok((FileRoutes::new(), 0));
        }
        let (text, version) = self.read_settled()?;
        Ok((RouteFile::parse_lines(&text, &self.path)?, version))
    }

    /// Writes every host atomically (a temporary file renamed over the old one), so lars-dns
    /// never reads half a file.
    pub fn save_lines(&self, routes: &FileRoutes) -> Result<(), StoreError> {
        use std::io::Write as _;
        let temp = self.path.with_extension("tmp");
        // On disk before the rename, so that a crash leaves the old file or the new one, never
        // an empty one that lars-dns would read as every route removed.
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(RouteFile::render_lines(routes).as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temp, &self.path)?;
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| StoreError::Unavailable(format!("{}: {e}", self.path.display())))
    }
}

/// The word that ends the line of a host out of rotation.
pub const OUT_OF_ROTATION: &str = "out";
/// The first line of a route file lars writes.
const HEADER: &str = "# modid  cmdid  host:port  [weight] [out]\n";

/// Every host of a route file by route, out of rotation included, each route's sorted by
/// address: what the console and `lars route` read and write ([`RouteFile::read_lines`],
/// [`RouteFile::save_lines`]), where lars-dns reads a [`RouteTable`] of the served ones.
pub type FileRoutes = BTreeMap<super::RouteKey, Vec<HostEntry>>;

// `RouteAdmin` is declared beside the MySQL store, so the route file's administration (for
// `lars route --routes FILE`) comes with the `mysql` feature, as the CLI has it. Both work on
// every line, so that hosts out of rotation stay in the file.
#[cfg(feature = "mysql")]
impl super::mysql::RouteAdmin for RouteFile {
    fn add_host(
        &mut self,
        key: super::RouteKey,
        addr: SocketAddr,
        weight: u32,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        if let Some(why) = super::unreachable_host(addr) {
            return Err(StoreError::Invalid(format!("{addr}: host {why}")));
        }
        let (mut routes, _) = self.read_lines()?;
        let hosts = routes.entry(key).or_default();
        hosts.retain(|h| h.addr != addr);
        let at = hosts.partition_point(|h| h.addr < addr);
        hosts.insert(at, HostEntry { addr, weight, in_rotation: true });
        self.save_audited(&routes, key, actor, &Edit::AddHost { addr, weight })
    }

    fn remove_host(
        &mut self,
        key: super::RouteKey,
        addr: SocketAddr,
        actor: &Actor,
    ) -> Result<bool, StoreError> {
        let (mut routes, _) = self.read_lines()?;
        let Some(hosts) = routes.get_mut(&key) else { return Ok(false) };
        let before = hosts.len();
        hosts.retain(|h| h.addr != addr);
        let removed = hosts.len() < before;
        if hosts.is_empty() {
            routes.remove(&key);
        }
        if removed {
            self.save_audited(&routes, key, actor, &Edit::RemoveHosts(vec![addr]))?;
        }
        Ok(removed)
    }
}

#[cfg(feature = "mysql")]
impl RouteFile {
    /// Saves `routes` after recording `edit` in the audit log beside the file, as the console
    /// does: a change that could not be recorded is not made, and one whose save failed is
    /// logged as not made.
    fn save_audited(
        &self,
        routes: &FileRoutes,
        key: super::RouteKey,
        actor: &Actor,
        edit: &Edit,
    ) -> Result<(), StoreError> {
        let audit = file_audit_path(&self.path);
        append_file_audit(&audit, actor, edit.action(), key, &edit.detail())?;
        self.save_lines(routes).inspect_err(|e| {
            let _ = append_file_audit(&audit, actor, edit.action(), key, &format!("not made: {e}"));
        })
    }
}

impl RouteStore for RouteFile {
    /// The file's modification time in nanoseconds, so an edit changes it. The kernel stamps
    /// files from a clock that ticks every few milliseconds, so two edits in one tick share a
    /// time: a new inode (an atomic rewrite) or length counts as a change too, and the version
    /// then moves on by one. lars-dns, not the file, keeps the published version increasing (a
    /// file restored from a backup may be older).
    fn version(&mut self) -> Result<u64, StoreError> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&self.path)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", self.path.display())))?;
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        let stamp = (modified, meta.ino(), meta.len());
        let version = match self.seen {
            Some((seen, version)) if seen == stamp => version,
            Some((seen, version)) if seen.0 == modified => version + 1,
            _ => modified,
        };
        self.seen = Some((stamp, version));
        Ok(version)
    }

    fn load(&mut self) -> Result<RouteTable, StoreError> {
        let (text, version) = self.read_settled()?;
        RouteFile::parse_bytes(&text, &self.path, version)
    }

    fn describe(&self) -> String {
        format!("route file {}", self.path.display())
    }
}

impl RouteFile {
    /// The file's bytes and its version, once it is whole: see the module docs on files
    /// rewritten in place. The inode is remembered as the one last read.
    fn read_settled(&mut self) -> Result<(Vec<u8>, u64), StoreError> {
        let (text, version, stamp) = self.read_whole()?;
        self.loaded = Some(stamp);
        Ok((text, version))
    }

    fn read_whole(&mut self) -> Result<(Vec<u8>, u64, FileStamp), StoreError> {
        use std::io::Read;
        use std::os::unix::fs::MetadataExt;
        let path = self.path.clone();
        let unavailable = |why: String| StoreError::Unavailable(format!("{}: {why}", path.display()));
        let stamp = |meta: &std::fs::Metadata| FileStamp {
            modified: (meta.mtime(), meta.mtime_nsec()),
            inode: meta.ino(),
            len: meta.len(),
        };
        let before = std::fs::metadata(&path).map_err(|e| unavailable(e.to_string()))?;
        if !before.is_file() {
            return Err(StoreError::Invalid(format!("{}: not a regular file", self.path.display())));
        }
        if before.len() > MAX_ROUTE_FILE {
            let (len, max) = (before.len(), MAX_ROUTE_FILE);
            return Err(StoreError::Invalid(format!("{}: {len} bytes, over {max}", self.path.display())));
        }
        // A file renamed into place is whole; one changed in place may still be being written.
        // (The same file as loaded, unchanged, is whole: the console reads what it just wrote.)
        if self.loaded.is_some_and(|loaded| loaded.inode == before.ino() && loaded != stamp(&before)) {
            let modified = before.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok());
            let age =
                crate::time::Clock::unix_nanos().saturating_sub(modified.map_or(0, |d| d.as_nanos() as u64));
            if age < SETTLE.as_nanos() as u64 {
                let ms = age / 1_000_000;
                return Err(unavailable(format!("rewritten in place {ms} ms ago; waiting for it to settle")));
            }
        }
        let version = self.version()?;
        let mut text = Vec::new();
        std::fs::File::open(&path)
            .and_then(|file| file.take(MAX_ROUTE_FILE).read_to_end(&mut text))
            .map_err(|e| unavailable(e.to_string()))?;
        let after = std::fs::metadata(&path).map_err(|e| unavailable(e.to_string()))?;
        if stamp(&after) != stamp(&before) {
            return Err(unavailable("changed while it was read; reading it again".into()));
        }
        Ok((text, version, stamp(&before)))
    }
}

/// What tells one state of a file from another: modification time, inode and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: (i64, i64),
    inode: u64,
    len: u64,
}

/// The first line of a statistics file.
const STATS_HEADER: &str = "# lars-reporter statistics, append-only: the last line of a (modid, cmdid, host, caller) wins\n# modid cmdid host caller succ err overload ts\n";
/// A statistics file is compacted once it has grown past twice its size after the last
/// compaction, and past this.
pub const COMPACT_MIN: u64 = 8 << 20;

/// Statistics in an append-only text file, for running without MySQL.
///
/// Each batch is appended as lines (`modid cmdid host caller succ err overload ts`) in one
/// write, and a later line of a (route, host, caller) replaces an earlier one, as a row of
/// `ServerCallStatus` is replaced by the next upsert ([`StatsFile::read`] gives the rows so).
/// Nothing is kept in memory between batches. A restart appends to what is there. The file is
/// compacted (rewritten with the last line of each key, into a temporary file synced and
/// renamed over it) when it is opened and whenever it has doubled since, and reached
/// [`COMPACT_MIN`]: a compaction reads at most twice the live rows plus that, so its cost per
/// row stored stays constant. A crash can leave a torn last line (no newline): it is ignored
/// when the file is read, and cut off when it is opened. A line that does not parse anywhere
/// else is an error naming the file and the line.
#[derive(Debug)]
pub struct StatsFile {
    path: PathBuf,
    file: std::fs::File,
    /// Bytes in the file.
    len: u64,
    /// Bytes in the file after its last compaction.
    compacted_len: u64,
    /// The size below which it is not compacted: [`COMPACT_MIN`] (tests make it smaller).
    compact_min: u64,
    /// Lines of the batch being written, kept to reuse its allocation.
    text: String,
}

/// What reading a statistics file found.
struct StatsLog {
    rows: BTreeMap<StatKey, StatRow>,
    /// Lines with a row.
    lines: u64,
    /// Bytes up to the end of the last whole line.
    whole_len: u64,
    /// Bytes of a torn last line (cut by a crash), ignored.
    torn: u64,
}

impl StatsFile {
    /// Opens (or creates) the statistics file at `path`, compacting what an earlier run left.
    /// Fails when its directory does not exist or a line in it does not parse.
    pub fn open(path: impl Into<PathBuf>) -> Result<StatsFile, StoreError> {
        let path = path.into();
        let unavailable = |e: std::io::Error| StoreError::Unavailable(format!("{}: {e}", path.display()));
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(StoreError::Unavailable(format!(
                "{}: directory {} does not exist",
                path.display(),
                dir.display()
            )));
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(unavailable)?;
        let mut store =
            StatsFile { path, file, len: 0, compacted_len: 0, compact_min: COMPACT_MIN, text: String::new() };
        store.compact()?;
        Ok(store)
    }

    /// The rows a statistics file holds: the last line of each (route, host, caller), in key
    /// order. A torn last line is ignored. A missing file is an error naming it: a reader asks
    /// for a file lars-reporter wrote, and "no rows" would hide a wrong path.
    pub fn read(path: &Path) -> Result<Vec<StatRow>, StoreError> {
        std::fs::metadata(path).map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
        Ok(read_log(path)?.rows.into_values().collect())
    }

    /// Rewrites the file with the last row of each key, unless it holds nothing else.
    fn compact(&mut self) -> Result<(), StoreError> {
        let unavailable =
            |e: std::io::Error| StoreError::Unavailable(format!("{}: {e}", self.path.display()));
        let log = read_log(&self.path)?;
        if log.torn > 0 {
            log::warn!(
                "{}: ignoring a torn last line ({} bytes, cut by a crash)",
                self.path.display(),
                log.torn
            );
        }
        if log.lines == log.rows.len() as u64 && log.torn == 0 && log.whole_len > 0 {
            self.len = log.whole_len;
            self.compacted_len = log.whole_len;
            return Ok(());
        }
        let temp = self.path.with_extension("compacting");
        let written = std::fs::File::create(&temp).and_then(|file| {
            use std::io::Write;
            let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
            out.write_all(STATS_HEADER.as_bytes())?;
            let mut line = String::new();
            let mut len = STATS_HEADER.len() as u64;
            for row in log.rows.values() {
                line.clear();
                push_stat_line(&mut line, row);
                out.write_all(line.as_bytes())?;
                len += line.len() as u64;
            }
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            Ok(len)
        });
        let len =
            written.and_then(|len| std::fs::rename(&temp, &self.path).map(|()| len)).map_err(unavailable)?;
        self.file = std::fs::OpenOptions::new().append(true).open(&self.path).map_err(unavailable)?;
        self.len = len;
        self.compacted_len = len;
        Ok(())
    }
}

/// Reads a statistics file line by line: the last row of each key, and how much was read.
fn read_log(path: &Path) -> Result<StatsLog, StoreError> {
    use std::io::BufRead;
    let mut log = StatsLog { rows: BTreeMap::new(), lines: 0, whole_len: 0, torn: 0 };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(log),
        Err(e) => return Err(StoreError::Unavailable(format!("{}: {e}", path.display()))),
    };
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        if line.last() != Some(&b'\n') {
            log.torn = n as u64; // the end of the file, cut mid-line
            break;
        }
        log.whole_len += n as u64;
        let row = std::str::from_utf8(&line).ok().map(|text| parse_stat_line(text.trim()));
        match row {
            Some(Ok(None)) => {}
            Some(Ok(Some(row))) => {
                log.lines += 1;
                log.rows.insert(row.key(), row);
            }
            Some(Err(what)) => {
                return Err(StoreError::Invalid(format!("{}:{number}: {what}", path.display())));
            }
            None => return Err(StoreError::Invalid(format!("{}:{number}: not UTF-8", path.display()))),
        }
    }
    Ok(log)
}

/// One line of a statistics file: a row, nothing (blank or a comment), or what is wrong.
fn parse_stat_line(line: &str) -> Result<Option<StatRow>, &'static str> {
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [modid, cmdid, host, caller, succ, err, overload, ts] = fields[..] else {
        return Err("expected `modid cmdid host caller succ err overload ts`");
    };
    Ok(Some(StatRow {
        modid: modid.parse().map_err(|_| "modid is not a 32-bit integer")?,
        cmdid: cmdid.parse().map_err(|_| "cmdid is not a 32-bit integer")?,
        host: host.parse().map_err(|_| "host is not ip:port")?,
        caller: caller.parse().map_err(|_| "caller is not a 32-bit unsigned integer")?,
        succ: succ.parse().map_err(|_| "succ is not a 32-bit unsigned integer")?,
        err: err.parse().map_err(|_| "err is not a 32-bit unsigned integer")?,
        overload: match overload {
            "0" => false,
            "1" => true,
            _ => return Err("overload is not 0 or 1"),
        },
        ts: ts.parse().map_err(|_| "ts is not a 64-bit unsigned integer")?,
    }))
}

fn push_stat_line(text: &mut String, r: &StatRow) {
    let _ = writeln!(
        text,
        "{} {} {} {} {} {} {} {}",
        r.modid,
        r.cmdid,
        r.host,
        r.caller,
        r.succ,
        r.err,
        u8::from(r.overload),
        r.ts
    );
}

impl StatsStore for StatsFile {
    fn store(&mut self, rows: &[StatRow]) -> Result<(), StoreError> {
        use std::io::Write;
        self.text.clear();
        for row in rows {
            push_stat_line(&mut self.text, row);
        }
        if let Err(e) = self.file.write_all(self.text.as_bytes()) {
            // A partial write (a full disk) must not leave half a line for the next batch to
            // follow: cut the file back to where the batch began.
            let _ = self.file.set_len(self.len);
            return Err(StoreError::Unavailable(format!("{}: {e}", self.path.display())));
        }
        self.len += self.text.len() as u64;
        if self.len > self.compact_min.max(2 * self.compacted_len) {
            self.compact()?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("statistics file {}", self.path.display())
    }
}

impl Drop for StatsFile {
    /// What was appended reaches the disk before the process ends.
    fn drop(&mut self) {
        let _ = self.file.sync_data();
    }
}

#[cfg(test)]
mod tests;
