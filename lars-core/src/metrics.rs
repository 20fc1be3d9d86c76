//! The Prometheus text exposition format (`metrics` layer), written into any
//! [`core::fmt::Write`] without allocating: one encoder for every daemon and the gateway.
//!
//! A scrape is a sequence of metric families. Each family starts with its `# HELP` and
//! `# TYPE` lines ([`Encoder::family`]) and is followed by its samples ([`Encoder::sample`]),
//! one line each: the name, the labels in braces, a space and the value. The encoder escapes
//! what the format requires (in HELP text `\` and line feeds; in label values also `"`), and
//! refuses, with [`core::fmt::Error`], a metric or label name the format does not allow, so a
//! bad name can never produce a page that Prometheus rejects as a whole.
//!
//! ```
//! use lars_core::metrics::{Encoder, Kind};
//! let mut page = heapless::String::<256>::new();
//! let mut enc = Encoder::new(&mut page);
//! enc.family("lars_dns_pushes_total", Kind::Counter, "Route pushes sent.").unwrap();
//! enc.sample("lars_dns_pushes_total", &[], 42u64).unwrap();
//! assert!(page.ends_with("lars_dns_pushes_total 42\n"));
//! ```

use core::fmt::{self, Write};

/// What a family's samples mean (the `# TYPE` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (reset when the process restarts). Named `..._total` by convention.
    Counter,
    /// Goes up and down: a level, a size, a state.
    Gauge,
    /// A `_sum` and a `_count` sample, so that `rate(sum) / rate(count)` is a mean.
    Summary,
    /// Of no declared kind (what a daemon exports for a counter it has no description of).
    Untyped,
}

impl Kind {
    /// The word on the `# TYPE` line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
            Kind::Untyped => "untyped",
        }
    }
}

/// A sample's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A whole number (every counter).
    Int(i64),
    /// An unsigned whole number.
    Uint(u64),
    /// A fraction or a time in seconds.
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Uint(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::Uint(u64::from(v))
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Uint(u64::from(v))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Uint(v) => write!(f, "{v}"),
            Value::Float(v) if v.is_nan() => f.write_str("NaN"),
            Value::Float(v) if v == f64::INFINITY => f.write_str("+Inf"),
            Value::Float(v) if v == f64::NEG_INFINITY => f.write_str("-Inf"),
            Value::Float(v) => write!(f, "{v}"),
        }
    }
}

/// A label: its name (a fixed identifier) and its value (anything printable, escaped).
pub type Label<'a> = (&'a str, &'a dyn fmt::Display);

/// Writes the text format into `W`.
pub struct Encoder<W: Write> {
    out: W,
}

impl<W: Write> Encoder<W> {
    /// An encoder writing into `out`.
    pub fn new(out: W) -> Self {
        Encoder { out }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines. Its samples follow, before any other
    /// family starts (the format wants a family's lines together).
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> fmt::Result {
        check_name(name, true)?;
        self.out.write_str("# HELP ")?;
        self.out.write_str(name)?;
        self.out.write_char(' ')?;
        Escaped { out: &mut self.out, quotes: false }.write_str(help)?;
        self.out.write_str("\n# TYPE ")?;
        self.out.write_str(name)?;
        self.out.write_char(' ')?;
        self.out.write_str(kind.as_str())?;
        self.out.write_char('\n')
    }

    /// One sample line: `name{label="value",...} value`. For a summary, `name` is the
    /// family's name with `_sum` or `_count` added.
    pub fn sample(&mut self, name: &str, labels: &[Label<'_>], value: impl Into<Value>) -> fmt::Result {
        check_name(name, true)?;
        self.out.write_str(name)?;
        if !labels.is_empty() {
            self.out.write_char('{')?;
            for (i, (label, text)) in labels.iter().enumerate() {
                check_name(label, false)?;
                if i > 0 {
                    self.out.write_char(',')?;
                }
                self.out.write_str(label)?;
                self.out.write_str("=\"")?;
                write!(Escaped { out: &mut self.out, quotes: true }, "{text}")?;
                self.out.write_char('"')?;
            }
            self.out.write_char('}')?;
        }
        writeln!(self.out, " {}", value.into())
    }
}

/// A metric name matches `[a-zA-Z_:][a-zA-Z0-9_:]*`; a label name the same without `:` (and
/// names starting `__` are reserved).
fn check_name(name: &str, metric: bool) -> fmt::Result {
    let allowed = |c: u8, first: bool| {
        c.is_ascii_alphabetic() || c == b'_' || (metric && c == b':') || (!first && c.is_ascii_digit())
    };
    let bytes = name.as_bytes();
    let valid = !bytes.is_empty()
        && allowed(bytes[0], true)
        && bytes[1..].iter().all(|&c| allowed(c, false))
        && (metric || !name.starts_with("__"));
    if valid { Ok(()) } else { Err(fmt::Error) }
}

/// Escapes `\` and line feeds (and `"` in label values) on the way to `out`.
struct Escaped<'a, W: Write> {
    out: &'a mut W,
    quotes: bool,
}

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(at) = rest.find(|c| c == '\\' || c == '\n' || (self.quotes && c == '"')) {
            self.out.write_str(&rest[..at])?;
            self.out.write_str(match rest.as_bytes()[at] {
                b'\\' => "\\\\",
                b'\n' => "\\n",
                _ => "\\\"",
            })?;
            rest = &rest[at + 1..];
        }
        self.out.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use std::string::String;

