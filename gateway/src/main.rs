//! `bourse`: the Bourse server binary.
//!
//! `bourse serve` is the server process ([`serve`]): it recovers the data directory (snapshot +
//! journal, and says how long that took), runs the pipeline until SIGINT or SIGTERM, then
//! drains the ring, commits and writes a final snapshot. Settings come from flags, `BOURSE_*`
//! environment variables or a TOML file ([`config`], `docs/serve.md`). Until the HTTP gateway
//! lands, `--load-rate` runs an embedded load generator ([`load`]) that can log every
//! acknowledged command (`--ack-log`).
//!
//! `bourse demo` (the default) drives the engine directly through a user's first session and
//! prints what happens: listing a product, a liquidity provider quoting, an account that
//! deposits, buys at market, sells with a limit order, and the balances, fees and state hash at
//! the end.
//!
//! `bourse recover --data-dir DIR` runs start-up recovery on a data directory (the newest good
//! snapshot plus a replay of the journal, with progress on stderr) and prints what it found
//! and the recovered state hash; `--repair` cuts damage in the middle of the journal instead of
//! refusing it (it says how many records that drops).

mod account_api;
mod admin_api;
mod bookmarks_api;
mod catalogue;
mod config;
mod fanout;
mod feed_sim;
mod funds_api;
mod history;
mod http;
mod hub;
mod limits;
mod liquidity;
mod load;
mod market;
mod openapi;
mod orders_api;
mod products_api;
mod render;
mod serve;
mod web;
mod ws;

use std::str::FromStr;

use anyhow::{Context, Result, anyhow, bail};
use bourse_engine::{
    AccountId, AddProduct, Amount, AssetCode, AssetId, Command, CommandKind, CreateAccount, Engine,
    Event, EventKind, FeeSchedule, FeeTier, FundsMethod, FundsRequest, Limits, NewOrder, OrderType,
    ProductId, ProfileStatus, Qty, RequestId, SelfTradePrevention, Side, Symbol, TimeInForce,
    TokenHash,
};
use rust_decimal::Decimal;

fn main() -> Result<()> {
    let command = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "demo".to_string());
    match command.as_str() {
        "demo" => demo(),
        "recover" => recover(std::env::args().skip(2)),
        "serve" => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            std::process::exit(serve::main(&args))
        }
        "feed-sim" => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            feed_sim::main(&args)
        }
        "--help" | "-h" | "help" => {
            println!(
                "usage: bourse [demo | serve [--config FILE] [--KEY VALUE ...] | recover --data-dir DIR [--repair] | feed-sim --brokers HOST:PORT ...]\n\n  \
                 demo      walk through a trading session on the engine (default)\n  \
                 serve     run the server: recover, run the pipeline until SIGINT/SIGTERM, shut down\n            \
                 cleanly (`bourse serve --help` lists the settings)\n  \
                 recover   recover a data directory (snapshot + journal replay) and report\n  \
                 feed-sim  publish the exchange simulator's ticks to a Kafka topic (docs/market-data.md)"
            );
            Ok(())
        }
        other => bail!("unknown command {other:?}; try `bourse help`"),
    }
}

/// `bourse recover`: opens a data directory as start-up does and reports.
fn recover(mut args: impl Iterator<Item = String>) -> Result<()> {
    let mut data_dir = None;
    let mut repair = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--data-dir" => data_dir = Some(args.next().context("--data-dir needs a directory")?),
            "--repair" => repair = true,
            other => bail!("unknown argument {other:?} to `bourse recover`"),
        }
    }
    let data_dir = data_dir.context("`bourse recover` needs --data-dir DIR")?;
    let mut config = bourse_store::StoreConfig::new(&data_dir);
    if repair {
        config.journal.recovery = bourse_journal::RecoveryMode::Repair;
    }
    let recovered =
        bourse_store::Store::open(&config, &mut bourse_store::ConsoleProgress::stderr())
            .with_context(|| format!("recovering {data_dir}"))?;
    let engine = &recovered.engine;
    println!("{}", recovered.report);
    for skipped in &recovered.report.skipped_snapshots {
        println!("skipped {}: {}", skipped.path.display(), skipped.error);
    }
    println!(
        "state: {} accounts, {} products, {} open orders, event seq {}, state hash {}",
        engine.n_accounts(),
        engine.n_products(),
        engine.n_open_orders(),
        engine.event_seq(),
        engine.state_hash()
    );
    Ok(())
}

