//! The WebSocket API at `/api/v1/ws`: text frames of JSON.
//!
//! Client messages: `{"op": "auth", "token"}`, `{"op": "subscribe", "channels": [...]}`,
//! `{"op": "unsubscribe", "channels": [...]}`, `{"op": "order", "side": "buy"|"sell", ...the
//! body of POST /product/buy}`, `{"op": "cancel", "orderId"}`, `{"op": "ping"}`. Each may carry
//! an `id` (any JSON value), echoed in its answer: `{"id", "op", "ok": true, ...}` or
//! `{"id", "op", "error": {"code", "message"}}` with the codes of the HTTP API. Channel
//! messages are described in [`crate::fanout`].
//!
//! - Orders and cancels are handed to the engine in the order they arrive on the connection;
//!   their answers come when each is durable, so answers to pipelined orders may interleave
//!   with channel messages but each names its `id`.
//! - A binary frame, malformed JSON or an unknown op is answered with an error and changes
//!   nothing; the connection stays open. A message over [`MESSAGE_BYTES_MAX`] gets a
//!   `payload_too_large` error and a close (1009), since the rest of such a frame cannot be
//!   read.
//! - Every message of an authenticated connection counts against the account's rate limit
//!   (`rate_limited` errors; the message is dropped).
//! - A client whose queue overflows gets `{"error": {"code": "slow_consumer"}}` and a close
//!   (1013, try again later); on reconnecting it subscribes again and starts from snapshots.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::http::StatusCode;
use axum::response::Response;
use bourse_engine::{AccountId, CommandKind, ProductId, Side};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, bad_request, history_unavailable};
use crate::fanout;
use crate::hub::{ChannelKey, Hub, HubError, Registration};
use crate::orders_api::{self, OrderBody};
use crate::render::{self, ProductUnits};
use crate::state::AppState;
use crate::ws_message;

/// The answer to an order or a cancel, once the engine has decided.
type Answer = std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send>>;

/// Queued messages written before one flush.
const WRITE_BATCH_MAX: usize = 64;

/// The largest client message (and frame).
pub const MESSAGE_BYTES_MAX: usize = 16 * 1024;

/// Bytes tungstenite reads from the socket at a time. Its default, 128 KiB, is zero-filled
/// before every read (also every poll that finds nothing to read, which is each time the
/// connection's task wakes to send), which cost 6% of all CPU at 50,000 orders/s, and is
/// reserved per connection (1.3 GB at 10,000 clients). Messages are small (an order is about
/// 150 bytes): a bigger one simply takes more reads.
pub const READ_BUFFER_BYTES: usize = 4 * 1024;

/// `GET /api/v1/ws`: the upgrade.
#[utoipa::path(
    get,
    path = "/api/v1/ws",
    tag = "websocket",
    params(
        ("Connection" = inline(crate::schema::ConnectionUpgrade), Header, description = "the upgrade request (RFC 6455)"),
        ("Upgrade" = inline(crate::schema::UpgradeWebsocket), Header, description = "the protocol asked for"),
        ("Sec-WebSocket-Version" = inline(crate::schema::WebSocketVersion), Header, description = "the WebSocket version"),
        ("Sec-WebSocket-Key" = String, Header, description = "16 random bytes in base64 (the server only echoes its digest)"),
    ),
    responses(
        (status = 101, description = "switching to the WebSocket protocol (messages in docs/api.md)"),
        (status = 400, description = "`invalid_request`: not a WebSocket upgrade request (a header is missing or wrong)", body = crate::openapi::ErrorBody),
        (status = 426, description = "`invalid_request`: the connection cannot be upgraded", body = crate::openapi::ErrorBody),
    )
)]
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let forwarded = headers.contains_key(crate::tier::FORWARDED);
    ws.max_message_size(MESSAGE_BYTES_MAX)
        .max_frame_size(MESSAGE_BYTES_MAX)
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| {
            use futures_util::FutureExt;
            let fault = state.clone();
            // A panic in a connection's task is a bug: the server stops (fail-stop), as for
            // any other server thread.
            std::panic::AssertUnwindSafe(connection(state, socket, forwarded))
                .catch_unwind()
                .map(move |ended| {
                    if let Err(panic) = ended {
                        fault.fail(format!(
                            "a WebSocket connection panicked: {}",
                            bourse_pipeline::panic_message(&*panic)
                        ));
                    }
                })
        })
}

