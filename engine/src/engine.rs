//! The state machine: `Engine::apply` validates a command completely, and only then changes
//! state and emits events. A rejected command returns its [`Reject`] and leaves every field as
//! it was.

use std::collections::BTreeMap;

use smallvec::SmallVec;

use crate::account::{Account, Balance};
use crate::book::{Book, NIL, OrderNode, OrderStore, crosses, unlink_in_level};
use crate::command::{
    AddProduct, AmendOrder, Command, CommandKind, CreateAccount, FundsRequest, NewOrder,
};
use crate::event::{CancelReason, Event, EventKind, EventSink};
use crate::fees::fee_for;
use crate::limits::{Limits, NAME_BYTES_MAX, PROOF_BYTES_MAX, SCALE_MAX};
use crate::order_keys::{OrderKey, OrderKeys};
use crate::product::{Asset, Product};
use crate::reject::{LimitKind, Reject};
use crate::types::{
    AMOUNT_MAX, AccountId, Amount, AssetCode, AssetId, ClientOrderId, Liquidity, OrderId,
    OrderType, Price, ProductId, ProductStatus, ProfileStatus, Qty, RequestId, SelfTradePrevention,
    Side, TimeInForce, TokenHash,
};

/// A deposit or withdrawal remembered for idempotency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FundsRecord {
    pub(crate) is_deposit: bool,
    pub(crate) asset: AssetId,
    pub(crate) amount: i64,
    pub(crate) command_seq: u64,
}

/// The whole state of the exchange core.
#[derive(Clone, Debug)]
pub struct Engine {
    pub(crate) limits: Limits,
    pub(crate) assets: Vec<Asset>,
    pub(crate) asset_by_code: BTreeMap<AssetCode, AssetId>,
    pub(crate) products: Vec<Product>,
    pub(crate) product_by_symbol: BTreeMap<crate::types::Symbol, ProductId>,
    pub(crate) books: Vec<Book>,
    pub(crate) accounts: Vec<Account>,
    pub(crate) orders: OrderStore,
    pub(crate) client_order_ids: BTreeMap<(AccountId, ClientOrderId), OrderId>,
    pub(crate) funds_requests: BTreeMap<(AccountId, RequestId), FundsRecord>,
    pub(crate) n_funds_requests: Vec<u32>,
    /// Client order ids of recent placements, for idempotency (`order_keys.rs`).
    pub(crate) order_keys: OrderKeys,
    pub(crate) next_order_id: u64,
    /// The last output sequence number used (not part of the state hash: see `state_hash`).
    pub(crate) event_seq: u64,
    /// The timestamp of the newest command seen; the "now" of fee quotes.
    pub(crate) clock_ms: i64,
}

/// Writes numbered events into the caller's sink.
struct Emitter<'s, S: EventSink> {
    event_seq: u64,
    command_seq: u64,
    timestamp_ms: i64,
    sink: &'s mut S,
}

impl<S: EventSink> Emitter<'_, S> {
    #[inline]
    fn emit(&mut self, kind: EventKind) {
        self.event_seq += 1;
        self.sink.push(Event {
            seq: self.event_seq,
            command_seq: self.command_seq,
            timestamp_ms: self.timestamp_ms,
            kind,
        });
    }
}

/// The incoming side of a match.
struct Taker {
    id: OrderId,
    account: AccountId,
    product: ProductId,
    side: Side,
    /// `None` for a market order.
    limit: Option<Price>,
    remaining: i64,
    /// What is held for it (a market buy holds nothing and pays from available).
    held: i64,
    self_trade: SelfTradePrevention,
    /// Set when matching must stop before the quantity is done.
    stopped: Option<CancelReason>,
}

/// A fee quote: what a fill of the given quantity at the given price would charge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeeQuote {
    /// Taker if the price would match the book at once, maker otherwise.
    pub liquidity: Liquidity,
    pub rate_ppm: u32,
    pub price: Price,
    pub notional: Amount,
    pub fee: Amount,
    /// What placing the order would hold (buy: notional plus the highest possible fee).
    pub hold: Amount,
}

/// A resting order, as the queries show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderView {
    pub id: OrderId,
    pub account: AccountId,
    pub product: ProductId,
    pub side: Side,
    pub price: Price,
    pub remaining: Qty,
    /// Minor units held: quote for a buy, base for a sell.
    pub held: Amount,
    pub time_in_force: TimeInForce,
    pub client_order_id: Option<ClientOrderId>,
}

/// One aggregated price level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelView {
    pub price: Price,
    pub qty: Qty,
    pub n_orders: u32,
}

impl Engine {
    /// An empty engine with only the fee account.
    pub fn new(limits: Limits) -> Engine {
        assert!(
            limits.orders_total_max < NIL,
            "orders_total_max must leave room for the order store's NIL slot"
        );
        let fees = Account {
            name: "fees".to_string(),
            proof: "system".to_string(),
            currency_preference: usd(),
            token_hash: TokenHash([0; 32]),
            status: ProfileStatus::Verified,
            created_at_ms: 0,
            bookmarks: Vec::new(),
            balances: SmallVec::new(),
            volumes: Vec::new(),
            n_open_orders: 0,
        };
        Engine {
            limits,
            assets: Vec::new(),
            asset_by_code: BTreeMap::new(),
            products: Vec::new(),
            product_by_symbol: BTreeMap::new(),
            books: Vec::new(),
            accounts: vec![fees],
            orders: OrderStore::default(),
            client_order_ids: BTreeMap::new(),
            funds_requests: BTreeMap::new(),
            n_funds_requests: vec![0],
            order_keys: OrderKeys::default(),
            next_order_id: 1,
            event_seq: 0,
            clock_ms: i64::MIN,
        }
    }

