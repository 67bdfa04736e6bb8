//! The HTTP and WebSocket API of Bourse (`docs/api.md`; OpenAPI at `/api/v1/openapi.json`).
//!
//! [`http::Server::start`] serves a [`router::router`] over an [`AppState`], which holds the
//! only ways to the engine ([`AppState::query`], a read on the engine thread answered once
//! what it read is durable, and [`AppState::submit`], a command), the two read models
//! (`bourse-history` and `bourse-market-service`) and the WebSocket [`hub::Hub`].
//!
//! - Handlers by resource: [`account_api`], [`admin_api`], [`bookmarks_api`], [`funds_api`],
//!   [`orders_api`], [`products_api`]; [`metrics`] has health and `/metrics`; [`web`] serves
//!   the web terminal's files on every other path.
//! - [`render`] shows the engine's integers as the contract's decimals and records as JSON;
//!   [`error`] is the contract's error shape.
//! - The WebSocket API: [`ws`] (one task per connection), [`hub`] (channels, sequence numbers,
//!   bounded per-connection queues), [`fanout`] (the history's [`bourse_history::Observer`]:
//!   `orders`, `trades`, `balances`, `book:`) and [`market_channels`] (the market data's
//!   [`bourse_market_service::Publisher`]: `ticks:` and `candles:`).
//!
//! **Boundary:** the crate starts no engine, journal or read model; the server crate builds
//! them and hands them over. Modules depend one way: handlers on `state`, `error`, `render`
//! and `auth`; the router on the handlers; nothing on the router but `http`.

pub mod account_api;
pub mod admin_api;
pub mod auth;
pub mod bookmarks_api;
pub mod error;
pub mod fanout;
pub mod funds_api;
pub mod http;
pub mod hub;
pub mod limits;
pub mod market_channels;
pub mod metrics;
pub mod openapi;
pub mod orders_api;
pub mod products_api;
pub mod render;
pub mod requests;
pub mod router;
pub mod state;
pub mod web;
pub mod ws;

pub use error::ApiError;
pub use state::{ApiConfig, AppState};
