//! The binary codec of [`Command`]: how a command is written to the journal.
//!
//! This is an **on-disk format**. A record written by one version of Bourse must be read back
//! by every later one, so the layout below only ever grows: a change is a new version byte, and
//! the decoder keeps reading the old versions.
//!
//! # Version history
//!
//! | version | change                                 |
//! |---------|----------------------------------------|
//! | 1       | first version (this layout)            |
//!
//! # Conventions
//!
//! * Integers are little-endian and fixed-width: `u8`, `u16`, `u32`, `u64`, `i64` are 1, 2, 4,
//!   8 and 8 bytes. Raw values are written as they are, in range or not (a command is data; the
//!   engine checks ranges when it applies it): a negative price round-trips.
//! * `text` (account and product names, identity proofs): a `u16` byte length, then that many
//!   bytes of UTF-8. The decoder refuses a length above [`TEXT_BYTES_MAX`] (1,024 bytes; the
//!   engine itself accepts at most [`NAME_BYTES_MAX`] = 128 and [`PROOF_BYTES_MAX`] = 256) or
//!   above what is left of the input. [`encode`] cuts a longer string to at most
//!   [`TEXT_BYTES_MAX`] bytes on a character boundary: such a command is rejected by the engine
//!   with or without the cut (the length check fails either way, and the text checks come
//!   before any other check of their command), so replay gives the same answer.
//! * `short<N>` (a [`ShortStr<N>`]: symbols, asset codes, client order ids, request ids): a
//!   `u8` byte length in `1..=N`, then the bytes, which must pass [`ShortStr::new`] (printable
//!   ASCII without spaces).
//! * `opt short<N>`: the same with length 0 meaning `None` (a `ShortStr` is never empty).
//! * `opt i64`: a `u8` flag, 0 (`None`, nothing follows) or 1 (`Some`, an `i64` follows).
//! * Enums are one `u8` each, with these codes (anything else is an error):
//!   `Side` Buy 0, Sell 1; `OrderType` Limit 0, Market 1; `TimeInForce` Gtc 0, Ioc 1, Fok 2,
//!   PostOnly 3; `SelfTradePrevention` CancelResting 0, CancelIncoming 1, CancelBoth 2;
//!   `ProfileStatus` Pending 0, Verified 1, Rejected 2; `ProductStatus` Trading 0, Halted 1.
//! * The encoding is canonical: one command has exactly one encoding, and every input that
//!   decodes re-encodes to itself. Bytes after the command are an error.
//!
//! # Layout
//!
//! Every command starts with an 18-byte header:
//!
//! | offset | size | field                          |
//! |--------|------|--------------------------------|
//! | 0      | 1    | version, `u8` = 1              |
//! | 1      | 1    | tag, `u8` (the table below)    |
//! | 2      | 8    | `seq`, `u64`                   |
//! | 10     | 8    | `timestamp_ms`, `i64`          |
//!
//! followed by the body of its [`CommandKind`]; offsets below are from the start of the body.
//! A `+` marks a field after a variable-length one.
//!
//! **Tag 1, `CreateAccount`**
//!
//! | offset | size    | field                              |
//! |--------|---------|------------------------------------|
//! | 0      | 2 + n   | `name`, text                       |
//! | +      | 2 + n   | `proof`, text                      |
//! | +      | 1 + n   | `currency_preference`, short<12>   |
//! | +      | 32      | `token_hash`, raw bytes            |
//! | +      | 1       | `initial_status`, `ProfileStatus`  |
//!
//! **Tag 2, `SetProfileStatus`** (5 bytes)
//!
//! | offset | size | field                      |
//! |--------|------|----------------------------|
//! | 0      | 4    | `account`, `u32`           |
//! | 4      | 1    | `status`, `ProfileStatus`  |
//!
//! **Tag 16, `SetCurrencyPreference`** (added after the first journals were written)
//!
//! | offset | size  | field                  |
//! |--------|-------|------------------------|
//! | 0      | 4     | `account`, `u32`       |
//! | 4      | 1 + n | `currency`, short<12>  |
//!
//! **Tag 3, `AddBookmark`; tag 4, `RemoveBookmark`** (8 bytes)
//!
//! | offset | size | field              |
//! |--------|------|--------------------|
//! | 0      | 4    | `account`, `u32`   |
//! | 4      | 4    | `product`, `u32`   |
//!
//! **Tag 5, `AddAsset`**
//!
//! | offset | size  | field              |
//! |--------|-------|--------------------|
//! | 0      | 1 + n | `code`, short<12>  |
//! | +      | 1     | `scale`, `u8`      |
//!
//! **Tag 6, `AddProduct`**
//!
//! | offset | size   | field                                   |
//! |--------|--------|-----------------------------------------|
//! | 0      | 1 + n  | `symbol`, short<16>                     |
//! | +      | 2 + n  | `name`, text                            |
//! | +      | 2      | `base`, `u16`                           |
//! | +      | 2      | `quote`, `u16`                          |
//! | +      | 1      | `price_scale`, `u8`                     |
//! | +      | 8      | `tick_size`, `i64`                      |
//! | +      | 1      | `qty_scale`, `u8`                       |
//! | +      | 8      | `lot_size`, `i64`                       |
//! | +      | 1      | tier count `t`, `u8`, at most [`FEE_TIERS_MAX`] = 8 |
//! | +      | 16 × t | tiers: `volume_min` `i64`, `maker_ppm` `u32`, `taker_ppm` `u32` |
//!
//! The tiers are not validated here ([`FeeSchedule::from_tiers_unchecked`]); the engine
//! validates them when it applies the command.
//!
//! **Tag 7, `SetProductStatus`** (5 bytes)
//!
//! | offset | size | field                      |
//! |--------|------|----------------------------|
//! | 0      | 4    | `product`, `u32`           |
//! | 4      | 1    | `status`, `ProductStatus`  |
//!
//! **Tag 8, `Deposit`; tag 9, `Withdraw`**
//!
//! | offset | size  | field                    |
//! |--------|-------|--------------------------|
//! | 0      | 4     | `account`, `u32`         |
//! | 4      | 2     | `asset`, `u16`           |
//! | 6      | 8     | `amount`, `i64`          |
//! | 14     | 1 + n | `request_id`, short<36>  |
//!
//! These two carry [`FundsMethod::Unspecified`]. A deposit or withdrawal with a stated method
//! is **tag 14, `Deposit` with a method; tag 15, `Withdraw` with a method** (added after the
//! first journals were written, as new tags, so that old records keep their meaning and every
//! command still has one encoding): the same body, then
//!
//! | offset | size  | field                                              |
//! |--------|-------|----------------------------------------------------|
//! | +      | 1     | `method`: Card 1, Upi 2, Bank 3 (0 is an error)    |
//! | +      | 0 or 4| a card's last four digits, ASCII `0`–`9`           |
//!
//! **Tag 10, `PlaceOrder`**
//!
//! | offset | size       | field                                   |
//! |--------|------------|-----------------------------------------|
//! | 0      | 4          | `account`, `u32`                        |
//! | 4      | 4          | `product`, `u32`                        |
//! | 8      | 1          | `side`, `Side`                          |
//! | 9      | 1          | `order_type`, `OrderType`               |
//! | 10     | 1 or 9     | `price`, opt `i64` (ticks)              |
//! | +      | 8          | `qty`, `i64` (lots)                     |
//! | +      | 1          | `time_in_force`, `TimeInForce`          |
//! | +      | 1          | `self_trade`, `SelfTradePrevention`     |
//! | +      | 1 + n      | `client_order_id`, opt short<36>        |
//!
//! **Tag 11, `CancelOrder`** (12 bytes)
//!
//! | offset | size | field             |
//! |--------|------|-------------------|
//! | 0      | 4    | `account`, `u32`  |
//! | 4      | 8    | `order`, `u64`    |
//!
//! **Tag 12, `AmendOrder`**
//!
//! | offset | size   | field                       |
//! |--------|--------|-----------------------------|
//! | 0      | 4      | `account`, `u32`            |
//! | 4      | 8      | `order`, `u64`              |
//! | 12     | 8      | `qty`, `i64` (lots)         |
//! | 20     | 1 or 9 | `price`, opt `i64` (ticks)  |
//!
//! **Tag 13, `Snapshot`** (0 bytes): the pipeline's marker for a snapshot cut here.
//!
//! The decoder never panics and never reads outside its input, whatever the bytes.