    /// Applies one command. On `Ok` the events it caused are in `sink`; on `Err` nothing
    /// changed and nothing was emitted.
    ///
    /// The engine's time never goes back: a command stamped before the newest one seen acts,
    /// and its events are stamped, at the newest time seen (`clock_ms`). Commands stamped by
    /// several clocks (gateways of a replicated log) so give every replica the same times.
    pub fn apply<S: EventSink>(&mut self, command: &Command, sink: &mut S) -> Result<(), Reject> {
        self.clock_ms = self.clock_ms.max(command.timestamp_ms);
        let mut out = Emitter {
            event_seq: self.event_seq,
            command_seq: command.seq,
            timestamp_ms: self.clock_ms,
            sink,
        };
        let result = self.dispatch(&command.kind, &mut out);
        debug_assert!(result.is_ok() || out.event_seq == self.event_seq);
        self.event_seq = out.event_seq;
        result
    }

    fn dispatch<S: EventSink>(
        &mut self,
        kind: &CommandKind,
        out: &mut Emitter<S>,
    ) -> Result<(), Reject> {
        match kind {
            CommandKind::PlaceOrder(order) => self.place_order(order, out),
            CommandKind::CancelOrder { account, order } => self.cancel_order(*account, *order, out),
            CommandKind::AmendOrder(amend) => self.amend_order(amend, out),
            CommandKind::Snapshot => Ok(()),
            CommandKind::Deposit(request) => self.deposit(request, out),
            CommandKind::Withdraw(request) => self.withdraw(request, out),
            CommandKind::CreateAccount(create) => self.create_account(create, out),
            CommandKind::SetProfileStatus { account, status } => {
                let acct = self.account_mut(*account)?;
                if acct.status == *status || *account == AccountId::FEES {
                    return Err(Reject::StatusUnchanged);
                }
                acct.status = *status;
                out.emit(EventKind::ProfileStatusChanged {
                    account: *account,
                    status: *status,
                });
                Ok(())
            }
            CommandKind::SetCurrencyPreference { account, currency } => {
                let acct = self.account_mut(*account)?;
                // Setting the preference it has is answered, and changes nothing.
                if acct.currency_preference != *currency {
                    acct.currency_preference = *currency;
                    out.emit(EventKind::CurrencyPreferenceChanged {
                        account: *account,
                        currency: *currency,
                    });
                }
                Ok(())
            }
            CommandKind::AddBookmark { account, product } => {
                self.add_bookmark(*account, *product, out)
            }
            CommandKind::RemoveBookmark { account, product } => {
                self.product(*product)?;
                let acct = self.account_mut(*account)?;
                let idx = acct
                    .bookmarks
                    .binary_search(product)
                    .map_err(|_| Reject::NotBookmarked)?;
                acct.bookmarks.remove(idx);
                out.emit(EventKind::BookmarkRemoved {
                    account: *account,
                    product: *product,
                });
                Ok(())
            }
            CommandKind::AddAsset { code, scale } => self.add_asset(*code, *scale, out),
            CommandKind::AddProduct(add) => self.add_product(add, out),
            CommandKind::SetProductStatus { product, status } => {
                let p = self
                    .products
                    .get_mut(product.get() as usize)
                    .ok_or(Reject::UnknownProduct)?;
                if p.status == *status {
                    return Err(Reject::StatusUnchanged);
                }
                p.status = *status;
                out.emit(EventKind::ProductStatusChanged {
                    product: *product,
                    status: *status,
                });
                Ok(())
            }
        }
    }

    // ----- accounts, assets, products -------------------------------------------------------

    fn create_account<S: EventSink>(
        &mut self,
        c: &CreateAccount,
        out: &mut Emitter<S>,
    ) -> Result<(), Reject> {
        if !valid_text(&c.name, NAME_BYTES_MAX) {
            return Err(Reject::InvalidName);
        }
        if !valid_text(&c.proof, PROOF_BYTES_MAX) {
            return Err(Reject::InvalidProof);
        }
        if self.accounts.len() >= self.limits.accounts_max as usize {
            return Err(Reject::LimitReached(LimitKind::Accounts));
        }
        let account = AccountId::new(self.accounts.len() as u32);
        self.accounts.push(Account {
            name: c.name.clone(),
            proof: c.proof.clone(),
            currency_preference: c.currency_preference,
            token_hash: c.token_hash,
            status: c.initial_status,
            created_at_ms: out.timestamp_ms,
            bookmarks: Vec::new(),
            balances: SmallVec::new(),
            volumes: Vec::new(),
            n_open_orders: 0,
        });
        self.n_funds_requests.push(0);
        out.emit(EventKind::AccountCreated {
            account,
            status: c.initial_status,
        });
        Ok(())
    }

    fn add_bookmark<S: EventSink>(
        &mut self,
        account: AccountId,
        product: ProductId,
        out: &mut Emitter<S>,
    ) -> Result<(), Reject> {
        self.product(product)?;
        let max = self.limits.bookmarks_per_account_max as usize;
        let acct = self.account_mut(account)?;
        let idx = match acct.bookmarks.binary_search(&product) {
            Ok(_) => return Err(Reject::AlreadyBookmarked),
            Err(idx) => idx,
        };
        if acct.bookmarks.len() >= max {
            return Err(Reject::LimitReached(LimitKind::Bookmarks));
        }
        acct.bookmarks.insert(idx, product);
        out.emit(EventKind::BookmarkAdded { account, product });
        Ok(())
    }

    fn add_asset<S: EventSink>(
        &mut self,
        code: AssetCode,
        scale: u8,
        out: &mut Emitter<S>,
    ) -> Result<(), Reject> {
        if scale > SCALE_MAX {
            return Err(Reject::InvalidAssetSpec);
        }
        if self.asset_by_code.contains_key(&code) {
            return Err(Reject::DuplicateAsset);
        }
        if self.assets.len() >= self.limits.assets_max as usize {
            return Err(Reject::LimitReached(LimitKind::Assets));
        }
        let asset = AssetId::new(self.assets.len() as u16);
        self.assets.push(Asset {
            code,
            scale,
            total_supply: 0,
        });
        self.asset_by_code.insert(code, asset);
        out.emit(EventKind::AssetAdded { asset, code, scale });
        Ok(())
    }

