//! Fuzz target: the INI loader and the daemons' config readers (`lars_fuzz::text::ini`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lars_fuzz::text::ini(data));
