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
//! - [`client`]: the client API of the local agent.
//! - [`daemon`]: flags, config loading and store choice shared by the binaries.
//! - [`config`]: the INI loader that reads the original Lars `.conf` files.
//! - [`signal`]: SIGINT/SIGTERM as an event the loop can wait on.
//! - [`store`]: route stores (route file, memory; MySQL) and statistics stores.

pub use lars_core as core;

pub mod agent;
pub mod client;
pub mod config;
pub mod daemon;
pub mod dns;
pub mod pool;
pub mod reactor;
pub mod reporter;
pub mod signal;
pub mod store;
pub mod time;
