//! The cross-crate integration tests, one binary with a module per topic. Servers run in this
//! process through the server library (`bourse_tests::server`); what needs a process boundary
//! (SIGKILL of the server, signals, exit codes, a Kafka feed across a crash) is in the
//! `bourse` binary's own tests (`bourse/tests/process/`).
//!
//! - [`replay`]: a million commands journaled and replayed bit for bit, also from snapshots.
//! - [`recovery`]: start-up recovery, snapshot fallback, retention, a SIGKILL loop of a writer.
//! - [`pipeline`]: the pipeline in both topologies under concurrent producers.
//! - [`cluster`]: three replicas of one engine over a Kafka command log, and a restart.
//! - [`api`]: accounts, health and metrics, funds and bookmarks over HTTP.
//! - [`trading`]: two accounts trading to the cent, authorization, bad requests, limits.
//! - [`websocket`]: channels, bad messages and a slow client.
//! - [`market`]: the simulator's candles, the liquidity provider and catalogue search.
//! - [`web`]: the web terminal in headless Chromium.
//! - [`storage`]: ENOSPC and failed syncs under load in the journal and the history log.
//! - [`tidy`]: house rules checked on the sources (layers, module cycles, comments, sizes).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

mod api;
mod cluster;
mod market;
mod pipeline;
mod recovery;
mod replay;
mod storage;
mod tidy;
mod trading;
mod web;
mod websocket;
