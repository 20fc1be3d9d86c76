//! Fuzz target: the frame decoder's datagram, prefix and streaming paths (`lars_fuzz::wire::frame`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lars_fuzz::wire::frame(data));
