//! Faults injected into the journal's storage ([`FaultyStorage`], through
//! [`Store::open_with_storage`]) while thousands of commands are journaled: a full disk when a
//! segment is created, and a failed sync. Each comes back as a typed error, nothing committed
//! before it is lost, nothing after a failed sync is reported committed, and reopening the
//! directory with the plain [`FsStorage`] ([`Store::open`]) gives the state hash of a fresh
//! engine fed the commands the journal holds.

use std::path::Path;

use bourse_engine::{
    AccountId, Amount, AssetCode, AssetId, Command, CommandKind, CreateAccount, Engine, Event,
    EventKind, FeeSchedule, FundsMethod, FundsRequest, Limits, NewOrder, OrderId, OrderType, Price,
    ProductId, ProfileStatus, Qty, RequestId, SelfTradePrevention, Side, Symbol, TimeInForce,
    TokenHash,
};
use bourse_journal::{Durability, Faults, FaultyStorage, FsStorage, JournalConfig};

use crate::{Recovered, Silent, Store, StoreConfig, StoreError};

type Faulty = FaultyStorage<FsStorage>;

const N_ACCOUNTS: u32 = 20;
const USD: AssetId = AssetId::new(0);
const BTC: AssetId = AssetId::new(1);
const BTC_USD: ProductId = ProductId::new(0);
/// Commands journaled before the fault.
const N_BEFORE_FAULT: u64 = 6_000;
/// A snapshot after every this many commands (so reopening starts from one).
const SNAPSHOT_EVERY: u64 = 2_500;

/// A durable journal of 16 KiB segments: a few hundred commands each, so the load rolls often.
fn config(dir: &Path) -> StoreConfig {
    StoreConfig {
        journal: JournalConfig {
            segment_size_bytes: 16 << 10,
            durability: Durability::Durable,
            ..JournalConfig::default()
        },
        ..StoreConfig::new(dir)
    }
}

fn open_faulty(config: &StoreConfig) -> (Recovered<Faulty>, Faults) {
    let faults = Faults::default();
    let storage = FaultyStorage::new(
        FsStorage::new(config.journal_dir()).unwrap(),
        faults.clone(),
    );
    let recovered = Store::open_with_storage(config, storage, &mut Silent).unwrap();
    (recovered, faults)
}

/// EIO on Linux: what [`FaultyStorage`] fails a sync with. (ENOSPC, what it fails a
/// preallocation with, is checked as [`std::io::ErrorKind::StorageFull`].)
const EIO: i32 = 5;

/// The OS error inside a journal I/O error, and what the journal was doing.
fn journal_io(error: &StoreError) -> Option<(&'static str, &std::io::Error)> {
    match error {
        StoreError::Journal(bourse_journal::Error::Io { action, source, .. }) => {
            Some((*action, source))
        }
        _ => None,
    }
}

fn is_stopped<T>(result: Result<T, StoreError>) -> bool {
    matches!(
        result,
        Err(StoreError::Journal(bourse_journal::Error::Stopped { .. }))
    )
}

/// SplitMix64, so that every failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

/// A seeded stream of commands: two assets, a product, funded accounts, then limit orders
/// around a drifting mid (many fill), cancels of resting orders and deposits. It keeps every
/// command it made, so that a test can feed any prefix to a fresh engine.
struct Workload {
    rng: Rng,
    engine: Engine,
    events: Vec<Event>,
    resting: Vec<(OrderId, AccountId)>,
    n_fills: u64,
    mid: i64,
    commands: Vec<Command>,
}

impl Workload {
    fn new(seed: u64) -> Self {
        Workload {
            rng: Rng(seed),
            engine: Engine::new(Limits::default()),
            events: Vec::new(),
            resting: Vec::new(),
            n_fills: 0,
            mid: 3_000,
            commands: Vec::new(),
        }
    }

