//! lars-std: lars on Linux servers, wrapping `lars-core` with sockets, threads, clocks and stores.
//!
//! This crate only moves bytes, time and stored results in and out of `lars-core`; every decision
//! is made there. Its modules (the reactor on `polling`, config loading, the MySQL and route-file
//! stores, the dns, reporter and agent services, the client API) arrive with their issues.
//! `ARCHITECTURE.md` at the repository root has the map.

pub use lars_core as core;