use crate::command::{
    AddProduct, AmendOrder, Command, CommandKind, CreateAccount, FundsRequest, NewOrder,
};
use crate::fees::{FeeSchedule, FeeTier};
use crate::limits::FEE_TIERS_MAX;
#[cfg(doc)]
use crate::limits::{NAME_BYTES_MAX, PROOF_BYTES_MAX};
use crate::types::{
    AccountId, Amount, AssetId, CardLast4, FundsMethod, OrderId, OrderType, Price, ProductId,
    ProductStatus, ProfileStatus, Qty, SelfTradePrevention, ShortStr, Side, TimeInForce, TokenHash,
};

/// The version byte [`encode`] writes.
pub const CODEC_VERSION: u8 = 1;

/// The longest text field (name, proof) the codec carries, in bytes.
pub const TEXT_BYTES_MAX: usize = 1_024;

/// The size of the header every encoded command starts with.
pub const HEADER_LEN: usize = 18;

const TAG_CREATE_ACCOUNT: u8 = 1;
const TAG_SET_PROFILE_STATUS: u8 = 2;
const TAG_ADD_BOOKMARK: u8 = 3;
const TAG_REMOVE_BOOKMARK: u8 = 4;
const TAG_ADD_ASSET: u8 = 5;
const TAG_ADD_PRODUCT: u8 = 6;
const TAG_SET_PRODUCT_STATUS: u8 = 7;
const TAG_DEPOSIT: u8 = 8;
const TAG_WITHDRAW: u8 = 9;
const TAG_PLACE_ORDER: u8 = 10;
const TAG_CANCEL_ORDER: u8 = 11;
const TAG_AMEND_ORDER: u8 = 12;
const TAG_SNAPSHOT: u8 = 13;
const TAG_DEPOSIT_VIA: u8 = 14;
const TAG_WITHDRAW_VIA: u8 = 15;
const TAG_SET_CURRENCY_PREFERENCE: u8 = 16;

const METHOD_CARD: u8 = 1;
const METHOD_UPI: u8 = 2;
const METHOD_BANK: u8 = 3;