    /// The next command (applied to the workload's own engine, which picks cancel targets).
    fn next(&mut self) -> Command {
        let seq = self.commands.len() as u64 + 1;
        let command = Command {
            seq,
            timestamp_ms: 1_700_000_000_000 + 10 * seq as i64,
            kind: self.kind(seq),
        };
        self.events.clear();
        let _ = self.engine.apply(&command, &mut self.events);
        for event in &self.events {
            match event.kind {
                EventKind::OrderRested { order, account, .. } => {
                    self.resting.push((order, account));
                }
                EventKind::Fill { .. } => self.n_fills += 1,
                _ => {}
            }
        }
        self.commands.push(command.clone());
        command
    }

    fn kind(&mut self, seq: u64) -> CommandKind {
        let n_accounts = u64::from(N_ACCOUNTS);
        match seq {
            1 => CommandKind::AddAsset {
                code: AssetCode::new("USD").unwrap(),
                scale: 2,
            },
            2 => CommandKind::AddAsset {
                code: AssetCode::new("BTC").unwrap(),
                scale: 8,
            },
            3 => CommandKind::add_product(bourse_engine::AddProduct {
                symbol: Symbol::new("BTC-USD").unwrap(),
                name: "Bitcoin".into(),
                base: BTC,
                quote: USD,
                // Ticks of 10 USD: one on a lot (0.001 BTC) is a whole cent.
                price_scale: 0,
                tick_size: 10,
                qty_scale: 3,
                lot_size: 1,
                fees: FeeSchedule::flat(1_000, 2_000).unwrap(),
            }),
            _ if seq <= 3 + n_accounts => {
                let i = seq - 3;
                CommandKind::create_account(CreateAccount {
                    name: format!("trader {i}"),
                    proof: format!("passport:{i}"),
                    currency_preference: AssetCode::new("USD").unwrap(),
                    token_hash: TokenHash([i as u8; 32]),
                    initial_status: ProfileStatus::Verified,
                })
            }
            _ if seq <= 3 + 3 * n_accounts => {
                let i = seq - 4 - n_accounts;
                let account = AccountId::new(1 + (i / 2) as u32);
                // 10 M USD and 1,000 BTC each.
                let (asset, amount) = if i.is_multiple_of(2) {
                    (USD, 1_000_000_000)
                } else {
                    (BTC, 100_000_000_000)
                };
                CommandKind::Deposit(self.funds(seq, account, asset, amount))
            }
            _ => self.trade(seq),
        }
    }

    fn trade(&mut self, seq: u64) -> CommandKind {
        let account = AccountId::new(1 + self.rng.below(u64::from(N_ACCOUNTS)) as u32);
        let roll = self.rng.below(100);
        if roll < 20 && !self.resting.is_empty() {
            // Often already filled or cancelled: rejected, which the journal holds too.
            let (order, owner) = self
                .resting
                .swap_remove(self.rng.below(self.resting.len() as u64) as usize);
            return CommandKind::CancelOrder {
                account: owner,
                order,
            };
        }
        if roll >= 95 {
            let amount = 1 + self.rng.below(100_000) as i64;
            return CommandKind::Deposit(self.funds(seq, account, USD, amount));
        }
        self.mid += self.rng.below(5) as i64 - 2;
        let buy = self.rng.below(2) == 0;
        let offset = self.rng.below(30) as i64 - 5;
        CommandKind::PlaceOrder(NewOrder {
            account,
            product: BTC_USD,
            side: if buy { Side::Buy } else { Side::Sell },
            order_type: OrderType::Limit,
            price: Some(Price::from_ticks(if buy {
                self.mid - offset
            } else {
                self.mid + offset
            })),
            qty: Qty::from_lots(1 + self.rng.below(50) as i64),
            time_in_force: TimeInForce::Gtc,
            self_trade: SelfTradePrevention::CancelResting,
            client_order_id: None,
        })
    }

    fn funds(&self, seq: u64, account: AccountId, asset: AssetId, amount: i64) -> FundsRequest {
        FundsRequest {
            account,
            asset,
            amount: Amount::from_minor(amount),
            request_id: RequestId::new(&format!("r-{seq}")).unwrap(),
            method: FundsMethod::Bank,
        }
    }

