//! Fuzz target `ws_message`: the check is `bourse_fuzz_checks::ws_message` (docs/testing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bourse_fuzz_checks::ws_message(data));