    fn add_product<S: EventSink>(
        &mut self,
        a: &AddProduct,
        out: &mut Emitter<S>,
    ) -> Result<(), Reject> {
        if !valid_text(&a.name, NAME_BYTES_MAX) {
            return Err(Reject::InvalidName);
        }
        let base = self.asset(a.base)?.scale;
        let quote = self.asset(a.quote)?.scale;
        if self.product_by_symbol.contains_key(&a.symbol) {
            return Err(Reject::DuplicateSymbol);
        }
        if self.products.len() >= self.limits.products_max as usize {
            return Err(Reject::LimitReached(LimitKind::Products));
        }
        let product = Product::new(
            a.symbol,
            a.name.clone(),
            (a.base, base),
            (a.quote, quote),
            (a.price_scale, a.tick_size),
            (a.qty_scale, a.lot_size),
            a.fees,
        )?;
        let id = ProductId::new(self.products.len() as u32);
        self.products.push(product);
        self.books.push(Book::default());
        self.product_by_symbol.insert(a.symbol, id);
        out.emit(EventKind::ProductAdded {
            product: id,
            symbol: a.symbol,
        });
        Ok(())
    }

    // ----- funds ----------------------------------------------------------------------------

    /// `Some(original seq)` if this request repeats an accepted one with the same body;
    /// `RequestIdMismatch` if the id was used with another body.
    fn funds_repeat(&self, is_deposit: bool, r: &FundsRequest) -> Result<Option<u64>, Reject> {
        match self.funds_requests.get(&(r.account, r.request_id)) {
            None => Ok(None),
            Some(rec)
                if rec.is_deposit == is_deposit
                    && rec.asset == r.asset
                    && rec.amount == r.amount.minor() =>
            {
                Ok(Some(rec.command_seq))
            }
            Some(_) => Err(Reject::RequestIdMismatch),
        }
    }

    fn check_funds_request(&self, r: &FundsRequest) -> Result<(), Reject> {
        let acct = self.account(r.account)?;
        if acct.status == ProfileStatus::Rejected {
            return Err(Reject::AccountRejected);
        }
        self.asset(r.asset)?;
        r.amount.checked_positive()?;
        if self.n_funds_requests[r.account.get() as usize]
            >= self.limits.funds_requests_per_account_max
        {
            return Err(Reject::LimitReached(LimitKind::FundsRequestsPerAccount));
        }
        Ok(())
    }

    fn record_funds(&mut self, is_deposit: bool, r: &FundsRequest, command_seq: u64) {
        self.n_funds_requests[r.account.get() as usize] += 1;
        let record = FundsRecord {
            is_deposit,
            asset: r.asset,
            amount: r.amount.minor(),
            command_seq,
        };
        self.funds_requests
            .insert((r.account, r.request_id), record);
    }

    fn deposit<S: EventSink>(
        &mut self,
        r: &FundsRequest,
        out: &mut Emitter<S>,
    ) -> Result<(), Reject> {
        self.account(r.account)?;
        if let Some(original) = self.funds_repeat(true, r)? {
            out.emit(deposited(r, true, original));
            return Ok(());
        }
        self.check_funds_request(r)?;
        let asset = &mut self.assets[r.asset.get() as usize];
        if asset.total_supply > AMOUNT_MAX - r.amount.minor() {
            return Err(Reject::Overflow);
        }
        asset.total_supply += r.amount.minor();
        self.accounts[r.account.get() as usize]
            .balance_mut(r.asset)
            .available += r.amount.minor();
        self.record_funds(true, r, out.command_seq);
        out.emit(deposited(r, false, out.command_seq));
        Ok(())
    }

    fn withdraw<S: EventSink>(
        &mut self,
        r: &FundsRequest,
        out: &mut Emitter<S>,
    ) -> Result<(), Reject> {
        self.account(r.account)?;
        if let Some(original) = self.funds_repeat(false, r)? {
            out.emit(withdrawn(r, true, original));
            return Ok(());
        }
        self.check_funds_request(r)?;
        let acct = &self.accounts[r.account.get() as usize];
        if acct.balance(r.asset).available < r.amount.minor() {
            return Err(Reject::InsufficientFunds);
        }
        self.assets[r.asset.get() as usize].total_supply -= r.amount.minor();
        self.accounts[r.account.get() as usize]
            .balance_mut(r.asset)
            .available -= r.amount.minor();
        self.record_funds(false, r, out.command_seq);
        out.emit(withdrawn(r, false, out.command_seq));
        Ok(())
    }

    // ----- orders ---------------------------------------------------------------------------

    /// The account may place and amend orders.
    #[inline]
    fn check_trader(&self, account: AccountId) -> Result<&Account, Reject> {
        let acct = self.account(account)?;
        if account == AccountId::FEES {
            return Err(Reject::FeeAccountCannotTrade);
        }
        match acct.status {
            ProfileStatus::Verified => Ok(acct),
            ProfileStatus::Pending => Err(Reject::AccountNotVerified),
            ProfileStatus::Rejected => Err(Reject::AccountRejected),
        }
    }

    #[inline]
    fn trading_product(&self, product: ProductId) -> Result<&Product, Reject> {
        let p = self.product(product)?;
        if p.status == ProductStatus::Halted {
            return Err(Reject::ProductHalted);
        }
        Ok(p)
    }

    /// What an order of `side` holds in which asset.
    #[inline]
    fn hold_for(p: &Product, side: Side, price: Price, qty: Qty) -> Result<(AssetId, i64), Reject> {
        // Every limit order's notional must fit, whichever side: fills happen at its price. A
        // buy's hold is at least its notional, so a hold that fits proves it.
        match side {
            Side::Buy => Ok((p.quote, p.buy_hold(price, qty)?)),
            Side::Sell => {
                p.notional(price, qty)?;
                Ok((p.base, p.base_amount(qty)?))
            }
        }
    }

