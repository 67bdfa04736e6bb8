//! `bourse demo`: drives the engine directly through a user's first session and prints what
//! happens: listing a product, a liquidity provider quoting, an account that deposits, buys
//! at market, sells with a limit order, and the balances, fees and state hash at the end.

#![allow(
    clippy::expect_used,
    clippy::too_many_lines,
    reason = "a script over an engine of its own: every id and code it looks up it created or \
              is a constant, and main reads as the session's steps in order"
)]

use std::str::FromStr;

use anyhow::{Context, Result, anyhow, bail};
use bourse_engine::{
    AccountId, AddProduct, Amount, AssetCode, AssetId, Command, CommandKind, CreateAccount, Engine,
    Event, EventKind, FeeSchedule, FeeTier, FundsMethod, FundsRequest, Limits, NewOrder, OrderType,
    ProductId, ProfileStatus, Qty, RequestId, SelfTradePrevention, Side, Symbol, TimeInForce,
    TokenHash,
};
use rust_decimal::Decimal;

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

pub fn main() -> Result<()> {
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
