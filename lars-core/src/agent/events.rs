//! What the agent tells its driver: errors, transmits, events and counters.

use crate::wire::{Codec, Error, MsgId};

/// Why an API datagram got no answer. Each is counted in [`AgentStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiError {
    /// The datagram is not a valid frame or body.
    Malformed(Error),
    /// The msgid is not a request an agent serves.
    Unexpected(MsgId),
    /// The answer does not fit the reply buffer (a very large route asked for over UDP).
    ReplyTooLarge,
}

impl core::fmt::Display for ApiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ApiError::Malformed(e) => write!(f, "malformed API datagram: {e}"),
            ApiError::Unexpected(id) => write!(f, "msgid {id:?} is not an agent request"),
            ApiError::ReplyTooLarge => f.write_str("the answer does not fit in the reply buffer"),
        }
    }
}

impl core::error::Error for ApiError {}

/// Why a frame from lars-dns was refused: the driver should close the dns link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DnsError {
    /// The body does not decode.
    Malformed(Error),
    /// The handshake failed, or the peer sent something before it was done.
    #[cfg(feature = "auth")]
    Auth(crate::auth::AuthError),
    /// The msgid is not something lars-dns sends.
    Unexpected(MsgId),
}

impl core::fmt::Display for DnsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DnsError::Malformed(e) => write!(f, "malformed frame from lars-dns: {e}"),
            #[cfg(feature = "auth")]
            DnsError::Auth(e) => write!(f, "lars-dns not authenticated: {e}"),
            DnsError::Unexpected(id) => write!(f, "lars-dns sent msgid {id:?}"),
        }
    }
}

impl core::error::Error for DnsError {}

/// Why a frame from lars-reporter was refused: the driver should close the reporter link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReporterError {
    /// The msgid is not something lars-reporter sends.
    Unexpected(MsgId),
    /// The handshake failed, or the peer sent something before it was done.
    #[cfg(feature = "auth")]
    Auth(crate::auth::AuthError),
}

impl core::fmt::Display for ReporterError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReporterError::Unexpected(id) => write!(f, "lars-reporter sent msgid {id:?}"),
            #[cfg(feature = "auth")]
            ReporterError::Auth(e) => write!(f, "lars-reporter not authenticated: {e}"),
        }
    }
}

impl core::error::Error for ReporterError {}

/// Which link a transmit is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Link {
    /// The TCP link to lars-dns.
    Dns,
    /// The TCP link to lars-reporter.
    Reporter,
}

/// A frame [`Agent::poll_transmit`](super::Agent::poll_transmit) wrote: send `buf[..len]` on `link`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Where it goes.
    pub link: Link,
    /// Bytes written at the start of the buffer.
    pub len: usize,
}

