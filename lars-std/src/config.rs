//! Configuration: INI files in the original Lars format, overridden by `LARS_*` environment
//! variables and command-line flags.
//!
//! The format is the original's (`config_file.cpp`): `[section]` lines, `key = value` lines with
//! both sides trimmed, `#` and `;` comment lines, later duplicates overriding earlier ones, and
//! repeated sections merging. Lines the original skipped (no `=`, an empty key, an empty
//! section name) are skipped too, so its files load unchanged, but each leaves a warning
//! ([`Ini::warnings`]) instead of vanishing. Unlike the original, a key before any section,
//! an unreadable file, or a value of the wrong type is an error that names the file, the line
//! and the key (D-R-19), and `false` can override a `true` default.
//!
//! Overrides: `LARS_<SECTION>_<KEY>` (upper case; e.g. `LARS_REACTOR_PORT=7000`) and
//! [`Ini::set`] for flags, in that order of precedence: flag over environment over file.
//!
//! Encoding: a byte-order mark is skipped, and comment lines may hold any bytes (a GBK
//! comment, say); any other line must be UTF-8, or it is an error naming the line.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line of a file.
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// An environment variable.
    Env(String),
    /// A command-line flag (its name without the dashes), or a built-in override (empty).
    Flag(String),
    /// Not set anywhere: the built-in default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Flag(name) if name.is_empty() => f.write_str("command line"),
            Origin::Flag(name) => write!(f, "flag --{name}"),
            Origin::Default => f.write_str("default"),
        }
    }
}

/// A configuration error, naming where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the bad input is.
    pub origin: Origin,
    /// `section.key`, when the error concerns a key.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{}: key `{key}`: {}", self.origin, self.message),
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone)]
struct Value {
    text: String,
    origin: Origin,
}

/// A value as the daemon used it, for `--check-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    /// The section.
    pub section: String,
    /// The key.
    pub key: String,
    /// The value as text (a default shown as configuration would spell it).
    pub value: String,
    /// Where it came from.
    pub origin: Origin,
}

/// A parsed configuration: sections of keys, each value remembering where it came from.
///
/// Every key the daemon reads through [`Ini::get`] (or [`Ini::get_str`]) is remembered with
/// the value used and its origin, the default included, so that [`Ini::effective`] lists the
/// configuration a daemon really runs with, from the same code that reads and checks it.
#[derive(Debug, Default)]
pub struct Ini {
    sections: BTreeMap<String, BTreeMap<String, Value>>,
    /// Where each section was first opened in a file.
    headers: BTreeMap<String, Origin>,
    warnings: Vec<ConfigError>,
    used: std::sync::Mutex<Vec<Effective>>,
}

impl Clone for Ini {
    fn clone(&self) -> Ini {
        Ini {
            sections: self.sections.clone(),
            headers: self.headers.clone(),
            warnings: self.warnings.clone(),
            used: std::sync::Mutex::new(self.effective()),
        }
    }
}