    /// A placement whose client order id is in the window: with the same body it is answered
    /// with the first order (`OrderDuplicate`) and changes nothing; with another it is refused.
    fn place_order<S: EventSink>(
        &mut self,
        o: &NewOrder,
        out: &mut Emitter<S>,
    ) -> Result<(), Reject> {
        if let Some(cid) = o.client_order_id
            && let Some(key) = self.order_keys.live(&(o.account, cid), out.timestamp_ms)
        {
            if !key.same_body(o) {
                return Err(Reject::DuplicateClientOrderId);
            }
            out.emit(EventKind::OrderDuplicate {
                account: o.account,
                order: key.order,
                client_order_id: cid,
                original_command_seq: key.command_seq,
            });
            return Ok(());
        }
        self.place_new_order(o, out)
    }

    fn place_new_order<S: EventSink>(
        &mut self,
        o: &NewOrder,
        out: &mut Emitter<S>,
    ) -> Result<(), Reject> {
        let acct = self.check_trader(o.account)?;
        let p = self.trading_product(o.product)?;
        let qty = o.qty.checked()?;
        let limit = match (o.order_type, o.price) {
            (OrderType::Limit, Some(price)) => Some(price.checked()?),
            (OrderType::Market, None) => None,
            _ => return Err(Reject::InvalidPriceForOrderType),
        };
        if o.order_type == OrderType::Market && o.time_in_force != TimeInForce::Ioc {
            return Err(Reject::InvalidTimeInForce);
        }
        if let Some(cid) = o.client_order_id
            && self.client_order_ids.contains_key(&(o.account, cid))
        {
            return Err(Reject::DuplicateClientOrderId);
        }
        let may_rest = matches!(o.time_in_force, TimeInForce::Gtc | TimeInForce::PostOnly);
        if may_rest {
            self.check_rest_limits(acct, o.product)?;
        }
        let book = &self.books[o.product.get() as usize];
        let (hold_asset, hold) = match (limit, o.side) {
            (Some(price), side) => Self::hold_for(p, side, price, qty)?,
            (None, Side::Sell) => (p.base, p.base_amount(qty)?),
            (None, Side::Buy) => {
                // A market buy holds nothing; it pays each fill from available funds and stops
                // when they run out. It must afford at least one lot at the best price.
                if let Some(best) = book.best(Side::Sell) {
                    let volume = acct.trailing_volume(p.quote, out.timestamp_ms);
                    let rate = p.fees.rate_ppm(volume, Liquidity::Taker);
                    let n1 = p.notional(best, Qty::from_lots(1))?;
                    if acct.balance(p.quote).available < n1 + fee_for(n1, rate) {
                        return Err(Reject::InsufficientFunds);
                    }
                }
                (p.quote, 0)
            }
        };
        if acct.balance(hold_asset).available < hold {
            return Err(Reject::InsufficientFunds);
        }
        if let Some(price) = limit {
            if o.time_in_force == TimeInForce::PostOnly
                && book
                    .best(o.side.opposite())
                    .is_some_and(|best| crosses(o.side, price, best))
            {
                return Err(Reject::WouldTakeLiquidity);
            }
            if o.time_in_force == TimeInForce::Fok && !self.fok_fillable(o, price, qty) {
                return Err(Reject::FillOrKillUnfillable);
            }
        }

        // Validated: from here on the order is accepted and state changes.
        let id = OrderId::new(self.next_order_id);
        self.next_order_id += 1;
        let keys_max = self.limits.order_keys_max;
        self.order_keys.forget(out.timestamp_ms, keys_max);
        if let Some(cid) = o.client_order_id {
            let key = OrderKey::new(o, id, out.command_seq, out.timestamp_ms);
            self.order_keys.insert((o.account, cid), key, keys_max);
        }
        out.emit(EventKind::OrderAccepted {
            order: id,
            account: o.account,
            product: o.product,
            side: o.side,
            order_type: o.order_type,
            time_in_force: o.time_in_force,
            price: limit,
            qty,
            client_order_id: o.client_order_id,
        });
        self.accounts[o.account.get() as usize].hold(hold_asset, hold);
        let mut taker = Taker {
            id,
            account: o.account,
            product: o.product,
            side: o.side,
            limit,
            remaining: qty.lots(),
            held: hold,
            self_trade: o.self_trade,
            stopped: None,
        };
        self.match_taker(&mut taker, out);
        self.finish_taker(taker, may_rest, o.time_in_force, o.client_order_id, out);
        Ok(())
    }

    fn check_rest_limits(&self, acct: &Account, product: ProductId) -> Result<(), Reject> {
        if acct.n_open_orders >= self.limits.open_orders_per_account_max {
            return Err(Reject::LimitReached(LimitKind::OpenOrdersPerAccount));
        }
        if self.books[product.get() as usize].n_orders >= self.limits.orders_per_book_max {
            return Err(Reject::LimitReached(LimitKind::OrdersPerBook));
        }
        if self.orders.len() >= self.limits.orders_total_max as usize {
            return Err(Reject::LimitReached(LimitKind::OrdersTotal));
        }
        Ok(())
    }

    /// Whether a fill-or-kill order would fill in full: the other accounts' quantity at prices
    /// it accepts, up to the first own order if self-trade prevention would stop it there.
    fn fok_fillable(&self, o: &NewOrder, limit: Price, qty: Qty) -> bool {
        let book = &self.books[o.product.get() as usize];
        let stops_at_own = o.self_trade != SelfTradePrevention::CancelResting;
        let mut available = 0i64;
        for (level_price, level) in book.side(o.side.opposite()).iter() {
            if !crosses(o.side, limit, level_price) {
                break;
            }
            let mut slot = level.head;
            while slot != NIL {
                let node = self.orders.node(slot);
                if node.account == o.account {
                    if stops_at_own {
                        return available >= qty.lots();
                    }
                } else {
                    available += node.remaining;
                    if available >= qty.lots() {
                        return true;
                    }
                }
                slot = node.next;
            }
        }
        available >= qty.lots()
    }

