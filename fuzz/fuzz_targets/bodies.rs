//! Fuzz target: every body decoder of both codecs on raw bytes (`lars_fuzz::wire::bodies`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lars_fuzz::wire::bodies(data));
