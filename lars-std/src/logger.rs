//! The daemons' logger: records of the `log` facade written as one line each to stderr, in
//! words or as JSON, with a rate limit per call site.
//!
//! - **Levels**: `error`, `warn`, `info` (the default), `debug`, `trace` or `off`, from
//!   `--log-level`, `LARS_LOG` (or `LARS_LOG_LEVEL`), or `[log] level`, in that order. Records
//!   of other crates (the MySQL driver's) are shown from `warn` up only.
//! - **Formats** (`--log-format`, `[log] format`): `text`, the default,
//!   `2026-12-01T11:20:03.123456Z INFO  lars-agent: route 1001/1 updated: 3 hosts`, or `json`,
//!   one object per line with `time`, `level`, `program`, `target` and `message`.
//! - **journald**: when stderr is the journal stream systemd gave the process (`JOURNAL_STREAM`
//!   names its device and inode), text lines carry no time and no program name, which the
//!   journal records itself, and start with a `<N>` syslog priority so that `journalctl -p`
//!   filters by level.
//! - **Rate limit**: one call site writes at most [`BURST`] lines per [`WINDOW`]; the rest are
//!   counted and summed up in one line when the window ends (noticed by the next record from
//!   that site, by [`log::Log::flush`], which the daemons call every second, or at
//!   [`finish`]). A flood of requests for unknown routes once wrote 13 MB in 20 s.
//!
//! Every line is written with one `write` call, so lines from different threads never mix.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::config::ConfigValue;
use crate::time::Clock;

/// Lines one call site may write per [`WINDOW`] before the rest are only counted.
pub const BURST: u32 = 10;
/// The rate limit's window.
pub const WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// The `[log]` keys every daemon reads (also `LARS_LOG_LEVEL` and `LARS_LOG_FORMAT`).
pub const KEYS: [(&str, &str); 2] = [("log", "level"), ("log", "format")];

/// How lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl ConfigValue for Format {
    fn parse_config(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            _ => Err("text or json".into()),
        }
    }

    fn show(&self) -> String {
        match self {
            Format::Text => "text".into(),
            Format::Json => "json".into(),
        }
    }
}

/// A level filter as configuration spells it: `off`, `error`, `warn`, `info`, `debug`, `trace`.
impl ConfigValue for LevelFilter {
    fn parse_config(text: &str) -> Result<Self, String> {
        text.parse().map_err(|_| "off, error, warn, info, debug or trace".into())
    }

    fn show(&self) -> String {
        self.as_str().to_ascii_lowercase()
    }
}

/// What the logger is told by the configuration; [`apply`] changes it while running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The most verbose level written.
    pub level: LevelFilter,
    /// The line format.
    pub format: Format,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { level: LevelFilter::Info, format: Format::Text }
    }
}

static LOGGER: OnceLock<&'static Logger> = OnceLock::new();

/// Installs the logger for `program` with `settings`, or, when it is installed already (a
/// reload, or a second daemon in one test process), applies the settings.
pub fn init(program: &str, settings: Settings) {
    let mut fresh = false;
    let logger = *LOGGER.get_or_init(|| {
        fresh = true;
        let journal = stderr_is_journal();
        Box::leak(Box::new(Logger {
            program: program.to_string(),
            format: AtomicU8::new(0),
            journal,
            clock: Clock::new(),
            limiter: Mutex::new(Limiter::new(BURST, WINDOW)),
        }))
    });
    if fresh {
        // Fails only if another logger was set first (a test harness's); then that one writes.
        let _ = log::set_logger(logger);
    }
    apply(settings);
}

/// Whether [`init`] has installed the logger.
pub fn installed() -> bool {
    LOGGER.get().is_some()
}

/// Changes the level and format of the installed logger.
pub fn apply(settings: Settings) {
    log::set_max_level(settings.level);
    if let Some(logger) = LOGGER.get() {
        logger.format.store(settings.format as u8, Ordering::Relaxed);
    }
}

/// Writes the summaries of every suppressed run, whether or not its window has ended: for a
/// daemon about to exit.
pub fn finish() {
    if let Some(logger) = LOGGER.get() {
        logger.flush_summaries(true);
    }
}

/// Whether stderr is the journal stream of `JOURNAL_STREAM` (`DEVICE:INODE`), as systemd
/// documents for services whose output goes to the journal.
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else { return false };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else { return false };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else { return false };
    std::fs::File::from(fd).metadata().is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

