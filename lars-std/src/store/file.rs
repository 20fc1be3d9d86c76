//! File stores: the route file (lars-dns's embedded default) and a statistics file
//! (lars-reporter's store when no MySQL is configured; append-only, see [`StatsFile`]).
//!
//! Route file format, one host per line; `#` starts a comment:
//!
//! ```text
//! # modid  cmdid  host:port          [weight]
//! 1001     1      127.0.0.1:9001
//! 1001     1      10.0.0.7:9001      3
//! 1002     7      [2001:db8::5]:80
//! ```
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

use super::{RouteStore, RouteTable, StatKey, StatRow, StatsStore, StoreError};

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
    /// The inode last loaded: the same inode changed again is a file rewritten in place.
    loaded_inode: Option<u64>,
}

impl RouteFile {
    /// A store over `path` (read on each load).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RouteFile { path: path.into(), seen: None, loaded_inode: None }
    }

    /// Parses route-file text, naming `path` in errors.
    pub fn parse(text: &str, path: &Path, version: u64) -> Result<RouteTable, StoreError> {
        RouteFile::parse_bytes(text.as_bytes(), path, version)
    }

    /// Parses a route file's bytes, naming `path` and the line in errors. Comments may hold
    /// any bytes; the rest of a line must be UTF-8. A host given twice in a route with the
    /// same weight counts once; with another weight it is an error naming both lines, since
    /// no reading of the file can tell which the operator meant. A host that no caller can
    /// reach (port 0, an unspecified, broadcast or multicast address) is an error too.
    pub fn parse_bytes(bytes: &[u8], path: &Path, version: u64) -> Result<RouteTable, StoreError> {
        let mut table = RouteTable { version, routes: BTreeMap::new(), loaded: false };
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
            let fields: Vec<&str> = line.split_whitespace().collect();
            if !(3..=4).contains(&fields.len()) {
                return Err(at("expected `modid cmdid host:port [weight]`"));
            }
            let modid: i32 = fields[0].parse().map_err(|_| at("modid is not a 32-bit integer"))?;
            let cmdid: i32 = fields[1].parse().map_err(|_| at("cmdid is not a 32-bit integer"))?;
            let addr: SocketAddr = fields[2].parse().map_err(|_| at("host is not ip:port"))?;
            if let Some(why) = super::unreachable_host(addr) {
                return Err(at(&format!("host {why}")));
            }
            let weight: u32 = match fields.get(3) {
                Some(w) => w.parse().map_err(|_| at("weight is not a non-negative integer"))?,
                None => 1,
            };
            let key = (modid, cmdid);
            if let Some(given) = table.hosts(key).iter().find(|h| h.addr == addr) {
                if given.weight != weight {
                    let first = first_line.get(&(key, addr)).copied().unwrap_or(0);
                    let weight = given.weight;
                    return Err(at(&format!(
                        "host given again with another weight (line {first} gives {weight})"
                    )));
                }
                continue;
            }
            first_line.insert((key, addr), number);
            table.insert(key, WeightedHost { addr, weight });
        }
        Ok(table)
    }

    /// Renders a table in the route-file format.
    pub fn render(table: &RouteTable) -> String {
        let mut text = String::from("# modid  cmdid  host:port  [weight]\n");
        for ((modid, cmdid), hosts) in &table.routes {
            for host in hosts.iter() {
                let _ = writeln!(text, "{modid} {cmdid} {} {}", host.addr, host.weight);
            }
        }
        text
    }
}

// `RouteAdmin` is declared beside the MySQL store, so the route file's administration (for
// `lars route --routes FILE`) comes with the `mysql` feature, as the CLI has it.
#[cfg(feature = "mysql")]
impl super::mysql::RouteAdmin for RouteFile {
    fn add_host(&mut self, key: super::RouteKey, addr: SocketAddr, weight: u32) -> Result<(), StoreError> {
        if let Some(why) = super::unreachable_host(addr) {
            return Err(StoreError::Invalid(format!("{addr}: host {why}")));
        }
        let mut table = self.load_or_empty()?;
        if let Some(hosts) = table.routes.get_mut(&key) {
            std::sync::Arc::make_mut(hosts).retain(|h| h.addr != addr);
        }
        table.insert(key, WeightedHost { addr, weight });
        self.save(&table)
    }

