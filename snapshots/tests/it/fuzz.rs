//! No content of a snapshot file makes the loader panic.

use bourse_engine::*;
use bourse_snapshots::{HEADER_LEN, decode, encode, load_newest, snapshot_file_name};
use proptest::prelude::*;

use crate::stream::engine_after;

/// A small valid snapshot to mutate.
fn valid_snapshot() -> Vec<u8> {
    let (engine, _) = engine_after(3, 150);
    encode(5, &engine.to_image()).unwrap().to_bytes()
}

/// Recomputes the checksums so a mutation reaches the archive validation and the image checks.
fn reseal(bytes: &mut [u8]) {
    let payload_crc = crc32c::crc32c(&bytes[HEADER_LEN..]);
    bytes[32..36].copy_from_slice(&payload_crc.to_le_bytes());
    let header_crc = crc32c::crc32c(&bytes[..36]);
    bytes[36..40].copy_from_slice(&header_crc.to_le_bytes());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_do_not_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        prop_assert!(decode(&bytes).is_err());
    }

    #[test]
    fn arbitrary_payloads_behind_a_valid_header_do_not_panic(
        payload in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let mut bytes = encode(1, &Engine::new(Limits::default()).to_image()).unwrap().to_bytes();
        bytes.truncate(HEADER_LEN);
        bytes[24..32].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&payload);
        reseal(&mut bytes);
        let _ = decode(&bytes);
    }

    #[test]
    fn resealed_mutations_of_a_valid_snapshot_do_not_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = valid_snapshot();
        for (at, value) in flips {
            let i = HEADER_LEN + at.index(bytes.len() - HEADER_LEN);
            bytes[i] = value;
        }
        if truncate {
            let len = HEADER_LEN + cut.index(bytes.len() - HEADER_LEN);
            bytes.truncate(len);
            bytes[24..32].copy_from_slice(&((len - HEADER_LEN) as u64).to_le_bytes());
        }
        reseal(&mut bytes);
        if let Ok((_, engine)) = decode(&bytes) {
            // Whatever was accepted is an engine that works.
            let _ = engine.state_hash();
            let _ = engine.to_image();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_files_are_skipped(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(snapshot_file_name(3)), &bytes).unwrap();
        let recovered = load_newest(dir.path()).unwrap();
        prop_assert!(recovered.newest.is_none());
        prop_assert_eq!(recovered.skipped.len(), 1);
    }
}