    use super::*;

    fn page(build: impl FnOnce(&mut Encoder<&mut String>) -> fmt::Result) -> Result<String, fmt::Error> {
        let mut text = String::new();
        build(&mut Encoder::new(&mut text))?;
        Ok(text)
    }

    #[test]
    fn golden_counters_gauges_and_labels() {
        let text = page(|enc| {
            enc.family("lars_dns_pushes_total", Kind::Counter, "Route pushes sent.")?;
            enc.sample("lars_dns_pushes_total", &[], 1234u64)?;
            enc.family("lars_agent_route_hosts", Kind::Gauge, "Hosts of a route, by state.")?;
            enc.sample(
                "lars_agent_route_hosts",
                &[("modid", &1001), ("cmdid", &2), ("state", &"idle")],
                3u64,
            )?;
            enc.sample(
                "lars_agent_route_hosts",
                &[("modid", &-5), ("cmdid", &7), ("state", &"overloaded")],
                0u64,
            )?;
            enc.family(
                "lars_dns_push_latency_seconds",
                Kind::Summary,
                "From noticing a change to its push.",
            )?;
            enc.sample("lars_dns_push_latency_seconds_sum", &[], 0.25)?;
            enc.sample("lars_dns_push_latency_seconds_count", &[], 8u64)?;
            enc.family("lars_up", Kind::Gauge, "")?;
            enc.sample("lars_up", &[], true)
        })
        .unwrap();
        assert_eq!(
            text,
            "# HELP lars_dns_pushes_total Route pushes sent.\n\
             # TYPE lars_dns_pushes_total counter\n\
             lars_dns_pushes_total 1234\n\
             # HELP lars_agent_route_hosts Hosts of a route, by state.\n\
             # TYPE lars_agent_route_hosts gauge\n\
             lars_agent_route_hosts{modid=\"1001\",cmdid=\"2\",state=\"idle\"} 3\n\
             lars_agent_route_hosts{modid=\"-5\",cmdid=\"7\",state=\"overloaded\"} 0\n\
             # HELP lars_dns_push_latency_seconds From noticing a change to its push.\n\
             # TYPE lars_dns_push_latency_seconds summary\n\
             lars_dns_push_latency_seconds_sum 0.25\n\
             lars_dns_push_latency_seconds_count 8\n\
             # HELP lars_up \n\
             # TYPE lars_up gauge\n\
             lars_up 1\n"
        );
    }

    #[test]
    fn golden_escaping() {
        let text = page(|enc| {
            enc.family("x_total", Kind::Counter, "a \\ back\nslash \"quoted\"")?;
            enc.sample("x_total", &[("path", &"C:\\dir\n\"q\"")], 1u64)
        })
        .unwrap();
        assert_eq!(
            text,
            "# HELP x_total a \\\\ back\\nslash \"quoted\"\n\
             # TYPE x_total counter\n\
             x_total{path=\"C:\\\\dir\\n\\\"q\\\"\"} 1\n"
        );
    }

    #[test]
    fn golden_special_floats() {
        let text = page(|enc| {
            enc.sample("a", &[], f64::NAN)?;
            enc.sample("b", &[], f64::INFINITY)?;
            enc.sample("c", &[], f64::NEG_INFINITY)?;
            enc.sample("d", &[], -3i64)?;
            enc.sample("e", &[], 0.7)
        })
        .unwrap();
        assert_eq!(text, "a NaN\nb +Inf\nc -Inf\nd -3\ne 0.7\n");
    }

    #[test]
    fn bad_names_are_refused() {
        for name in ["", "1abc", "a-b", "a b", "é"] {
            assert!(page(|enc| enc.sample(name, &[], 1u64)).is_err(), "{name:?}");
            assert!(page(|enc| enc.family(name, Kind::Gauge, "h")).is_err(), "{name:?}");
        }
        assert!(page(|enc| enc.sample("ns:sub_total", &[], 1u64)).is_ok(), "colons are allowed in names");
        for label in ["", "a:b", "__reserved", "9"] {
            assert!(page(|enc| enc.sample("m", &[(label, &1)], 1u64)).is_err(), "{label:?}");
        }
    }

    #[test]
    fn a_full_buffer_is_an_error_not_a_panic() {
        let mut small = heapless::String::<16>::new();
        let mut enc = Encoder::new(&mut small);
        assert!(enc.family("lars_dns_pushes_total", Kind::Counter, "Route pushes sent.").is_err());
    }
}
