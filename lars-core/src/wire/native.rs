//! Native bodies (msgids 0x100..): postcard-encoded messages that extend the Lars protocol.
//!
//! The postcard format is written by hand here (`native/codec.rs`), not through the `postcard` and
//! `serde` crates: the handful of primitives these bodies use fit in a page, and the two crates
//! with their derive macros were eleven of a lean binary's twenty crates. A differential test
//! checks the bytes against `postcard` itself.
//!
//! They add what the original lacks: a hello with a protocol version, IPv6 hosts, route versions,
//! host weights, call outcomes with latency, batched reports, batched call statistics and a
//! heartbeat. Every body is plain postcard of the struct as declared here, fields in order; a
//! list is postcard's `varint(len)` followed by the items. `docs/PROTOCOL.md` pins each message
//! with a byte vector, and the tests below check the same vectors.
//!
//! Decoding is strict: a truncated body, trailing bytes, an unknown enum tag or an over-long
//! varint is an [`Error`]. Lists are validated once and then walked in place ([`List`]).

use core::net::SocketAddr;

use super::{Decode, Encode, Error, List, RetCode};
pub use crate::lb::{Change, Reason};
use codec::{Field, Writer, finish};

mod codec;

/// Encodes and decodes an enum as postcard does: its variant's index, as a varint.
macro_rules! tag_enum {
    ($ty:ident { $($variant:ident),* }) => {
        impl<'a> Field<'a> for $ty {
            fn encoded_len(&self) -> usize {
                (*self as u32).encoded_len()
            }

            fn put(&self, out: &mut Writer<'_>) {
                (*self as u32).put(out)
            }

            fn take(input: &mut &'a [u8]) -> Result<Self, Error> {
                const VARIANTS: &[$ty] = &[$($ty::$variant),*];
                let tag = u32::take(input)?;
                VARIANTS.get(tag as usize).copied().ok_or(Error::BadValue)
            }
        }
    };
}

/// Encodes and decodes a struct as postcard does: its fields in the order listed, which must be
/// the order declared.
macro_rules! fields {
    ($ty:ident $(<$lt:lifetime>)? { $($field:ident),* }) => {
        impl<'a> Field<'a> for $ty $(<$lt>)? {
            fn encoded_len(&self) -> usize {
                0 $(+ self.$field.encoded_len())*
            }

            fn put(&self, out: &mut Writer<'_>) {
                $(self.$field.put(out);)*
            }

            fn take(input: &mut &'a [u8]) -> Result<Self, Error> {
                // A struct expression evaluates its fields in the order written.
                Ok($ty { $($field: Field::take(input)?),* })
            }
        }
    };
}

/// A message body: the whole body is one value, with nothing after it.
macro_rules! body {
    ($($ty:ty),*) => {$(
        impl<'a> Encode for $ty {
            fn buffer_len(&self) -> usize {
                self.encoded_len()
            }

            fn emit(&self, out: &mut [u8]) -> Result<usize, Error> {
                let mut writer = Writer::new(out);
                self.put(&mut writer);
                writer.finish()
            }
        }

        impl<'a> Decode<'a> for $ty {
            fn parse(mut body: &'a [u8]) -> Result<Self, Error> {
                let value = Field::take(&mut body)?;
                finish(body)?;
                Ok(value)
            }
        }
    )*};
}

/// The native protocol version this code speaks, sent in [`Hello`].
pub const PROTOCOL_VERSION: u16 = 1;

/// What a peer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A lars-agent on a server.
    Agent,
    /// An API client of an agent.
    Api,
    /// A lars-dns.
    Dns,
    /// A lars-reporter.
    Reporter,
    /// A gateway agent on a microcontroller.
    Gateway,
}

/// Opens a native link (msgid 0x100); the peer answers with its own `Hello`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// The sender's [`PROTOCOL_VERSION`].
    pub version: u16,
    /// What the sender is.
    pub role: Role,
    /// The sender's id (an agent sends its IPv4 address as an integer, as the original's caller).
    pub node: u32,
    /// The largest frame body the sender accepts.
    pub max_body: u32,
}

impl Hello {
    /// How a daemon (lars-dns, lars-reporter) introduces itself as `role`, in a `Hello` or an
    /// [`AuthChallenge`]: this [`PROTOCOL_VERSION`], node 0 (a daemon is nobody's caller) and
    /// the largest body a frame may carry.
    pub const fn of_daemon(role: Role) -> Hello {
        Hello { version: PROTOCOL_VERSION, role, node: 0, max_body: super::frame::MAX_BODY }
    }

