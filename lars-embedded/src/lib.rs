//! lars-embedded: the gateway agent, `lars_core::agent` driven by smoltcp sockets on a
//! microcontroller (or on the host, over a TAP device, for tests).
//!
//! Always `#![no_std]` with no allocator: the caller provides the sockets' storage
//! ([`NodeStorage`]) and picks the capacity (routes × hosts) with const generics. Logging goes
//! through `defmt` (feature `defmt`, for targets) or `log` (feature `log`, for the host), never
//! both. `README.md` explains how to port the node to a board.
#![no_std]

mod fmt;
mod node;

pub use lars_core as core;
pub use node::{API_BUFFER, Ipv4Setup, Node, NodeConfig, NodeStorage, TCP_BUFFER};
