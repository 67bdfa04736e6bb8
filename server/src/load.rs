//! The embedded load generator of `bourse serve --load-rate RATE`: the way to put a running
//! server under load without clients (demos, the SIGKILL test).
//!
//! One thread submits through a pipeline [`Handle`] like any producer. It first makes sure its
//! world exists, creating what the recovered state lacks: the assets `USD` and `LOAD`, the
//! product `LOAD-USD` (ticks of 0.01, lots of one unit, flat fees), [`TRADERS`] verified
//! accounts `load-trader-N`, and enough money in each. Then it sends, at `RATE` commands a
//! second, a simple seeded mix on that one product: limit orders around a slowly wandering
//! mid price (most rest, some cross), a few IOC and market orders, cancels of orders it knows
//! are open (learned from the answers' events), and now and then a deposit. Most commands are
//! accepted; a cancel that races a fill is rejected, which is fine.
//!
//! Many commands are in flight at once (up to [`IN_FLIGHT_MAX`]); answers are taken in
//! sequence order. A full ring (`Busy`) is retried after a short sleep, never in a hot loop;
//! `ShuttingDown` or `Stopped` ends the generator.
//!
//! **The acknowledgement log** (`--ack-log PATH`, or `-` for stdout) gets one line per
//! answered command, in sequence order: `<seq> <crc32c>`, the CRC32C (decimal) of the
//! command's journal payload, `bourse_engine::codec::encode` of `Command { seq, timestamp_ms,
//! kind }` with the sequence number and timestamp from the answer. Lines are flushed before
//! the generator goes on, so a line that reached the file or pipe is an acknowledgement that
//! happened: a test that kills the server checks each line against the recovered journal.

#![allow(
    clippy::expect_used,
    reason = "a test tool (--load-rate): its codes, symbol and fees are constants, request ids are \
              short by construction, and the queue and flow are set up before the loop reads them"
)]

use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bourse_engine::codec::encode;
use bourse_engine::{
    AccountId, AddProduct, Amount, AssetCode, AssetId, Command, CommandKind, CreateAccount, Engine,
    Event, EventKind, FeeSchedule, FundsMethod, FundsRequest, NewOrder, OrderId, OrderType, Price,
    ProductId, ProfileStatus, Qty, RequestId, SelfTradePrevention, Side, Symbol, TimeInForce,
    TokenHash,
};
use bourse_pipeline::{Handle, Outcome, SubmitError, Ticket};

/// Accounts the generator trades with.
pub const TRADERS: u32 = 16;
/// Commands in flight at most (submitted, not yet answered).
pub const IN_FLIGHT_MAX: usize = 8192;
/// The generator's product.
pub const SYMBOL: &str = "LOAD-USD";
const QUOTE_CODE: &str = "USD";
const BASE_CODE: &str = "LOAD";
/// Where the mid price starts and the band it wanders in, in ticks (0.01 USD).
const MID_START: i64 = 10_000;
const MID_BAND: (i64, i64) = (9_000, 11_000);
/// Tracked open orders beyond which the generator only cancels.
const OPEN_MAX: usize = 1_000;
/// A trader is topped up at start below the low mark, by the top-up amount (minor units).
const QUOTE_LOW: i64 = 100_000_000;
const QUOTE_TOP_UP: i64 = 1_000_000_000;
const BASE_LOW: i64 = 100_000;
const BASE_TOP_UP: i64 = 1_000_000;
/// How long the generator sleeps when the ring is full.
const BUSY_PAUSE: Duration = Duration::from_micros(200);
/// The longest sleep between two rounds of submissions.
const TICK: Duration = Duration::from_millis(1);

/// SplitMix64: small and good enough for a load mix.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
}

/// What of the generator's world the recovered state already has; taken from the engine
/// before the pipeline starts, or in a query (only the engine thread may look at it).
#[derive(Debug, Clone, Default)]
pub struct Existing {
    quote: Option<AssetId>,
    base: Option<AssetId>,
    product: Option<ProductId>,
    /// Per trader: its account and its available quote and base balances.
    traders: Vec<Option<(AccountId, i64, i64)>>,
}

