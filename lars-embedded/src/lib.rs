//! lars-embedded: the gateway agent, `lars_core::agent` driven by smoltcp sockets on a
//! microcontroller. Always `#![no_std]` with no allocator; the smoltcp node arrives with its issue.
#![no_std]

pub use lars_core as core;