    fn remove_host(&mut self, key: super::RouteKey, addr: SocketAddr) -> Result<bool, StoreError> {
        let mut table = self.load_or_empty()?;
        let Some(hosts) = table.routes.get_mut(&key) else { return Ok(false) };
        let hosts = std::sync::Arc::make_mut(hosts);
        let before = hosts.len();
        hosts.retain(|h| h.addr != addr);
        let removed = hosts.len() < before;
        if hosts.is_empty() {
            table.routes.remove(&key);
        }
        if removed {
            self.save(&table)?;
        }
        Ok(removed)
    }
}

#[cfg(feature = "mysql")]
impl RouteFile {
    fn load_or_empty(&mut self) -> Result<RouteTable, StoreError> {
        if self.path.exists() { self.load() } else { Ok(RouteTable::default()) }
    }

    /// Writes the table atomically (a temporary file renamed over the old one), so lars-dns
    /// never reads half a file.
    pub(super) fn save(&self, table: &RouteTable) -> Result<(), StoreError> {
        let temp = self.path.with_extension("tmp");
        std::fs::write(&temp, RouteFile::render(table))
            .and_then(|()| std::fs::rename(&temp, &self.path))
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", self.path.display())))
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
        use std::io::Read;
        use std::os::unix::fs::MetadataExt;
        let path = self.path.clone();
        let unavailable = |why: String| StoreError::Unavailable(format!("{}: {why}", path.display()));
        let stamp = |meta: &std::fs::Metadata| (meta.mtime(), meta.mtime_nsec(), meta.ino(), meta.len());
        let before = std::fs::metadata(&path).map_err(|e| unavailable(e.to_string()))?;
        if !before.is_file() {
            return Err(StoreError::Invalid(format!("{}: not a regular file", self.path.display())));
        }
        if before.len() > MAX_ROUTE_FILE {
            let (len, max) = (before.len(), MAX_ROUTE_FILE);
            return Err(StoreError::Invalid(format!("{}: {len} bytes, over {max}", self.path.display())));
        }
        // A file renamed into place is whole; one changed in place may still be being written.
        if self.loaded_inode == Some(before.ino()) {
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
        let table = RouteFile::parse_bytes(&text, &self.path, version)?;
        self.loaded_inode = Some(before.ino());
        Ok(table)
    }

    fn describe(&self) -> String {
        format!("route file {}", self.path.display())
    }
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
    /// order. A torn last line is ignored.
    pub fn read(path: &Path) -> Result<Vec<StatRow>, StoreError> {
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
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn parses_the_route_file_format() {
        let text = "# routes\n1001 1 127.0.0.1:9001\n1001 1 10.0.0.7:9001 3   # heavy\n\n1002 -7 [2001:db8::5]:80\n1001 1 127.0.0.1:9001\n";
        let table = RouteFile::parse(text, Path::new("routes.conf"), 9).unwrap();
        assert_eq!(table.version, 9);
        assert_eq!(table.routes.len(), 2);
        let hosts = table.hosts((1001, 1));
        assert_eq!(hosts.len(), 2, "duplicates count once");
        assert_eq!(hosts[1], WeightedHost { addr: "127.0.0.1:9001".parse().unwrap(), weight: 1 });
        assert_eq!(hosts[0].weight, 3);
        assert_eq!(table.hosts((1002, -7))[0].addr, "[2001:db8::5]:80".parse().unwrap());
        let again = RouteFile::parse(&RouteFile::render(&table), Path::new("x"), 9).unwrap();
        assert_eq!(again, table, "render and parse round-trip");
    }

    #[test]
    fn errors_name_the_file_and_the_line() {
        let err = RouteFile::parse("1 1 127.0.0.1:1\n1 x 127.0.0.1:2\n", Path::new("/etc/lars/routes"), 0)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid store contents: /etc/lars/routes:2: cmdid is not a 32-bit integer in `1 x 127.0.0.1:2`"
        );
        let err = RouteFile::parse("1 1 localhost:80\n", Path::new("r"), 0).unwrap_err();
        assert_eq!(err.to_string(), "invalid store contents: r:1: host is not ip:port in `1 1 localhost:80`");
        let err = RouteFile::parse("1 1\n", Path::new("r"), 0).unwrap_err();
        assert!(err.to_string().contains("r:1: expected `modid cmdid host:port [weight]`"));
        assert!(matches!(RouteFile::new("/nonexistent/routes").load(), Err(StoreError::Unavailable(_))));
    }

    #[test]
    fn a_non_utf8_byte_fails_its_line_only_outside_a_comment() {
        let text = b"1 1 127.0.0.1:1 # caf\xe9\n# \xff\xfe whole-line comment\n1 1 127.0.0.1:2\n";
        let table = RouteFile::parse_bytes(text, Path::new("r"), 0).unwrap();
        assert_eq!(table.hosts((1, 1)).len(), 2, "non-UTF-8 comments are comments");
        let err =
            RouteFile::parse_bytes(b"1 1 127.0.0.1:1\n1 1 127.0.0.\xe91:2\n", Path::new("r"), 0).unwrap_err();
        assert_eq!(err.to_string(), "invalid store contents: r:2: not UTF-8 (outside a comment)");
        let bom = RouteFile::parse_bytes(b"\xEF\xBB\xBF1 1 127.0.0.1:1\n", Path::new("r"), 0).unwrap();
        assert_eq!(bom.hosts((1, 1)).len(), 1, "a BOM is not part of the first line");
    }

    #[test]
    fn a_host_given_again_with_another_weight_names_both_lines() {
        let text = "1 1 127.0.0.1:1 3\n2 2 127.0.0.1:1 5\n1 1 127.0.0.1:1 3\n1 1 127.0.0.1:1 4\n";
        let err = RouteFile::parse(text, Path::new("r"), 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid store contents: r:4: host given again with another weight (line 1 gives 3) in `1 1 127.0.0.1:1 4`"
        );
    }

    #[test]
    fn hosts_no_caller_can_reach_are_refused_with_their_line() {
        for (host, why) in [
            ("10.0.0.1:0", "port is 0"),
            ("0.0.0.0:80", "address is unspecified (0.0.0.0 or ::)"),
            ("[::]:80", "address is unspecified (0.0.0.0 or ::)"),
            ("255.255.255.255:80", "address is the broadcast address"),
            ("239.1.1.1:80", "address is multicast"),
        ] {
            let err =
                RouteFile::parse(&format!("1 1 127.0.0.1:1\n1 1 {host}\n"), Path::new("r"), 0).unwrap_err();
            assert_eq!(err.to_string(), format!("invalid store contents: r:2: host {why} in `1 1 {host}`"));
        }
    }

    #[test]
    fn only_a_regular_file_of_bounded_size_is_read() {
        let err = RouteFile::new("/dev/zero").load().unwrap_err();
        assert_eq!(err.to_string(), "invalid store contents: /dev/zero: not a regular file");
        let dir = std::env::temp_dir().join(format!("lars-file-kinds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        // Refused without opening it: opening a FIFO with no writer would block the loader.
        let err = RouteFile::new(&fifo).load().unwrap_err();
        assert!(err.to_string().ends_with("fifo: not a regular file"), "{err}");
        let big = dir.join("big.conf");
        std::fs::File::create(&big).unwrap().set_len(MAX_ROUTE_FILE + 1).unwrap();
        let err = RouteFile::new(&big).load().unwrap_err();
        assert!(
            err.to_string().ends_with(&format!("{} bytes, over {MAX_ROUTE_FILE}", MAX_ROUTE_FILE + 1)),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn statistics_append_and_the_last_line_of_a_key_wins_across_restarts() {
        let dir = std::env::temp_dir().join(format!("lars-stats-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stats.txt");
        let row = |port: u16, succ: u32| StatRow {
            modid: 1,
            cmdid: 2,
            host: SocketAddr::from(([10, 0, 0, 1], port)),
            caller: 7,
            succ,
            err: 1,
            ts: 1_764_000_000,
            overload: port == 2,
        };
        let mut store = StatsFile::open(&path).unwrap();
        store.store(&[row(1, 1), row(2, 5)]).unwrap();
        store.store(&[row(1, 3)]).unwrap();
        drop(store);
        assert_eq!(StatsFile::read(&path).unwrap(), [row(1, 3), row(2, 5)], "an upsert, as in MySQL");
        // A restart compacts what the last run left and appends after it.
        let mut store = StatsFile::open(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 2, "compacted at open:\n{text}");
        store.store(&[row(3, 9)]).unwrap();
        drop(store);
        assert_eq!(StatsFile::read(&path).unwrap(), [row(1, 3), row(2, 5), row(3, 9)]);

        // A crash mid-write leaves a torn last line: ignored when read, cut off at open.
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut file, b"1 2 10.0.0.1:4 7 0 0 17640").unwrap();
        drop(file);
        assert_eq!(StatsFile::read(&path).unwrap().len(), 3);
        let mut store = StatsFile::open(&path).unwrap();
        store.store(&[row(4, 4)]).unwrap();
        drop(store);
        assert_eq!(StatsFile::read(&path).unwrap(), [row(1, 3), row(2, 5), row(3, 9), row(4, 4)]);

        // A bad line anywhere else is an error naming it.
        std::fs::write(&path, "# header\n1 2 10.0.0.1:1 7 3 1 0 1764000000\n1 2 nowhere 7 3 1 0 1\n")
            .unwrap();
        let err = StatsFile::open(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("invalid store contents: {}:3: host is not ip:port", path.display())
        );
        let missing = StatsFile::open(dir.join("no/such/dir/stats.txt")).unwrap_err();
        assert!(missing.to_string().contains("no/such/dir does not exist"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_statistics_file_is_compacted_when_it_has_doubled() {
        let dir = std::env::temp_dir().join(format!("lars-stats-compact-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stats.txt");
        let mut store = StatsFile::open(&path).unwrap();
        store.compact_min = 64 << 10;
        // One key written over and over: the file stays near its minimum, never grows past it.
        let row = StatRow {
            modid: 1,
            cmdid: 1,
            host: SocketAddr::from(([10, 0, 0, 1], 80)),
            caller: 1,
            succ: 0,
            err: 0,
            ts: 1_764_000_000,
            overload: false,
        };
        let batch: Vec<StatRow> = (0..1000).map(|succ| StatRow { succ, ..row }).collect();
        let line_len = 40;
        for _ in 0..(8 * store.compact_min as usize / (line_len * batch.len())) {
            store.store(&batch).unwrap();
            assert!(store.len <= store.compact_min + (line_len * batch.len()) as u64, "{} bytes", store.len);
        }
        assert!(store.compacted_len < 4096, "compactions kept one row: {} bytes", store.compacted_len);
        drop(store);
        assert_eq!(StatsFile::read(&path).unwrap(), [StatRow { succ: 999, ..row }]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn changed_routes_are_the_difference() {
        let old = RouteFile::parse("1 1 127.0.0.1:1\n2 2 127.0.0.1:2\n3 3 127.0.0.1:3\n", Path::new("r"), 1)
            .unwrap();
        let new = RouteFile::parse("1 1 127.0.0.1:1\n2 2 127.0.0.1:9\n4 4 127.0.0.1:4\n", Path::new("r"), 2)
            .unwrap();
        assert_eq!(old.changed_routes(&new), [(2, 2), (3, 3), (4, 4)]);
        assert!(new.changed_routes(&new).is_empty());
    }

    #[test]
    fn changes_replace_and_remove_routes_and_share_the_others() {
        let old = RouteFile::parse(
            "1 1 127.0.0.1:1
2 2 127.0.0.1:2
3 3 127.0.0.1:3
",
            Path::new("r"),
            1,
        )
        .unwrap();
        let host = |port| WeightedHost { addr: SocketAddr::from(([127, 0, 0, 1], port)), weight: 1 };
        let changes = super::super::RouteChanges {
            version: 7,
            routes: vec![((2, 2), vec![host(9)]), ((3, 3), vec![]), ((4, 4), vec![host(4)])],
        };
        let new = old.with_changes(changes);
        assert_eq!(new.version, 7);
        assert_eq!(old.changed_routes(&new), [(2, 2), (3, 3), (4, 4)]);
        assert_eq!(new.hosts((2, 2)), [host(9)]);
        assert!(new.hosts((3, 3)).is_empty() && !new.routes.contains_key(&(3, 3)));
        assert!(Arc::ptr_eq(&old.routes[&(1, 1)], &new.routes[&(1, 1)]), "unchanged routes are shared");
    }

    #[test]
    fn two_rewrites_in_one_clock_tick_are_two_versions() {
        let dir = std::env::temp_dir().join(format!("lars-file-version-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("routes.conf");
        let tick = UNIX_EPOCH + std::time::Duration::from_secs(1_764_000_000);
        // An atomic rewrite (as `lars route` does), stamped with the same time as the last one.
        let rewrite = |text: &str| {
            let temp = path.with_extension("tmp");
            std::fs::write(&temp, text).unwrap();
            std::fs::File::options().write(true).open(&temp).unwrap().set_modified(tick).unwrap();
            std::fs::rename(&temp, &path).unwrap();
        };
        rewrite("1 1 127.0.0.1:1\n");
        let mut store = RouteFile::new(&path);
        let first = store.version().unwrap();
        assert_eq!(store.version().unwrap(), first, "unchanged file, same version");
        rewrite("1 1 127.0.0.1:2\n");
        let second = store.version().unwrap();
        assert_ne!(second, first, "same time and length, new inode");
        assert_eq!(store.load().unwrap().version, second);
        assert_eq!(store.version().unwrap(), second);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