    /// Matches `taker` against the opposite side while prices cross and it has quantity.
    fn match_taker<S: EventSink>(&mut self, taker: &mut Taker, out: &mut Emitter<S>) {
        let Engine {
            books,
            orders,
            accounts,
            products,
            client_order_ids,
            ..
        } = self;
        let p = &products[taker.product.get() as usize];
        let Book {
            bids,
            asks,
            n_orders: book_n_orders,
        } = &mut books[taker.product.get() as usize];
        let ladder = match taker.side {
            Side::Buy => asks,
            Side::Sell => bids,
        };
        'levels: while taker.remaining > 0 {
            let Some((page, price)) = ladder.best() else {
                break;
            };
            if taker
                .limit
                .is_some_and(|limit| !crosses(taker.side, limit, price))
            {
                break;
            }
            let level = ladder.level_mut(page, price);
            while taker.remaining > 0 && level.head != NIL {
                let slot = level.head;
                let maker = *orders.node(slot);
                if maker.account == taker.account {
                    if taker.self_trade != SelfTradePrevention::CancelIncoming {
                        unlink_in_level(level, orders, slot);
                        *book_n_orders -= 1;
                        remove_resting(orders, accounts, client_order_ids, p, slot);
                        out.emit(EventKind::OrderCancelled {
                            order: maker.id,
                            account: maker.account,
                            product: maker.product,
                            remaining: Qty::from_lots(maker.remaining),
                            reason: CancelReason::SelfTrade,
                        });
                    }
                    if taker.self_trade != SelfTradePrevention::CancelResting {
                        taker.stopped = Some(CancelReason::SelfTrade);
                        ladder.remove_if_empty(page, price);
                        break 'levels;
                    }
                    continue;
                }
                let mut lots = taker.remaining.min(maker.remaining);
                let taker_acct = &accounts[taker.account.get() as usize];
                let taker_rate = p.fees.rate_ppm(
                    taker_acct.trailing_volume(p.quote, out.timestamp_ms),
                    Liquidity::Taker,
                );
                if taker.side == Side::Buy && taker.limit.is_none() {
                    let budget = taker_acct.balance(p.quote).available;
                    lots = lots.min(affordable_lots(
                        p.quote_per_tick_lot * price.ticks(),
                        taker_rate,
                        budget,
                    ));
                    if lots == 0 {
                        taker.stopped = Some(CancelReason::InsufficientFunds);
                        break 'levels;
                    }
                }
                let maker_rate = p.fees.rate_ppm(
                    accounts[maker.account.get() as usize]
                        .trailing_volume(p.quote, out.timestamp_ms),
                    Liquidity::Maker,
                );
                let notional = p.quote_per_tick_lot * price.ticks() * lots;
                let fill = Settlement {
                    notional,
                    base: p.base_per_lot * lots,
                    maker_fee: fee_for(notional, maker_rate),
                    taker_fee: fee_for(notional, taker_rate),
                };
                let (maker_spent, taker_spent) =
                    fill.settle(accounts, p, &maker, taker, out.timestamp_ms);
                taker.remaining -= lots;
                taker.held -= taker_spent;
                let node = orders.node_mut(slot);
                node.remaining -= lots;
                node.held -= maker_spent;
                level.total -= lots;
                out.emit(filled(taker, &maker, node.remaining, price, lots, &fill));
                if node.remaining == 0 {
                    // The level's total already dropped by the fill: unlink sees 0 remaining.
                    unlink_in_level(level, orders, slot);
                    *book_n_orders -= 1;
                    remove_resting(orders, accounts, client_order_ids, p, slot);
                }
            }
            ladder.remove_if_empty(page, price);
        }
    }

    /// After matching: rest what is left, or cancel it; release what it holds beyond that.
    fn finish_taker<S: EventSink>(
        &mut self,
        taker: Taker,
        may_rest: bool,
        time_in_force: TimeInForce,
        client_order_id: Option<ClientOrderId>,
        out: &mut Emitter<S>,
    ) {
        let p = &self.products[taker.product.get() as usize];
        let hold_asset = if taker.side == Side::Buy {
            p.quote
        } else {
            p.base
        };
        let acct = &mut self.accounts[taker.account.get() as usize];
        // Only a limit order may rest: a market order is IOC, so `may_rest` is false for it.
        if let Some(price) = taker.limit
            && taker.remaining > 0
            && may_rest
            && taker.stopped.is_none()
        {
            acct.n_open_orders += 1;
            let slot = self.orders.insert(
                OrderNode {
                    id: taker.id,
                    account: taker.account,
                    product: taker.product,
                    side: taker.side,
                    time_in_force,
                    self_trade: taker.self_trade,
                    price,
                    remaining: taker.remaining,
                    held: taker.held,
                    prev: NIL,
                    next: NIL,
                    page: NIL,
                    has_client_order_id: client_order_id.is_some(),
                },
                client_order_id,
            );
            self.books[taker.product.get() as usize].push_back(&mut self.orders, slot);
            if let Some(cid) = client_order_id {
                self.client_order_ids.insert((taker.account, cid), taker.id);
            }
            out.emit(rested(
                self.orders.node(slot),
                price,
                Qty::from_lots(taker.remaining),
                false,
            ));
            return;
        }
        acct.release(hold_asset, taker.held);
        if taker.remaining > 0 {
            let reason = taker.stopped.unwrap_or(CancelReason::Expired);
            out.emit(EventKind::OrderCancelled {
                order: taker.id,
                account: taker.account,
                product: taker.product,
                remaining: Qty::from_lots(taker.remaining),
                reason,
            });
        }
    }

    /// The open order `order` of `account`, by slot.
    #[inline]
    fn own_order(&self, account: AccountId, order: OrderId) -> Result<u32, Reject> {
        self.account(account)?;
        let slot = self.orders.slot_of(order).ok_or(Reject::UnknownOrder)?;
        if self.orders.node(slot).account != account {
            return Err(Reject::UnknownOrder);
        }
        Ok(slot)
    }

    fn cancel_order<S: EventSink>(
        &mut self,
        account: AccountId,
        order: OrderId,
        out: &mut Emitter<S>,
    ) -> Result<(), Reject> {
        let slot = self.own_order(account, order)?;
        let node = *self.orders.node(slot);
        self.books[node.product.get() as usize].unlink(&mut self.orders, slot);
        let p = &self.products[node.product.get() as usize];
        remove_resting(
            &mut self.orders,
            &mut self.accounts,
            &mut self.client_order_ids,
            p,
            slot,
        );
        out.emit(EventKind::OrderCancelled {
            order,
            account,
            product: node.product,
            remaining: Qty::from_lots(node.remaining),
            reason: CancelReason::Requested,
        });
        Ok(())
    }

    fn amend_order<S: EventSink>(
        &mut self,
        a: &AmendOrder,
        out: &mut Emitter<S>,
    ) -> Result<(), Reject> {
        let slot = self.own_order(a.account, a.order)?;
        let acct = self.check_trader(a.account)?;
        let node = *self.orders.node(slot);
        let p = self.trading_product(node.product)?;
        let qty = a.qty.checked()?;
        let price = match a.price {
            Some(price) => price.checked()?,
            None => node.price,
        };
        if price == node.price && qty.lots() == node.remaining {
            return Err(Reject::NothingToAmend);
        }
        let (hold_asset, hold) = Self::hold_for(p, node.side, price, qty)?;
        if price == node.price && qty.lots() < node.remaining {
            // Smaller at the same price: keeps its place; releases what it no longer needs.
            self.books[node.product.get() as usize].reduce(&mut self.orders, slot, qty.lots());
            let release = node.held - hold;
            debug_assert!(release >= 0);
            self.orders.node_mut(slot).held = hold;
            self.accounts[a.account.get() as usize].release(hold_asset, release);
            out.emit(rested(&node, price, qty, true));
            return Ok(());
        }
        if acct.balance(hold_asset).available + node.held < hold {
            return Err(Reject::InsufficientFunds);
        }
        let book = &self.books[node.product.get() as usize];
        let takes = book
            .best(node.side.opposite())
            .is_some_and(|best| crosses(node.side, price, best));
        if node.time_in_force == TimeInForce::PostOnly && takes {
            return Err(Reject::WouldTakeLiquidity);
        }
        if !takes {
            // The common move: nothing to match, so the order keeps its slot and goes to the back
            // of its new level (the same outcome as the general path below, with less work).
            let book = &mut self.books[node.product.get() as usize];
            book.unlink(&mut self.orders, slot);
            let acct = &mut self.accounts[a.account.get() as usize];
            acct.rehold(hold_asset, node.held, hold);
            let moved = self.orders.node_mut(slot);
            moved.price = price;
            moved.remaining = qty.lots();
            moved.held = hold;
            book.push_back(&mut self.orders, slot);
            out.emit(rested(&node, price, qty, false));
            return Ok(());
        }

        // Validated: the order leaves its place and enters again as a taker with its own id.
        self.books[node.product.get() as usize].unlink(&mut self.orders, slot);
        let p = &self.products[node.product.get() as usize];
        let client_order_id = remove_resting(
            &mut self.orders,
            &mut self.accounts,
            &mut self.client_order_ids,
            p,
            slot,
        );
        self.accounts[a.account.get() as usize].hold(hold_asset, hold);
        let mut taker = Taker {
            id: node.id,
            account: node.account,
            product: node.product,
            side: node.side,
            limit: Some(price),
            remaining: qty.lots(),
            held: hold,
            self_trade: node.self_trade,
            stopped: None,
        };
        self.match_taker(&mut taker, out);
        self.finish_taker(taker, true, node.time_in_force, client_order_id, out);
        Ok(())
    }

    // ----- lookups --------------------------------------------------------------------------

    #[inline]
    fn account(&self, account: AccountId) -> Result<&Account, Reject> {
        self.accounts
            .get(account.get() as usize)
            .ok_or(Reject::UnknownAccount)
    }

    fn account_mut(&mut self, account: AccountId) -> Result<&mut Account, Reject> {
        self.accounts
            .get_mut(account.get() as usize)
            .ok_or(Reject::UnknownAccount)
    }

    fn asset(&self, asset: AssetId) -> Result<&Asset, Reject> {
        self.assets
            .get(asset.get() as usize)
            .ok_or(Reject::UnknownAsset)
    }

    #[inline]
    fn product(&self, product: ProductId) -> Result<&Product, Reject> {
        self.products
            .get(product.get() as usize)
            .ok_or(Reject::UnknownProduct)
    }

    // ----- queries --------------------------------------------------------------------------

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The last output sequence number used.
    pub fn event_seq(&self) -> u64 {
        self.event_seq
    }

    pub fn n_accounts(&self) -> usize {
        self.accounts.len()
    }

    pub fn account_status(&self, account: AccountId) -> Option<ProfileStatus> {
        self.account(account).ok().map(|a| a.status)
    }

    pub fn account_name(&self, account: AccountId) -> Option<&str> {
        self.account(account).ok().map(|a| a.name.as_str())
    }

    /// An account's profile (what `GET /account` shows), if the account exists.
    pub fn account_profile(&self, account: AccountId) -> Option<AccountProfile> {
        self.account(account).ok().map(|a| AccountProfile {
            name: a.name.clone(),
            status: a.status,
            currency_preference: a.currency_preference,
            created_at_ms: a.created_at_ms,
            token_hash: a.token_hash,
        })
    }

    pub fn account_token_hash(&self, account: AccountId) -> Option<TokenHash> {
        self.account(account).ok().map(|a| a.token_hash)
    }

    pub fn bookmarks(&self, account: AccountId) -> &[ProductId] {
        self.account(account).map_or(&[], |a| &a.bookmarks)
    }

    pub fn balance(&self, account: AccountId, asset: AssetId) -> Balance {
        self.account(account)
            .map_or(Balance::default(), |a| a.balance(asset))
    }

    /// Every asset the account has held, in asset order.
    pub fn balances(&self, account: AccountId) -> &[(AssetId, Balance)] {
        self.account(account).map_or(&[], |a| a.balances.as_slice())
    }

    /// The account's traded volume in `asset` over the 30 days up to `timestamp_ms`.
    pub fn trailing_volume(&self, account: AccountId, asset: AssetId, timestamp_ms: i64) -> i64 {
        self.account(account)
            .map_or(0, |a| a.trailing_volume(asset, timestamp_ms))
    }

    pub fn n_assets(&self) -> usize {
        self.assets.len()
    }

    pub fn asset_info(&self, asset: AssetId) -> Option<&Asset> {
        self.asset(asset).ok()
    }

    pub fn asset_by_code(&self, code: &AssetCode) -> Option<AssetId> {
        self.asset_by_code.get(code).copied()
    }

    pub fn n_products(&self) -> usize {
        self.products.len()
    }

    pub fn product_info(&self, product: ProductId) -> Option<&Product> {
        self.product(product).ok()
    }

    pub fn product_by_symbol(&self, symbol: &crate::types::Symbol) -> Option<ProductId> {
        self.product_by_symbol.get(symbol).copied()
    }

    fn order_view(&self, node: &OrderNode) -> OrderView {
        OrderView {
            id: node.id,
            account: node.account,
            product: node.product,
            side: node.side,
            price: node.price,
            remaining: Qty::from_lots(node.remaining),
            held: Amount::from_minor(node.held),
            time_in_force: node.time_in_force,
            client_order_id: self.orders.client_order_id(node),
        }
    }

    /// An open (resting) order.
    pub fn order(&self, order: OrderId) -> Option<OrderView> {
        self.orders
            .slot_of(order)
            .map(|slot| self.order_view(self.orders.node(slot)))
    }

    pub fn n_open_orders(&self) -> usize {
        self.orders.len()
    }

    /// The open orders of one side of a book, best price first, then by time.
    pub fn book_orders(&self, product: ProductId, side: Side) -> Vec<OrderView> {
        let mut views = Vec::new();
        if let Some(book) = self.books.get(product.get() as usize) {
            for (_, level) in book.side(side).iter() {
                let mut slot = level.head;
                while slot != NIL {
                    let node = self.orders.node(slot);
                    views.push(self.order_view(node));
                    slot = node.next;
                }
            }
        }
        views
    }

    /// The aggregated levels of one side of a book, best first.
    pub fn book_levels(
        &self,
        product: ProductId,
        side: Side,
    ) -> impl Iterator<Item = LevelView> + '_ {
        self.books
            .get(product.get() as usize)
            .into_iter()
            .flat_map(move |book| book.side(side).iter())
            .map(|(price, l)| LevelView {
                price,
                qty: Qty::from_lots(l.total),
                n_orders: l.n_orders(&self.orders),
            })
    }

    /// The fee a fill of `qty` at `price` would charge `account` now (as of the newest command's
    /// timestamp): as taker if `price` would match the book at once, else as maker. Without a
    /// price, the best opposite price as taker (a market order's first fill). A fill of that
    /// quantity at that price charges exactly `fee`; an order that fills against several resting
    /// orders is charged per fill, each rounded up.
    pub fn quote_fee(
        &self,
        account: AccountId,
        product: ProductId,
        side: Side,
        qty: Qty,
        price: Option<Price>,
    ) -> Result<FeeQuote, Reject> {
        let acct = self.account(account)?;
        let p = self.product(product)?;
        let qty = qty.checked()?;
        let best = self.books[product.get() as usize].best(side.opposite());
        let (price, liquidity) = match price {
            Some(price) => {
                let price = price.checked()?;
                let taker = best.is_some_and(|b| crosses(side, price, b));
                (
                    price,
                    if taker {
                        Liquidity::Taker
                    } else {
                        Liquidity::Maker
                    },
                )
            }
            None => (
                best.ok_or(Reject::InvalidPriceForOrderType)?,
                Liquidity::Taker,
            ),
        };
        let rate_ppm = p
            .fees
            .rate_ppm(acct.trailing_volume(p.quote, self.clock_ms), liquidity);
        let notional = p.notional(price, qty)?;
        let (_, hold) = Self::hold_for(p, side, price, qty)?;
        Ok(FeeQuote {
            liquidity,
            rate_ppm,
            price,
            notional: Amount::from_minor(notional),
            fee: Amount::from_minor(fee_for(notional, rate_ppm)),
            hold: Amount::from_minor(hold),
        })
    }
}