/// Something that happened, for the driver to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum AgentEvent {
    /// A request created a route; it is being pulled.
    RouteCreated {
        /// Module id.
        modid: i32,
        /// Command id.
        cmdid: i32,
    },
    /// lars-dns sent the route's hosts.
    RouteUpdated {
        /// Module id.
        modid: i32,
        /// Command id.
        cmdid: i32,
        /// Hosts now in the route.
        hosts: usize,
    },
    /// lars-dns sent an empty host list for a route that had hosts: the route is gone (and
    /// remembered as missing for `missing_ttl`).
    RouteRemoved {
        /// Module id.
        modid: i32,
        /// Command id.
        cmdid: i32,
    },
    /// lars-dns says a route that was asked for does not exist; remembered for `missing_ttl`.
    RouteMissing {
        /// Module id.
        modid: i32,
        /// Command id.
        cmdid: i32,
    },
    /// The table was full: a route nobody asked for in `route_idle_evict`, or one remembered
    /// as missing, made room for a new one.
    RouteEvicted {
        /// Module id.
        modid: i32,
        /// Command id.
        cmdid: i32,
    },
    /// More routes were created, found missing or evicted in one report interval than are
    /// worth a line each (a caller asking for random routes): this many events were left out.
    RouteEventsSuppressed {
        /// Events left out.
        count: u32,
    },
    /// lars-dns sent more hosts than a route can hold; the agent serves a subset of them that
    /// is the same at every update (chosen by the agent's `caller`, so that agents spread over
    /// the whole route).
    RouteTooLarge {
        /// Module id.
        modid: i32,
        /// Command id.
        cmdid: i32,
        /// Hosts sent.
        hosts: usize,
    },
    /// lars-dns answered that it has not loaded its store; the route keeps its hosts and is
    /// asked for again later.
    DnsUnready {
        /// Module id.
        modid: i32,
        /// Command id.
        cmdid: i32,
    },
    /// A route passed `update_timeout` and is being refreshed.
    RouteStale {
        /// Module id.
        modid: i32,
        /// Command id.
        cmdid: i32,
    },
    /// A pull got no answer in time and will be sent again.
    PullTimedOut {
        /// Module id.
        modid: i32,
        /// Command id.
        cmdid: i32,
        /// Pulls sent so far without an answer.
        attempts: u32,
    },
    /// A link's codec is known: fixed by configuration, the peer answered the native `Hello`
    /// (native), or it stayed silent or hung up (an original Lars daemon: Lars).
    CodecChosen {
        /// Which link.
        link: Link,
        /// What it speaks from now on.
        codec: Codec,
    },
    /// The link's peer proved the secret; the link is up (native).
    #[cfg(feature = "auth")]
    Authenticated {
        /// Which link.
        link: Link,
    },
    /// The link's handshake failed (the error came back from `handle_*_frame`) or did not
    /// finish in time: the driver closes the link ([`Agent::poll_link_close`]) and reconnects.
    ///
    /// [`Agent::poll_link_close`]: super::Agent::poll_link_close
    #[cfg(feature = "auth")]
    AuthFailed {
        /// Which link.
        link: Link,
        /// No answer came in time.
        timed_out: bool,
    },
    /// Call results that will never reach lars-reporter: those of a route removed before
    /// they were sent (see [`AgentStats::stats_dropped_calls`] for every cause).
    StatsDropped {
        /// Calls dropped.
        calls: u32,
    },
}

impl core::fmt::Display for Link {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Link::Dns => "lars-dns",
            Link::Reporter => "lars-reporter",
        })
    }
}

/// How much an [`AgentEvent`] matters to an operator, for a driver's log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Severity {
    /// Routine detail: a route asked for, a route refreshed.
    Debug,
    /// A change worth a line: hosts updated, a route removed, a codec chosen.
    Info,
    /// Something is wrong or degraded: a pull timed out, a route too large, statistics lost.
    Warn,
}

impl AgentEvent {
    /// How much the event matters; every driver logs it at this level.
    pub fn severity(&self) -> Severity {
        match self {
            AgentEvent::RouteCreated { .. } | AgentEvent::RouteStale { .. } => Severity::Debug,
            AgentEvent::RouteUpdated { .. }
            | AgentEvent::RouteRemoved { .. }
            | AgentEvent::RouteMissing { .. }
            | AgentEvent::RouteEvicted { .. }
            | AgentEvent::CodecChosen { .. } => Severity::Info,
            #[cfg(feature = "auth")]
            AgentEvent::Authenticated { .. } => Severity::Info,
            #[cfg(feature = "auth")]
            AgentEvent::AuthFailed { .. } => Severity::Warn,
            AgentEvent::RouteTooLarge { .. }
            | AgentEvent::DnsUnready { .. }
            | AgentEvent::PullTimedOut { .. }
            | AgentEvent::RouteEventsSuppressed { .. }
            | AgentEvent::StatsDropped { .. } => Severity::Warn,
        }
    }
}

