//! Native bodies (msgids 0x100..): postcard-encoded messages that extend the Lars protocol.
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

use serde::{Deserialize, Serialize, Serializer};

use super::{Decode, Encode, Error, List, RetCode};

/// The native protocol version this code speaks, sent in [`Hello`].
pub const PROTOCOL_VERSION: u16 = 1;

/// What a peer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// Keep-alive (msgid 0x101); the peer echoes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Sender's sequence number, echoed.
    pub seq: u32,
}

/// Asks an agent for one host of a route (msgid 0x110).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// The call succeeded.
    Ok,
    /// The call failed.
    Fail,
    /// The host refused the call because it is overloaded.
    Overload,
}

/// The result of one call (msgid 0x112, or an item of [`ReportBatch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ReportBatch<'a> {
    /// The results, oldest first.
    pub reports: List<'a, Report>,
}

/// Asks for a route's hosts (msgid 0x120): an API asks its agent, an agent asks lars-dns (which
/// also subscribes the agent to later changes of the route).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetRouteRequest {
    /// Caller's sequence number, echoed.
    pub seq: u32,
    /// Module id.
    pub modid: i32,
    /// Command id.
    pub cmdid: i32,
}

/// A host and its weight in a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WeightedHost {
    /// The host's address.
    pub addr: SocketAddr,
    /// Its relative weight (1 when the store has none).
    pub weight: u32,
}

/// A route's hosts (msgid 0x121): the answer to [`GetRouteRequest`] and every later push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

impl HostStats {
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

    /// Counts one call (an overload also counts as an error), saturating.
    pub fn record(&mut self, outcome: Outcome, latency_us: u32) {
        match outcome {
            Outcome::Ok => self.succ = self.succ.saturating_add(1),
            Outcome::Fail => self.err = self.err.saturating_add(1),
            Outcome::Overload => {
                self.err = self.err.saturating_add(1);
                self.overload = self.overload.saturating_add(1);
            }
        }
        self.latency_sum_us = self.latency_sum_us.saturating_add(u64::from(latency_us));
        self.latency_max_us = self.latency_max_us.max(latency_us);
    }
}

/// An agent's call statistics for one period (msgid 0x130), to lars-reporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostReport {
    /// The period's calls.
    pub stats: HostStats,
    /// Successful calls since the host's last state change.
    pub window_succ: u32,
    /// Failed calls since the host's last state change.
    pub window_err: u32,
}

/// An agent's statistics for one period (msgid 0x131), to lars-reporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StatusReport<'a> {
    /// The reporting agent's id.
    pub caller: u32,
    /// Unix time in seconds at the end of the period.
    pub ts: u32,
    /// Per-host reports.
    pub entries: List<'a, HostReport>,
}

/// Asks a daemon for its counters (msgid 0x140).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsRequest {
    /// Caller's sequence number, echoed.
    pub seq: u32,
}

/// One named counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter<'a> {
    /// What it counts, such as `frames_in`.
    pub name: &'a str,
    /// Its value.
    pub value: u64,
}

/// A daemon's counters (msgid 0x141), the answer to [`StatsRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StatsResponse<'a> {
    /// The request's sequence number.
    pub seq: u32,
    /// What answered.
    pub role: Role,
    /// The counters, in the daemon's order.
    pub counters: List<'a, Counter<'a>>,
}

impl<T: Copy + Serialize> Serialize for List<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

fn from_postcard(error: postcard::Error) -> Error {
    match error {
        postcard::Error::DeserializeUnexpectedEnd => Error::Truncated,
        postcard::Error::DeserializeBadVarint => Error::BadVarint,
        postcard::Error::SerializeBufferFull => Error::BufferTooSmall,
        _ => Error::BadValue,
    }
}

/// Takes one postcard value off the front of `bytes`.
fn take<'a, T: Deserialize<'a>>(bytes: &mut &'a [u8]) -> Result<T, Error> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(from_postcard)?;
    *bytes = rest;
    Ok(value)
}

/// Takes a postcard sequence off the front of `bytes`, validating every item.
fn take_list<'a, T: Deserialize<'a> + Copy>(bytes: &mut &'a [u8]) -> Result<List<'a, T>, Error> {
    let len: usize = take(bytes)?;
    // Every item type here encodes to at least one byte, so a count above the bytes left is
    // truncated; checking first bounds the loop by the input size, not by the claimed count.
    if len > bytes.len() {
        return Err(Error::Truncated);
    }
    let items = *bytes;
    for _ in 0..len {
        take::<T>(bytes)?;
    }
    Ok(List::encoded(items, len, |bytes| take(bytes).ok()))
}

fn finish(rest: &[u8]) -> Result<(), Error> {
    if rest.is_empty() { Ok(()) } else { Err(Error::TrailingBytes) }
}

macro_rules! postcard_encode {
    ($($ty:ty),*) => {$(
        impl Encode for $ty {
            fn buffer_len(&self) -> usize {
                postcard::serialize_with_flavor(self, postcard::ser_flavors::Size::default()).unwrap_or(0)
            }

            fn emit(&self, out: &mut [u8]) -> Result<usize, Error> {
                postcard::to_slice(self, out).map(|written| written.len()).map_err(from_postcard)
            }
        }
    )*};
}

macro_rules! postcard_decode {
    ($($ty:ty),*) => {$(
        impl Decode<'_> for $ty {
            fn parse(mut body: &[u8]) -> Result<Self, Error> {
                let value = take(&mut body)?;
                finish(body)?;
                Ok(value)
            }
        }
    )*};
}

postcard_encode!(
    StatsRequest,
    StatsResponse<'_>,
    Hello,
    Heartbeat,
    GetHostRequest,
    GetHostResponse,
    Report,
    ReportBatch<'_>,
    GetRouteRequest,
    RouteResponse<'_>,
    CallStats<'_>,
    StatusReport<'_>
);
postcard_decode!(Hello, Heartbeat, GetHostRequest, GetHostResponse, Report, GetRouteRequest, StatsRequest);

impl<'a> Decode<'a> for StatsResponse<'a> {
    fn parse(mut body: &'a [u8]) -> Result<Self, Error> {
        let b = &mut body;
        let stats = StatsResponse { seq: take(b)?, role: take(b)?, counters: take_list(b)? };
        finish(body)?;
        Ok(stats)
    }
}

impl<'a> Decode<'a> for ReportBatch<'a> {
    fn parse(mut body: &'a [u8]) -> Result<Self, Error> {
        let reports = take_list(&mut body)?;
        finish(body)?;
        Ok(ReportBatch { reports })
    }
}

impl<'a> Decode<'a> for RouteResponse<'a> {
    fn parse(mut body: &'a [u8]) -> Result<Self, Error> {
        let b = &mut body;
        let route = RouteResponse {
            seq: take(b)?,
            modid: take(b)?,
            cmdid: take(b)?,
            code: take(b)?,
            version: take(b)?,
            hosts: take_list(b)?,
        };
        finish(body)?;
        Ok(route)
    }
}

impl<'a> Decode<'a> for CallStats<'a> {
    fn parse(mut body: &'a [u8]) -> Result<Self, Error> {
        let b = &mut body;
        let stats = CallStats { caller: take(b)?, ts: take(b)?, entries: take_list(b)? };
        finish(body)?;
        Ok(stats)
    }
}

impl<'a> Decode<'a> for StatusReport<'a> {
    fn parse(mut body: &'a [u8]) -> Result<Self, Error> {
        let b = &mut body;
        let report = StatusReport { caller: take(b)?, ts: take(b)?, entries: take_list(b)? };
        finish(body)?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
