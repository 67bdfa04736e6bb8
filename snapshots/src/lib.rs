//! Snapshots: point-in-time images of the engine state, written atomically and validated on
//! load. The rkyv format lands with the journal issue; for now the crate names the state digest
//! a snapshot will be checked against.

pub use bourse_engine::StateHash;