/// The money of one fill.
struct Settlement {
    notional: i64,
    base: i64,
    maker_fee: i64,
    taker_fee: i64,
}

impl Settlement {
    /// Moves the money: the buyer pays notional plus fee in quote (from its order's hold, or
    /// from available for a market buy) and receives the base; the seller gives the base from its
    /// hold and receives notional minus fee; the fee account receives both fees. Returns what
    /// the maker's and the taker's holds gave up.
    fn settle(
        &self,
        accounts: &mut [Account],
        p: &Product,
        maker: &OrderNode,
        taker: &Taker,
        ts: i64,
    ) -> (i64, i64) {
        let (buyer, seller, buyer_fee, seller_fee) = match taker.side {
            Side::Buy => (taker.account, maker.account, self.taker_fee, self.maker_fee),
            Side::Sell => (maker.account, taker.account, self.maker_fee, self.taker_fee),
        };
        let buyer_pays = self.notional + buyer_fee;
        let buyer_from_hold = taker.side == Side::Sell || taker.limit.is_some();
        {
            let b = accounts[buyer.get() as usize].balance_mut(p.quote);
            if buyer_from_hold {
                b.held -= buyer_pays;
            } else {
                b.available -= buyer_pays;
            }
            assert!(b.held >= 0 && b.available >= 0, "buyer overdrawn");
        }
        let buyer_acct = &mut accounts[buyer.get() as usize];
        buyer_acct.balance_mut(p.base).available += self.base;
        buyer_acct.add_volume(p.quote, ts, self.notional);
        let seller_acct = &mut accounts[seller.get() as usize];
        let s = seller_acct.balance_mut(p.base);
        s.held -= self.base;
        assert!(s.held >= 0, "seller overdrawn");
        seller_acct.balance_mut(p.quote).available += self.notional - seller_fee;
        seller_acct.add_volume(p.quote, ts, self.notional);
        accounts[AccountId::FEES.get() as usize]
            .balance_mut(p.quote)
            .available += buyer_fee + seller_fee;
        let (buyer_hold_spent, seller_hold_spent) =
            (if buyer_from_hold { buyer_pays } else { 0 }, self.base);
        match taker.side {
            Side::Buy => (seller_hold_spent, buyer_hold_spent),
            Side::Sell => (buyer_hold_spent, seller_hold_spent),
        }
    }
}