/// Applies commands with increasing sequence numbers and a fixed clock.
struct Session {
    engine: Engine,
    seq: u64,
    now_ms: i64,
}

impl Session {
    fn run(&mut self, kind: CommandKind) -> Result<Vec<Event>> {
        self.seq += 1;
        let mut events = Vec::new();
        let command = Command {
            seq: self.seq,
            timestamp_ms: self.now_ms,
            kind,
        };
        self.engine
            .apply(&command, &mut events)
            .map_err(|reject| anyhow!("command {} rejected: {reject}", self.seq))?;
        Ok(events)
    }

    fn order(
        &mut self,
        account: AccountId,
        side: Side,
        qty: &str,
        price: Option<&str>,
    ) -> Result<Vec<Event>> {
        let product = self
            .engine
            .product_info(ProductId::new(0))
            .context("no product")?;
        let qty = product.qty_from_decimal(Decimal::from_str(qty)?)?;
        let price = price
            .map(|p| {
                product
                    .price_from_decimal(Decimal::from_str(p)?)
                    .map_err(anyhow::Error::from)
            })
            .transpose()?;
        let (order_type, time_in_force) = match price {
            Some(_) => (OrderType::Limit, TimeInForce::Gtc),
            None => (OrderType::Market, TimeInForce::Ioc),
        };
        self.run(CommandKind::PlaceOrder(NewOrder {
            account,
            product: ProductId::new(0),
            side,
            order_type,
            price,
            qty,
            time_in_force,
            self_trade: SelfTradePrevention::CancelResting,
            client_order_id: None,
        }))
    }

    fn print_events(&self, events: &[Event]) {
        let product = self
            .engine
            .product_info(ProductId::new(0))
            .expect("product");
        let usd = self
            .engine
            .asset_info(product.quote())
            .expect("quote asset");
        for event in events {
            match event.kind {
                EventKind::Fill {
                    price,
                    qty,
                    maker_fee,
                    taker_fee,
                    taker_side,
                    ..
                } => println!(
                    "    #{:<3} fill: taker {:?} {} @ {}  fees maker {} / taker {}",
                    event.seq,
                    taker_side,
                    product.qty_to_decimal(qty),
                    product.price_to_decimal(price),
                    usd.amount_to_decimal(maker_fee),
                    usd.amount_to_decimal(taker_fee)
                ),
                EventKind::OrderRested {
                    order,
                    price,
                    remaining,
                    ..
                } => println!(
                    "    #{:<3} order {order} rests: {} @ {}",
                    event.seq,
                    product.qty_to_decimal(remaining),
                    product.price_to_decimal(price)
                ),
                EventKind::OrderCancelled {
                    order,
                    remaining,
                    reason,
                    ..
                } => {
                    println!(
                        "    #{:<3} order {order} ends with {} unfilled ({reason:?})",
                        event.seq,
                        product.qty_to_decimal(remaining)
                    )
                }
                EventKind::OrderAccepted {
                    order, side, qty, ..
                } => {
                    println!(
                        "    #{:<3} order {order} accepted: {side:?} {}",
                        event.seq,
                        product.qty_to_decimal(qty)
                    )
                }
                other => println!("    #{:<3} {other:?}", event.seq),
            }
        }
    }

    fn print_wallet(&self, who: &str, account: AccountId) {
        print!("  {who:<9}");
        for (asset, balance) in self.engine.balances(account) {
            let info = self.engine.asset_info(*asset).expect("asset");
            print!(
                "  {} available {} held {}",
                info.code(),
                info.amount_to_decimal(Amount::from_minor(balance.available)),
                info.amount_to_decimal(Amount::from_minor(balance.held))
            );
        }
        println!();
    }
}

fn create(session: &mut Session, name: &str) -> Result<AccountId> {
    let events = session.run(CommandKind::create_account(CreateAccount {
        name: name.to_string(),
        proof: format!("passport:{name}"),
        currency_preference: code("USD"),
        token_hash: TokenHash([0x42; 32]),
        initial_status: ProfileStatus::Verified,
    }))?;
    match events[0].kind {
        EventKind::AccountCreated { account, .. } => Ok(account),
        _ => bail!("no AccountCreated event"),
    }
}

fn code(s: &str) -> AssetCode {
    AssetCode::new(s).expect("valid asset code")
}

