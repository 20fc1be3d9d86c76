//! Fuzz target: the route-file parser (`lars_fuzz::text::route_file`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lars_fuzz::text::route_file(data));