/// Takes a resting order (already unlinked from its level) out of the store, releases what it
/// still holds, and forgets its client order id.
fn remove_resting(
    orders: &mut OrderStore,
    accounts: &mut [Account],
    client_order_ids: &mut BTreeMap<(AccountId, ClientOrderId), OrderId>,
    p: &Product,
    slot: u32,
) -> Option<ClientOrderId> {
    let (node, client_order_id) = orders.remove(slot);
    let acct = &mut accounts[node.account.get() as usize];
    acct.n_open_orders -= 1;
    let asset = if node.side == Side::Buy {
        p.quote
    } else {
        p.base
    };
    acct.release(asset, node.held);
    if let Some(cid) = client_order_id {
        client_order_ids.remove(&(node.account, cid));
    }
    client_order_id
}

/// Free text from a client: not blank, at most `bytes_max` bytes, no control characters.
/// The fee account's currency preference.
#[allow(
    clippy::expect_used,
    reason = "a constant: \"USD\" is three printable ASCII bytes, a valid asset code"
)]
fn usd() -> AssetCode {
    AssetCode::new("USD").expect("valid code")
}

fn valid_text(text: &str, bytes_max: usize) -> bool {
    !text.trim().is_empty() && text.len() <= bytes_max && !text.chars().any(char::is_control)
}

