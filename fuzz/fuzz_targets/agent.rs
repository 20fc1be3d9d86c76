//! Fuzz target: the agent state machine under `arbitrary` inputs (`lars_fuzz::agent::run`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lars_fuzz::agent::run(data));