/// Looks for the generator's assets, product and accounts in `engine`.
pub fn survey(engine: &Engine) -> Existing {
    let code = |s: &str| AssetCode::new(s).expect("valid code");
    let product = Symbol::new(SYMBOL).and_then(|symbol| engine.product_by_symbol(&symbol));
    let (quote, base) = match product.and_then(|p| engine.product_info(p)) {
        Some(info) => (Some(info.quote()), Some(info.base())),
        None => (
            engine.asset_by_code(&code(QUOTE_CODE)),
            engine.asset_by_code(&code(BASE_CODE)),
        ),
    };
    let mut names: HashMap<String, u32> = (0..TRADERS).map(|i| (trader_name(i), i)).collect();
    let mut traders = vec![None; TRADERS as usize];
    for n in 0..engine.n_accounts() as u32 {
        let account = AccountId::new(n);
        if let Some(i) = engine
            .account_name(account)
            .and_then(|name| names.remove(name))
        {
            let available = |asset: Option<AssetId>| {
                asset.map_or(0, |asset| engine.balance(account, asset).available)
            };
            traders[i as usize] = Some((account, available(quote), available(base)));
        }
    }
    Existing {
        quote,
        base,
        product,
        traders,
    }
}

fn trader_name(i: u32) -> String {
    format!("load-trader-{i}")
}

/// What a finished generator did.
#[derive(Debug, Clone, Default)]
pub struct LoadSummary {
    /// Commands submitted (the ring took them).
    pub submitted: u64,
    /// Commands answered (durable and applied), rejected ones included.
    pub acked: u64,
    /// Of those, rejected by the engine.
    pub rejected: u64,
    /// Times the ring was full.
    pub busy: u64,
    /// Why it ended early, if it did (setup refused, ack log failed, pipeline stopped).
    pub ended_by: Option<String>,
}

impl std::fmt::Display for LoadSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} submitted, {} acknowledged ({} rejected by the engine), ring full {} times",
            self.submitted, self.acked, self.rejected, self.busy
        )?;
        if let Some(why) = &self.ended_by {
            write!(f, "; ended early: {why}")?;
        }
        Ok(())
    }
}

/// A running load generator.
pub struct Load {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<LoadSummary>,
}

impl Load {
    /// Starts the generator thread: `rate` commands a second (at least 1), the mix seeded by
    /// `seed`, acknowledgements written to `ack_log` if given.
    pub fn spawn(
        handle: Handle,
        existing: Existing,
        rate: u64,
        seed: u64,
        ack_log: Option<Box<dyn Write + Send>>,
    ) -> io::Result<Load> {
        let stop = Arc::new(AtomicBool::new(false));
        let driver = Driver {
            handle,
            stop: Arc::clone(&stop),
            acks: ack_log.map(AckLog::new),
            in_flight: VecDeque::new(),
            summary: LoadSummary::default(),
            flow: None,
            run_id: seed,
        };
        let thread = std::thread::Builder::new()
            .name("bourse-load".into())
            .spawn(move || driver.run(existing, rate.max(1), seed))?;
        Ok(Load { stop, thread })
    }

    /// Whether the generator ended on its own (see [`LoadSummary::ended_by`]).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Stops submitting, waits for the answers to everything in flight (the pipeline must
    /// still be running, or stopped: either answers), writes their acknowledgements and
    /// returns what the generator did.
    pub fn stop(self) -> LoadSummary {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap_or_else(|panic| LoadSummary {
            ended_by: Some(format!(
                "the load thread panicked: {}",
                panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default()
            )),
            ..LoadSummary::default()
        })
    }
}

/// Writes `<seq> <crc32c>` lines.
struct AckLog {
    out: io::BufWriter<Box<dyn Write + Send>>,
    encoded: Vec<u8>,
    unflushed: bool,
}

impl AckLog {
    fn new(out: Box<dyn Write + Send>) -> Self {
        AckLog {
            out: io::BufWriter::with_capacity(64 << 10, out),
            encoded: Vec::with_capacity(256),
            unflushed: false,
        }
    }

    fn record(&mut self, outcome: &Outcome, kind: CommandKind) -> io::Result<()> {
        let command = Command {
            seq: outcome.seq,
            timestamp_ms: outcome.timestamp_ms,
            kind,
        };
        self.encoded.clear();
        encode(&command, &mut self.encoded);
        writeln!(
            self.out,
            "{} {}",
            command.seq,
            crc32c::crc32c(&self.encoded)
        )?;
        self.unflushed = true;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.unflushed {
            self.out.flush()?;
            self.unflushed = false;
        }
        Ok(())
    }
}