fn error_message(id: &Value, op: &str, error: &ApiError) -> String {
    let mut message = json!({
        "op": op,
        "error": {"code": error.code, "message": error.message},
    });
    if !id.is_null() {
        message["id"] = id.clone();
    }
    message.to_string()
}

fn ok_message(id: &Value, op: &str, mut extra: Value) -> String {
    extra["op"] = json!(op);
    extra["ok"] = json!(true);
    if !id.is_null() {
        extra["id"] = id.clone();
    }
    extra.to_string()
}

/// `{"op": "order", "ok": true, "id": ..., "order": {...}}`: what [`ok_message`] makes of an
/// order, typed.
#[derive(serde::Serialize)]
struct OrderAnswer<'a> {
    op: &'static str,
    ok: bool,
    #[serde(skip_serializing_if = "Value::is_null")]
    id: &'a Value,
    order: render::OrderView<'a>,
}

/// One connection's state.
struct Session {
    state: AppState,
    hub: Arc<Hub>,
    id: u64,
    /// This connection's queue (see [`Hub::answer`]).
    tx: tokio::sync::mpsc::Sender<Utf8Bytes>,
    account: Option<AccountId>,
    /// Where this connection's orders go (the local pipeline or the cluster's log).
    sequencer: bourse_cluster::Sequencer,
    /// Products by symbol (they never change).
    products: HashMap<String, (u32, ProductUnits)>,
    /// Another node opened this connection to relay channels (`ws_relay.rs`).
    forwarded: bool,
    /// Market-data channels relayed from another node, by name.
    relays: HashMap<String, tokio::task::JoinHandle<()>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        for relay in self.relays.values() {
            relay.abort();
        }
    }
}

async fn connection(state: AppState, socket: WebSocket, forwarded: bool) {
    let hub = Arc::clone(&state.hub);
    let Registration {
        id,
        mut rx,
        tx,
        kill,
    } = hub.register();
    let (mut sink, mut stream) = socket.split();
    let mut session = Session {
        sequencer: state.sequencer.clone(),
        state,
        hub: Arc::clone(&hub),
        id,
        tx,
        account: None,
        products: HashMap::new(),
        forwarded,
        relays: HashMap::new(),
    };
    // Orders and cancels handed to the engine, waiting to be answered: polled here rather
    // than in tasks of their own (one wake-up per answer fewer).
    let mut pending: FuturesUnordered<Answer> = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            () = kill.notified() => {
                close_with(&mut sink, &slow_consumer(hub.queue_len()), close_code::AGAIN).await;
                break;
            }
            out = rx.recv() => match out {
                Some(text) => {
                    // Everything queued goes out with one flush (one write for many small
                    // messages, instead of one each).
                    let mut batch = vec![text];
                    while batch.len() < WRITE_BATCH_MAX {
                        match rx.try_recv() {
                            Ok(next) => batch.push(next),
                            Err(_) => break,
                        }
                    }
                    let writer = &mut sink;
                    let mut send = Box::pin(async move {
                        for text in batch {
                            writer.feed(Message::Text(text)).await?;
                        }
                        writer.flush().await
                    });
                    tokio::select! {
                        sent = &mut send => if sent.is_err() {
                            break;
                        },
                        () = kill.notified() => {
                            // Overflowed while this send waits on a full socket: finish the
                            // frame if the client reads within CLOSE_WAIT, then say why.
                            let finished = tokio::time::timeout(CLOSE_WAIT, &mut send).await;
                            drop(send);
                            if matches!(finished, Ok(Ok(()))) {
                                close_with(&mut sink, &slow_consumer(hub.queue_len()), close_code::AGAIN).await;
                            }
                            break;
                        }
                    }
                }
                None => break,
            },
            Some(answer) = pending.next(), if !pending.is_empty() => {
                session.answer(answer);
                // Orders durable in the same group commit are answered together, and so go
                // out in one write.
                while let Some(Some(answer)) = pending.next().now_or_never() {
                    session.answer(answer);
                }
            }
            incoming = stream.next() => match incoming {
                None | Some(Ok(Message::Close(_))) => break,
                Some(Err(error)) => {
                    let text = error.to_string();
                    if text.contains("too long") || text.contains("Space limit") {
                        let error = ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "payload_too_large",
                            format!("a message is larger than {MESSAGE_BYTES_MAX} bytes"),
                        );
                        close_with(&mut sink, &error, close_code::SIZE).await;
                    }
                    break;
                }
                Some(Ok(Message::Text(text))) => {
                    if let Some(answer) = session.handle_text(&text).await {
                        pending.push(answer);
                    }
                }
                Some(Ok(Message::Binary(_))) => session.answer(error_message(
                    &Value::Null,
                    "",
                    &bad_request("binary frames are not accepted; send JSON text"),
                )),
                // Pings are answered by the library.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            },
        }
    }
    hub.unregister(id);
}