    /// A daemon's answer to the `Hello` whose body is `peer`: its own [`Hello::of_daemon`] once
    /// `peer` decodes (what the peer says changes nothing: every version is answered alike).
    pub fn answer(peer: &[u8], role: Role) -> Result<Hello, Error> {
        Hello::parse(peer)?;
        Ok(Hello::of_daemon(role))
    }
}

/// Bytes of an authentication nonce.
pub const NONCE_LEN: usize = 16;
/// Bytes of an authentication proof (an HMAC-SHA256 tag).
pub const PROOF_LEN: usize = 32;

/// Opens a link that proves a shared secret (msgid 0x102): a [`Hello`] with the sender's fresh
/// nonce. The peer answers with an [`AuthChallenge`]. See `lars_core::auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthHello {
    /// The sender's [`PROTOCOL_VERSION`].
    pub version: u16,
    /// What the sender is.
    pub role: Role,
    /// The identity the sender claims (an agent's IPv4 address as an integer).
    pub node: u32,
    /// The largest frame body the sender accepts.
    pub max_body: u32,
    /// Random bytes, new for each link.
    pub nonce: [u8; NONCE_LEN],
}

/// The answer to an [`AuthHello`] (msgid 0x103): the server's own hello, its fresh nonce, and
/// its proof that it holds the secret, bound to both nonces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthChallenge {
    /// The server's [`PROTOCOL_VERSION`].
    pub version: u16,
    /// What the server is.
    pub role: Role,
    /// The server's id (0 for lars-dns and lars-reporter).
    pub node: u32,
    /// The largest frame body the server accepts.
    pub max_body: u32,
    /// Random bytes, new for each link.
    pub nonce: [u8; NONCE_LEN],
    /// The server's proof.
    pub proof: [u8; PROOF_LEN],
}

/// The client's proof (msgid 0x104), after it checked the server's: the link is authenticated
/// once the server has checked it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthProof {
    /// The client's proof.
    pub proof: [u8; PROOF_LEN],
}

/// Keep-alive (msgid 0x101); the peer echoes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// Sender's sequence number, echoed.
    pub seq: u32,
}

/// Asks an agent for one host of a route (msgid 0x110).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetHostRequest {
    /// Caller's sequence number, echoed.
    pub seq: u32,
    /// Module id.
    pub modid: i32,
    /// Command id.
    pub cmdid: i32,
    /// Affinity key for consistent-hash routes; other policies ignore it.
    pub key: Option<u64>,
}

/// An agent's answer to [`GetHostRequest`] (msgid 0x111).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetHostResponse {
    /// The request's sequence number.
    pub seq: u32,
    /// Module id.
    pub modid: i32,
    /// Command id.
    pub cmdid: i32,
    /// Outcome of the request.
    pub code: RetCode,
    /// The chosen host, present when `code` is [`RetCode::Succ`].
    pub host: Option<SocketAddr>,
}

/// How a call to a host ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call succeeded.
    Ok,
    /// The call failed.
    Fail,
    /// The host refused the call because it is overloaded.
    Overload,
}

/// The result of one call (msgid 0x112, or an item of [`ReportBatch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Module id.
    pub modid: i32,
    /// Command id.
    pub cmdid: i32,
    /// The host that was called.
    pub host: SocketAddr,
    /// How the call ended.
    pub outcome: Outcome,
    /// The call's latency in microseconds.
    pub latency_us: u32,
}

/// Many call results in one datagram (msgid 0x113).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBatch<'a> {
    /// The results, oldest first.
    pub reports: List<'a, Report>,
}

/// Asks for a route's hosts (msgid 0x120): an API asks its agent, an agent asks lars-dns (which
/// also subscribes the agent to later changes of the route).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetRouteRequest {
    /// Caller's sequence number, echoed.
    pub seq: u32,
    /// Module id.
    pub modid: i32,
    /// Command id.
    pub cmdid: i32,
}

/// A host and its weight in a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WeightedHost {
    /// The host's address.
    pub addr: SocketAddr,
    /// Its relative weight (1 when the store has none).
    pub weight: u32,
}

/// A route's hosts (msgid 0x121): the answer to [`GetRouteRequest`] and every later push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteResponse<'a> {
    /// The request's sequence number; 0 in a push.
    pub seq: u32,
    /// Module id.
    pub modid: i32,
    /// Command id.
    pub cmdid: i32,
    /// [`RetCode::Succ`], or [`RetCode::NoExist`] when the route is unknown or was deleted.
    pub code: RetCode,
    /// The store's route version this list was taken at.
    pub version: u64,
    /// Every host of the route.
    pub hosts: List<'a, WeightedHost>,
}