/// Why the generator stops submitting.
enum End {
    /// The pipeline refuses (shutting down or stopped).
    Refused(SubmitError),
    /// The setup was refused or the ack log failed.
    Failed(String),
}

struct Driver {
    handle: Handle,
    stop: Arc<AtomicBool>,
    acks: Option<AckLog>,
    in_flight: VecDeque<(Ticket, CommandKind)>,
    summary: LoadSummary,
    flow: Option<Flow>,
    run_id: u64,
}

impl Driver {
    fn run(mut self, existing: Existing, rate: u64, seed: u64) -> LoadSummary {
        let ended = self
            .setup(existing, seed)
            .and_then(|()| self.steady(rate))
            .and_then(|()| self.drain());
        match ended {
            Ok(()) => {}
            Err(End::Refused(SubmitError::ShuttingDown)) => {}
            Err(End::Refused(error)) => self.summary.ended_by = Some(error.to_string()),
            Err(End::Failed(why)) => {
                self.summary.ended_by = Some(why);
                // Nothing more is logged, but what is in flight is still answered.
                self.acks = None;
                let _ = self.drain();
            }
        }
        if let Some(acks) = &mut self.acks
            && let Err(error) = acks.flush()
        {
            self.summary.ended_by = Some(format!("ack log: {error}"));
        }
        self.summary
    }

    /// Records the answer to a command: ack line, counters, what the flow learns.
    fn answered(
        &mut self,
        answer: Result<Outcome, SubmitError>,
        kind: CommandKind,
    ) -> Result<Outcome, End> {
        let outcome = answer.map_err(End::Refused)?;
        self.summary.acked += 1;
        if outcome.result.is_err() {
            self.summary.rejected += 1;
        }
        if let Some(flow) = &mut self.flow {
            flow.observe(&outcome.events);
        }
        if let Some(acks) = &mut self.acks {
            acks.record(&outcome, kind)
                .map_err(|e| End::Failed(format!("ack log: {e}")))?;
        }
        Ok(outcome)
    }

    fn flush(&mut self) -> Result<(), End> {
        match &mut self.acks {
            Some(acks) => acks
                .flush()
                .map_err(|e| End::Failed(format!("ack log: {e}"))),
            None => Ok(()),
        }
    }

    /// Submits `kind`, retrying while the ring is full, and waits for its answer.
    fn submit_and_wait(&mut self, kind: CommandKind) -> Result<Outcome, End> {
        let ticket = loop {
            if self.stop.load(Ordering::Relaxed) {
                return Err(End::Refused(SubmitError::ShuttingDown));
            }
            match self.handle.try_submit(kind.clone()) {
                Ok(ticket) => break ticket,
                Err(SubmitError::Busy) => {
                    self.summary.busy += 1;
                    std::thread::sleep(BUSY_PAUSE);
                }
                Err(error) => return Err(End::Refused(error)),
            }
        };
        self.summary.submitted += 1;
        let outcome = self.answered(ticket.wait(), kind.clone())?;
        self.flush()?;
        match &outcome.result {
            Ok(()) => Ok(outcome),
            Err(reject) => Err(End::Failed(format!(
                "setup command {kind:?} rejected: {reject}"
            ))),
        }
    }

