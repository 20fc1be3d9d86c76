//! Why a client call failed: [`ClientError`], one variant per thing that can happen, each
//! keeping the error behind it for [`source`](std::error::Error::source).

use std::fmt;
use std::io;
use std::net::SocketAddr;

use lars_core::wire::{Codec, MsgId, RetCode};

/// Why a call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// Every host of the route is overloaded (Lars return code 1); back off or degrade.
    Overloaded,
    /// The route does not exist, or the agent is still fetching it (Lars return code 3).
    NoRoute,
    /// The agent could not serve the request (Lars return code 2); `reason` says why, as far
    /// as the answer's codec tells.
    Refused {
        /// Why, as far as the answer tells.
        reason: Refusal,
    },
    /// No answer from the agent after every retry: is it running?
    Timeout,
    /// The lars-dns or lars-reporter at `addr` did not connect or answer within the timeout
    /// ([`daemon_stats`]).
    ///
    /// [`daemon_stats`]: super::daemon_stats
    DaemonTimeout {
        /// The address asked.
        addr: SocketAddr,
    },
    /// A daemon's address refused the connection, or cannot be reached ([`daemon_stats`]):
    /// nothing listens there.
    ///
    /// [`daemon_stats`]: super::daemon_stats
    Unreachable {
        /// The address asked.
        addr: SocketAddr,
        /// The connection's error.
        cause: io::Error,
    },
    /// The agent answered something that does not decode.
    Malformed(lars_core::wire::Error),
    /// The lars-dns or lars-reporter at `addr` answered something that does not decode
    /// ([`daemon_stats`]).
    ///
    /// [`daemon_stats`]: super::daemon_stats
    DaemonMalformed {
        /// The address asked.
        addr: SocketAddr,
        /// Why it does not decode.
        cause: lars_core::wire::Error,
    },
    /// The agent's answer decodes but breaks the protocol (a bug in the agent).
    ProtocolViolation(Violation),
    /// A socket error.
    Io(io::Error),
    /// A request did not encode: a bug in lars, never the caller's input.
    Unencodable(lars_core::wire::Error),
    /// The agent speaks only the original Lars protocol, which cannot carry this (a hash key,
    /// an IPv6 host, a lease).
    NeedsNative(&'static str),
    /// The client's configuration names no agent endpoint.
    NoAgent,
    /// The peer answered with a message that is not an answer to the request.
    Unexpected(MsgId),
    /// The route has more hosts than a [`Lease`](super::Lease) holds; call through the agent
    /// instead.
    RouteTooLarge {
        /// Hosts in the route.
        hosts: usize,
    },
}

/// Why the agent refused a request: what its Lars return code 2 means in the codec it was
/// answered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The agent's route table is full of routes in use, so it cannot take this one (counted
    /// in its `route_table_full`). A native answer's code 2 means only this: the native codec
    /// carries every host.
    TableFull,
    /// An answer in the original Lars codec, whose code 2 does not say why: a lars agent's
    /// route table may be full (`route_table_full`), or the route may have only IPv6 hosts,
    /// which that codec cannot carry (`ipv6_not_representable`).
    Unstated,
}

/// How an agent's answer broke the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// A success (Lars return code 0) without a host.
    SuccessWithoutHost,
    /// A return code the answer does not carry: none Lars defines (only 0-3 are), or one
    /// its message never uses (a route answer is a success or "no route").
    UnexpectedCode(i32),
}

