//! Cross-crate integration tests (servers, brokers, browsers) live here.
