//! Fuzz target `http_bodies`: the check is `bourse_fuzz_checks::http_bodies` (docs/testing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bourse_fuzz_checks::http_bodies(data));