    /// Creates what the recovered state lacks, one command at a time.
    fn setup(&mut self, existing: Existing, seed: u64) -> Result<(), End> {
        let code = |s: &str| AssetCode::new(s).expect("valid code");
        let asset = |this: &mut Self, have: Option<AssetId>, name: &str, scale: u8| {
            if let Some(id) = have {
                return Ok(id);
            }
            let outcome = this.submit_and_wait(CommandKind::AddAsset {
                code: code(name),
                scale,
            })?;
            find(&outcome.events, |kind| match kind {
                EventKind::AssetAdded { asset, .. } => Some(*asset),
                _ => None,
            })
        };
        let quote = asset(self, existing.quote, QUOTE_CODE, 2)?;
        let base = asset(self, existing.base, BASE_CODE, 0)?;
        let product = match existing.product {
            Some(product) => product,
            None => {
                let outcome = self.submit_and_wait(CommandKind::add_product(AddProduct {
                    symbol: Symbol::new(SYMBOL).expect("valid symbol"),
                    name: "Load generator product".to_string(),
                    base,
                    quote,
                    price_scale: 2,
                    tick_size: 1,
                    qty_scale: 0,
                    lot_size: 1,
                    fees: FeeSchedule::flat(100, 200).expect("valid fees"),
                }))?;
                find(&outcome.events, |kind| match kind {
                    EventKind::ProductAdded { product, .. } => Some(*product),
                    _ => None,
                })?
            }
        };
        // Request ids must be new for ever: this run's id is the first sequence number it
        // can have, which no earlier run that journaled anything had.
        let mut deposits = 0;
        let mut deposit = |this: &mut Self, account, asset, amount| {
            deposits += 1;
            let request_id = RequestId::new(&format!("load-{}-{deposits}", this.run_id))
                .expect("valid request id");
            this.submit_and_wait(CommandKind::Deposit(FundsRequest {
                account,
                asset,
                amount: Amount::from_minor(amount),
                request_id,
                method: FundsMethod::Unspecified,
            }))
            .map(drop)
        };
        let mut traders = Vec::new();
        for (i, have) in existing.traders.iter().enumerate() {
            let (account, quote_available, base_available) = match have {
                Some(have) => *have,
                None => {
                    let outcome =
                        self.submit_and_wait(CommandKind::create_account(CreateAccount {
                            name: trader_name(i as u32),
                            proof: format!("load:{i}"),
                            currency_preference: code(QUOTE_CODE),
                            token_hash: TokenHash([0x10 + i as u8; 32]),
                            initial_status: ProfileStatus::Verified,
                        }))?;
                    let account = find(&outcome.events, |kind| match kind {
                        EventKind::AccountCreated { account, .. } => Some(*account),
                        _ => None,
                    })?;
                    (account, 0, 0)
                }
            };
            if quote_available < QUOTE_LOW {
                deposit(self, account, quote, QUOTE_TOP_UP)?;
            }
            if base_available < BASE_LOW {
                deposit(self, account, base, BASE_TOP_UP)?;
            }
            traders.push(account);
        }
        self.flow = Some(Flow {
            rng: Rng(seed ^ 0x10AD_5EED),
            product,
            quote,
            traders,
            mid: MID_START,
            open: Vec::new(),
            index: HashMap::new(),
            run_id: self.run_id,
            deposits,
        });
        Ok(())
    }

    /// Takes the answers that have arrived, in order; with `wait_first`, waits for the first.
    fn harvest(&mut self, wait_first: bool) -> Result<(), End> {
        if wait_first && let Some((ticket, kind)) = self.in_flight.pop_front() {
            self.answered(ticket.wait(), kind)?;
        }
        while let Some((ticket, _)) = self.in_flight.front_mut() {
            let Some(answer) = ticket.try_take() else {
                break;
            };
            let (_, kind) = self.in_flight.pop_front().expect("the front entry");
            self.answered(answer, kind)?;
        }
        Ok(())
    }

    /// The paced stream, until told to stop.
    fn steady(&mut self, rate: u64) -> Result<(), End> {
        let started = Instant::now();
        let mut sent = 0u64;
        let mut held_back: Option<CommandKind> = None;
        while !self.stop.load(Ordering::Relaxed) {
            self.harvest(false)?;
            let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
            // Never burst to catch up more than a quarter of a second.
            sent = sent.max(due.saturating_sub(rate / 4 + 1));
            let mut busy = false;
            while sent < due && self.in_flight.len() < IN_FLIGHT_MAX {
                let kind = match held_back.take() {
                    Some(kind) => kind,
                    None => self.flow.as_mut().expect("set up").next_kind(),
                };
                match self.handle.try_submit(kind.clone()) {
                    Ok(ticket) => {
                        self.in_flight.push_back((ticket, kind));
                        self.summary.submitted += 1;
                        sent += 1;
                    }
                    Err(SubmitError::Busy) => {
                        self.summary.busy += 1;
                        held_back = Some(kind);
                        busy = true;
                        break;
                    }
                    Err(error) => return Err(End::Refused(error)),
                }
            }
            self.flush()?;
            if busy {
                std::thread::sleep(BUSY_PAUSE);
            } else if self.in_flight.len() >= IN_FLIGHT_MAX {
                self.harvest(true)?;
            } else {
                let next_due = Duration::from_secs_f64((sent + 1) as f64 / rate as f64);
                let wait = next_due.saturating_sub(started.elapsed()).min(TICK);
                if !wait.is_zero() {
                    std::thread::sleep(wait);
                }
            }
        }
        Ok(())
    }

