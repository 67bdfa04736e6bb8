//! Fuzz target `feed_parse`: the check is `bourse_fuzz_checks::feed_parse` (docs/testing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bourse_fuzz_checks::feed_parse(data));