/// Why bytes are not a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ends inside a field.
    #[error("input ends at byte {offset}, {needed} more bytes needed")]
    Truncated { offset: usize, needed: usize },
    /// A version this build cannot read.
    #[error("unsupported codec version {0}")]
    UnsupportedVersion(u8),
    /// A tag that names no command.
    #[error("unknown command tag {0}")]
    UnknownTag(u8),
    /// An enum or option byte outside its codes.
    #[error("invalid value {value} for {field} at byte {offset}")]
    InvalidEnum {
        field: &'static str,
        value: u8,
        offset: usize,
    },
    /// A text field longer than [`TEXT_BYTES_MAX`].
    #[error("{field} is {len} bytes, more than {max}")]
    TextTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    /// A text field that is not UTF-8.
    #[error("{field} at byte {offset} is not UTF-8")]
    InvalidUtf8 { field: &'static str, offset: usize },
    /// A short string that [`ShortStr::new`] refuses (empty, too long, or a byte outside
    /// printable ASCII).
    #[error("{field} at byte {offset} is not a valid short string")]
    InvalidShortStr { field: &'static str, offset: usize },
    /// More fee tiers than [`FEE_TIERS_MAX`].
    #[error("{0} fee tiers, more than {FEE_TIERS_MAX}")]
    TooManyFeeTiers(u8),
    /// Bytes left after a complete command.
    #[error("{0} bytes after the end of the command")]
    TrailingBytes(usize),
}

// ----- encoding ----------------------------------------------------------------------------

/// Appends the encoding of `cmd` to `out` (it allocates nothing else).
pub fn encode(cmd: &Command, out: &mut Vec<u8>) {
    out.push(CODEC_VERSION);
    out.push(tag_of(&cmd.kind));
    out.extend_from_slice(&cmd.seq.to_le_bytes());
    out.extend_from_slice(&cmd.timestamp_ms.to_le_bytes());
    encode_body(&cmd.kind, out);
}

/// The tag that starts the encoding of `kind`.
fn tag_of(kind: &CommandKind) -> u8 {
    match kind {
        CommandKind::CreateAccount(_) => TAG_CREATE_ACCOUNT,
        CommandKind::SetProfileStatus { .. } => TAG_SET_PROFILE_STATUS,
        CommandKind::SetCurrencyPreference { .. } => TAG_SET_CURRENCY_PREFERENCE,
        CommandKind::AddBookmark { .. } => TAG_ADD_BOOKMARK,
        CommandKind::RemoveBookmark { .. } => TAG_REMOVE_BOOKMARK,
        CommandKind::AddAsset { .. } => TAG_ADD_ASSET,
        CommandKind::AddProduct(_) => TAG_ADD_PRODUCT,
        CommandKind::SetProductStatus { .. } => TAG_SET_PRODUCT_STATUS,
        CommandKind::Deposit(r) if r.method == FundsMethod::Unspecified => TAG_DEPOSIT,
        CommandKind::Deposit(_) => TAG_DEPOSIT_VIA,
        CommandKind::Withdraw(r) if r.method == FundsMethod::Unspecified => TAG_WITHDRAW,
        CommandKind::Withdraw(_) => TAG_WITHDRAW_VIA,
        CommandKind::PlaceOrder(_) => TAG_PLACE_ORDER,
        CommandKind::CancelOrder { .. } => TAG_CANCEL_ORDER,
        CommandKind::AmendOrder(_) => TAG_AMEND_ORDER,
        CommandKind::Snapshot => TAG_SNAPSHOT,
    }
}

/// Appends the fields of `kind`, after the header.
fn encode_body(kind: &CommandKind, out: &mut Vec<u8>) {
    match kind {
        CommandKind::CreateAccount(c) => {
            put_text(out, &c.name);
            put_text(out, &c.proof);
            put_short(out, &c.currency_preference);
            out.extend_from_slice(&c.token_hash.0);
            out.push(profile_status_code(c.initial_status));
        }
        CommandKind::SetProfileStatus { account, status } => {
            out.extend_from_slice(&account.get().to_le_bytes());
            out.push(profile_status_code(*status));
        }
        CommandKind::SetCurrencyPreference { account, currency } => {
            out.extend_from_slice(&account.get().to_le_bytes());
            put_short(out, currency);
        }
        CommandKind::AddBookmark { account, product }
        | CommandKind::RemoveBookmark { account, product } => {
            out.extend_from_slice(&account.get().to_le_bytes());
            out.extend_from_slice(&product.get().to_le_bytes());
        }
        CommandKind::AddAsset { code, scale } => {
            put_short(out, code);
            out.push(*scale);
        }
        CommandKind::AddProduct(p) => {
            put_short(out, &p.symbol);
            put_text(out, &p.name);
            out.extend_from_slice(&p.base.get().to_le_bytes());
            out.extend_from_slice(&p.quote.get().to_le_bytes());
            out.push(p.price_scale);
            out.extend_from_slice(&p.tick_size.to_le_bytes());
            out.push(p.qty_scale);
            out.extend_from_slice(&p.lot_size.to_le_bytes());
            let tiers = p.fees.tiers();
            // A schedule holds at most FEE_TIERS_MAX (8) tiers, so the count fits a byte.
            out.push(tiers.len() as u8);
            for tier in tiers {
                out.extend_from_slice(&tier.volume_min.to_le_bytes());
                out.extend_from_slice(&tier.maker_ppm.to_le_bytes());
                out.extend_from_slice(&tier.taker_ppm.to_le_bytes());
            }
        }
        CommandKind::SetProductStatus { product, status } => {
            out.extend_from_slice(&product.get().to_le_bytes());
            out.push(product_status_code(*status));
        }
        CommandKind::Deposit(r) | CommandKind::Withdraw(r) => {
            out.extend_from_slice(&r.account.get().to_le_bytes());
            out.extend_from_slice(&r.asset.get().to_le_bytes());
            out.extend_from_slice(&r.amount.minor().to_le_bytes());
            put_short(out, &r.request_id);
            match r.method {
                FundsMethod::Unspecified => {}
                FundsMethod::Card(last4) => {
                    out.push(METHOD_CARD);
                    out.extend_from_slice(last4.as_bytes());
                }
                FundsMethod::Upi => out.push(METHOD_UPI),
                FundsMethod::Bank => out.push(METHOD_BANK),
            }
        }
        CommandKind::PlaceOrder(o) => {
            out.extend_from_slice(&o.account.get().to_le_bytes());
            out.extend_from_slice(&o.product.get().to_le_bytes());
            out.push(side_code(o.side));
            out.push(order_type_code(o.order_type));
            put_opt_i64(out, o.price.map(Price::ticks));
            out.extend_from_slice(&o.qty.lots().to_le_bytes());
            out.push(tif_code(o.time_in_force));
            out.push(stp_code(o.self_trade));
            match &o.client_order_id {
                Some(cid) => put_short(out, cid),
                None => out.push(0),
            }
        }
        CommandKind::CancelOrder { account, order } => {
            out.extend_from_slice(&account.get().to_le_bytes());
            out.extend_from_slice(&order.get().to_le_bytes());
        }
        CommandKind::AmendOrder(a) => {
            out.extend_from_slice(&a.account.get().to_le_bytes());
            out.extend_from_slice(&a.order.get().to_le_bytes());
            out.extend_from_slice(&a.qty.lots().to_le_bytes());
            put_opt_i64(out, a.price.map(Price::ticks));
        }
        CommandKind::Snapshot => {}
    }
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    // Longer text is cut on a character boundary (see the module documentation).
    let text = &text[..text.floor_char_boundary(TEXT_BYTES_MAX)];
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

fn put_short<const N: usize>(out: &mut Vec<u8>, s: &ShortStr<N>) {
    let bytes = s.as_bytes();
    // A ShortStr is at most N bytes, and every N used here is below 256.
    const { assert!(N <= u8::MAX as usize) };
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

fn put_opt_i64(out: &mut Vec<u8>, value: Option<i64>) {
    match value {
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_le_bytes());
        }
        None => out.push(0),
    }
}

fn side_code(side: Side) -> u8 {
    match side {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

fn order_type_code(order_type: OrderType) -> u8 {
    match order_type {
        OrderType::Limit => 0,
        OrderType::Market => 1,
    }
}

fn tif_code(tif: TimeInForce) -> u8 {
    match tif {
        TimeInForce::Gtc => 0,
        TimeInForce::Ioc => 1,
        TimeInForce::Fok => 2,
        TimeInForce::PostOnly => 3,
    }
}

fn stp_code(stp: SelfTradePrevention) -> u8 {
    match stp {
        SelfTradePrevention::CancelResting => 0,
        SelfTradePrevention::CancelIncoming => 1,
        SelfTradePrevention::CancelBoth => 2,
    }
}

fn profile_status_code(status: ProfileStatus) -> u8 {
    match status {
        ProfileStatus::Pending => 0,
        ProfileStatus::Verified => 1,
        ProfileStatus::Rejected => 2,
    }
}

fn product_status_code(status: ProductStatus) -> u8 {
    match status {
        ProductStatus::Trading => 0,
        ProductStatus::Halted => 1,
    }
}

// ----- decoding ----------------------------------------------------------------------------

/// Decodes one command: the whole of `bytes`, nothing more, nothing less.
pub fn decode(bytes: &[u8]) -> Result<Command, DecodeError> {
    let mut r = Reader { bytes, offset: 0 };
    let version = r.u8()?;
    if version != CODEC_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let tag = r.u8()?;
    let seq = r.u64()?;
    let timestamp_ms = r.i64()?;
    let kind = match tag {
        TAG_CREATE_ACCOUNT => r.create_account()?,
        TAG_SET_PROFILE_STATUS => CommandKind::SetProfileStatus {
            account: AccountId::new(r.u32()?),
            status: r.profile_status("status")?,
        },
        TAG_SET_CURRENCY_PREFERENCE => CommandKind::SetCurrencyPreference {
            account: AccountId::new(r.u32()?),
            currency: r.short("currency")?,
        },
        TAG_ADD_BOOKMARK | TAG_REMOVE_BOOKMARK => {
            let account = AccountId::new(r.u32()?);
            let product = ProductId::new(r.u32()?);
            if tag == TAG_ADD_BOOKMARK {
                CommandKind::AddBookmark { account, product }
            } else {
                CommandKind::RemoveBookmark { account, product }
            }
        }
        TAG_ADD_ASSET => CommandKind::AddAsset {
            code: r.short("code")?,
            scale: r.u8()?,
        },
        TAG_ADD_PRODUCT => r.add_product()?,
        TAG_SET_PRODUCT_STATUS => CommandKind::SetProductStatus {
            product: ProductId::new(r.u32()?),
            status: r.product_status("status")?,
        },
        TAG_DEPOSIT | TAG_WITHDRAW | TAG_DEPOSIT_VIA | TAG_WITHDRAW_VIA => {
            let mut request = FundsRequest {
                account: AccountId::new(r.u32()?),
                asset: AssetId::new(r.u16()?),
                amount: Amount::from_minor(r.i64()?),
                request_id: r.short("request_id")?,
                method: FundsMethod::Unspecified,
            };
            if tag == TAG_DEPOSIT_VIA || tag == TAG_WITHDRAW_VIA {
                request.method = r.funds_method()?;
            }
            if tag == TAG_DEPOSIT || tag == TAG_DEPOSIT_VIA {
                CommandKind::Deposit(request)
            } else {
                CommandKind::Withdraw(request)
            }
        }
        TAG_PLACE_ORDER => CommandKind::PlaceOrder(NewOrder {
            account: AccountId::new(r.u32()?),
            product: ProductId::new(r.u32()?),
            side: r.side()?,
            order_type: r.order_type()?,
            price: r.opt_i64("price")?.map(Price::from_ticks),
            qty: Qty::from_lots(r.i64()?),
            time_in_force: r.tif()?,
            self_trade: r.stp()?,
            client_order_id: r.opt_short("client_order_id")?,
        }),
        TAG_CANCEL_ORDER => CommandKind::CancelOrder {
            account: AccountId::new(r.u32()?),
            order: OrderId::new(r.u64()?),
        },
        TAG_AMEND_ORDER => CommandKind::AmendOrder(AmendOrder {
            account: AccountId::new(r.u32()?),
            order: OrderId::new(r.u64()?),
            qty: Qty::from_lots(r.i64()?),
            price: r.opt_i64("price")?.map(Price::from_ticks),
        }),
        TAG_SNAPSHOT => CommandKind::Snapshot,
        other => return Err(DecodeError::UnknownTag(other)),
    };
    let left = r.bytes.len() - r.offset;
    if left != 0 {
        return Err(DecodeError::TrailingBytes(left));
    }
    Ok(Command {
        seq,
        timestamp_ms,
        kind,
    })
}

/// A cursor over the input; every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    /// The fields of a `CreateAccount`, after the header.
    fn create_account(&mut self) -> Result<CommandKind, DecodeError> {
        let name = self.text("name")?;
        let proof = self.text("proof")?;
        let currency_preference = self.short("currency_preference")?;
        let token_hash = TokenHash(self.array::<32>()?);
        let initial_status = self.profile_status("initial_status")?;
        Ok(CommandKind::create_account(CreateAccount {
            name,
            proof,
            currency_preference,
            token_hash,
            initial_status,
        }))
    }

    /// The fields of an `AddProduct`, after the header.
    fn add_product(&mut self) -> Result<CommandKind, DecodeError> {
        let symbol = self.short("symbol")?;
        let name = self.text("name")?;
        let base = AssetId::new(self.u16()?);
        let quote = AssetId::new(self.u16()?);
        let price_scale = self.u8()?;
        let tick_size = self.i64()?;
        let qty_scale = self.u8()?;
        let lot_size = self.i64()?;
        let n_tiers = self.u8()?;
        if n_tiers as usize > FEE_TIERS_MAX {
            return Err(DecodeError::TooManyFeeTiers(n_tiers));
        }
        let mut tiers = [FeeTier::default(); FEE_TIERS_MAX];
        for tier in &mut tiers[..n_tiers as usize] {
            *tier = FeeTier {
                volume_min: self.i64()?,
                maker_ppm: self.u32()?,
                taker_ppm: self.u32()?,
            };
        }
        let fees = FeeSchedule::from_tiers_unchecked(&tiers[..n_tiers as usize])
            .ok_or(DecodeError::TooManyFeeTiers(n_tiers))?;
        Ok(CommandKind::add_product(AddProduct {
            symbol,
            name,
            base,
            quote,
            price_scale,
            tick_size,
            qty_scale,
            lot_size,
            fees,
        }))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let rest = self.bytes.get(self.offset..).unwrap_or(&[]);
        match rest.get(..n) {
            Some(head) => {
                self.offset += n;
                Ok(head)
            }
            None => Err(DecodeError::Truncated {
                offset: self.offset,
                needed: n - rest.len(),
            }),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A one-byte code, decoded by `f`, or an error naming the field.
    fn code<T>(
        &mut self,
        field: &'static str,
        f: impl Fn(u8) -> Option<T>,
    ) -> Result<T, DecodeError> {
        let offset = self.offset;
        let value = self.u8()?;
        f(value).ok_or(DecodeError::InvalidEnum {
            field,
            value,
            offset,
        })
    }

    fn text(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let len = self.u16()? as usize;
        if len > TEXT_BYTES_MAX {
            return Err(DecodeError::TextTooLong {
                field,
                len,
                max: TEXT_BYTES_MAX,
            });
        }
        let offset = self.offset;
        let raw = self.take(len)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(DecodeError::InvalidUtf8 { field, offset }),
        }
    }

    /// A stated method: its code, then a card's digits (never `Unspecified`, which has tags of
    /// its own).
    fn funds_method(&mut self) -> Result<FundsMethod, DecodeError> {
        let offset = self.offset;
        match self.u8()? {
            METHOD_CARD => {
                let digits_at = self.offset;
                let digits = self.array::<4>()?;
                CardLast4::new(&digits)
                    .map(FundsMethod::Card)
                    .ok_or(DecodeError::InvalidShortStr {
                        field: "card_last4",
                        offset: digits_at,
                    })
            }
            METHOD_UPI => Ok(FundsMethod::Upi),
            METHOD_BANK => Ok(FundsMethod::Bank),
            value => Err(DecodeError::InvalidEnum {
                field: "method",
                value,
                offset,
            }),
        }
    }

    fn short<const N: usize>(&mut self, field: &'static str) -> Result<ShortStr<N>, DecodeError> {
        let offset = self.offset;
        let len = self.u8()? as usize;
        self.short_body(field, offset, len)
    }

    fn opt_short<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<Option<ShortStr<N>>, DecodeError> {
        let offset = self.offset;
        match self.u8()? as usize {
            0 => Ok(None),
            len => self.short_body(field, offset, len).map(Some),
        }
    }

    fn short_body<const N: usize>(
        &mut self,
        field: &'static str,
        offset: usize,
        len: usize,
    ) -> Result<ShortStr<N>, DecodeError> {
        if len == 0 || len > N {
            return Err(DecodeError::InvalidShortStr { field, offset });
        }
        let raw = self.take(len)?;
        std::str::from_utf8(raw)
            .ok()
            .and_then(ShortStr::new)
            .ok_or(DecodeError::InvalidShortStr { field, offset })
    }

    fn opt_i64(&mut self, field: &'static str) -> Result<Option<i64>, DecodeError> {
        match self.code(field, |b| match b {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        })? {
            true => self.i64().map(Some),
            false => Ok(None),
        }
    }

    fn side(&mut self) -> Result<Side, DecodeError> {
        self.code("side", |b| match b {
            0 => Some(Side::Buy),
            1 => Some(Side::Sell),
            _ => None,
        })
    }

    fn order_type(&mut self) -> Result<OrderType, DecodeError> {
        self.code("order_type", |b| match b {
            0 => Some(OrderType::Limit),
            1 => Some(OrderType::Market),
            _ => None,
        })
    }

    fn tif(&mut self) -> Result<TimeInForce, DecodeError> {
        self.code("time_in_force", |b| match b {
            0 => Some(TimeInForce::Gtc),
            1 => Some(TimeInForce::Ioc),
            2 => Some(TimeInForce::Fok),
            3 => Some(TimeInForce::PostOnly),
            _ => None,
        })
    }

    fn stp(&mut self) -> Result<SelfTradePrevention, DecodeError> {
        self.code("self_trade", |b| match b {
            0 => Some(SelfTradePrevention::CancelResting),
            1 => Some(SelfTradePrevention::CancelIncoming),
            2 => Some(SelfTradePrevention::CancelBoth),
            _ => None,
        })
    }

    fn profile_status(&mut self, field: &'static str) -> Result<ProfileStatus, DecodeError> {
        self.code(field, |b| match b {
            0 => Some(ProfileStatus::Pending),
            1 => Some(ProfileStatus::Verified),
            2 => Some(ProfileStatus::Rejected),
            _ => None,
        })
    }

    fn product_status(&mut self, field: &'static str) -> Result<ProductStatus, DecodeError> {
        self.code(field, |b| match b {
            0 => Some(ProductStatus::Trading),
            1 => Some(ProductStatus::Halted),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;
    use crate::limits::{Limits, NAME_BYTES_MAX};
    use crate::reject::Reject;
    use crate::types::{AssetCode, ClientOrderId, RequestId, Symbol};
    use proptest::prelude::*;

    fn short<const N: usize>() -> impl Strategy<Value = ShortStr<N>> {
        proptest::collection::vec(b'!'..=b'~', 1..=N).prop_map(|bytes| {
            ShortStr::new(std::str::from_utf8(&bytes).expect("ascii")).expect("valid short")
        })
    }

    /// Any string that fits the codec: up to 250 chars of up to 4 bytes each (control
    /// characters, spaces and empty strings included: commands are data).
    fn text() -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<char>(), 0..250).prop_map(String::from_iter)
    }

    fn profile_status() -> impl Strategy<Value = ProfileStatus> {
        prop_oneof![
            Just(ProfileStatus::Pending),
            Just(ProfileStatus::Verified),
            Just(ProfileStatus::Rejected)
        ]
    }

    fn product_status() -> impl Strategy<Value = ProductStatus> {
        prop_oneof![Just(ProductStatus::Trading), Just(ProductStatus::Halted)]
    }

    fn price() -> impl Strategy<Value = Option<Price>> {
        proptest::option::of(any::<i64>().prop_map(Price::from_ticks))
    }

    fn funds_method() -> impl Strategy<Value = FundsMethod> {
        prop_oneof![
            Just(FundsMethod::Unspecified),
            (0u16..10_000).prop_map(|n| {
                let digits = format!("{n:04}");
                FundsMethod::Card(CardLast4::new(digits.as_bytes()).expect("four digits"))
            }),
            Just(FundsMethod::Upi),
            Just(FundsMethod::Bank),
        ]
    }

    fn funds() -> impl Strategy<Value = FundsRequest> {
        (
            any::<u32>(),
            any::<u16>(),
            any::<i64>(),
            short::<36>(),
            funds_method(),
        )
            .prop_map(
                |(account, asset, amount, request_id, method): (
                    u32,
                    u16,
                    i64,
                    RequestId,
                    FundsMethod,
                )| FundsRequest {
                    account: AccountId::new(account),
                    asset: AssetId::new(asset),
                    amount: Amount::from_minor(amount),
                    request_id,
                    method,
                },
            )
    }

    fn fee_schedule() -> impl Strategy<Value = FeeSchedule> {
        proptest::collection::vec(
            (any::<i64>(), any::<u32>(), any::<u32>()).prop_map(
                |(volume_min, maker_ppm, taker_ppm)| FeeTier {
                    volume_min,
                    maker_ppm,
                    taker_ppm,
                },
            ),
            0..=FEE_TIERS_MAX,
        )
        .prop_map(|tiers| FeeSchedule::from_tiers_unchecked(&tiers).expect("at most 8 tiers"))
    }

    fn new_order() -> impl Strategy<Value = NewOrder> {
        (
            (
                any::<u32>(),
                any::<u32>(),
                any::<bool>(),
                any::<bool>(),
                price(),
            ),
            (
                any::<i64>(),
                prop_oneof![
                    Just(TimeInForce::Gtc),
                    Just(TimeInForce::Ioc),
                    Just(TimeInForce::Fok),
                    Just(TimeInForce::PostOnly)
                ],
                prop_oneof![
                    Just(SelfTradePrevention::CancelResting),
                    Just(SelfTradePrevention::CancelIncoming),
                    Just(SelfTradePrevention::CancelBoth)
                ],
                proptest::option::of(short::<36>()),
            ),
        )
            .prop_map(
                |((account, product, buy, limit, price), (qty, time_in_force, self_trade, cid))| {
                    let client_order_id: Option<ClientOrderId> = cid;
                    NewOrder {
                        account: AccountId::new(account),
                        product: ProductId::new(product),
                        side: if buy { Side::Buy } else { Side::Sell },
                        order_type: if limit {
                            OrderType::Limit
                        } else {
                            OrderType::Market
                        },
                        price,
                        qty: Qty::from_lots(qty),
                        time_in_force,
                        self_trade,
                        client_order_id,
                    }
                },
            )
    }

    fn kind() -> impl Strategy<Value = CommandKind> {
        prop_oneof![
            (
                text(),
                text(),
                short::<12>(),
                any::<[u8; 32]>(),
                profile_status()
            )
                .prop_map(
                    |(name, proof, currency_preference, hash, initial_status): (
                        String,
                        String,
                        AssetCode,
                        [u8; 32],
                        ProfileStatus
                    )| {
                        CommandKind::create_account(CreateAccount {
                            name,
                            proof,
                            currency_preference,
                            token_hash: TokenHash(hash),
                            initial_status,
                        })
                    }
                ),
            (any::<u32>(), profile_status()).prop_map(|(a, status)| {
                CommandKind::SetProfileStatus {
                    account: AccountId::new(a),
                    status,
                }
            }),
            (any::<u32>(), short::<12>()).prop_map(|(a, currency)| {
                CommandKind::SetCurrencyPreference {
                    account: AccountId::new(a),
                    currency,
                }
            }),
            (any::<u32>(), any::<u32>()).prop_map(|(a, p)| CommandKind::AddBookmark {
                account: AccountId::new(a),
                product: ProductId::new(p),
            }),
            (any::<u32>(), any::<u32>()).prop_map(|(a, p)| CommandKind::RemoveBookmark {
                account: AccountId::new(a),
                product: ProductId::new(p),
            }),
            (short::<12>(), any::<u8>())
                .prop_map(|(code, scale)| CommandKind::AddAsset { code, scale }),
            (
                (short::<16>(), text(), any::<u16>(), any::<u16>()),
                (
                    any::<u8>(),
                    any::<i64>(),
                    any::<u8>(),
                    any::<i64>(),
                    fee_schedule()
                ),
            )
                .prop_map(
                    |(
                        (symbol, name, base, quote),
                        (price_scale, tick_size, qty_scale, lot_size, fees),
                    ): ((Symbol, String, u16, u16), _)| {
                        CommandKind::add_product(AddProduct {
                            symbol,
                            name,
                            base: AssetId::new(base),
                            quote: AssetId::new(quote),
                            price_scale,
                            tick_size,
                            qty_scale,
                            lot_size,
                            fees,
                        })
                    }
                ),
            (any::<u32>(), product_status()).prop_map(|(p, status)| {
                CommandKind::SetProductStatus {
                    product: ProductId::new(p),
                    status,
                }
            }),
            funds().prop_map(CommandKind::Deposit),
            funds().prop_map(CommandKind::Withdraw),
            new_order().prop_map(CommandKind::PlaceOrder),
            (any::<u32>(), any::<u64>()).prop_map(|(a, o)| CommandKind::CancelOrder {
                account: AccountId::new(a),
                order: OrderId::new(o),
            }),
            (any::<u32>(), any::<u64>(), any::<i64>(), price()).prop_map(|(a, o, q, price)| {
                CommandKind::AmendOrder(AmendOrder {
                    account: AccountId::new(a),
                    order: OrderId::new(o),
                    qty: Qty::from_lots(q),
                    price,
                })
            }),
            Just(CommandKind::Snapshot),
        ]
    }

    fn command() -> impl Strategy<Value = Command> {
        (any::<u64>(), any::<i64>(), kind()).prop_map(|(seq, timestamp_ms, kind)| Command {
            seq,
            timestamp_ms,
            kind,
        })
    }

    /// How a valid encoding is damaged.
    #[derive(Clone, Debug)]
    enum Mutation {
        Flip { at: usize, bit: u8 },
        Set { at: usize, value: u8 },
        Truncate { at: usize },
        Insert { at: usize, value: u8 },
        Remove { at: usize },
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), 0..8u8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
            (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Set { at, value }),
            any::<usize>().prop_map(|at| Mutation::Truncate { at }),
            (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Insert { at, value }),
            any::<usize>().prop_map(|at| Mutation::Remove { at }),
        ]
    }

    fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
        let n = bytes.len();
        match *m {
            Mutation::Flip { at, bit } if n > 0 => bytes[at % n] ^= 1 << bit,
            Mutation::Set { at, value } if n > 0 => bytes[at % n] = value,
            Mutation::Truncate { at } => bytes.truncate(at % (n + 1)),
            Mutation::Insert { at, value } => bytes.insert(at % (n + 1), value),
            Mutation::Remove { at } if n > 0 => {
                bytes.remove(at % n);
            }
            _ => {}
        }
    }

    /// Whatever decodes re-encodes to the same bytes (the encoding is canonical).
    fn check_canonical(bytes: &[u8]) -> Result<(), TestCaseError> {
        if let Ok(cmd) = decode(bytes) {
            let mut again = Vec::new();
            encode(&cmd, &mut again);
            prop_assert_eq!(again.as_slice(), bytes);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn every_command_round_trips(cmd in command()) {
            let mut bytes = vec![0xAB, 0xCD];
            encode(&cmd, &mut bytes);
            // `encode` appends after what is there.
            prop_assert_eq!(&bytes[..2], &[0xAB, 0xCD]);
            let decoded = decode(&bytes[2..]);
            prop_assert_eq!(decoded, Ok(cmd.clone()));
            // Every strict prefix is refused as truncated, never misread.
            for cut in [0, 1, HEADER_LEN - 1, bytes.len() - 3] {
                if cut + 2 < bytes.len() {
                    let truncated = decode(&bytes[2..2 + cut]);
                    let is_truncated = matches!(truncated, Err(DecodeError::Truncated { .. }));
                    prop_assert!(is_truncated, "{:?}", truncated);
                }
            }
            // One more byte is refused.
            bytes.push(0);
            prop_assert_eq!(decode(&bytes[2..]), Err(DecodeError::TrailingBytes(1)));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
            check_canonical(&bytes)?;
        }

        /// The same with a valid version and tag, so that the bodies are exercised.
        #[test]
        fn arbitrary_bodies_never_panic(
            tag in 0u8..=16,
            body in proptest::collection::vec(any::<u8>(), 0..160),
        ) {
            let mut bytes = vec![CODEC_VERSION, tag];
            bytes.extend_from_slice(&body);
            let _ = decode(&bytes);
            check_canonical(&bytes)?;
        }

        #[test]
        fn mutated_encodings_never_panic(
            cmd in command(),
            mutations in proptest::collection::vec(mutation(), 1..4),
        ) {
            let mut bytes = Vec::new();
            encode(&cmd, &mut bytes);
            for m in &mutations {
                mutate(&mut bytes, m);
            }
            let _ = decode(&bytes);
            check_canonical(&bytes)?;
        }
    }

    #[test]
    fn the_header_is_as_documented() {
        let cmd = Command {
            seq: 0x0102_0304_0506_0708,
            timestamp_ms: -2,
            kind: CommandKind::CancelOrder {
                account: AccountId::new(0x0A0B_0C0D),
                order: OrderId::new(9),
            },
        };
        let mut bytes = Vec::new();
        encode(&cmd, &mut bytes);
        let mut expected = vec![1, TAG_CANCEL_ORDER, 8, 7, 6, 5, 4, 3, 2, 1];
        expected.extend_from_slice(&[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        expected.extend_from_slice(&[0x0D, 0x0C, 0x0B, 0x0A, 9, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(bytes, expected);
        assert_eq!(bytes.len(), HEADER_LEN + 12);
    }

    #[test]
    fn malformed_inputs_get_typed_errors() {
        assert_eq!(
            decode(&[]),
            Err(DecodeError::Truncated {
                offset: 0,
                needed: 1
            })
        );
        assert_eq!(decode(&[2]), Err(DecodeError::UnsupportedVersion(2)));
        let mut header = vec![1, 0];
        header.extend_from_slice(&[0; 16]);
        assert_eq!(decode(&header), Err(DecodeError::UnknownTag(0)));
        header[1] = 17;
        assert_eq!(decode(&header), Err(DecodeError::UnknownTag(17)));

        // Deposit with an empty request id, then with a space in it.
        let mut deposit = header.clone();
        deposit[1] = TAG_DEPOSIT;
        deposit.extend_from_slice(&[1, 0, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0]);
        let mut empty = deposit.clone();
        empty.push(0);
        assert!(matches!(
            decode(&empty),
            Err(DecodeError::InvalidShortStr { .. })
        ));
        let mut spaced = deposit.clone();
        spaced.extend_from_slice(&[2, b'a', b' ']);
        assert!(matches!(
            decode(&spaced),
            Err(DecodeError::InvalidShortStr { .. })
        ));
        let mut too_long = deposit.clone();
        too_long.push(37);
        too_long.extend_from_slice(&[b'a'; 37]);
        assert!(matches!(
            decode(&too_long),
            Err(DecodeError::InvalidShortStr { .. })
        ));
        assert!(decode(&plain_deposit()).is_ok());
    }

    /// A header of tag 0 and zero sequence and timestamp; tests set the tag.
    fn header() -> Vec<u8> {
        let mut header = vec![1, 0];
        header.extend_from_slice(&[0; 16]);
        header
    }

    /// A valid deposit without a method: account 1, asset 0, 100 minor units, request `d1`.
    fn plain_deposit() -> Vec<u8> {
        let mut deposit = header();
        deposit[1] = TAG_DEPOSIT;
        deposit.extend_from_slice(&[1, 0, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0]);
        deposit.extend_from_slice(&[2, b'd', b'1']);
        deposit
    }

    /// With a method: a card's four digits follow its code; a missing or unknown method,
    /// a digit that is not one, or a method after the plain tag is refused.
    #[test]
    fn malformed_funds_methods_get_typed_errors() {
        let fine = plain_deposit();
        let mut via = fine.clone();
        via[1] = TAG_DEPOSIT_VIA;
        let card = |digits: &[u8]| {
            let mut bytes = via.clone();
            bytes.push(METHOD_CARD);
            bytes.extend_from_slice(digits);
            bytes
        };
        match decode(&card(b"1111")).map(|c| c.kind) {
            Ok(CommandKind::Deposit(r)) => {
                assert_eq!(r.method.name(), "card");
                assert!(matches!(r.method, FundsMethod::Card(d) if d.as_str() == "1111"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode(&card(b"11a1")),
            Err(DecodeError::InvalidShortStr {
                field: "card_last4",
                ..
            })
        ));
        assert!(matches!(
            decode(&card(b"111")),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(decode(&via), Err(DecodeError::Truncated { .. })));
        for bad in [0, 4] {
            let mut bytes = via.clone();
            bytes.push(bad);
            assert!(matches!(
                decode(&bytes),
                Err(DecodeError::InvalidEnum {
                    field: "method",
                    ..
                })
            ));
        }
        let mut upi = via.clone();
        upi[1] = TAG_WITHDRAW_VIA;
        upi.push(METHOD_UPI);
        assert!(matches!(
            decode(&upi).map(|c| c.kind),
            Ok(CommandKind::Withdraw(FundsRequest {
                method: FundsMethod::Upi,
                ..
            }))
        ));
        let mut plain_with_method = fine.clone();
        plain_with_method.push(METHOD_BANK);
        assert_eq!(
            decode(&plain_with_method),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    #[test]
    fn malformed_fields_get_typed_errors() {
        let header = header();
        // A text length above the cap, and one above the input.
        let mut account = header.clone();
        account[1] = TAG_CREATE_ACCOUNT;
        let mut long = account.clone();
        long.extend_from_slice(&(TEXT_BYTES_MAX as u16 + 1).to_le_bytes());
        assert!(matches!(
            decode(&long),
            Err(DecodeError::TextTooLong { .. })
        ));
        let mut short_input = account.clone();
        short_input.extend_from_slice(&[200, 0, b'x']);
        assert!(matches!(
            decode(&short_input),
            Err(DecodeError::Truncated { .. })
        ));
        let mut not_utf8 = account.clone();
        not_utf8.extend_from_slice(&[1, 0, 0xFF]);
        assert!(matches!(
            decode(&not_utf8),
            Err(DecodeError::InvalidUtf8 { .. })
        ));

        // Nine fee tiers.
        let mut product = header.clone();
        product[1] = TAG_ADD_PRODUCT;
        product.extend_from_slice(&[1, b'X', 1, 0, b'n', 0, 0, 1, 0, 2]);
        product.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0]);
        product.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(decode(&product), Err(DecodeError::TooManyFeeTiers(9)));

        // An option flag of 2.
        let mut amend = header.clone();
        amend[1] = TAG_AMEND_ORDER;
        amend.extend_from_slice(&[0; 20]);
        amend.push(2);
        assert!(matches!(
            decode(&amend),
            Err(DecodeError::InvalidEnum {
                field: "price",
                value: 2,
                ..
            })
        ));
    }

    /// Text beyond the codec's cap is cut, and the engine answers the cut command exactly as
    /// it answers the original: both are rejected for the name's length, nothing changes.
    #[test]
    fn over_long_text_is_cut_and_rejected_the_same_way() {
        let name = "é".repeat(3 * TEXT_BYTES_MAX);
        let cmd = Command {
            seq: 1,
            timestamp_ms: 0,
            kind: CommandKind::create_account(CreateAccount {
                name: name.clone(),
                proof: "passport:1".into(),
                currency_preference: AssetCode::new("USD").unwrap(),
                token_hash: TokenHash([1; 32]),
                initial_status: ProfileStatus::Verified,
            }),
        };
        let mut bytes = Vec::new();
        encode(&cmd, &mut bytes);
        let decoded = decode(&bytes).unwrap();
        let CommandKind::CreateAccount(c) = &decoded.kind else {
            panic!("not a CreateAccount: {decoded:?}");
        };
        assert_eq!(c.name.len(), TEXT_BYTES_MAX);
        assert!(name.starts_with(&c.name) && c.name.len() > NAME_BYTES_MAX);

        let mut original = Engine::new(Limits::default());
        let mut replayed = Engine::new(Limits::default());
        let mut events = Vec::new();
        assert_eq!(original.apply(&cmd, &mut events), Err(Reject::InvalidName));
        assert_eq!(
            replayed.apply(&decoded, &mut events),
            Err(Reject::InvalidName)
        );
        assert!(events.is_empty());
        assert_eq!(original.state_hash(), replayed.state_hash());
    }
}