impl ClientError {
    /// The error a `get_host` or `get_route` answer's `code` means, answered in `codec`; a
    /// success here is one that came without the host it promises.
    pub(super) fn from_code(code: RetCode, codec: Codec) -> ClientError {
        match code {
            RetCode::Succ => ClientError::ProtocolViolation(Violation::SuccessWithoutHost),
            RetCode::Overload => ClientError::Overloaded,
            RetCode::NoExist => ClientError::NoRoute,
            RetCode::SystemError => ClientError::Refused {
                reason: match codec {
                    Codec::Native => Refusal::TableFull,
                    Codec::Lars => Refusal::Unstated,
                },
            },
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Overloaded => f.write_str("every host of the route is overloaded"),
            ClientError::NoRoute => f.write_str("no such route (or the agent is still fetching it)"),
            ClientError::Refused { reason: Refusal::TableFull } => f.write_str(
                "the agent refused the request: its route table is full of routes in use \
                 (`route_table_full` in `lars stats`); retry later, when a route idle for the agent's \
                 `route_idle_evict` gives way",
            ),
            ClientError::Refused { reason: Refusal::Unstated } => f.write_str(
                "the agent refused the request without saying why (the original Lars protocol's \
                 code 2): its route table may be full, or the route may have only IPv6 hosts, \
                 which that protocol cannot carry; a lars agent's `lars stats` counts which \
                 (`route_table_full`, `ipv6_not_representable`)",
            ),
            ClientError::Timeout => f.write_str("no answer from the agent"),
            ClientError::DaemonTimeout { addr } => {
                write!(
                    f,
                    "no answer from {addr} in time: is a lars-dns or lars-reporter there, and is it overloaded?"
                )
            }
            ClientError::Unreachable { addr, .. } => {
                write!(f, "nothing answers at {addr} (is the daemon running?)")
            }
            ClientError::Malformed(_) => f.write_str("malformed answer from the agent"),
            ClientError::DaemonMalformed { addr, .. } => write!(f, "malformed answer from {addr}"),
            ClientError::ProtocolViolation(Violation::SuccessWithoutHost) => {
                f.write_str("malformed answer from the agent: a success without a host")
            }
            ClientError::ProtocolViolation(Violation::UnexpectedCode(code)) => {
                write!(
                    f,
                    "malformed answer from the agent: return code {code}, which that answer does not carry"
                )
            }
            ClientError::Io(_) => f.write_str("socket error"),
            ClientError::Unencodable(_) => {
                f.write_str("the request does not encode (a bug in lars, please report it)")
            }
            ClientError::NeedsNative(what) => {
                write!(f, "the agent speaks only the original Lars protocol, which has no {what}")
            }
            ClientError::NoAgent => f.write_str("no agent endpoint is configured"),
            ClientError::Unexpected(id) => write!(f, "the peer answered with msgid {id:?}"),
            ClientError::RouteTooLarge { hosts } => {
                write!(f, "the route has {hosts} hosts, more than a lease holds; call through the agent")
            }
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Io(e) | ClientError::Unreachable { cause: e, .. } => Some(e),
            ClientError::Malformed(e)
            | ClientError::Unencodable(e)
            | ClientError::DaemonMalformed { cause: e, .. } => Some(e),
            ClientError::Overloaded
            | ClientError::NoRoute
            | ClientError::Refused { .. }
            | ClientError::Timeout
            | ClientError::DaemonTimeout { .. }
            | ClientError::ProtocolViolation(_)
            | ClientError::NeedsNative(_)
            | ClientError::NoAgent
            | ClientError::Unexpected(_)
            | ClientError::RouteTooLarge { .. } => None,
        }
    }
}

/// `error`'s message followed by each of its causes (`source()`), `: `-separated. A
/// [`ClientError`] with a cause leaves it out of its own message (so that a reporter walking
/// the chain says it once): print this where a user reads the error.
pub fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn each_return_code_is_its_own_error_and_refusals_say_why() {
        assert!(matches!(ClientError::from_code(RetCode::Overload, Codec::Native), ClientError::Overloaded));
        assert!(matches!(ClientError::from_code(RetCode::NoExist, Codec::Lars), ClientError::NoRoute));
        let native = ClientError::from_code(RetCode::SystemError, Codec::Native);
        assert!(matches!(native, ClientError::Refused { reason: Refusal::TableFull }), "{native:?}");
        assert!(native.to_string().contains("route table is full"), "{native}");
        let lars = ClientError::from_code(RetCode::SystemError, Codec::Lars);
        assert!(matches!(lars, ClientError::Refused { reason: Refusal::Unstated }), "{lars:?}");
        assert!(lars.to_string().contains("only IPv6 hosts"), "{lars}");
        let hostless = ClientError::from_code(RetCode::Succ, Codec::Native);
        assert!(matches!(hostless, ClientError::ProtocolViolation(Violation::SuccessWithoutHost)));
        assert_eq!(hostless.to_string(), "malformed answer from the agent: a success without a host");
        let unknown = ClientError::ProtocolViolation(Violation::UnexpectedCode(7));
        assert!(unknown.to_string().contains("return code 7"), "{unknown}");
    }

    #[test]
    fn every_error_with_a_cause_returns_it() {
        let io = ClientError::from(io::Error::new(io::ErrorKind::PermissionDenied, "no"));
        assert_eq!(io.source().map(ToString::to_string).as_deref(), Some("no"));
        // Said once: in the chain, not also in the error's own message.
        assert_eq!(io.to_string(), "socket error");
        assert_eq!(with_causes(&io), "socket error: no");
        let malformed = ClientError::Malformed(lars_core::wire::Error::Truncated);
        assert!(malformed.source().is_some());
        let unencodable = ClientError::Unencodable(lars_core::wire::Error::BufferTooSmall);
        let cause = unencodable.source().and_then(|e| e.downcast_ref::<lars_core::wire::Error>());
        assert_eq!(cause, Some(&lars_core::wire::Error::BufferTooSmall));
        assert!(unencodable.to_string().contains("a bug in lars"), "{unencodable}");
        let unreachable = ClientError::Unreachable {
            addr: SocketAddr::from(([127, 0, 0, 1], 9)),
            cause: io::Error::from(io::ErrorKind::ConnectionRefused),
        };
        assert!(unreachable.source().is_some());
        assert_eq!(unreachable.to_string(), "nothing answers at 127.0.0.1:9 (is the daemon running?)");
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused).to_string();
        assert_eq!(with_causes(&unreachable), format!("{unreachable}: {refused}"));
        assert_eq!(malformed.to_string(), "malformed answer from the agent");
        assert_eq!(with_causes(&malformed), format!("{malformed}: {}", lars_core::wire::Error::Truncated));
        assert!(ClientError::RouteTooLarge { hosts: 300 }.to_string().contains("300 hosts"));
    }
}
