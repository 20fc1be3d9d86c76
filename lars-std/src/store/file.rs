//! File stores: the route file (lars-dns's embedded default) and a statistics file
//! (lars-reporter's store when no MySQL is configured).
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
        let mut table = RouteTable { version, routes: BTreeMap::new(), loaded: false };
        for (index, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let at = |what: &str| {
                StoreError::Invalid(format!("{}:{}: {what} in `{}`", path.display(), index + 1, raw.trim()))
            };
            let fields: Vec<&str> = line.split_whitespace().collect();
            if !(3..=4).contains(&fields.len()) {
                return Err(at("expected `modid cmdid host:port [weight]`"));
            }
            let modid: i32 = fields[0].parse().map_err(|_| at("modid is not a 32-bit integer"))?;
            let cmdid: i32 = fields[1].parse().map_err(|_| at("cmdid is not a 32-bit integer"))?;
            let addr: SocketAddr = fields[2].parse().map_err(|_| at("host is not ip:port"))?;
            let weight: u32 = match fields.get(3) {
                Some(w) => w.parse().map_err(|_| at("weight is not a non-negative integer"))?,
                None => 1,
            };
            table.insert((modid, cmdid), WeightedHost { addr, weight });
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
        let mut text = String::new();
        std::fs::File::open(&path)
            .and_then(|file| file.take(MAX_ROUTE_FILE).read_to_string(&mut text))
            .map_err(|e| unavailable(e.to_string()))?;
        let after = std::fs::metadata(&path).map_err(|e| unavailable(e.to_string()))?;
        if stamp(&after) != stamp(&before) {
            return Err(unavailable("changed while it was read; reading it again".into()));
        }
        let table = RouteFile::parse(&text, &self.path, version)?;
        self.loaded_inode = Some(before.ino());
        Ok(table)
    }

    fn describe(&self) -> String {
        format!("route file {}", self.path.display())
    }
}

/// Statistics kept as a table in a text file, rewritten after each batch (latest row per
/// route, host and caller), for running without MySQL.
#[derive(Debug)]
pub struct StatsFile {
    path: PathBuf,
    rows: BTreeMap<StatKey, StatRow>,
}

impl StatsFile {
    /// A store writing to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StatsFile { path: path.into(), rows: BTreeMap::new() }
    }
}

impl StatsStore for StatsFile {
    fn store(&mut self, rows: &[StatRow]) -> Result<(), StoreError> {
        for row in rows {
            self.rows.insert(row.key(), *row);
        }
        let mut text = String::from("# modid cmdid host caller succ err overload ts\n");
        for r in self.rows.values() {
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
        let temp = self.path.with_extension("tmp");
        std::fs::write(&temp, text)
            .and_then(|()| std::fs::rename(&temp, &self.path))
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", self.path.display())))
    }

    fn describe(&self) -> String {
        format!("statistics file {}", self.path.display())
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
