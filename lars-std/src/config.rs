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
        /// 1-based line number; 0 for the file as a whole (it could not be read).
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
            Origin::File { path, line: 0 } => write!(f, "{}", path.display()),
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

/// An address and port, `ip:port` (`[::1]:8080` for IPv6).
impl ConfigValue for SocketAddr {
    fn parse_config(text: &str) -> Result<Self, String> {
        SocketAddr::from_str(text).map_err(|_| "an ip:port address".into())
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
    /// `spin` (new): the workers may busy-poll briefly before they sleep while requests come
    /// densely and a core would idle (the adaptive wait, `reactor/spin.rs`); on by default.
    pub spin: bool,
}

impl ReactorConfig {
    /// The keys of `[reactor]`, for [`Ini::apply_env`].
    pub const KEYS: [(&'static str, &'static str); 9] = [
        ("reactor", "ip"),
        ("reactor", "port"),
        ("reactor", "maxConn"),
        ("reactor", "threadNum"),
        ("reactor", "allow"),
        ("reactor", "headerTimeout"),
        ("reactor", "bodyTimeout"),
        ("reactor", "idleTimeout"),
        ("reactor", "spin"),
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
            spin: ini.get("reactor", "spin", true)?,
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
mod tests;
