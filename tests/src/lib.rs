//! Cross-crate integration tests (servers, brokers, browsers) live here; this library holds
//! what several of them share.

pub mod workload;
