//! Fuzz target: decode(encode(x)) == x for every message kind (`lars_fuzz::wire::round_trip`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lars_fuzz::wire::round_trip(data));