/// One host's call statistics over a reporting period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostStats {
    /// Module id.
    pub modid: i32,
    /// Command id.
    pub cmdid: i32,
    /// The host.
    pub host: SocketAddr,
    /// Successful calls.
    pub succ: u32,
    /// Failed calls (overloads included).
    pub err: u32,
    /// Calls refused as overloaded.
    pub overload: u32,
    /// Whether the agent considers the host overloaded at the end of the period.
    pub overloaded: bool,
    /// Sum of the calls' latencies, in microseconds.
    pub latency_sum_us: u64,
    /// The slowest call, in microseconds.
    pub latency_max_us: u32,
}

/// The longest encoding of the fields of a `CallStats` or `StatusReport` body before its
/// entries: the caller and the timestamp as 5-byte varints, and the entry count (3 bytes
/// within `MAX_BODY`). Senders size their frames with it.
pub const STATS_HEAD_MAX_LEN: usize = 13;

/// Entries a sender puts in one report frame at most: an agent's `StatusReport` and
/// `DecisionReport`, a lease's `CallStats`, and the Lars `ReportStatusRequest` too. Each sender
/// builds its list in a stack array this long; its transmit buffer may allow fewer.
pub const REPORT_CHUNK: usize = 64;

impl HostStats {
    /// The longest encoding of one entry: every varint at its longest, and an IPv6 host.
    pub const MAX_ENCODED_LEN: usize = 61;

    /// No calls yet to `host` of `(modid, cmdid)`.
    pub const fn empty(modid: i32, cmdid: i32, host: SocketAddr) -> HostStats {
        HostStats {
            modid,
            cmdid,
            host,
            succ: 0,
            err: 0,
            overload: 0,
            overloaded: false,
            latency_sum_us: 0,
            latency_max_us: 0,
        }
    }
}

/// An agent's call statistics for one period (msgid 0x130), to lars-reporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallStats<'a> {
    /// The reporting agent's id.
    pub caller: u32,
    /// Unix time in seconds at the end of the period.
    pub ts: u32,
    /// Per-host statistics.
    pub entries: List<'a, HostStats>,
}

/// One host as an agent reports it to lars-reporter: the period's calls, and the host's counts
/// since its balancer last changed its state (made it idle or overloaded, or restarted its
/// window), which is what the original stored in `ServerCallStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostReport {
    /// The period's calls.
    pub stats: HostStats,
    /// Successful calls since the host's last state change.
    pub window_succ: u32,
    /// Failed calls since the host's last state change.
    pub window_err: u32,
}

impl HostReport {
    /// The longest encoding of one entry: a `HostStats` and the two window counts.
    pub const MAX_ENCODED_LEN: usize = HostStats::MAX_ENCODED_LEN + 2 * 5;
}

/// An agent's statistics for one period (msgid 0x131), to lars-reporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusReport<'a> {
    /// The reporting agent's id.
    pub caller: u32,
    /// Unix time in seconds at the end of the period.
    pub ts: u32,
    /// Per-host reports.
    pub entries: List<'a, HostReport>,
}

/// A change of a host's state that an agent's balancer made, and why (an item of
/// [`DecisionReport`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostDecision {
    /// Module id.
    pub modid: i32,
    /// Command id.
    pub cmdid: i32,
    /// The host.
    pub host: SocketAddr,
    /// How long before the report's `ts` it happened, in milliseconds.
    pub age_ms: u32,
    /// What changed.
    pub change: Change,
    /// Why, in numbers.
    pub reason: Reason,
}

impl HostDecision {
    /// The longest encoding of one entry: modid and cmdid (5 each), an IPv6 host (20), the
    /// age (5), the change (1) and a reason with three 5-byte numbers (16). A
    /// `DecisionReport`'s head is at most [`STATS_HEAD_MAX_LEN`], as a `StatusReport`'s.
    pub const MAX_ENCODED_LEN: usize = 52;
}

/// An agent's decision log since its last one (msgid 0x132), to lars-reporter, sent with its
/// statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionReport<'a> {
    /// The reporting agent's id.
    pub caller: u32,
    /// Unix time in seconds when it was sent (0 when the agent has no clock).
    pub ts: u32,
    /// The decisions, oldest first.
    pub entries: List<'a, HostDecision>,
}