fn slow_consumer(queue_len: usize) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "slow_consumer",
        format!(
            "more than {queue_len} messages were waiting for this connection; reconnect and \
             subscribe again"
        ),
    )
}

/// How long a connection that is being closed waits for a client that does not read.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Sends `error` and a close frame (best effort: the peer may be gone or not reading; at most
/// [`CLOSE_WAIT`]).
async fn close_with<S>(sink: &mut S, error: &ApiError, code: u16)
where
    S: SinkExt<Message> + Unpin,
{
    let close = async {
        sink.send(Message::Text(error_message(&Value::Null, "", error).into()))
            .await
            .ok()?;
        sink.send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from(error.code),
        })))
        .await
        .ok()
    };
    let _ = tokio::time::timeout(CLOSE_WAIT, close).await;
}

impl Session {
    /// [`Session::answer`], for a handler that has nothing more to do.
    fn answer_none(&self, message: String) -> Option<Answer> {
        self.answer(message);
        None
    }

    /// Queues a message for the client (a full queue closes the connection).
    fn answer(&self, message: String) {
        let _ = self.hub.answer(self.id, &self.tx, message.into());
    }

    /// Handles one client message; an order or a cancel returns the future of its answer.
    async fn handle_text(&mut self, text: &str) -> Option<Answer> {
        // The hot path: a well-formed order is read straight into its typed form. Anything
        // else (another op, a mistake of any kind) goes the general way below, which finds
        // the precise error.
        if let Some(order) = ws_message::typed_order(text) {
            if let Err(error) = self.rate_limit() {
                return self.answer_none(error_message(&order.id, "order", &error));
            }
            return self.place(order.id, order.side, Ok(order.body)).await;
        }
        let (id, op, fields) = match ws_message::general(text) {
            Ok(read) => read,
            Err((id, error)) => return self.answer_none(error_message(&id, "", &error)),
        };
        if let Err(error) = self.rate_limit() {
            return self.answer_none(error_message(&id, &op, &error));
        }
        let result = match op.as_str() {
            "auth" => self.auth(fields).await,
            "subscribe" => {
                self.subscribe(id, fields).await;
                return None;
            }
            "unsubscribe" => self.unsubscribe(fields),
            "order" => return self.order(id, fields).await,
            "cancel" => return self.cancel(id, fields),
            "ping" => {
                no_fields(&fields).map(|()| json!({"time": bourse_market_service::unix_ms()}))
            }
            other => Err(bad_request(format!(
                "unknown op {other:?} (auth, subscribe, unsubscribe, order, cancel, ping)"
            ))),
        };
        let message = match result {
            Ok(extra) => ok_message(&id, &op, extra),
            Err(error) => error_message(&id, &op, &error),
        };
        self.answer(message);
        None
    }

