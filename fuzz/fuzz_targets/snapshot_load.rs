//! Fuzz target `snapshot_load`: the check is `bourse_fuzz_checks::snapshot_load` (docs/testing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bourse_fuzz_checks::snapshot_load(data));
