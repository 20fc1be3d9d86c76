//! lars-std: lars on Linux servers, wrapping `lars-core` with sockets, threads, clocks and stores.
//!
//! This crate only moves bytes, time and stored results in and out of `lars-core`; every decision
//! is made there.
//! - [`time`]: the only place that reads the system clock, converting it for the core.
//! - [`pool`]: the process-wide buffer pool every connection draws from.
//! - [`reactor`]: the event loop on `polling`, timers, cross-thread tasks, framed TCP servers
//!   and clients, UDP endpoints.
//! - [`dns`]: the lars-dns service; [`reporter`]: the lars-reporter service; [`agent`]: the
//!   lars-agent daemon.
//! - [`auth`]: the secret file, handshake nonces, and the gate the daemons run connections
//!   through (the decisions are `lars_core::auth`'s and `lars_core::access`'s).
//! - [`client`]: the client API of the local agent.
//! - [`metrics`]: Prometheus metrics: the scrape page and the HTTP responder that serves it.
//! - [`config`]: the INI loader that reads the original Lars `.conf` files.
//! - [`signal`]: SIGINT/SIGTERM (stop), SIGHUP (reload) and SIGUSR1 (report) as events a
//!   daemon waits on.
//! - [`logger`]: the daemons' log lines (levels, text or JSON, journald, rate limits);
//!   [`notify`]: systemd's readiness notifications.
//! - [`store`]: route stores (route file, memory; MySQL with the `mysql` feature) and
//!   statistics stores.
//!
//! `daemon` (flags, config loading, `exit_with`) is the binaries' shared plumbing: public for
//! them, hidden from the docs, and no part of the API. So is `reactor::plumbing`, the
//! connection internals that some integration tests drive by hand.
//!
//! # Features
//!
//! - `mysql` (off by default): the MySQL route and statistics stores (`store::mysql`). lars-dns,
//!   lars-reporter and the `lars` CLI turn it on; the agent and the client library do without
//!   it, and without the crates it brings.

pub use lars_core as core;

/// A stats struct's `counters()` list, in order: a bare `field` is the `AtomicU64` of that
/// name, read relaxed and named as it is; `"name" => value` is a counter read otherwise.
/// Written once so that each list is its names, not a line of the same code per counter.
macro_rules! counters {
    ($stats:expr; $($entries:tt)*) => { counters!(@list $stats; [] $($entries)*) };
    (@list $stats:expr; [$($out:tt)*]) => { vec![$($out)*] };
    (@list $stats:expr; [$($out:tt)*] $name:literal => $value:expr $(, $($rest:tt)*)?) => {
        counters!(@list $stats; [$($out)* ($name, $value),] $($($rest)*)?)
    };
    (@list $stats:expr; [$($out:tt)*] $field:ident $(, $($rest:tt)*)?) => {
        counters!(@list $stats; [$($out)* (
            stringify!($field),
            $stats.$field.load(::std::sync::atomic::Ordering::Relaxed),
        ),] $($($rest)*)?)
    };
}

pub mod agent;
pub mod auth;
pub mod client;
pub mod config;
/// The binaries' shared plumbing (flags, config loading, exit codes); not part of the API.
#[doc(hidden)]
pub mod daemon;
pub mod dns;
pub mod logger;
pub mod metrics;
pub mod notify;
pub mod pool;
pub mod reactor;
pub mod reporter;
pub mod signal;
pub mod store;
pub mod time;

/// The README's Rust example, compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExample;