/// The most lots a market buy can pay for at `lot_notional` per lot and `rate_ppm` with `budget`.
fn affordable_lots(lot_notional: i64, rate_ppm: u32, budget: i64) -> i64 {
    if budget <= 0 {
        return 0;
    }
    let cost = |lots: i64| -> i128 {
        let n = lot_notional as i128 * lots as i128;
        n + (n * rate_ppm as i128 + 999_999) / 1_000_000
    };
    let estimate =
        budget as i128 * 1_000_000 / (lot_notional as i128 * (1_000_000 + rate_ppm as i128));
    let mut lots = estimate.min(crate::types::QTY_LOTS_MAX as i128) as i64;
    while lots > 0 && cost(lots) > budget as i128 {
        lots -= 1;
    }
    lots
}

/// The event for an order that rests at `price` with `remaining` open.
/// The `Fill` of `lots` at `price` between `taker` and `maker`, after both are updated
/// (`maker_remaining` is the maker's open quantity after the fill).
fn filled(
    taker: &Taker,
    maker: &OrderNode,
    maker_remaining: i64,
    price: Price,
    lots: i64,
    fill: &Settlement,
) -> EventKind {
    EventKind::Fill {
        product: taker.product,
        maker_order: maker.id,
        taker_order: taker.id,
        maker_account: maker.account,
        taker_account: taker.account,
        taker_side: taker.side,
        price,
        qty: Qty::from_lots(lots),
        notional: Amount::from_minor(fill.notional),
        maker_fee: Amount::from_minor(fill.maker_fee),
        taker_fee: Amount::from_minor(fill.taker_fee),
        maker_remaining: Qty::from_lots(maker_remaining),
        taker_remaining: Qty::from_lots(taker.remaining),
    }
}

fn rested(node: &OrderNode, price: Price, remaining: Qty, priority_kept: bool) -> EventKind {
    EventKind::OrderRested {
        order: node.id,
        account: node.account,
        product: node.product,
        side: node.side,
        price,
        remaining,
        priority_kept,
    }
}

fn deposited(r: &FundsRequest, duplicate: bool, original_command_seq: u64) -> EventKind {
    EventKind::Deposited {
        account: r.account,
        asset: r.asset,
        amount: r.amount,
        request_id: r.request_id,
        method: r.method,
        duplicate,
        original_command_seq,
    }
}

fn withdrawn(r: &FundsRequest, duplicate: bool, original_command_seq: u64) -> EventKind {
    EventKind::Withdrawn {
        account: r.account,
        asset: r.asset,
        amount: r.amount,
        request_id: r.request_id,
        method: r.method,
        duplicate,
        original_command_seq,
    }
}

/// A copy of an account's profile; see [`Engine::account_profile`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountProfile {
    pub name: String,
    pub status: ProfileStatus,
    pub currency_preference: AssetCode,
    pub created_at_ms: i64,
    pub token_hash: TokenHash,
}
