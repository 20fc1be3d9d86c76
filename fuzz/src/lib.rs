//! The checks behind lars's fuzz targets (`fuzz_targets/*.rs`, one line each): what must hold
//! for any input, as assertions, so that libFuzzer reports a violation as a crash.
//!
//! - [`wire`]: the frame decoder (datagram, prefix and streaming paths agree), every body
//!   decoder of both codecs (what decodes re-encodes to bytes that decode the same), and
//!   decode(encode(x)) == x for messages built from `arbitrary` input;
//! - [`agent`]: the agent state machine driven by `arbitrary` sequences of API requests,
//!   dns and reporter frames, link changes and timer ticks;
//! - [`text`]: the route-file parser and the INI loader with the daemons' config readers.
//!
//! A crash found here becomes a regression test in the workspace next to the code it broke,
//! with the input bytes as its test vector, and the input is kept in `regressions/<target>/`,
//! which `cargo xtask fuzz` replays before it fuzzes.

pub mod agent;
pub mod text;
pub mod wire;
