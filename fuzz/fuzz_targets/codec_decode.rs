//! Fuzz target `codec_decode`: the check is `bourse_fuzz_checks::codec_decode` (docs/testing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bourse_fuzz_checks::codec_decode(data));