    /// Waits for every answer still due.
    fn drain(&mut self) -> Result<(), End> {
        while !self.in_flight.is_empty() {
            self.harvest(true)?;
            self.flush()?;
        }
        Ok(())
    }
}

fn find<T>(events: &[Event], f: impl Fn(&EventKind) -> Option<T>) -> Result<T, End> {
    events
        .iter()
        .find_map(|event| f(&event.kind))
        .ok_or_else(|| End::Failed("setup: an expected event is missing".into()))
}

/// The steady mix on one product.
struct Flow {
    rng: Rng,
    product: ProductId,
    quote: AssetId,
    traders: Vec<AccountId>,
    /// In ticks.
    mid: i64,
    /// Orders known to rest, with their owner; `index` maps an order to its place.
    open: Vec<(OrderId, AccountId)>,
    index: HashMap<OrderId, usize>,
    run_id: u64,
    deposits: u64,
}

impl Flow {
    fn next_kind(&mut self) -> CommandKind {
        if self.rng.below(100) == 0 {
            self.mid = (self.mid + self.rng.range(-1, 1)).clamp(MID_BAND.0, MID_BAND.1);
        }
        let roll = self.rng.below(1000);
        let account = self.traders[self.rng.below(self.traders.len() as u64) as usize];
        if roll < 2 {
            self.deposits += 1;
            return CommandKind::Deposit(FundsRequest {
                account,
                asset: self.quote,
                amount: Amount::from_minor(QUOTE_LOW / 10),
                request_id: RequestId::new(&format!("load-{}-{}", self.run_id, self.deposits))
                    .expect("valid request id"),
                method: FundsMethod::Unspecified,
            });
        }
        if !self.open.is_empty() && (roll < 350 || self.open.len() >= OPEN_MAX) {
            let at = self.rng.below(self.open.len() as u64) as usize;
            let (order, owner) = self.open[at];
            // Forget it now, so two cancels of one order are rare.
            self.forget(order);
            return CommandKind::CancelOrder {
                account: owner,
                order,
            };
        }
        let side = if self.rng.below(2) == 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        let offset = self.rng.range(-4, 20);
        let ticks = match side {
            Side::Buy => self.mid - offset,
            Side::Sell => self.mid + offset,
        };
        let (order_type, price, time_in_force) = match roll % 100 {
            0..=2 => (OrderType::Market, None, TimeInForce::Ioc),
            3..=9 => (OrderType::Limit, Some(ticks), TimeInForce::Ioc),
            _ => (OrderType::Limit, Some(ticks), TimeInForce::Gtc),
        };
        CommandKind::PlaceOrder(NewOrder {
            account,
            product: self.product,
            side,
            order_type,
            price: price.map(Price::from_ticks),
            qty: Qty::from_lots(self.rng.range(1, 20)),
            time_in_force,
            self_trade: SelfTradePrevention::CancelResting,
            client_order_id: None,
        })
    }

    fn forget(&mut self, order: OrderId) {
        if let Some(at) = self.index.remove(&order) {
            self.open.swap_remove(at);
            if let Some(&(moved, _)) = self.open.get(at) {
                self.index.insert(moved, at);
            }
        }
    }