/// The event in words, the same from every driver: `route 1001/1 updated: 3 hosts`.
impl core::fmt::Display for AgentEvent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            AgentEvent::RouteCreated { modid, cmdid } => {
                write!(f, "route {modid}/{cmdid} asked for; pulling it from lars-dns")
            }
            AgentEvent::RouteUpdated { modid, cmdid, hosts } => {
                let plural = if hosts == 1 { "" } else { "s" };
                write!(f, "route {modid}/{cmdid} updated: {hosts} host{plural}")
            }
            AgentEvent::RouteRemoved { modid, cmdid } => {
                write!(f, "route {modid}/{cmdid} removed: lars-dns no longer has it")
            }
            AgentEvent::RouteMissing { modid, cmdid } => {
                write!(f, "route {modid}/{cmdid} asked for, but lars-dns has no such route")
            }
            AgentEvent::RouteEvicted { modid, cmdid } => {
                write!(f, "route {modid}/{cmdid} evicted from the full route table for a new one")
            }
            AgentEvent::RouteEventsSuppressed { count } => write!(
                f,
                "{count} more route events in the last report interval left out (callers asking for many routes)"
            ),
            AgentEvent::RouteTooLarge { modid, cmdid, hosts } => write!(
                f,
                "route {modid}/{cmdid} has {hosts} hosts, more than a route holds; serving a stable subset"
            ),
            AgentEvent::DnsUnready { modid, cmdid } => write!(
                f,
                "lars-dns has not loaded its store; route {modid}/{cmdid} keeps its hosts and is asked for again"
            ),
            AgentEvent::RouteStale { modid, cmdid } => {
                write!(f, "route {modid}/{cmdid} is past its update timeout; refreshing it")
            }
            AgentEvent::PullTimedOut { modid, cmdid, attempts } => write!(
                f,
                "route {modid}/{cmdid}: no answer from lars-dns after {attempts} pulls; asking again"
            ),
            AgentEvent::CodecChosen { link, codec } => {
                let how = match codec {
                    Codec::Native => "the native protocol",
                    Codec::Lars => "the original Lars protocol",
                };
                write!(f, "speaking {how} to {link}")
            }
            #[cfg(feature = "auth")]
            AgentEvent::Authenticated { link } => write!(f, "{link} proved the shared secret"),
            #[cfg(feature = "auth")]
            AgentEvent::AuthFailed { link, timed_out: true } => {
                write!(f, "{link} did not finish authenticating in time; reconnecting")
            }
            #[cfg(feature = "auth")]
            AgentEvent::AuthFailed { link, timed_out: false } => {
                write!(f, "{link} failed to authenticate; reconnecting")
            }
            AgentEvent::StatsDropped { calls } => {
                write!(f, "dropped the statistics of {calls} calls (no room to keep them for lars-reporter)")
            }
        }
    }
}

