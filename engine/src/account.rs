//! Accounts and their one wallet.

use smallvec::SmallVec;

use crate::fees::VolumeWindow;
use crate::types::{AssetCode, AssetId, ProductId, ProfileStatus, TokenHash};

/// One asset's balance in a wallet, in minor units. **Invariant:** both are never negative, and
/// `held` equals the sum of what the account's open orders hold in that asset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Balance {
    pub available: i64,
    pub held: i64,
}

impl Balance {
    pub fn total(&self) -> i64 {
        self.available + self.held
    }
}

/// The first cache line holds what every order touches: the status, the open-order count and
/// (for up to two assets, the usual case) the wallet itself.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub(crate) struct Account {
    pub(crate) status: ProfileStatus,
    pub(crate) n_open_orders: u32,
    /// The wallet: sorted by asset. An entry appears on the first credit or hold.
    pub(crate) balances: SmallVec<[(AssetId, Balance); 2]>,
    pub(crate) name: String,
    pub(crate) proof: String,
    pub(crate) currency_preference: AssetCode,
    pub(crate) token_hash: TokenHash,
    pub(crate) created_at_ms: i64,
    /// Sorted, no duplicates.
    pub(crate) bookmarks: Vec<ProductId>,
    /// Trailing traded volume per quote asset, in order of first trade.
    pub(crate) volumes: Vec<VolumeWindow>,
}

const _: () = assert!(std::mem::offset_of!(Account, balances) + 56 <= 64);

impl Account {
    #[inline]
    pub(crate) fn balance(&self, asset: AssetId) -> Balance {
        // A wallet holds a few assets: a scan beats a binary search.
        self.balances
            .iter()
            .find(|(a, _)| *a == asset)
            .map_or(Balance::default(), |(_, b)| *b)
    }

    #[inline]
    pub(crate) fn balance_mut(&mut self, asset: AssetId) -> &mut Balance {
        let idx = match self.balances.iter().position(|(a, _)| *a == asset) {
            Some(idx) => idx,
            None => {
                // Kept sorted so that equal wallets hash equal whatever the order of credits.
                let idx = self.balances.partition_point(|(a, _)| *a < asset);
                self.balances.insert(idx, (asset, Balance::default()));
                idx
            }
        };
        &mut self.balances[idx].1
    }

    /// Moves `amount` from available to held. The caller checked that it is available.
    #[inline]
    pub(crate) fn hold(&mut self, asset: AssetId, amount: i64) {
        let balance = self.balance_mut(asset);
        assert!(
            amount >= 0 && balance.available >= amount,
            "hold beyond available"
        );
        balance.available -= amount;
        balance.held += amount;
    }

    /// Moves `amount` from held back to available.
    #[inline]
    pub(crate) fn release(&mut self, asset: AssetId, amount: i64) {
        let balance = self.balance_mut(asset);
        assert!(amount >= 0 && balance.held >= amount, "release beyond held");
        balance.held -= amount;
        balance.available += amount;
    }

    /// Changes what is held for one order from `old` to `new` in one step (a moved order).
    #[inline]
    pub(crate) fn rehold(&mut self, asset: AssetId, old: i64, new: i64) {
        let balance = self.balance_mut(asset);
        assert!(
            old >= 0 && new >= 0 && balance.held >= old && balance.available + old >= new,
            "re-hold beyond available"
        );
        balance.held += new - old;
        balance.available -= new - old;
    }

    pub(crate) fn trailing_volume(&self, asset: AssetId, timestamp_ms: i64) -> i64 {
        self.volumes
            .iter()
            .find(|w| w.asset == asset)
            .map_or(0, |w| w.volume_at(timestamp_ms))
    }

    pub(crate) fn add_volume(&mut self, asset: AssetId, timestamp_ms: i64, notional: i64) {
        let idx = match self.volumes.iter().position(|w| w.asset == asset) {
            Some(idx) => idx,
            None => {
                self.volumes.push(VolumeWindow::new(asset));
                self.volumes.len() - 1
            }
        };
        self.volumes[idx].add(timestamp_ms, notional);
    }
}

const _: () = assert!(std::mem::size_of::<SmallVec<[(AssetId, Balance); 2]>>() <= 56);