impl Ini {
    /// An empty configuration (every key at its default).
    pub fn new() -> Ini {
        Ini::default()
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Ini, ConfigError> {
        let bytes = std::fs::read(path).map_err(|e| ConfigError {
            origin: Origin::File { path: path.to_path_buf(), line: 0 },
            key: None,
            message: format!("cannot read the file: {e}"),
        })?;
        // Comment lines that are not UTF-8 become empty lines, keeping the line numbers.
        let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&bytes);
        let mut text = String::with_capacity(bytes.len());
        for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
            match std::str::from_utf8(line) {
                Ok(line) => text.push_str(line),
                Err(_) if matches!(line.trim_ascii_start().first(), Some(b'#' | b';')) => {}
                Err(_) => {
                    return Err(ConfigError {
                        origin: Origin::File { path: path.to_path_buf(), line: index + 1 },
                        key: None,
                        message: "not valid UTF-8 (only comment lines may be in another encoding)".into(),
                    });
                }
            }
            text.push('\n');
        }
        Ini::parse(&text, path)
    }

    /// Parses `text`, attributing lines to `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Ini, ConfigError> {
        let mut ini = Ini::new();
        let mut section: Option<String> = None;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (index, raw) in text.lines().enumerate() {
            let origin = Origin::File { path: path.to_path_buf(), line: index + 1 };
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let skipped = |message: String| ConfigError { origin: origin.clone(), key: None, message };
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                let name = name.trim();
                if name.is_empty() {
                    let message = "empty section name: the keys below it are not read".to_string();
                    ini.warnings.push(skipped(message));
                }
                ini.headers.entry(name.to_string()).or_insert(origin);
                section = Some(name.to_string());
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                // The line is not repeated: it may be a password without its key.
                ini.warnings.push(skipped("skipped: not `key = value`".into()));
                continue;
            };
            let key = key.trim();
            if key.is_empty() {
                ini.warnings.push(skipped("skipped: a value without a key".into()));
                continue;
            }
            let Some(section) = &section else {
                return Err(ConfigError {
                    origin,
                    key: Some(key.to_string()),
                    message: "key outside any [section]".into(),
                });
            };
            ini.insert(section, key, value.trim(), origin);
        }
        Ok(ini)
    }

    fn insert(&mut self, section: &str, key: &str, value: &str, origin: Origin) {
        self.sections
            .entry(section.to_string())
            .or_default()
            .insert(key.to_string(), Value { text: value.to_string(), origin });
    }

    /// The names of the sections that start with `prefix` (such as `route:` for the agent's
    /// per-route sections), in order.
    pub fn sections_with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.sections.keys().filter(move |name| name.starts_with(prefix)).map(String::as_str)
    }

    /// Lines that were skipped as the original skipped them, for the daemon to print.
    pub fn warnings(&self) -> &[ConfigError] {
        &self.warnings
    }

    /// Overrides `section.key` (for a command-line flag; [`Ini::set_by_flag`] names it).
    pub fn set(&mut self, section: &str, key: &str, value: &str) {
        self.insert(section, key, value, Origin::Flag(String::new()));
    }

    /// Overrides `section.key` with the value of `--flag`.
    pub fn set_by_flag(&mut self, flag: &str, section: &str, key: &str, value: &str) {
        self.insert(section, key, value, Origin::Flag(flag.to_string()));
    }

    /// Overrides `section.key` with the value of the environment variable `var` (an alias
    /// such as `LARS_LOG`, besides the `LARS_<SECTION>_<KEY>` that [`Ini::apply_env`] reads).
    pub fn set_by_env(&mut self, var: &str, section: &str, key: &str, value: &str) {
        self.insert(section, key, value, Origin::Env(var.to_string()));
    }

    /// Remembers a value the daemon took from elsewhere (a flag that is no `.conf` key, such
    /// as `--mysql URL`), for [`Ini::effective`].
    pub fn note(&self, section: &str, key: &str, value: &str, origin: Origin) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let effective = Effective { section: section.into(), key: key.into(), value: value.into(), origin };
        match used.iter_mut().find(|e| e.section == section && e.key == key) {
            Some(earlier) => *earlier = effective,
            None => used.push(effective),
        }
    }

    /// The values the daemon read so far, in the order it first read them, each with its
    /// origin.
    pub fn effective(&self) -> Vec<Effective> {
        self.used.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Warnings for the keys and sections of the files that no entry of `known` names: a
    /// typo such as `maxConns` would otherwise do nothing. `known` lists `(section, key)`;
    /// a section ending in `*` matches every section that starts with what precedes it
    /// (`route:*`). A close known name is suggested.
    pub fn unknown(&self, known: &[(&str, &str)]) -> Vec<ConfigError> {
        let matches = |pattern: &str, section: &str| match pattern.strip_suffix('*') {
            Some(prefix) => section.starts_with(prefix),
            None => pattern == section,
        };
        let mut warnings = Vec::new();
        let sections: Vec<&str> = known.iter().map(|(s, _)| *s).collect();
        for (section, origin) in &self.headers {
            // An empty name was warned about as the file was read.
            if section.is_empty() || sections.iter().any(|pattern| matches(pattern, section)) {
                continue;
            }
            let hint =
                suggestion(section, &sections).map_or(String::new(), |s| format!(" (did you mean [{s}]?)"));
            warnings.push(ConfigError {
                origin: origin.clone(),
                key: None,
                message: format!("unknown section [{section}]{hint}: its keys are ignored"),
            });
        }
        for (section, keys) in &self.sections {
            let here: Vec<&str> =
                known.iter().filter(|(s, _)| matches(s, section)).map(|(_, key)| *key).collect();
            if here.is_empty() {
                continue;
            }
            for (key, value) in keys {
                if here.contains(&key.as_str()) || !matches!(value.origin, Origin::File { .. }) {
                    continue;
                }
                let hint =
                    suggestion(key, &here).map_or(String::new(), |k| format!(" (did you mean `{k}`?)"));
                warnings.push(ConfigError {
                    origin: value.origin.clone(),
                    key: Some(format!("{section}.{key}")),
                    message: format!("unknown key{hint}: ignored"),
                });
            }
        }
        warnings.sort_by_key(|w| match &w.origin {
            Origin::File { line, .. } => *line,
            _ => 0,
        });
        warnings
    }

    /// Applies `LARS_<SECTION>_<KEY>` variables from `vars` for every `(section, key)` listed
    /// in `known` (pass `std::env::vars_os()`; other variables are not looked at). A listed
    /// variable whose value is not UTF-8 is an error naming it.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
        known: &[(&str, &str)],
    ) -> Result<(), ConfigError> {
        let vars: BTreeMap<std::ffi::OsString, std::ffi::OsString> = vars.into_iter().collect();
        // A pattern such as `route:*` names sections, not a variable.
        for (section, key) in known.iter().filter(|(section, _)| !section.ends_with('*')) {
            let name = format!("LARS_{}_{}", section.to_uppercase(), key.to_uppercase());
            let Some(value) = vars.get(std::ffi::OsStr::new(&name)) else { continue };
            let Some(value) = value.to_str() else {
                return Err(ConfigError {
                    origin: Origin::Env(name),
                    key: Some(format!("{section}.{key}")),
                    message: "the value is not valid UTF-8".into(),
                });
            };
            self.insert(section, key, value, Origin::Env(name));
        }
        Ok(())
    }

    /// The raw text of `section.key`.
    pub fn get_str(&self, section: &str, key: &str) -> Option<&str> {
        let value = self.value(section, key);
        match value {
            Some(v) => self.note(section, key, &v.text, v.origin.clone()),
            None => self.note(section, key, "", Origin::Default),
        }
        value.map(|v| v.text.as_str())
    }

    /// The raw text of `section.key`, without counting it as read.
    pub fn peek(&self, section: &str, key: &str) -> Option<&str> {
        self.value(section, key).map(|v| v.text.as_str())
    }

    fn value(&self, section: &str, key: &str) -> Option<&Value> {
        self.sections.get(section)?.get(key)
    }

    /// An error about `section.key` that names where its value came from.
    pub fn error(&self, section: &str, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            origin: self.value(section, key).map_or(Origin::Default, |v| v.origin.clone()),
            key: Some(format!("{section}.{key}")),
            message: message.into(),
        }
    }

    /// `section.key` parsed as `T`, or `default` when absent; an unparsable value is an error
    /// naming where it came from.
    pub fn get<T: ConfigValue>(&self, section: &str, key: &str, default: T) -> Result<T, ConfigError> {
        let Some(value) = self.value(section, key) else {
            self.note(section, key, &default.show(), Origin::Default);
            return Ok(default);
        };
        self.note(section, key, &value.text, value.origin.clone());
        T::parse_config(&value.text).map_err(|message| ConfigError {
            origin: value.origin.clone(),
            key: Some(format!("{section}.{key}")),
            message: format!("`{}` is not {message}", value.text),
        })
    }
}