    /// Takes one message from the account's rate budget (nothing before `auth`).
    fn rate_limit(&self) -> Result<(), ApiError> {
        let Some(account) = self.account else {
            return Ok(());
        };
        self.state.rate_limiter.take(account).map_err(|wait| {
            let mut error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "too many messages for this account; retry in {} ms",
                    wait.as_millis().max(1)
                ),
            );
            error.retry_after = Some(wait.as_secs().max(1));
            error
        })
    }

    fn account(&self) -> Result<AccountId, ApiError> {
        self.account.ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "authenticate first: {\"op\": \"auth\", \"token\": ...}",
            )
        })
    }

    async fn auth(&mut self, mut fields: Map<String, Value>) -> Result<Value, ApiError> {
        let token = match fields.remove("token") {
            Some(Value::String(token)) => token,
            _ => return Err(bad_request("auth needs \"token\" (a string)")),
        };
        no_fields(&fields)?;
        let account = crate::account_api::check_token(&self.state, &token).await?;
        match self.account {
            Some(existing) if existing == account => {
                return Ok(json!({"accountId": account.to_string()}));
            }
            Some(_) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "already_authenticated",
                    "this connection is authenticated as another account",
                ));
            }
            None => {}
        }
        self.hub
            .authenticate(self.id, account.get())
            .map_err(|e| match e {
                HubError::TooManyConnections => ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_connections",
                    format!(
                        "the account has {} WebSocket connections already",
                        crate::hub::CONNECTIONS_PER_ACCOUNT_MAX
                    ),
                ),
                _ => closed(),
            })?;
        self.account = Some(account);
        Ok(json!({"accountId": account.to_string()}))
    }

    async fn product(&mut self, symbol: &str) -> Result<(u32, ProductUnits), ApiError> {
        if let Some(found) = self.products.get(symbol) {
            return Ok(found.clone());
        }
        let owned = symbol.to_string();
        let found = self
            .state
            .query(move |engine| fanout::resolve(engine, &owned))
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_symbol",
                    format!("no product {symbol:?}"),
                )
            })?;
        self.products.insert(symbol.to_string(), found.clone());
        Ok(found)
    }

    /// The channels of a subscribe or unsubscribe, parsed and checked, all or nothing.
    async fn channels(
        &mut self,
        fields: &mut Map<String, Value>,
    ) -> Result<Vec<(ChannelKey, String, Option<ProductUnits>)>, ApiError> {
        let names = match fields.remove("channels") {
            Some(Value::Array(names)) if !names.is_empty() => names,
            _ => {
                return Err(bad_request(
                    "\"channels\" must be a non-empty array of names",
                ));
            }
        };
        no_fields(fields)?;
        let mut keys = Vec::new();
        for name in names {
            let Value::String(name) = name else {
                return Err(bad_request("a channel name is a string"));
            };
            let key = match name.split_once(':') {
                None => {
                    let private: fn(u32) -> ChannelKey = match name.as_str() {
                        "orders" => ChannelKey::Orders,
                        "trades" => ChannelKey::Trades,
                        "balances" => ChannelKey::Balances,
                        _ => return Err(unknown_channel(&name)),
                    };
                    let account = self.account()?.get();
                    // A private channel starts with a snapshot of the account: not from a
                    // node that may be behind the log (see `cluster_api::freshness_gate`).
                    self.state
                        .sequencer
                        .fresh()
                        .map_err(|stale| crate::error::stale_error(&stale, true))?;
                    (private(account), None)
                }
                Some(("book", symbol)) => {
                    let (product, units) = self.product(symbol).await?;
                    (ChannelKey::Book(product), Some(units))
                }
                Some((kind @ ("ticks" | "candles"), rest)) => (
                    crate::market_channels::parse(&self.state.market, kind, rest)?,
                    None,
                ),
                Some(_) => return Err(unknown_channel(&name)),
            };
            keys.push((key.0, name, key.1));
        }
        Ok(keys)
    }

    /// Answers first, then queues each channel's snapshot.
    async fn subscribe(&mut self, id: Value, mut fields: Map<String, Value>) {
        let asked = fields.get("channels").cloned();
        let relayed = match crate::ws_relay::split(&self.state, self.forwarded, &mut fields) {
            Ok(relayed) => relayed,
            Err(error) => return self.answer(error_message(&id, "subscribe", &error)),
        };
        let all_relayed = !relayed.is_empty()
            && matches!(fields.get("channels"), Some(Value::Array(a)) if a.is_empty());
        let keys = if all_relayed {
            fields.remove("channels");
            match no_fields(&fields) {
                Ok(()) => Vec::new(),
                Err(error) => return self.answer(error_message(&id, "subscribe", &error)),
            }
        } else {
            match self.channels(&mut fields).await {
                Ok(keys) => keys,
                Err(error) => return self.answer(error_message(&id, "subscribe", &error)),
            }
        };
        let names = if relayed.is_empty() {
            json!(
                keys.iter()
                    .map(|(_, name, _)| name.as_str())
                    .collect::<Vec<_>>()
            )
        } else {
            asked.unwrap_or(Value::Null)
        };
        self.answer(ok_message(&id, "subscribe", json!({"channels": names})));
        if let Some(tier) = self
            .state
            .cluster
            .as_ref()
            .and_then(|c| c.market_tier.clone())
        {
            for (name, symbol) in relayed {
                let client = crate::ws_relay::Client {
                    hub: Arc::clone(&self.hub),
                    id: self.id,
                    tx: self.tx.clone(),
                };
                let relay = crate::ws_relay::start(Arc::clone(&tier), name.clone(), symbol, client);
                if let Some(old) = self.relays.insert(name, relay) {
                    old.abort();
                }
            }
        }
        for (key, name, units) in keys {
            if let Err(error) = self.subscribe_one(key, &name, units).await {
                let error = ApiError::new(
                    error.status,
                    error.code,
                    format!("{name}: {}", error.message),
                );
                return self.answer(error_message(&id, "subscribe", &error));
            }
        }
    }

    async fn subscribe_one(
        &mut self,
        key: ChannelKey,
        name: &str,
        units: Option<ProductUnits>,
    ) -> Result<(), ApiError> {
        let result = if matches!(
            key,
            ChannelKey::Ticks(_)
                | ChannelKey::Candles(..)
                | ChannelKey::TicksIn(..)
                | ChannelKey::CandlesIn(..)
        ) {
            crate::market_channels::subscribe(&self.state.market, &self.hub, self.id, key, name)
                .map_err(|e| {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "market_data_unavailable",
                        e,
                    )
                })?
        } else if key.carries_engine_state() {
            // Whole states: read, then subscribe with the state as the snapshot.
            let data = match key {
                ChannelKey::Balances(account) => {
                    self.state
                        .query(move |engine| fanout::balances_data(engine, account))
                        .await?
                }
                ChannelKey::Book(product) => {
                    let units = units.ok_or_else(closed)?;
                    self.state
                        .query(move |engine| fanout::book_data(engine, &units, product))
                        .await?
                }
                _ => Value::Null,
            };
            self.hub
                .subscribe(self.id, key, |seq| fanout::message(name, true, seq, &data))
        } else {
            // From the model, under its read lock: no batch is folded or published between
            // the snapshot and the subscription.
            let products = self
                .state
                .history
                .with_model(|model| fanout::model_products(model, key))
                .map_err(history_unavailable)?;
            let mut units: HashMap<u32, ProductUnits> = HashMap::new();
            if !products.is_empty() {
                units = self
                    .state
                    .query(move |engine| crate::render::units_of(engine, &products))
                    .await?;
            }
            let hub = Arc::clone(&self.hub);
            let id = self.id;
            self.state
                .history
                .with_model(|model| {
                    let data = fanout::model_snapshot(model, key, &units);
                    hub.subscribe(id, key, |seq| fanout::message(name, true, seq, &data))
                })
                .map_err(history_unavailable)?
        };
        result.map_err(|e| match e {
            HubError::TooManySubscriptions => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_subscriptions",
                format!(
                    "a connection may subscribe to {} channels",
                    crate::hub::SUBSCRIPTIONS_MAX
                ),
            ),
            _ => closed(),
        })
    }

    fn unsubscribe(&mut self, mut fields: Map<String, Value>) -> Result<Value, ApiError> {
        let names = match fields.remove("channels") {
            Some(Value::Array(names)) if !names.is_empty() => names,
            _ => {
                return Err(bad_request(
                    "\"channels\" must be a non-empty array of names",
                ));
            }
        };
        no_fields(&fields)?;
        let mut done = Vec::new();
        for name in names {
            let Value::String(name) = name else {
                return Err(bad_request("a channel name is a string"));
            };
            if let Some(relay) = self.relays.remove(&name) {
                relay.abort();
                done.push(name);
                continue;
            }
            let key = match (name.as_str(), name.split_once(':'), self.account) {
                ("orders", _, Some(a)) => Some(ChannelKey::Orders(a.get())),
                ("trades", _, Some(a)) => Some(ChannelKey::Trades(a.get())),
                ("balances", _, Some(a)) => Some(ChannelKey::Balances(a.get())),
                (_, Some(("book", symbol)), _) => {
                    self.products.get(symbol).map(|(p, _)| ChannelKey::Book(*p))
                }
                (_, Some((kind @ ("ticks" | "candles"), rest)), _) => {
                    crate::market_channels::parse(&self.state.market, kind, rest).ok()
                }
                _ => None,
            };
            if let Some(key) = key {
                self.hub.unsubscribe(self.id, key);
            }
            done.push(name);
        }
        Ok(json!({"channels": done}))
    }

    /// Hands the order to the engine now (so orders keep their order on the connection) and
    /// answers when it is durable (the future is polled by the connection's own task).
    async fn order(&mut self, id: Value, fields: Map<String, Value>) -> Option<Answer> {
        match ws_message::order_of_fields(fields) {
            Ok((side, body)) => self.place(id, side, Ok(body)).await,
            Err(error) => {
                self.answer(error_message(&id, "order", &error));
                None
            }
        }
    }

    /// Submits an order read by [`Session::order`] or the typed path of
    /// [`Session::handle_text`]; returns the future of its answer.
    async fn place(
        &mut self,
        id: Value,
        side: Side,
        body: Result<OrderBody, ApiError>,
    ) -> Option<Answer> {
        let prepared = async {
            let account = self.account()?;
            let body = body?;
            let (product, units) = self.product(body.symbol()).await?;
            let order =
                orders_api::new_order(account, side, &body, ProductId::new(product), &units)?;
            let ticket = self
                .sequencer
                .send(CommandKind::PlaceOrder(order))
                .map_err(crate::error::propose_error)?;
            Ok::<_, ApiError>((ticket, account, units))
        }
        .await;
        let (ticket, account, units) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => {
                self.answer(error_message(&id, "order", &error));
                return None;
            }
        };
        let state = self.state.clone();
        Some(Box::pin(async move {
            let answer = match ticket.await.map_err(crate::error::propose_error) {
                Ok(outcome) => orders_api::placed_or_first(&state, &outcome, account).await,
                Err(error) => Err(error),
            };
            match answer {
                // Serialised straight to text (no `Value` in between): this is the hot path.
                Ok((record, fills, duplicate)) => {
                    let answer = OrderAnswer {
                        op: "order",
                        ok: true,
                        id: &id,
                        order: render::order_view(&units, &record, Some(&fills))
                            .duplicate(duplicate),
                    };
                    // Room for an order and a fill or two, so the text is not regrown.
                    let mut text = Vec::with_capacity(1024);
                    match serde_json::to_writer(&mut text, &answer) {
                        // serde_json writes UTF-8 only.
                        Ok(()) => String::from_utf8(text).unwrap_or_default(),
                        Err(_) => String::new(),
                    }
                }
                Err(error) => error_message(&id, "order", &error),
            }
        }))
    }

    fn cancel(&mut self, id: Value, mut fields: Map<String, Value>) -> Option<Answer> {
        let prepared = (|| {
            let account = self.account()?;
            let order = match fields.remove("orderId") {
                Some(Value::Number(n)) => n.as_u64().filter(|n| *n > 0),
                Some(Value::String(s)) => s.parse::<u64>().ok().filter(|n| *n > 0),
                _ => None,
            }
            .ok_or_else(|| bad_request("cancel needs \"orderId\" (a positive integer)"))?;
            no_fields(&fields)?;
            Ok::<_, ApiError>((account, order))
        })();
        let (account, order) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => {
                self.answer(error_message(&id, "cancel", &error));
                return None;
            }
        };
        let state = self.state.clone();
        Some(Box::pin(async move {
            match orders_api::cancel_order(&state, account, order).await {
                Ok(order) => ok_message(&id, "cancel", json!({"order": order})),
                Err(error) => error_message(&id, "cancel", &error),
            }
        }))
    }
}

fn no_fields(fields: &Map<String, Value>) -> Result<(), ApiError> {
    match fields.keys().next() {
        None => Ok(()),
        Some(key) => Err(bad_request(format!("unknown field {key:?}"))),
    }
}

fn unknown_channel(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_channel",
        format!(
            "no channel {name:?} (orders, trades, balances, book:SYMBOL, ticks:SYMBOL[:CUR], \
             candles:SYMBOL:INTERVAL[:CUR])"
        ),
    )
}

fn closed() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "closed",
        "the connection is closing",
    )
}
