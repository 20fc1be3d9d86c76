//! lars-core: the IO-free heart of lars, shared by the Linux daemons and the gateway firmware.
//!
//! Layers, bottom up:
//! - [`time`]: lars's own [`time::Instant`] and [`time::Duration`]. The core never reads a clock;
//!   every entry point that needs the time takes `now`.
//! - [`wire`]: the frame header and its streaming decoder, and the two body codecs: the
//!   Lars-compatible protobuf bodies (msgids 1..=8) and the native postcard bodies (msgids
//!   0x100..).
//! - [`pool`]: a fixed-capacity buffer pool over caller-provided storage, with per-owner
//!   magazines (caches of free blocks) in front of it.
//! - [`agent`]: the whole load-balancing agent as a sans-IO state machine.
//! - [`lease`]: a route held and balanced by a caller, as a sans-IO state machine.
//! - [`backoff`]: the reconnect delays both the std reactor and the gateway node use.
//! - [`access`]: CIDR allowlists, which decide who may connect to a daemon.
//! - `auth` (feature `auth`): the shared-secret handshake (HMAC-SHA256 challenge-response).
//! - [`lb`]: the load-balance policies: Lars idle/overload (the default), round robin, smooth
//!   weighted round robin, power of two choices over EWMA latency, and consistent hashing.
//! - [`metrics`]: the Prometheus text format, written without allocating.
//!
//! Guarantees, checked by tests and by `cargo xtask test`:
//! - `#![no_std]` always, and no allocator: capacity is chosen by the caller.
//! - No IO, no clock and no ambient randomness.
//! - No panic on any input bytes: every decoder returns a [`wire::Error`] instead.
//! - `unsafe` lives only in [`pool`], whose module docs carry the safety argument (the
//!   workspace denies `unsafe_code`; `pool` alone allows it).
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(test)]
extern crate std;

pub mod access;
pub mod agent;
#[cfg(feature = "auth")]
pub mod auth;
pub mod backoff;
pub mod lb;
pub mod lease;
pub mod metrics;
pub mod pool;
mod tally;
pub mod time;
pub mod wire;