    /// Learns which orders rest from an answer's events.
    fn observe(&mut self, events: &[Event]) {
        for event in events {
            match event.kind {
                EventKind::OrderRested { order, account, .. }
                    if !self.index.contains_key(&order) =>
                {
                    self.index.insert(order, self.open.len());
                    self.open.push((order, account));
                }
                EventKind::Fill {
                    maker_order,
                    maker_remaining,
                    taker_order,
                    taker_remaining,
                    ..
                } => {
                    if maker_remaining.lots() == 0 {
                        self.forget(maker_order);
                    }
                    if taker_remaining.lots() == 0 {
                        self.forget(taker_order);
                    }
                }
                EventKind::OrderCancelled { order, .. } => self.forget(order),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bourse_engine::Limits;

    /// The mix, applied straight to an engine: the setup creates its world and most steady
    /// commands are accepted; a survey of the result finds that world again.
    #[test]
    #[allow(
        clippy::too_many_lines,
        reason = "one scenario: the setup, the steady mix and the survey, checked in order"
    )]
    fn the_mix_is_mostly_accepted_and_its_world_is_found_again() {
        let mut engine = Engine::new(Limits::default());
        let mut seq = 0;
        let mut apply = |engine: &mut Engine, kind: CommandKind| {
            seq += 1;
            let mut events = Vec::new();
            let result = engine.apply(
                &Command {
                    seq,
                    timestamp_ms: 1_700_000_000_000 + seq as i64,
                    kind,
                },
                &mut events,
            );
            (result, events)
        };
        let existing = survey(&engine);
        assert!(existing.product.is_none() && existing.traders.iter().all(Option::is_none));
        // The setup, as the driver does it.
        let code = |s: &str| AssetCode::new(s).unwrap();
        apply(
            &mut engine,
            CommandKind::AddAsset {
                code: code(QUOTE_CODE),
                scale: 2,
            },
        )
        .0
        .unwrap();
        apply(
            &mut engine,
            CommandKind::AddAsset {
                code: code(BASE_CODE),
                scale: 0,
            },
        )
        .0
        .unwrap();
        let (quote, base) = (AssetId::new(0), AssetId::new(1));
        let (result, _) = apply(
            &mut engine,
            CommandKind::add_product(AddProduct {
                symbol: Symbol::new(SYMBOL).unwrap(),
                name: "Load".into(),
                base,
                quote,
                price_scale: 2,
                tick_size: 1,
                qty_scale: 0,
                lot_size: 1,
                fees: FeeSchedule::flat(100, 200).unwrap(),
            }),
        );
        result.unwrap();
        let mut traders = Vec::new();
        for i in 0..TRADERS {
            let (result, events) = apply(
                &mut engine,
                CommandKind::create_account(CreateAccount {
                    name: trader_name(i),
                    proof: "p".into(),
                    currency_preference: code(QUOTE_CODE),
                    token_hash: TokenHash([1; 32]),
                    initial_status: ProfileStatus::Verified,
                }),
            );
            result.unwrap();
            let account = match events[0].kind {
                EventKind::AccountCreated { account, .. } => account,
                _ => panic!(),
            };
            for (asset, amount, id) in [(quote, QUOTE_TOP_UP, "q"), (base, BASE_TOP_UP, "b")] {
                let request_id = RequestId::new(&format!("t-{i}-{id}")).unwrap();
                let (result, _) = apply(
                    &mut engine,
                    CommandKind::Deposit(FundsRequest {
                        account,
                        asset,
                        amount: Amount::from_minor(amount),
                        request_id,
                        method: FundsMethod::Unspecified,
                    }),
                );
                result.unwrap();
            }
            traders.push(account);
        }
        let existing = survey(&engine);
        assert_eq!(existing.product, Some(ProductId::new(0)));
        assert_eq!((existing.quote, existing.base), (Some(quote), Some(base)));
        assert!(
            existing
                .traders
                .iter()
                .all(|t| t.is_some_and(|(_, q, b)| q >= QUOTE_LOW && b >= BASE_LOW))
        );

        let mut flow = Flow {
            rng: Rng(7),
            product: ProductId::new(0),
            quote,
            traders,
            mid: MID_START,
            open: Vec::new(),
            index: HashMap::new(),
            run_id: 1,
            deposits: 100,
        };
        let (mut accepted, mut fills, n) = (0, 0, 50_000);
        for _ in 0..n {
            let kind = flow.next_kind();
            let (result, events) = apply(&mut engine, kind);
            accepted += result.is_ok() as u32;
            fills += events
                .iter()
                .filter(|e| matches!(e.kind, EventKind::Fill { .. }))
                .count();
            flow.observe(&events);
        }
        assert!(accepted > n * 9 / 10, "{accepted} of {n} accepted");
        assert!(fills > 5_000, "{fills} fills");
        assert!(
            engine.n_open_orders() <= 2 * OPEN_MAX,
            "{}",
            engine.n_open_orders()
        );
        assert_eq!(flow.open.len(), engine.n_open_orders());
    }
}