/// The agent's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AgentStats {
    /// API datagrams handled.
    pub api_requests: u64,
    /// API datagrams refused as malformed or unexpected.
    pub api_errors: u64,
    /// `get_host` requests.
    pub get_host: u64,
    /// Call results reported.
    pub reports: u64,
    /// Of those, the calls that failed or found the host overloaded (the error rate's
    /// numerator).
    pub reports_failed: u64,
    /// Reports (or summary entries) for routes the agent does not hold.
    pub reports_unknown_route: u64,
    /// Calls counted in summaries from clients that lease routes and balance themselves (with
    /// the `leases` feature; without it such summaries are refused as unexpected).
    pub leased_calls: u64,
    /// Requests refused because the route table was full (of routes asked for recently).
    pub route_table_full: u64,
    /// Routes evicted to make room (idle ones, and ones remembered as missing).
    pub routes_evicted: u64,
    /// "No such route" answers from lars-dns (remembered in the negative cache).
    pub routes_missing: u64,
    /// Route updates with more hosts than a route can hold, served as a subset.
    pub route_over_capacity: u64,
    /// Answers from a lars-dns that had not loaded its store.
    pub dns_unready_answers: u64,
    /// Hosts left out of a Lars-codec answer because they are IPv6.
    pub ipv6_not_representable: u64,
    /// Pull requests sent to lars-dns.
    pub pulls_sent: u64,
    /// Pulls that timed out and were sent again.
    pub pull_timeouts: u64,
    /// Route answers and pushes applied.
    pub routes_received: u64,
    /// Frames from lars-dns refused.
    pub dns_errors: u64,
    /// Statistics frames sent to lars-reporter.
    pub stats_frames: u64,
    /// Host statistics entries sent.
    pub stats_entries: u64,
    /// Statistics flushes that fell due while lars-reporter's link was down or still greeting:
    /// their tallies were held, and go out with the first flush once the link speaks.
    pub stats_flushes_held: u64,
    /// Calls whose results will never reach lars-reporter: a route removed with results not
    /// yet sent, a host the route's tally table had no room for, an IPv6 host in a Lars frame,
    /// or a count past 2^32 − 1 in one flush. While lars-reporter is unreachable nothing is
    /// dropped: the tallies keep summing and are sent once it is back
    /// ([`Agent::unreported_calls`](super::Agent::unreported_calls) says how many wait).
    pub stats_dropped_calls: u64,
    /// Events dropped because the driver did not drain them.
    pub events_dropped: u64,
    /// Handshakes with lars-dns or lars-reporter that failed or timed out (not in
    /// [`AgentStats::counters`], whose length does not depend on features).
    #[cfg(feature = "auth")]
    pub auth_failures: u64,
}

impl AgentStats {
    /// Every counter, named.
    pub fn counters(&self) -> [(&'static str, u64); 22] {
        [
            ("api_requests", self.api_requests),
            ("api_errors", self.api_errors),
            ("get_host", self.get_host),
            ("reports", self.reports),
            ("reports_failed", self.reports_failed),
            ("reports_unknown_route", self.reports_unknown_route),
            ("leased_calls", self.leased_calls),
            ("route_table_full", self.route_table_full),
            ("routes_evicted", self.routes_evicted),
            ("routes_missing", self.routes_missing),
            ("route_over_capacity", self.route_over_capacity),
            ("dns_unready_answers", self.dns_unready_answers),
            ("ipv6_not_representable", self.ipv6_not_representable),
            ("pulls_sent", self.pulls_sent),
            ("pull_timeouts", self.pull_timeouts),
            ("routes_received", self.routes_received),
            ("dns_errors", self.dns_errors),
            ("stats_frames", self.stats_frames),
            ("stats_entries", self.stats_entries),
            ("stats_flushes_held", self.stats_flushes_held),
            ("stats_dropped_calls", self.stats_dropped_calls),
            ("events_dropped", self.events_dropped),
        ]
    }
}

#[cfg(test)]
mod tests {
    use std::string::ToString;

    use super::*;

    #[test]
    fn events_read_as_words() {
        let cases = [
            (AgentEvent::RouteUpdated { modid: 1001, cmdid: 1, hosts: 3 }, "route 1001/1 updated: 3 hosts"),
            (AgentEvent::RouteUpdated { modid: 7, cmdid: -2, hosts: 1 }, "route 7/-2 updated: 1 host"),
            (
                AgentEvent::CodecChosen { link: Link::Reporter, codec: Codec::Lars },
                "speaking the original Lars protocol to lars-reporter",
            ),
            (
                AgentEvent::StatsDropped { calls: 4 },
                "dropped the statistics of 4 calls (no room to keep them for lars-reporter)",
            ),
        ];
        for (event, words) in cases {
            assert_eq!(event.to_string(), words);
        }
        assert_eq!(AgentEvent::RouteCreated { modid: 1, cmdid: 1 }.severity(), Severity::Debug);
        assert_eq!(AgentEvent::PullTimedOut { modid: 1, cmdid: 1, attempts: 2 }.severity(), Severity::Warn);
    }
}