/// A type a config value can be read as.
pub trait ConfigValue: Sized {
    /// Parses the text, or says what was expected ("a number", ...).
    fn parse_config(text: &str) -> Result<Self, String>;

    /// The value as a configuration file would spell it, to show a default.
    fn show(&self) -> String {
        "(built in)".into()
    }
}

/// The known name closest to `name` if it is close enough to be a typo: equal but for case,
/// or at most two edits away (and fewer than half its letters).
fn suggestion<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let distance = |a: &str, b: &str| -> usize {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.iter().enumerate() {
            let mut previous = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let substitution = previous + usize::from(ca != cb);
                previous = row[j + 1];
                row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
            }
        }
        row[b.len()]
    };
    known
        .iter()
        .copied()
        .filter(|k| !k.ends_with('*'))
        .map(|k| (if k.eq_ignore_ascii_case(name) { 0 } else { distance(name, k) }, k))
        .filter(|(d, _)| *d <= 2 && *d * 2 < name.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

macro_rules! numeric {
    ($($ty:ty),*) => {$(
        impl ConfigValue for $ty {
            fn parse_config(text: &str) -> Result<Self, String> {
                text.parse().map_err(|_| format!("a number in the range of {}", stringify!($ty)))
            }

            fn show(&self) -> String {
                self.to_string()
            }
        }
    )*};
}

numeric!(u16, u32, u64, usize, i32, i64, f64);

impl ConfigValue for bool {
    fn parse_config(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err("true or false".into()),
        }
    }

    fn show(&self) -> String {
        self.to_string()
    }
}

