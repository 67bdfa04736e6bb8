//! Token hashing: only the SHA-256 of a secret is kept or journaled, and compared in constant
//! time.

use sha2::{Digest, Sha256};

/// The SHA-256 of `text`.
pub fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Whether two hashes are equal, in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