/// `Reason` as postcard encodes an enum with data: the variant's index, then its fields.
impl<'a> Field<'a> for Reason {
    fn encoded_len(&self) -> usize {
        let (tag, numbers, flag) = self.parts();
        tag.encoded_len() + numbers.iter().map(|n| n.encoded_len()).sum::<usize>() + flag.map_or(0, |_| 1)
    }

    fn put(&self, out: &mut Writer<'_>) {
        let (tag, numbers, flag) = self.parts();
        tag.put(out);
        if let Some(flag) = flag {
            flag.put(out);
        }
        for number in numbers {
            number.put(out);
        }
    }

    fn take(input: &mut &'a [u8]) -> Result<Self, Error> {
        let mut n = || u32::take(input);
        Ok(match n()? {
            0 => Reason::ConsecutiveFailures { count: n()?, limit: n()? },
            1 => Reason::ConsecutiveSuccesses { count: n()?, limit: n()? },
            2 => Reason::ErrorRate { part: n()?, whole: n()?, limit_ppm: n()? },
            3 => Reason::SuccessRate { part: n()?, whole: n()?, limit_ppm: n()? },
            4 => Reason::WindowErrorRate { part: n()?, whole: n()?, limit_ppm: n()? },
            5 => Reason::OverloadTimeout { secs: n()? },
            6 => {
                let ok = bool::take(input)?;
                Reason::Probe { ok, secs: u32::take(input)? }
            }
            7 => Reason::SlowStart { secs: u32::take(input)? },
            _ => return Err(Error::BadValue),
        })
    }
}

impl Reason {
    /// The variant's index, its numbers in order, and the probe's flag (which comes first).
    fn parts(&self) -> (u32, heapless::Vec<u32, 3>, Option<bool>) {
        let numbers = |ns: &[u32]| heapless::Vec::from_slice(ns).unwrap_or_default();
        match *self {
            Reason::ConsecutiveFailures { count, limit } => (0, numbers(&[count, limit]), None),
            Reason::ConsecutiveSuccesses { count, limit } => (1, numbers(&[count, limit]), None),
            Reason::ErrorRate { part, whole, limit_ppm } => (2, numbers(&[part, whole, limit_ppm]), None),
            Reason::SuccessRate { part, whole, limit_ppm } => (3, numbers(&[part, whole, limit_ppm]), None),
            Reason::WindowErrorRate { part, whole, limit_ppm } => {
                (4, numbers(&[part, whole, limit_ppm]), None)
            }
            Reason::OverloadTimeout { secs } => (5, numbers(&[secs]), None),
            Reason::Probe { ok, secs } => (6, numbers(&[secs]), Some(ok)),
            Reason::SlowStart { secs } => (7, numbers(&[secs]), None),
        }
    }
}

/// Asks an agent for the decisions in its log (msgid 0x142): the newest that match, a page
/// at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionsRequest {
    /// Caller's sequence number, echoed.
    pub seq: u32,
    /// Only this module's routes.
    pub modid: Option<i32>,
    /// Only this command's routes.
    pub cmdid: Option<i32>,
    /// Matching decisions to skip, newest first (0 for the first page).
    pub skip: u32,
}

/// An agent's answer to [`DecisionsRequest`] (msgid 0x143): at most [`DECISIONS_PAGE`]
/// decisions, newest first; fewer means there are no more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionsResponse<'a> {
    /// The request's sequence number.
    pub seq: u32,
    /// The decisions; each `age_ms` counts back from the answer.
    pub entries: List<'a, HostDecision>,
}

/// Decisions per [`DecisionsResponse`] at most.
pub const DECISIONS_PAGE: usize = 16;

/// Asks a daemon for its counters (msgid 0x140).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsRequest {
    /// Caller's sequence number, echoed.
    pub seq: u32,
}

/// One named counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter<'a> {
    /// What it counts, such as `frames_in`.
    pub name: &'a str,
    /// Its value.
    pub value: u64,
}

/// A daemon's counters (msgid 0x141), the answer to [`StatsRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsResponse<'a> {
    /// The request's sequence number.
    pub seq: u32,
    /// What answered.
    pub role: Role,
    /// The counters, in the daemon's order.
    pub counters: List<'a, Counter<'a>>,
}