fn deposit(
    session: &mut Session,
    account: AccountId,
    asset: AssetId,
    amount: &str,
    request: &str,
) -> Result<()> {
    let info = session.engine.asset_info(asset).context("asset")?;
    let amount = info.amount_from_decimal(Decimal::from_str(amount)?)?;
    let request_id = RequestId::new(request).context("request id")?;
    session.run(CommandKind::Deposit(FundsRequest {
        account,
        asset,
        amount,
        request_id,
        method: FundsMethod::Unspecified,
    }))?;
    Ok(())
}

fn demo() -> Result<()> {
    let mut s = Session {
        engine: Engine::new(Limits::default()),
        seq: 0,
        now_ms: 1_767_225_600_000,
    };
    println!("Bourse engine demo: one product, a liquidity provider and a new user.\n");
    s.run(CommandKind::AddAsset {
        code: code("USD"),
        scale: 2,
    })?;
    s.run(CommandKind::AddAsset {
        code: code("AAPL"),
        scale: 0,
    })?;
    let (usd, aapl) = (AssetId::new(0), AssetId::new(1));
    let fees = FeeSchedule::new(&[
        FeeTier {
            volume_min: 0,
            maker_ppm: 1_000,
            taker_ppm: 2_000,
        },
        FeeTier {
            volume_min: 10_000_000,
            maker_ppm: 500,
            taker_ppm: 1_500,
        },
    ])?;
    s.run(CommandKind::add_product(AddProduct {
        symbol: Symbol::new("AAPL").context("symbol")?,
        name: "Apple Inc.".to_string(),
        base: aapl,
        quote: usd,
        price_scale: 2,
        tick_size: 1,
        qty_scale: 0,
        lot_size: 1,
        fees,
    }))?;
    println!(
        "listed AAPL/USD: tick 0.01, lot 1 share, maker 0.10% / taker 0.20% (0.05% / 0.15% above $100k in 30 days)"
    );

    let lp = create(&mut s, "liquidity-provider")?;
    deposit(&mut s, lp, usd, "1000000", "lp-usd")?;
    deposit(&mut s, lp, aapl, "10000", "lp-aapl")?;
    for (side, price) in [
        (Side::Buy, "189.10"),
        (Side::Buy, "189.20"),
        (Side::Sell, "189.30"),
        (Side::Sell, "189.40"),
    ] {
        s.order(lp, side, "50", Some(price))?;
    }
    println!(
        "the liquidity provider quotes 50 shares at 189.10 / 189.20 bid and 189.30 / 189.40 ask\n"
    );

    let ada = create(&mut s, "Ada")?;
    deposit(&mut s, ada, usd, "20000.00", "ada-first-deposit")?;
    println!("Ada opens an account and deposits $20,000.00");
    s.print_wallet("Ada", ada);

    let quote = s
        .engine
        .quote_fee(ada, ProductId::new(0), Side::Buy, Qty::from_lots(60), None)?;
    println!(
        "\nfee quote for buying 60 AAPL at market: {:?} at {} ppm, {} on the first level's price",
        quote.liquidity,
        quote.rate_ppm,
        s.engine
            .asset_info(usd)
            .context("usd")?
            .amount_to_decimal(quote.fee)
    );
    println!("Ada buys 60 AAPL at market:");
    let events = s.order(ada, Side::Buy, "60", None)?;
    s.print_events(&events);
    s.print_wallet("Ada", ada);

    println!("\nAda offers 20 AAPL at 190.00 (rests), then 10 at 189.00 (matches the bid):");
    let events = s.order(ada, Side::Sell, "20", Some("190.00"))?;
    s.print_events(&events);
    let events = s.order(ada, Side::Sell, "10", Some("189.00"))?;
    s.print_events(&events);
    s.print_wallet("Ada", ada);
    s.print_wallet("LP", lp);
    s.print_wallet("fees", AccountId::FEES);

    let supply = s.engine.asset_info(usd).context("usd")?.total_supply();
    let sum: i64 = (0..s.engine.n_accounts() as u32)
        .map(|a| s.engine.balance(AccountId::new(a), usd).total())
        .sum();
    if sum != supply.minor() {
        bail!(
            "USD does not add up: {sum} in wallets, {} deposited",
            supply.minor()
        );
    }
    println!(
        "\nUSD in all wallets = deposits: {}",
        s.engine
            .asset_info(usd)
            .context("usd")?
            .amount_to_decimal(supply)
    );
    println!(
        "state hash after {} commands and {} events: {}",
        s.seq,
        s.engine.event_seq(),
        s.engine.state_hash()
    );
    Ok(())
}