struct Logger {
    program: String,
    /// A [`Format`] as `u8`.
    format: AtomicU8,
    journal: bool,
    clock: Clock,
    limiter: Mutex<Limiter>,
}

impl Logger {
    fn format(&self) -> Format {
        if self.format.load(Ordering::Relaxed) == Format::Json as u8 { Format::Json } else { Format::Text }
    }

    fn write(&self, level: Level, target: &str, message: &str, suppressed: u64) {
        let line = match self.format() {
            Format::Text if self.journal => format!("<{}>{message}\n", syslog_priority(level)),
            Format::Text => {
                let time = utc_timestamp(Clock::unix_nanos() / 1000);
                format!("{time} {:<5} {}: {message}\n", level.as_str(), self.program)
            }
            Format::Json => {
                let mut line = String::with_capacity(message.len() + 128);
                let time = utc_timestamp(Clock::unix_nanos() / 1000);
                let level = level.as_str().to_ascii_lowercase();
                let _ = write!(line, "{{\"time\":\"{time}\",\"level\":\"{level}\",\"program\":");
                json_string(&mut line, &self.program);
                line.push_str(",\"target\":");
                json_string(&mut line, target);
                line.push_str(",\"message\":");
                json_string(&mut line, message);
                if suppressed > 0 {
                    let _ = write!(line, ",\"suppressed\":{suppressed}");
                }
                line.push_str("}\n");
                line
            }
        };
        // One write per line; a failed write to stderr has nowhere to be reported.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush_summaries(&self, all: bool) {
        let summaries = self.limiter.lock().unwrap_or_else(|p| p.into_inner()).expired(self.clock.now(), all);
        for summary in summaries {
            self.write_summary(&summary);
        }
    }

    fn write_summary(&self, summary: &Summary) {
        let message = format!(
            "{} more like this suppressed in the last {} s: {}",
            summary.suppressed,
            summary.seconds.max(1),
            summary.example
        );
        self.write(summary.level, &summary.target, &message, summary.suppressed);
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // Other crates' chatter (the MySQL driver's debug lines) only when it is a warning.
        metadata.level() <= log::max_level()
            && (metadata.target().starts_with("lars") || metadata.level() <= Level::Warn)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let site = (record.file_static().unwrap_or("?"), record.line().unwrap_or(0));
        let now = self.clock.now();
        let decision = self.limiter.lock().unwrap_or_else(|p| p.into_inner()).check(site, now, || Pending {
            level: record.level(),
            target: record.target().to_string(),
            example: record.args().to_string(),
        });
        if let Some(summary) = &decision.summary {
            self.write_summary(summary);
        }
        if decision.write {
            self.write(record.level(), record.target(), &record.args().to_string(), 0);
        }
    }

    fn flush(&self) {
        self.flush_summaries(false);
    }
}

/// The priority prefix journald reads from a stream line (`sd-daemon.h`'s `SD_ERR` and so on).
fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Appends `text` as a JSON string.
fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `2026-12-01T11:20:03.123456Z` for microseconds since the Unix epoch (UTC).
fn utc_timestamp(unix_micros: u64) -> String {
    let utc = crate::time::UtcTime::from_unix_micros(unix_micros);
    format!("{}T{}.{:06}Z", utc.date(), utc.time(), utc.micros)
}

/// A call site: source file and line.
type Site = (&'static str, u32);

/// What a suppressed run looked like, kept from its first suppressed record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    level: Level,
    target: String,
    example: String,
}

/// A run of suppressed records, to be written as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Summary {
    level: Level,
    target: String,
    example: String,
    suppressed: u64,
    seconds: u64,
}

#[derive(Debug, Default)]
struct Decision {
    /// Write the record.
    write: bool,
    /// First write this summary of the site's last window.
    summary: Option<Summary>,
}

struct SiteWindow {
    started: lars_core::time::Instant,
    written: u32,
    suppressed: u64,
    pending: Option<Pending>,
}

/// Counts records per call site in fixed windows; time is a parameter, so it is tested
/// without a clock.
struct Limiter {
    burst: u32,
    window: lars_core::time::Duration,
    sites: HashMap<Site, SiteWindow>,
}

impl Limiter {
    fn new(burst: u32, window: std::time::Duration) -> Limiter {
        Limiter { burst, window: crate::time::from_std(window), sites: HashMap::new() }
    }

