//! The HTTP and WebSocket API of Bourse (`docs/api.md`; OpenAPI at `/api/v1/openapi.json`), as
//! a library: the server crate (`bourse-server`) starts it.
//!
//! [`http::Server::start`] serves a [`router::router`] on a tokio runtime of its own, over an
//! [`AppState`] ([`state`]), which holds the only ways to the engine (`AppState::query`, a
//! read on the engine thread answered once what it read is durable, and
//! `AppState::submit`, a command), the two read models (`bourse-history` and
//! `bourse-market-service`), the WebSocket [`hub::Hub`], and the failure of any handler or
//! connection that panicked ([`AppState::failure`], which stops the server).
//!
//! - [`router`]: every documented route from its handler (utoipa-axum), the layers (request
//!   metrics, the body limit, caught panics, the contract's error shape for axum's own
//!   refusals) and the fallbacks. [`http`]: binding, connections, graceful stop.
//! - Handlers by resource: [`account_api`], [`admin_api`], [`bookmarks_api`], [`funds_api`],
//!   [`orders_api`], [`products_api`]; [`metrics`] has health and `/metrics` (encoded by
//!   `prometheus-client`), with the request counts and durations of [`requests`]; [`web`]
//!   serves the web terminal's files on every other path.
//! - [`cluster_api`]: `GET /cluster` (every node's offset and lag) and the gate that answers
//!   503 `stale` / `unavailable` from a node that may be behind the cluster's log.
//! - [`auth`]: token hashing and constant-time checks; [`limits`]: the per-account rate limit
//!   (`governor`), applied after a token is verified.
//! - [`openapi`]: the OpenAPI document; [`schema`]: the shapes the handlers share in it (the
//!   contract's string formats as types with a pattern, the error answers of each status).
//! - [`render`] shows the engine's integers as the contract's decimals and records as JSON;
//!   [`error`] is the contract's error shape ([`ApiError`]).
//! - The WebSocket API: [`ws`] (one task per connection), [`hub`] (channels, sequence numbers,
//!   bounded per-connection queues), [`fanout`] (the history's [`bourse_history::Observer`]:
//!   `orders`, `trades`, `balances`, `book:`) and [`market_channels`] (the market data's
//!   [`bourse_market_service::Publisher`]: `ticks:` and `candles:`).
//!
//! **Boundary:** the crate starts no engine, journal or read model; the server crate builds
//! them and hands them over. Modules depend one way (the `tidy` test checks for cycles):
//! handlers on `state`, `error`, `schema`, `render`, `auth` and `account_api` (the bearer
//! token's extractor); the router on the handlers; nothing on the router but `http`.

pub mod account_api;
pub mod admin_api;
pub mod auth;
pub mod bookmarks_api;
pub mod cluster_api;
pub mod convert;
pub mod error;
pub mod fanout;
pub mod funds_api;
pub mod fuzzing;
pub mod fx;
pub mod http;
pub mod hub;
pub mod limits;
pub mod listing;
pub mod market_channels;
pub mod metrics;
pub mod offset;
pub mod openapi;
pub mod orders_api;
pub mod peer;
pub mod products_api;
pub mod query;
pub mod render;
pub mod requests;
pub mod router;
pub mod routing;
pub mod schema;
pub mod search;
pub mod state;
pub mod tier;
pub mod wallet;
pub mod web;
pub mod ws;
pub mod ws_message;
pub mod ws_relay;

pub use error::ApiError;
pub use state::{ApiConfig, AppState};