    /// The state hash of a fresh engine fed the first `n` commands.
    fn hash_after(&self, n: u64) -> bourse_engine::StateHash {
        let mut engine = Engine::new(Limits::default());
        for command in &self.commands[..n as usize] {
            let _ = engine.apply(command, &mut crate::DiscardEvents);
        }
        engine.state_hash()
    }
}

/// Journals `n` commands in batches of 1 to 300, each committed, applying them to the
/// recovered engine and snapshotting now and then; returns the last committed seq.
fn load<S: bourse_journal::Storage>(
    recovered: &mut Recovered<S>,
    workload: &mut Workload,
    n: u64,
) -> u64 {
    let mut committed = 0;
    let mut since_snapshot = 0;
    let end = recovered.next_seq() + n;
    while recovered.next_seq() < end {
        let batch = 1 + workload.rng.below(300);
        for _ in 0..batch.min(end - recovered.next_seq()) {
            append_and_apply(recovered, &workload.next()).unwrap();
        }
        let reported = recovered.store.commit().unwrap().unwrap();
        assert_eq!(
            reported,
            recovered.next_seq() - 1,
            "commit covers the batch"
        );
        assert!(reported > committed, "commits only grow");
        committed = reported;
        since_snapshot += batch;
        if since_snapshot >= SNAPSHOT_EVERY {
            since_snapshot = 0;
            recovered
                .store
                .write_snapshot(&recovered.engine, committed)
                .unwrap();
        }
    }
    committed
}

/// Journals `command` and, once it is in the journal, applies it.
fn append_and_apply<S: bourse_journal::Storage>(
    recovered: &mut Recovered<S>,
    command: &Command,
) -> Result<(), StoreError> {
    recovered.store.append(command)?;
    let _ = recovered.engine.apply(command, &mut crate::DiscardEvents);
    Ok(())
}

/// Reopens `config`'s directory with the plain file system and checks it holds exactly the
/// first `n` commands of `workload`.
fn assert_reopens_to(config: &StoreConfig, workload: &Workload, n: u64) -> Recovered {
    let reopened = Store::open(config, &mut Silent).unwrap();
    assert_eq!(reopened.report.last_seq, n, "{}", reopened.report);
    assert!(reopened.report.snapshot.is_some(), "{}", reopened.report);
    assert_eq!(reopened.engine.state_hash(), workload.hash_after(n));
    reopened
}

#[test]
fn enospc_when_a_segment_is_created_refuses_the_append_and_keeps_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (mut recovered, faults) = open_faulty(&config);
    let mut workload = Workload::new(0x5EED_0001);
    let mut committed = load(&mut recovered, &mut workload, N_BEFORE_FAULT);
    let n_segments = recovered.store.journal().segment_first_seqs().len();
    assert!(n_segments > 10, "the load rolled: {n_segments} segments");
    assert!(
        workload.n_fills > 1_000,
        "the load trades: {}",
        workload.n_fills
    );

    // The disk fills: the spare being prepared fails, then the roll that needs a segment.
    faults.set_preallocate_fails(true);
    let mut failed = None;
    for _ in 0..20_000 {
        let command = workload.next();
        if let Err(error) = append_and_apply(&mut recovered, &command) {
            failed = Some((command, error));
            break;
        }
        if command.seq.is_multiple_of(50) {
            committed = recovered.store.commit().unwrap().unwrap();
            assert_eq!(committed, command.seq);
        }
    }
    let (refused, error) = failed.expect("a roll met the full disk");
    let (action, source) = journal_io(&error).expect("an I/O error of the journal");
    assert_eq!(action, "create segment", "{error}");
    assert_eq!(source.kind(), std::io::ErrorKind::StorageFull, "{error}");
    assert_eq!(
        recovered.next_seq(),
        refused.seq,
        "the refused command is not journaled"
    );
    // Still full: refused again, typed, and the writer is not stopped by it.
    let error = recovered.store.append(&refused).unwrap_err();
    let (_, source) = journal_io(&error).expect("an I/O error of the journal");
    assert_eq!(source.kind(), std::io::ErrorKind::StorageFull, "{error}");
    // Everything appended before the full disk commits.
    let appended = refused.seq - 1;
    assert!(appended >= committed);
    assert_eq!(recovered.store.commit().unwrap(), Some(appended));
    let hash = recovered.engine.state_hash();
    drop(recovered);

    // Reopened on the plain file system: exactly the committed commands.
    let mut reopened = assert_reopens_to(&config, &workload, appended);
    assert_eq!(reopened.engine.state_hash(), hash);
    // Space came back: the refused command and more go on from there.
    append_and_apply(&mut reopened, &refused).unwrap();
    let committed = load(&mut reopened, &mut workload, 1_000);
    drop(reopened);
    assert_reopens_to(&config, &workload, committed);
}

