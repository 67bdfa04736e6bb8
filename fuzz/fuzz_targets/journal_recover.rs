//! Fuzz target `journal_recover`: the check is `bourse_fuzz_checks::journal_recover` (docs/testing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bourse_fuzz_checks::journal_recover(data));