impl ConfigValue for String {
    fn parse_config(text: &str) -> Result<Self, String> {
        Ok(text.to_string())
    }

    fn show(&self) -> String {
        self.clone()
    }
}

impl ConfigValue for lars_core::lb::PolicyKind {
    fn parse_config(text: &str) -> Result<Self, String> {
        Self::parse(&text.to_ascii_lowercase())
            .ok_or_else(|| "lars, round_robin, weighted, p2c or maglev".into())
    }

    fn show(&self) -> String {
        self.as_str().into()
    }
}

impl ConfigValue for lars_core::wire::CodecChoice {
    fn parse_config(text: &str) -> Result<Self, String> {
        Self::parse(&text.to_ascii_lowercase()).ok_or_else(|| "auto, native or lars".into())
    }

    fn show(&self) -> String {
        self.as_str().into()
    }
}

/// A fraction from 0 to 1 (a rate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fraction(pub f64);

impl ConfigValue for Fraction {
    fn parse_config(text: &str) -> Result<Self, String> {
        match text.parse::<f64>() {
            Ok(value) if (0.0..=1.0).contains(&value) => Ok(Fraction(value)),
            _ => Err("a fraction from 0 to 1".into()),
        }
    }

    fn show(&self) -> String {
        self.0.to_string()
    }
}

impl ConfigValue for IpAddr {
    fn parse_config(text: &str) -> Result<Self, String> {
        IpAddr::from_str(text).map_err(|_| "an IP address".into())
    }

    fn show(&self) -> String {
        self.to_string()
    }
}

/// A list of addresses, `host:port` separated by commas or spaces.
impl ConfigValue for Vec<SocketAddr> {
    fn parse_config(text: &str) -> Result<Self, String> {
        text.split([',', ' ', '\t'])
            .filter(|s| !s.is_empty())
            .map(|s| SocketAddr::from_str(s).map_err(|_| format!("a list of ip:port addresses (`{s}`)")))
            .collect()
    }

    fn show(&self) -> String {
        self.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    }
}