/// Where a failed sync is met.
#[derive(Debug, PartialEq)]
enum FailedAt {
    /// A roll inside `append` (it syncs the full segment first).
    Roll,
    /// The batch's `commit`.
    Commit,
}

/// Loads the store, then fails syncs and appends up to `appends_max` more commands before
/// committing; returns where the failure was met.
fn failed_sync_case(seed: u64, appends_max: u64) -> FailedAt {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (mut recovered, faults) = open_faulty(&config);
    let mut workload = Workload::new(seed);
    let committed = load(&mut recovered, &mut workload, N_BEFORE_FAULT);
    assert_eq!(recovered.store.journal().committed_seq(), Some(committed));
    assert!(
        workload.n_fills > 1_000,
        "the load trades: {}",
        workload.n_fills
    );

    faults.set_sync_fails(true);
    let mut failed = None;
    for _ in 0..appends_max {
        if let Err(error) = append_and_apply(&mut recovered, &workload.next()) {
            failed = Some((FailedAt::Roll, error));
            break;
        }
    }
    let (failed_at, error) =
        failed.unwrap_or_else(|| (FailedAt::Commit, recovered.store.commit().unwrap_err()));
    let appended = recovered.next_seq() - 1;
    assert!(appended > committed, "the failed batch holds commands");
    let (action, source) = journal_io(&error).expect("an I/O error of the journal");
    assert!(action.starts_with("sync "), "{error}");
    assert_eq!(source.raw_os_error(), Some(EIO), "{error}");

    // Syncs work again, but nothing may be reported durable any more.
    faults.set_sync_fails(false);
    assert!(is_stopped(recovered.store.commit()));
    assert!(is_stopped(recovered.store.append(&workload.next())));
    assert_eq!(recovered.next_seq(), appended + 1);
    assert_eq!(recovered.store.journal().committed_seq(), Some(committed));
    assert!(matches!(
        recovered.store.write_snapshot(&recovered.engine, appended),
        Err(StoreError::SnapshotAheadOfJournal { .. })
    ));
    drop(recovered);

    // Every committed command is back. Appended ones after them may be too (here they are,
    // from the page cache; after a power loss they might not be), but only as a prefix of
    // what was appended.
    let reopened = Store::open(&config, &mut Silent).unwrap();
    let last_seq = reopened.report.last_seq;
    assert!(
        (committed..=appended).contains(&last_seq),
        "{committed} <= {last_seq} <= {appended}"
    );
    assert!(reopened.report.snapshot.is_some(), "{}", reopened.report);
    assert_eq!(reopened.engine.state_hash(), workload.hash_after(last_seq));
    failed_at
}

#[test]
fn a_failed_sync_at_commit_stops_the_store_and_reopening_keeps_every_commit() {
    // Two appends fit in the current segment: the commit meets the failure.
    assert_eq!(failed_sync_case(0x5EED_0002, 2), FailedAt::Commit);
}

#[test]
fn a_failed_sync_at_a_roll_stops_the_store_and_reopening_keeps_every_commit() {
    // Thousands of appends without a commit: the roll that syncs the full segment fails.
    assert_eq!(failed_sync_case(0x5EED_0003, 5_000), FailedAt::Roll);
}
