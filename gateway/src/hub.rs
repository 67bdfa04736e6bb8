//! The WebSocket fan-out hub: who is connected, who listens to which channel, and a bounded
//! queue per connection.
//!
//! - **Channels.** `orders`, `trades` and `balances` are per account; `book:SYMBOL` and
//!   `ticks:SYMBOL` per product. Each channel has one sequence number, shared by all its
//!   subscribers: a subscription starts with a snapshot carrying the channel's current
//!   sequence, and each update carries the next one, so a client sees a gap as a jump.
//!   A message is serialised once per channel update and shared by every subscriber.
//! - **Bounded queues.** Every connection has a queue of [`QUEUE_LEN`] messages. The hub
//!   never waits on one: a message that does not fit marks the connection as overflowed, takes
//!   it off every channel, and wakes its task, which tells the client (`slow_consumer`) and
//!   closes. Neither the history thread that publishes nor any other client waits for a slow
//!   one.
//! - **Limits.** Subscriptions per connection and connections per account are capped.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{Notify, mpsc};

/// Messages a connection's queue holds before the client counts as too slow (the default
/// of the `ws-queue` setting).
pub const QUEUE_LEN: usize = 1024;
/// Channels one connection may subscribe to.
pub const SUBSCRIPTIONS_MAX: usize = 64;
/// Authenticated connections one account may hold at once.
pub const CONNECTIONS_PER_ACCOUNT_MAX: usize = 16;

/// A channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChannelKey {
    Orders(u32),
    Trades(u32),
    Balances(u32),
    Book(u32),
    /// A market-data product id (not the engine's).
    Ticks(u32),
    /// A market-data product id and an interval index.
    Candles(u32, u8),
    /// `Ticks` converted at a rate.
    TicksIn(u32, Fx),
    /// `Candles` converted at a rate.
    CandlesIn(u32, u8, Fx),
}

/// The exchange rate a converted market-data channel uses: the market-data id of the pair,
/// and whether its price divides (the pair is quoted in the product's currency).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fx {
    pub pair: u32,
    pub divide: bool,
}

impl ChannelKey {
    /// The market-data product of a converted channel.
    fn converted_product(self) -> Option<u32> {
        match self {
            ChannelKey::TicksIn(id, _) | ChannelKey::CandlesIn(id, ..) => Some(id),
            _ => None,
        }
    }
}

impl ChannelKey {
    /// Whether the channel carries whole engine states (`balances`, `book:`) rather than
    /// history updates.
    pub fn carries_engine_state(self) -> bool {
        matches!(self, ChannelKey::Balances(_) | ChannelKey::Book(_))
    }
}

#[derive(Debug, Default)]
struct Channel {
    seq: u64,
    /// Each subscriber's queue, by connection id: a publish goes straight to the queues,
    /// without looking each connection up.
    subscribers: HashMap<u64, mpsc::Sender<Utf8Bytes>>,
}

#[derive(Debug)]
struct Conn {
    tx: mpsc::Sender<Utf8Bytes>,
    kill: Arc<Notify>,
    account: Option<u32>,
    channels: HashSet<ChannelKey>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    conns: HashMap<u64, Conn>,
    channels: HashMap<ChannelKey, Channel>,
    /// The converted channels with subscribers, by product (what a tick must also update).
    converted: HashMap<u32, HashSet<ChannelKey>>,
    per_account: HashMap<u32, usize>,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct HubCounters {
    pub messages: AtomicU64,
    pub overflows: AtomicU64,
}

/// Why a subscription or an authentication was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubError {
    TooManySubscriptions,
    TooManyConnections,
    /// The connection is gone (closed or overflowed).
    Closed,
}

/// The hub.
#[derive(Debug)]
pub struct Hub {
    inner: Mutex<Inner>,
    queue_len: usize,
    pub counters: HubCounters,
    /// Set by the first subscription to a converted channel (never cleared): until then a
    /// tick looks for converted channels without taking the lock.
    any_converted: std::sync::atomic::AtomicBool,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new(QUEUE_LEN)
    }
}