/// Counters kept in more than one place (a service's own and those of the program around it),
/// walked in order instead of gathered into a list first: what [`StatsResponseFrom`] encodes.
pub trait CounterSource {
    /// Calls `each` with every counter, in the same order and with the same values every time
    /// it is called for one answer (it is called once to size the answer and once to write it).
    fn for_each(&self, each: &mut dyn FnMut(Counter<'_>));
}

/// Counters as `(name, value)` pairs; `[]` is none.
impl<const N: usize> CounterSource for [(&str, u64); N] {
    fn for_each(&self, each: &mut dyn FnMut(Counter<'_>)) {
        for &(name, value) in self {
            each(Counter { name, value });
        }
    }
}

/// A [`StatsResponse`] (msgid 0x141) whose counters come from a [`CounterSource`]. It encodes
/// to exactly the bytes of the `StatsResponse` holding those counters as a list, and is
/// decoded as one. Besides `BufferTooSmall`, `emit` fails with `BadValue` when the source
/// breaks its promise and gives fewer counters the second time.
#[derive(Clone, Copy)]
pub struct StatsResponseFrom<'a> {
    /// The request's sequence number.
    pub seq: u32,
    /// What answered.
    pub role: Role,
    /// The counters, in order.
    pub counters: &'a dyn CounterSource,
}

impl StatsResponseFrom<'_> {
    fn count_and_len(&self) -> (u64, usize) {
        let (mut count, mut len) = (0u64, 0);
        self.counters.for_each(&mut |counter| {
            count += 1;
            len += counter.encoded_len();
        });
        (count, len)
    }
}

impl Encode for StatsResponseFrom<'_> {
    fn buffer_len(&self) -> usize {
        let (count, items) = self.count_and_len();
        self.seq.encoded_len() + self.role.encoded_len() + count.encoded_len() + items
    }

    fn emit(&self, out: &mut [u8]) -> Result<usize, Error> {
        // A list is its length, then its items: count them first.
        let (count, _) = self.count_and_len();
        let mut writer = Writer::new(out);
        self.seq.put(&mut writer);
        self.role.put(&mut writer);
        count.put(&mut writer);
        let mut written = 0u64;
        self.counters.for_each(&mut |counter| {
            // A source that gives more the second time is cut to what the length said.
            if written < count {
                counter.put(&mut writer);
                written += 1;
            }
        });
        // One that gives fewer would leave the list short of its length: refuse to send it.
        if written < count {
            return Err(Error::BadValue);
        }
        writer.finish()
    }
}

tag_enum!(Role { Agent, Api, Dns, Reporter, Gateway });
tag_enum!(Outcome { Ok, Fail, Overload });
tag_enum!(RetCode { Succ, Overload, SystemError, NoExist });
tag_enum!(Change { Overloaded, Probed, Readmitted, Forgiven, SlowStartDone });

fields!(Hello { version, role, node, max_body });
fields!(AuthHello { version, role, node, max_body, nonce });
fields!(AuthChallenge { version, role, node, max_body, nonce, proof });
fields!(AuthProof { proof });
fields!(Heartbeat { seq });
fields!(GetHostRequest { seq, modid, cmdid, key });
fields!(GetHostResponse { seq, modid, cmdid, code, host });
fields!(Report { modid, cmdid, host, outcome, latency_us });
fields!(ReportBatch<'a> { reports });
fields!(GetRouteRequest { seq, modid, cmdid });
fields!(WeightedHost { addr, weight });
fields!(RouteResponse<'a> { seq, modid, cmdid, code, version, hosts });
fields!(HostStats { modid, cmdid, host, succ, err, overload, overloaded, latency_sum_us, latency_max_us });
fields!(CallStats<'a> { caller, ts, entries });
fields!(HostReport { stats, window_succ, window_err });
fields!(StatusReport<'a> { caller, ts, entries });
fields!(HostDecision { modid, cmdid, host, age_ms, change, reason });
fields!(DecisionReport<'a> { caller, ts, entries });
fields!(DecisionsRequest { seq, modid, cmdid, skip });
fields!(DecisionsResponse<'a> { seq, entries });
fields!(StatsRequest { seq });
fields!(Counter<'a> { name, value });
fields!(StatsResponse<'a> { seq, role, counters });

body!(AuthHello, AuthChallenge, AuthProof);
body!(
    Hello,
    Heartbeat,
    GetHostRequest,
    GetHostResponse,
    Report,
    GetRouteRequest,
    StatsRequest,
    DecisionsRequest
);
body!(
    ReportBatch<'a>,
    RouteResponse<'a>,
    CallStats<'a>,
    StatusReport<'a>,
    DecisionReport<'a>,
    StatsResponse<'a>,
    DecisionsResponse<'a>
);

#[cfg(test)]
mod tests;
