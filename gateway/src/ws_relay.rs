//! The WebSocket market-data channels (`ticks:`, `candles:`) of a product this node does not
//! hold, with `market-tier = partitioned` (docs/market-data.md, "Across nodes"): relayed from
//! a node that holds it.
//!
//! A subscription to such a channel starts a task that opens a WebSocket to the product's
//! holders in turn (owner first), subscribes there to the same channel and passes every
//! message of that channel to the client as it is: the holder's snapshot, then its updates,
//! with the holder's sequence numbers. When the holder goes away, the client gets
//! `{"channel", "type": "gap"}` at once, and the next holder's snapshot follows (its sequence
//! numbers start over). A holder that is not ready answers `unavailable` and the next one is
//! asked. A connection that came from another node ([`crate::tier::FORWARDED`]) is never
//! relayed again: it answers `unavailable` for a partition it does not hold ready.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use axum::http::StatusCode;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::error::ApiError;
use crate::hub::Hub;
use crate::state::AppState;
use crate::tier::{FORWARDED, MarketTier};

/// How long the relay waits before asking the holders again when none answered.
const RETRY: Duration = Duration::from_millis(200);

/// How long a holder may take to answer the subscription.
const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// The symbol of a market-data channel's name (`ticks:SYMBOL[:CUR]`,
/// `candles:SYMBOL:INTERVAL[:CUR]`).
fn market_symbol(name: &str) -> Option<&str> {
    let (kind, rest) = name.split_once(':')?;
    matches!(kind, "ticks" | "candles")
        .then(|| rest.split(':').next())
        .flatten()
        .filter(|s| !s.is_empty())
}

/// Takes out of a subscribe's `channels` those to relay (market data of a product whose
/// partition this node does not hold ready), as `(name, symbol)`. On a connection another
/// node forwarded, such a channel is refused with `unavailable` instead.
pub(crate) fn split(
    state: &AppState,
    forwarded: bool,
    fields: &mut Map<String, Value>,
) -> Result<Vec<(String, String)>, ApiError> {
    let Some(tier) = state.cluster.as_ref().and_then(|c| c.market_tier.as_ref()) else {
        return Ok(Vec::new());
    };
    let Some(Value::Array(names)) = fields.get_mut("channels") else {
        return Ok(Vec::new());
    };
    let mut relayed = Vec::new();
    let mut kept = Vec::new();
    for value in names.drain(..) {
        let symbol = value.as_str().and_then(market_symbol).map(str::to_owned);
        match symbol {
            Some(symbol) if !tier.ready(tier.partition(&symbol)) => {
                if forwarded {
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        format!(
                            "this node does not hold partition {} (of {symbol}) ready",
                            tier.partition(&symbol)
                        ),
                    ));
                }
                relayed.push((value.as_str().unwrap_or_default().to_owned(), symbol));
            }
            _ => kept.push(value),
        }
    }
    *names = kept;
    Ok(relayed)
}

/// Where the relay's messages go: the client's queue on the hub.
pub(crate) struct Client {
    pub(crate) hub: Arc<Hub>,
    pub(crate) id: u64,
    pub(crate) tx: mpsc::Sender<Utf8Bytes>,
}

impl Client {
    /// `false` once the client is gone (or too slow: the hub closes it).
    fn send(&self, text: String) -> bool {
        self.hub.answer(self.id, &self.tx, text.into()).is_ok()
    }
}

/// How one holder's relay ended.
enum Ended {
    /// It served the channel, then went away: a gap, then the next holder.
    Lost,
    /// It would not serve (not ready, unreachable): the next holder.
    Refused,
    /// It refused the channel for good (no such product, a bad name): said to the client.
    Final,
    /// The client is gone.
    ClientGone,
}

/// Starts relaying channel `name` of `symbol` to `client`, until the task is aborted (an
/// unsubscribe, the connection's end) or the client is gone.
pub(crate) fn start(
    tier: Arc<MarketTier>,
    name: String,
    symbol: String,
    client: Client,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            for member in tier.holders_of(&symbol) {
                match relay_from(&member.addr, &name, &client).await {
                    Ended::Lost => {
                        let gap = json!({
                            "channel": name,
                            "type": "gap",
                            "data": {"reason": format!(
                                "node {} that served this channel is gone; the next holder's \
                                 snapshot follows",
                                member.node
                            )},
                        });
                        if !client.send(gap.to_string()) {
                            return;
                        }
                        break;
                    }
                    Ended::Refused => {}
                    Ended::Final | Ended::ClientGone => return,
                }
            }
            tokio::time::sleep(RETRY).await;
        }
    })
}

/// Relays `name` from the node at `addr` (`http://host:port`) until it ends.
async fn relay_from(addr: &str, name: &str, client: &Client) -> Ended {
    let url = format!(
        "ws://{}/api/v1/ws",
        addr.trim_start_matches("http://").trim_end_matches('/')
    );
    let Ok(mut request) = url.into_client_request() else {
        return Ended::Refused;
    };
    request
        .headers_mut()
        .insert(FORWARDED, axum::http::HeaderValue::from_static("1"));
    let Ok((mut socket, _)) = tokio_tungstenite::connect_async(request).await else {
        return Ended::Refused;
    };
    let subscribe = json!({"op": "subscribe", "channels": [name]}).to_string();
    if socket.send(Message::text(subscribe)).await.is_err() {
        return Ended::Refused;
    }
    // The answer to the subscription first: ok, or why not.
    let answered = tokio::time::timeout(ANSWER_WAIT, async {
        while let Some(Ok(message)) = socket.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let Ok(value) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if value["op"] == "subscribe" {
                return Some(value);
            }
        }
        None
    })
    .await;
    let answer = match answered {
        Ok(Some(answer)) => answer,
        _ => return Ended::Refused,
    };
    if answer["ok"] != json!(true) {
        if answer["error"]["code"] == "unavailable" {
            return Ended::Refused;
        }
        return if client.send(answer.to_string()) {
            Ended::Final
        } else {
            Ended::ClientGone
        };
    }
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        // Only this channel's messages (the holder sends nothing else unasked).
        let ours = serde_json::from_str::<Value>(&text)
            .is_ok_and(|value| value["channel"].as_str() == Some(name));
        if ours && !client.send(text.to_string()) {
            return Ended::ClientGone;
        }
    }
    Ended::Lost
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_symbol_of_a_market_channel() {
        assert_eq!(market_symbol("ticks:AAPL"), Some("AAPL"));
        assert_eq!(market_symbol("ticks:AAPL:EUR"), Some("AAPL"));
        assert_eq!(market_symbol("candles:AAPL:1m"), Some("AAPL"));
        assert_eq!(market_symbol("book:AAPL"), None);
        assert_eq!(market_symbol("orders"), None);
        assert_eq!(market_symbol("ticks:"), None);
    }
}