/// A list of CIDR blocks (`10.0.0.0/8, ::1`), separated by commas or spaces: an allowlist.
impl ConfigValue for Vec<lars_core::access::Cidr> {
    fn parse_config(text: &str) -> Result<Self, String> {
        let list = text
            .split([',', ' ', '\t'])
            .filter(|s| !s.is_empty())
            .map(|s| {
                lars_core::access::Cidr::parse(s).map_err(|e| format!("a list of CIDR blocks (`{s}`: {e})"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if list.is_empty() { Err("a list of CIDR blocks (it is empty)".into()) } else { Ok(list) }
    }

    fn show(&self) -> String {
        self.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    }
}

/// A length of time in seconds, fractions allowed (`0.5`), at most a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub lars_core::time::Duration);

impl ConfigValue for Seconds {
    fn parse_config(text: &str) -> Result<Self, String> {
        match text.parse::<f64>() {
            Ok(secs) if (0.0..=86_400.0).contains(&secs) => {
                Ok(Seconds(lars_core::time::Duration::from_micros((secs * 1e6) as u64)))
            }
            _ => Err("a number of seconds from 0 to 86400".into()),
        }
    }

    fn show(&self) -> String {
        let micros = self.0.as_micros();
        if micros.is_multiple_of(1_000_000) {
            (micros / 1_000_000).to_string()
        } else {
            (micros as f64 / 1e6).to_string()
        }
    }
}

/// `[reactor]`: where a daemon listens and how many threads and connections it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReactorConfig {
    /// Listen address.
    pub ip: IpAddr,
    /// Listen port.
    pub port: u16,
    /// `maxConn`: connections open at once.
    pub max_conn: usize,
    /// `threadNum`: worker threads (1 to [`ReactorConfig::MAX_THREADS`]).
    pub thread_num: usize,
    /// `allow` (new): the source addresses taken, loopback by default.
    pub allow: Vec<lars_core::access::Cidr>,
    /// `headerTimeout`: seconds a frame's header may take once it has begun (default 10).
    pub header_timeout: lars_core::time::Duration,
    /// `bodyTimeout`: seconds a frame's body may take once its header is in (default 30).
    pub body_timeout: lars_core::time::Duration,
    /// `idleTimeout`: seconds a connection may send nothing; 0, the default, is no limit.
    pub idle_timeout: Option<lars_core::time::Duration>,
}

impl ReactorConfig {
    /// The keys of `[reactor]`, for [`Ini::apply_env`].
    pub const KEYS: [(&'static str, &'static str); 8] = [
        ("reactor", "ip"),
        ("reactor", "port"),
        ("reactor", "maxConn"),
        ("reactor", "threadNum"),
        ("reactor", "allow"),
        ("reactor", "headerTimeout"),
        ("reactor", "bodyTimeout"),
        ("reactor", "idleTimeout"),
    ];

    /// The most worker threads: each holds three file descriptors and its own buffers.
    pub const MAX_THREADS: usize = 256;

    /// Reads `[reactor]`, with `default_port` when the file has none.
    pub fn from_ini(ini: &Ini, default_port: u16) -> Result<Self, ConfigError> {
        let config = ReactorConfig {
            ip: ini.get("reactor", "ip", IpAddr::from([127, 0, 0, 1]))?,
            port: ini.get("reactor", "port", default_port)?,
            max_conn: ini.get("reactor", "maxConn", 1024)?,
            thread_num: ini.get("reactor", "threadNum", 5)?,
            allow: ini.get("reactor", "allow", lars_core::access::Cidr::LOOPBACK.to_vec())?,
            header_timeout: ini
                .get("reactor", "headerTimeout", Seconds(lars_core::time::Duration::from_secs(10)))?
                .0,
            body_timeout: ini
                .get("reactor", "bodyTimeout", Seconds(lars_core::time::Duration::from_secs(30)))?
                .0,
            idle_timeout: Some(
                ini.get("reactor", "idleTimeout", Seconds(lars_core::time::Duration::ZERO))?.0,
            )
            .filter(|idle| *idle > lars_core::time::Duration::ZERO),
        };
        for (key, timeout) in [("headerTimeout", config.header_timeout), ("bodyTimeout", config.body_timeout)]
        {
            if timeout == lars_core::time::Duration::ZERO {
                return Err(ini.error("reactor", key, "must be more than 0"));
            }
        }
        if !(1..=Self::MAX_THREADS).contains(&config.thread_num) {
            let message = format!("must be from 1 to {}", Self::MAX_THREADS);
            return Err(ini.error("reactor", "threadNum", message));
        }
        if config.max_conn == 0 {
            return Err(ini.error("reactor", "maxConn", "must be at least 1"));
        }
        Ok(config)
    }

    /// The address to listen on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The original `lars_reporter.conf`, including its misspelt `[repoter]` section.
    const REPORTER_CONF: &str = "[reactor]\nmaxConn = 1024\nthreadNum = 5\nip = 127.0.0.1\nport = 7779\n\n\
        [mysql]\ndb_host = 127.0.0.1\ndb_port = 3306\ndb_user = root\ndb_passwd = aceld\ndb_name = lars_dns\n\n\
        [repoter]\ndb_thread_cnt = 3\n";

    #[test]
    fn reads_an_original_conf_file_unchanged() {
        let ini = Ini::parse(REPORTER_CONF, Path::new("lars_reporter.conf")).unwrap();
        let reactor = ReactorConfig::from_ini(&ini, 7779).unwrap();
        assert_eq!(
            reactor,
            ReactorConfig {
                ip: [127, 0, 0, 1].into(),
                port: 7779,
                max_conn: 1024,
                thread_num: 5,
                allow: lars_core::access::Cidr::LOOPBACK.to_vec(),
                header_timeout: lars_core::time::Duration::from_secs(10),
                body_timeout: lars_core::time::Duration::from_secs(30),
                idle_timeout: None,
            }
        );
        let timeouts = Ini::parse(
            "[reactor]\nheaderTimeout = 0.5\nidleTimeout = 60\nbodyTimeout = 0\n",
            Path::new("t.conf"),
        )
        .unwrap();
        assert_eq!(
            ReactorConfig::from_ini(&timeouts, 1).unwrap_err().to_string(),
            "t.conf:4: key `reactor.bodyTimeout`: must be more than 0"
        );
        let timeouts =
            Ini::parse("[reactor]\nheaderTimeout = 0.5\nidleTimeout = 60\n", Path::new("t.conf")).unwrap();
        let reactor = ReactorConfig::from_ini(&timeouts, 1).unwrap();
        assert_eq!(reactor.header_timeout, lars_core::time::Duration::from_millis(500));
        assert_eq!(reactor.idle_timeout, Some(lars_core::time::Duration::from_secs(60)));
        let bad = Ini::parse("[reactor]\nidleTimeout = forever\n", Path::new("t.conf")).unwrap();
        assert_eq!(
            ReactorConfig::from_ini(&bad, 1).unwrap_err().to_string(),
            "t.conf:2: key `reactor.idleTimeout`: `forever` is not a number of seconds from 0 to 86400"
        );
        assert_eq!(ini.get_str("mysql", "db_passwd"), Some("aceld"));
        assert_eq!(ini.get("repoter", "db_thread_cnt", 0u32), Ok(3));
        assert_eq!(ini.get("mysql", "missing", 7u16), Ok(7));
    }

    #[test]
    fn an_allowlist_is_cidr_blocks_and_a_bad_one_names_its_line() {
        use lars_core::access::Cidr;
        let ini = Ini::parse("[reactor]\nallow = 10.0.0.0/8, 2001:db8::/32 127.0.0.1\n", Path::new("d.conf"))
            .unwrap();
        let allow: Vec<Cidr> = ini.get("reactor", "allow", Vec::new()).unwrap();
        let expected: Vec<Cidr> =
            ["10.0.0.0/8", "2001:db8::/32", "127.0.0.1/32"].iter().map(|c| Cidr::parse(c).unwrap()).collect();
        assert_eq!(allow, expected);
        let bad = Ini::parse("[reactor]\nallow = 10.0.0.1/8\n", Path::new("d.conf")).unwrap();
        assert_eq!(
            ReactorConfig::from_ini(&bad, 1).unwrap_err().to_string(),
            "d.conf:2: key `reactor.allow`: `10.0.0.1/8` is not a list of CIDR blocks (`10.0.0.1/8`: the \
             address has bits set past its prefix length)"
        );
    }

    #[test]
    fn a_codec_is_auto_native_or_lars() {
        use lars_core::wire::{Codec, CodecChoice};
        let text = "[dnsserver]\ncodec = Lars\n[reporter]\ncodec = orig\n";
        let ini = Ini::parse(text, Path::new("lars_lb_agent.conf")).unwrap();
        assert_eq!(ini.get("dnsserver", "codec", CodecChoice::Auto), Ok(CodecChoice::Fixed(Codec::Lars)));
        assert_eq!(
            ini.get("reporter", "codec", CodecChoice::Auto).unwrap_err().to_string(),
            "lars_lb_agent.conf:4: key `reporter.codec`: `orig` is not auto, native or lars"
        );
        assert_eq!(ini.get("dnsserver", "missing", CodecChoice::Auto), Ok(CodecChoice::Auto));
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_key() {
        let ini = Ini::parse("# comment\n[reactor]\nport = 77x\n", Path::new("/etc/lars/dns.conf")).unwrap();
        let error = ini.get("reactor", "port", 0u16).unwrap_err();
        assert_eq!(
            error.to_string(),
            "/etc/lars/dns.conf:3: key `reactor.port`: `77x` is not a number in the range of u16"
        );
        let error = Ini::parse("port = 1\n", Path::new("a.conf")).unwrap_err();
        assert_eq!(error.to_string(), "a.conf:1: key `port`: key outside any [section]");
        let skipped = Ini::parse("[a]\njust words\n= 3\n[ ]\nk = v\n", Path::new("b.conf")).unwrap();
        let warnings: Vec<String> = skipped.warnings().iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [
                "b.conf:2: skipped: not `key = value`",
                "b.conf:3: skipped: a value without a key",
                "b.conf:4: empty section name: the keys below it are not read",
            ]
        );
        assert_eq!(skipped.get_str("a", "k"), None, "k is in the unnamed section");
        let error = Ini::load(Path::new("/nonexistent/lars.conf")).unwrap_err();
        assert!(error.to_string().starts_with("/nonexistent/lars.conf:0: cannot read the file"), "{error}");
        let zero = Ini::parse("[reactor]\nthreadNum = 0\n", Path::new("c.conf")).unwrap();
        assert_eq!(
            ReactorConfig::from_ini(&zero, 1).unwrap_err().to_string(),
            "c.conf:2: key `reactor.threadNum`: must be from 1 to 256"
        );
        let many = Ini::parse("[reactor]\nthreadNum = 70000\n", Path::new("c.conf")).unwrap();
        assert_eq!(
            ReactorConfig::from_ini(&many, 1).unwrap_err().to_string(),
            "c.conf:2: key `reactor.threadNum`: must be from 1 to 256"
        );
        let no_conns = Ini::parse("[reactor]\n\nmaxConn = 0\n", Path::new("c.conf")).unwrap();
        assert_eq!(
            ReactorConfig::from_ini(&no_conns, 1).unwrap_err().to_string(),
            "c.conf:3: key `reactor.maxConn`: must be at least 1"
        );
        let rate =
            Ini::parse("[loadbalance]\nsucc_rate = 1.5\nerr_rate = NaN\n", Path::new("a.conf")).unwrap();
        assert_eq!(
            rate.get("loadbalance", "succ_rate", Fraction(0.0)).unwrap_err().to_string(),
            "a.conf:2: key `loadbalance.succ_rate`: `1.5` is not a fraction from 0 to 1"
        );
        assert!(rate.get("loadbalance", "err_rate", Fraction(0.0)).is_err());
    }

    #[test]
    fn a_byte_order_mark_and_comments_in_another_encoding_are_read() {
        let dir = std::env::temp_dir().join(format!("lars-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gbk.conf");
        // A BOM, then GBK comments ("配置" is 0xc5 0xe4 0xd6 0xc3), CRLF line ends.
        let mut bytes =
            b"\xef\xbb\xbf# \xc5\xe4\r\n[reactor]\r\n# \xc5\xe4\xd6\xc3\r\nport = 7778\r\n".to_vec();
        std::fs::write(&path, &bytes).unwrap();
        let ini = Ini::load(&path).unwrap();
        assert_eq!(ini.get("reactor", "port", 0u16), Ok(7778));
        bytes.extend_from_slice(b"ip = \xc5\xe4\r\n");
        std::fs::write(&path, &bytes).unwrap();
        let error = Ini::load(&path).unwrap_err();
        assert_eq!(error.origin, Origin::File { path: path.clone(), line: 5 });
        assert!(error.message.contains("not valid UTF-8"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn flags_override_env_which_overrides_the_file() {
        let mut ini = Ini::parse("[reactor]\nport = 7778\nip = 0.0.0.0\n", Path::new("dns.conf")).unwrap();
        let env = [("LARS_REACTOR_PORT".into(), "9000".into()), ("LARS_REACTOR_IP".into(), "bad".into())];
        ini.apply_env(env, &ReactorConfig::KEYS).unwrap();
        assert_eq!(ini.get("reactor", "port", 0u16), Ok(9000));
        assert_eq!(
            ini.get("reactor", "ip", IpAddr::from([0, 0, 0, 0])).unwrap_err().to_string(),
            "environment variable LARS_REACTOR_IP: key `reactor.ip`: `bad` is not an IP address"
        );
        ini.set("reactor", "port", "9100");
        assert_eq!(ini.get("reactor", "port", 0u16), Ok(9100));
        use std::os::unix::ffi::OsStringExt;
        let not_utf8 = [("LARS_REACTOR_PORT".into(), std::ffi::OsString::from_vec(vec![0xff]))];
        assert_eq!(
            ini.apply_env(not_utf8, &ReactorConfig::KEYS).unwrap_err().to_string(),
            "environment variable LARS_REACTOR_PORT: key `reactor.port`: the value is not valid UTF-8"
        );
    }

    #[test]
    fn values_of_every_type() {
        let ini = Ini::parse(
            "[s]\nflag = false\nlist = 127.0.0.1:1, [::1]:2\nrate = 0.7\n[s]\nflag = off\n",
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(ini.get("s", "flag", true), Ok(false), "false overrides a true default; sections merge");
        let list: Vec<SocketAddr> = ini.get("s", "list", Vec::new()).unwrap();
        assert_eq!(list, ["127.0.0.1:1".parse().unwrap(), "[::1]:2".parse().unwrap()]);
        assert_eq!(ini.get("s", "rate", 0.0f64), Ok(0.7));
    }

    #[test]
    fn unknown_keys_and_sections_are_named_with_a_suggestion() {
        let text = "[reactor]\nmaxConns = 10\nport = 1\n[repoter]\ndb_thread_cnt = 3\n\
                    [route:1:1]\npolicy = p2c\nweight = 2\n[zzz]\n";
        let ini = Ini::parse(text, Path::new("lars.conf")).unwrap();
        let known = [
            ("reactor", "maxConn"),
            ("reactor", "port"),
            ("reporter", "db_thread_cnt"),
            ("route:*", "policy"),
        ];
        let warnings: Vec<String> = ini.unknown(&known).iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [
                "lars.conf:2: key `reactor.maxConns`: unknown key (did you mean `maxConn`?): ignored",
                "lars.conf:4: unknown section [repoter] (did you mean [reporter]?): its keys are ignored",
                "lars.conf:8: key `route:1:1.weight`: unknown key: ignored",
                "lars.conf:9: unknown section [zzz]: its keys are ignored",
            ]
        );
        assert_eq!(suggestion("MAXCONN", &["maxConn"]), Some("maxConn"));
        assert_eq!(suggestion("ip", &["port"]), None, "too short to guess");
    }

    #[test]
    fn the_effective_configuration_names_every_origin() {
        let mut ini = Ini::parse("[reactor]\nport = 7000\n", Path::new("dns.conf")).unwrap();
        ini.apply_env([("LARS_REACTOR_IP".into(), "127.0.0.2".into())], &ReactorConfig::KEYS).unwrap();
        ini.set_by_flag("threads", "reactor", "threadNum", "2");
        ReactorConfig::from_ini(&ini, 7778).unwrap();
        let shown: Vec<(String, String, String)> = ini
            .effective()
            .into_iter()
            .map(|e| (format!("{}.{}", e.section, e.key), e.value, e.origin.to_string()))
            .collect();
        let expect = |k: &str, v: &str, o: &str| (k.to_string(), v.to_string(), o.to_string());
        assert_eq!(
            shown,
            [
                expect("reactor.ip", "127.0.0.2", "environment variable LARS_REACTOR_IP"),
                expect("reactor.port", "7000", "dns.conf:2"),
                expect("reactor.maxConn", "1024", "default"),
                expect("reactor.threadNum", "2", "flag --threads"),
                expect("reactor.allow", &lars_core::access::Cidr::LOOPBACK.to_vec().show(), "default"),
                expect("reactor.headerTimeout", "10", "default"),
                expect("reactor.bodyTimeout", "30", "default"),
                expect("reactor.idleTimeout", "0", "default"),
            ]
        );
        assert_eq!(ini.clone().effective().len(), 8, "a clone keeps what was read");
    }
}