    /// Whether a record from `site` at `now` is written; `describe` is called only for the
    /// first record a window suppresses.
    fn check(
        &mut self,
        site: Site,
        now: lars_core::time::Instant,
        describe: impl FnOnce() -> Pending,
    ) -> Decision {
        let window = self.window;
        let entry = self.sites.entry(site).or_insert(SiteWindow {
            started: now,
            written: 0,
            suppressed: 0,
            pending: None,
        });
        let mut decision = Decision::default();
        if now.saturating_since(entry.started) >= window {
            decision.summary = Self::close(entry, now);
            *entry = SiteWindow { started: now, written: 0, suppressed: 0, pending: None };
        }
        if entry.written < self.burst {
            entry.written += 1;
            decision.write = true;
        } else {
            entry.suppressed += 1;
            if entry.pending.is_none() {
                entry.pending = Some(describe());
            }
        }
        decision
    }

    /// The summaries of windows that ended by `now` (of every window, with `all`); their
    /// sites start over.
    fn expired(&mut self, now: lars_core::time::Instant, all: bool) -> Vec<Summary> {
        let window = self.window;
        let mut summaries = Vec::new();
        for entry in self.sites.values_mut() {
            if entry.suppressed > 0 && (all || now.saturating_since(entry.started) >= window) {
                summaries.extend(Self::close(entry, now));
                *entry = SiteWindow { started: now, written: 0, suppressed: 0, pending: None };
            }
        }
        summaries
    }

    fn close(entry: &mut SiteWindow, now: lars_core::time::Instant) -> Option<Summary> {
        let pending = entry.pending.take()?;
        Some(Summary {
            level: pending.level,
            target: pending.target,
            example: pending.example,
            suppressed: entry.suppressed,
            seconds: now.saturating_since(entry.started).as_millis().div_ceil(1000),
        })
    }
}

#[cfg(test)]
mod tests {
    use lars_core::time::{Duration, Instant};

    use super::*;

    fn pending(text: &str) -> Pending {
        Pending { level: Level::Info, target: "lars_std::agent".into(), example: text.into() }
    }

    #[test]
    fn a_site_writes_its_burst_then_counts_and_sums_up() {
        let mut limiter = Limiter::new(3, std::time::Duration::from_secs(10));
        let site = ("agent.rs", 10);
        let other = ("agent.rs", 20);
        let at = |s: u64| Instant::from_micros(0) + Duration::from_secs(s);
        let written: Vec<bool> =
            (0..5).map(|i| limiter.check(site, at(0), || pending(&format!("line {i}"))).write).collect();
        assert_eq!(written, [true, true, true, false, false]);
        assert!(limiter.check(other, at(1), || pending("other")).write, "another site has its own burst");
        assert!(limiter.expired(at(9), false).is_empty(), "the window has not ended");
        let decision = limiter.check(site, at(10), || pending("next"));
        assert!(decision.write, "a new window writes again");
        assert_eq!(
            decision.summary,
            Some(Summary {
                level: Level::Info,
                target: "lars_std::agent".into(),
                example: "line 3".into(),
                suppressed: 2,
                seconds: 10,
            })
        );
        for _ in 0..3 {
            limiter.check(site, at(11), || pending("flood"));
        }
        let summaries = limiter.expired(at(12), true);
        assert_eq!(summaries.len(), 1);
        assert_eq!((summaries[0].suppressed, summaries[0].example.as_str()), (1, "flood"));
        assert!(limiter.expired(at(30), true).is_empty(), "nothing left to sum up");
    }

    #[test]
    fn timestamps_are_utc_dates() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00.000000Z");
        // 2026-12-01T11:20:03.123456Z
        assert_eq!(utc_timestamp(1_796_124_003_123_456), "2026-12-01T11:20:03.123456Z");
        // 2024-02-29 (a leap day) 23:59:59
        assert_eq!(utc_timestamp(1_709_251_199_000_000), "2024-02-29T23:59:59.000000Z");
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        json_string(&mut out, "a \"b\"\\\n\u{1}é");
        assert_eq!(out, r#""a \"b\"\\\n\u0001é""#);
    }

    #[test]
    fn levels_and_formats_read_from_config() {
        assert_eq!(LevelFilter::parse_config("DEBUG"), Ok(LevelFilter::Debug));
        assert_eq!(LevelFilter::parse_config("loud"), Err("off, error, warn, info, debug or trace".into()));
        assert_eq!(Format::parse_config("Json"), Ok(Format::Json));
        assert_eq!(LevelFilter::Warn.show(), "warn");
    }
}