/// A connection's end of the hub.
#[derive(Debug)]
pub struct Registration {
    pub id: u64,
    pub rx: mpsc::Receiver<Utf8Bytes>,
    /// The connection's own end of its queue, for [`Hub::answer`].
    pub tx: mpsc::Sender<Utf8Bytes>,
    /// Woken when the connection overflowed.
    pub kill: Arc<Notify>,
}

impl Hub {
    /// A hub whose connections queue at most `queue_len` messages (at least 1).
    pub fn new(queue_len: usize) -> Self {
        Hub {
            inner: Mutex::default(),
            queue_len: queue_len.max(1),
            counters: HubCounters::default(),
            any_converted: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn queue_len(&self) -> usize {
        self.queue_len
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new connection.
    pub fn register(&self) -> Registration {
        let (tx, rx) = mpsc::channel(self.queue_len);
        let kill = Arc::new(Notify::new());
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        inner.conns.insert(
            id,
            Conn {
                tx: tx.clone(),
                kill: Arc::clone(&kill),
                account: None,
                channels: HashSet::new(),
            },
        );
        Registration { id, rx, tx, kill }
    }

    /// The connection ended.
    pub fn unregister(&self, id: u64) {
        let mut inner = self.lock();
        drop_conn(&mut inner, id);
    }

    /// Binds the connection to `account` (its `auth`), within the per-account cap.
    pub fn authenticate(&self, id: u64, account: u32) -> Result<(), HubError> {
        let mut inner = self.lock();
        let count = inner.per_account.get(&account).copied().unwrap_or(0);
        if count >= CONNECTIONS_PER_ACCOUNT_MAX {
            return Err(HubError::TooManyConnections);
        }
        let conn = inner.conns.get_mut(&id).ok_or(HubError::Closed)?;
        conn.account = Some(account);
        *inner.per_account.entry(account).or_default() += 1;
        Ok(())
    }

    /// Sends a message to one connection (an answer to its request), from the connection
    /// itself, on its [`Registration::tx`]: without the hub's lock, which the publishing
    /// thread holds while it fans an update out, so an answer never waits for a fan-out. A
    /// full queue overflows the connection as a publish does.
    pub fn answer(
        &self,
        id: u64,
        tx: &mpsc::Sender<Utf8Bytes>,
        message: Utf8Bytes,
    ) -> Result<(), HubError> {
        match tx.try_send(message) {
            Ok(()) => {
                self.counters.messages.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                let mut inner = self.lock();
                self.overflow(&mut inner, id);
                Err(HubError::Closed)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(HubError::Closed),
        }
    }

    /// The connection's queue is full: it is told (its `kill`) and taken off the hub.
    fn overflow(&self, inner: &mut Inner, id: u64) {
        if let Some(conn) = inner.conns.get(&id) {
            self.counters.overflows.fetch_add(1, Ordering::Relaxed);
            conn.kill.notify_one();
            drop_conn(inner, id);
        }
    }

    /// Subscribes the connection to `key` and queues the snapshot, made from the channel's
    /// current sequence number, before any later update. Subscribing again re-sends the
    /// snapshot.
    pub fn subscribe(
        &self,
        id: u64,
        key: ChannelKey,
        snapshot: impl FnOnce(u64) -> String,
    ) -> Result<(), HubError> {
        let mut inner = self.lock();
        let conn = inner.conns.get_mut(&id).ok_or(HubError::Closed)?;
        if !conn.channels.contains(&key) && conn.channels.len() >= SUBSCRIPTIONS_MAX {
            return Err(HubError::TooManySubscriptions);
        }
        conn.channels.insert(key);
        let tx = conn.tx.clone();
        if let Some(product) = key.converted_product() {
            inner.converted.entry(product).or_default().insert(key);
            self.any_converted.store(true, Ordering::Release);
        }
        let channel = inner.channels.entry(key).or_default();
        channel.subscribers.insert(id, tx);
        let message = snapshot(channel.seq);
        self.push(&mut inner, id, message.into())
    }

    pub fn unsubscribe(&self, id: u64, key: ChannelKey) {
        let mut inner = self.lock();
        if let Some(conn) = inner.conns.get_mut(&id) {
            conn.channels.remove(&key);
        }
        remove_subscriber(&mut inner, key, id);
    }

    /// The converted channels of market-data `product` that have subscribers.
    pub fn converted_channels(&self, product: u32) -> Vec<ChannelKey> {
        if !self.any_converted.load(Ordering::Acquire) {
            return Vec::new();
        }
        self.lock()
            .converted
            .get(&product)
            .map(|keys| keys.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Whether anyone listens to `key` (to skip building an update nobody gets).
    pub fn has_subscribers(&self, key: ChannelKey) -> bool {
        self.lock().channels.contains_key(&key)
    }

    /// Publishes the next update of `key`, made from its new sequence number, to every
    /// subscriber; a full queue drops that subscriber (see the module docs).
    pub fn publish(&self, key: ChannelKey, update: impl FnOnce(u64) -> String) {
        let mut inner = self.lock();
        let Some(channel) = inner.channels.get_mut(&key) else {
            return;
        };
        channel.seq += 1;
        let message: Utf8Bytes = update(channel.seq).into();
        let mut queued = 0;
        let mut overflowed = Vec::new();
        for (&id, tx) in &channel.subscribers {
            match tx.try_send(message.clone()) {
                Ok(()) => queued += 1,
                Err(_) => overflowed.push(id),
            }
        }
        self.counters.messages.fetch_add(queued, Ordering::Relaxed);
        for id in overflowed {
            self.overflow(&mut inner, id);
        }
    }

    fn push(&self, inner: &mut Inner, id: u64, message: Utf8Bytes) -> Result<(), HubError> {
        let conn = inner.conns.get(&id).ok_or(HubError::Closed)?;
        match conn.tx.try_send(message) {
            Ok(()) => {
                self.counters.messages.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(_) => {
                self.overflow(inner, id);
                Err(HubError::Closed)
            }
        }
    }

    /// `(connections, authenticated connections, subscriptions)`.
    pub fn sizes(&self) -> (usize, usize, usize) {
        let inner = self.lock();
        let authenticated = inner.per_account.values().sum();
        let subscriptions = inner.conns.values().map(|c| c.channels.len()).sum();
        (inner.conns.len(), authenticated, subscriptions)
    }
}

fn remove_subscriber(inner: &mut Inner, key: ChannelKey, id: u64) {
    if let Some(channel) = inner.channels.get_mut(&key) {
        channel.subscribers.remove(&id);
        if channel.subscribers.is_empty() {
            // The sequence restarts with the next subscriber's snapshot; nobody saw the old.
            inner.channels.remove(&key);
            if let Some(product) = key.converted_product()
                && let Some(keys) = inner.converted.get_mut(&product)
            {
                keys.remove(&key);
                if keys.is_empty() {
                    inner.converted.remove(&product);
                }
            }
        }
    }
}

fn drop_conn(inner: &mut Inner, id: u64) {
    let Some(conn) = inner.conns.remove(&id) else {
        return;
    };
    for key in conn.channels {
        remove_subscriber(inner, key, id);
    }
    if let Some(account) = conn.account
        && let Some(count) = inner.per_account.get_mut(&account)
    {
        *count -= 1;
        if *count == 0 {
            inner.per_account.remove(&account);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_carries_the_current_seq_and_updates_the_next_ones() {
        let hub = Hub::default();
        let mut a = hub.register();
        let key = ChannelKey::Ticks(1);
        hub.subscribe(a.id, key, |seq| format!("snap {seq}"))
            .unwrap();
        hub.publish(key, |seq| format!("up {seq}"));
        let mut b = hub.register();
        hub.subscribe(b.id, key, |seq| format!("snap {seq}"))
            .unwrap();
        hub.publish(key, |seq| format!("up {seq}"));
        let drain = |r: &mut Registration| {
            let mut out = Vec::new();
            while let Ok(m) = r.rx.try_recv() {
                out.push(m.as_str().to_string());
            }
            out
        };
        assert_eq!(drain(&mut a), vec!["snap 0", "up 1", "up 2"]);
        assert_eq!(drain(&mut b), vec!["snap 1", "up 2"]);
    }

    #[test]
    fn a_product_finds_its_converted_channels_until_their_last_subscriber_leaves() {
        let hub = Hub::default();
        assert!(hub.converted_channels(7).is_empty());
        let (a, b) = (hub.register(), hub.register());
        let eur = Fx {
            pair: 1,
            divide: true,
        };
        let jpy = Fx {
            pair: 2,
            divide: false,
        };
        let (ticks, candles) = (
            ChannelKey::TicksIn(7, eur),
            ChannelKey::CandlesIn(7, 1, jpy),
        );
        hub.subscribe(a.id, ticks, |_| String::new()).unwrap();
        hub.subscribe(b.id, ticks, |_| String::new()).unwrap();
        hub.subscribe(b.id, candles, |_| String::new()).unwrap();
        hub.subscribe(b.id, ChannelKey::Ticks(7), |_| String::new())
            .unwrap();
        let mut found = hub.converted_channels(7);
        found.sort_by_key(|k| format!("{k:?}"));
        assert_eq!(found, vec![ChannelKey::CandlesIn(7, 1, jpy), ticks]);
        assert!(hub.converted_channels(8).is_empty());
        hub.unsubscribe(a.id, ticks);
        assert_eq!(
            hub.converted_channels(7).len(),
            2,
            "b still listens to both"
        );
        hub.unregister(b.id);
        assert!(hub.converted_channels(7).is_empty());
    }

    #[test]
    fn a_full_queue_drops_only_that_connection() {
        let hub = Hub::default();
        let slow = hub.register();
        let mut fast = hub.register();
        let key = ChannelKey::Book(3);
        hub.subscribe(slow.id, key, |_| "s".into()).unwrap();
        hub.subscribe(fast.id, key, |_| "s".into()).unwrap();
        for _ in 0..QUEUE_LEN + 10 {
            hub.publish(key, |seq| seq.to_string());
            // The fast one reads as it goes.
            while fast.rx.try_recv().is_ok() {}
        }
        assert_eq!(hub.counters.overflows.load(Ordering::Relaxed), 1);
        assert_eq!(hub.sizes(), (1, 0, 1), "the slow connection is gone");
        assert_eq!(
            hub.answer(slow.id, &slow.tx, "x".into()),
            Err(HubError::Closed),
            "and takes nothing more"
        );
        hub.publish(key, |seq| seq.to_string());
        assert_eq!(
            fast.rx.try_recv().unwrap().as_str(),
            (QUEUE_LEN + 11).to_string()
        );
    }

    #[test]
    fn caps_on_subscriptions_and_connections_per_account() {
        let hub = Hub::default();
        let conn = hub.register();
        let mut rx = conn.rx;
        for product in 0..SUBSCRIPTIONS_MAX as u32 {
            hub.subscribe(conn.id, ChannelKey::Ticks(product), |_| String::new())
                .unwrap();
            let _ = rx.try_recv();
        }
        assert_eq!(
            hub.subscribe(conn.id, ChannelKey::Ticks(999), |_| String::new()),
            Err(HubError::TooManySubscriptions)
        );
        let conns: Vec<Registration> = (0..=CONNECTIONS_PER_ACCOUNT_MAX)
            .map(|_| hub.register())
            .collect();
        for (i, c) in conns.iter().enumerate() {
            let result = hub.authenticate(c.id, 42);
            if i < CONNECTIONS_PER_ACCOUNT_MAX {
                assert!(result.is_ok());
            } else {
                assert_eq!(result, Err(HubError::TooManyConnections));
            }
        }
        hub.unregister(conns[0].id);
        assert!(
            hub.authenticate(conns[CONNECTIONS_PER_ACCOUNT_MAX].id, 42)
                .is_ok()
        );
    }
}
