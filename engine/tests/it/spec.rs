//! The engine's rules, one test each, readable as a specification.

use bourse_engine::*;

use crate::support::*;

mod accounts {
    use super::*;

    #[test]
    fn accounts_get_dense_ids_after_the_fee_account() {
        let mut w = World::new();
        let events = w.ok(create_account("Ada", ProfileStatus::Pending));
        assert!(
            matches!(events[0].kind, EventKind::AccountCreated { account, status: ProfileStatus::Pending } if account == AccountId::new(1))
        );
        assert_eq!(w.engine.account_name(AccountId::new(1)), Some("Ada"));
        assert_eq!(w.engine.account_name(AccountId::FEES), Some("fees"));
        assert_eq!(
            w.engine.account_token_hash(AccountId::new(1)),
            Some(TokenHash([1; 32]))
        );
    }

    #[test]
    fn the_currency_preference_changes_by_a_command_and_is_in_the_state_hash() {
        let mut w = World::new();
        w.ok(create_account("Ada", ProfileStatus::Verified));
        let ada = AccountId::new(1);
        let usd = AssetCode::new("USD").unwrap();
        let eur = AssetCode::new("EUR").unwrap();
        let preference = |w: &World| w.engine.account_profile(ada).unwrap().currency_preference;
        assert_eq!(preference(&w), usd);
        let before = w.engine.state_hash();
        let events = w.ok(CommandKind::SetCurrencyPreference {
            account: ada,
            currency: eur,
        });
        assert!(matches!(
            events[..],
            [Event { kind: EventKind::CurrencyPreferenceChanged { account, currency }, .. }]
                if account == ada && currency == eur
        ));
        assert_eq!(preference(&w), eur);
        assert_ne!(w.engine.state_hash(), before);
        // The preference it has: answered, nothing changes, nothing is emitted.
        let same = w.engine.state_hash();
        assert!(
            w.ok(CommandKind::SetCurrencyPreference {
                account: ada,
                currency: eur,
            })
            .is_empty()
        );
        assert_eq!(w.engine.state_hash(), same);
        assert_eq!(
            w.rejected(CommandKind::SetCurrencyPreference {
                account: AccountId::new(9),
                currency: usd,
            }),
            Reject::UnknownAccount
        );
    }

    #[test]
    fn names_and_proofs_are_checked() {
        let mut w = World::new();
        assert_eq!(
            w.rejected(create_account("", ProfileStatus::Pending)),
            Reject::InvalidName
        );
        assert_eq!(
            w.rejected(create_account("  ", ProfileStatus::Pending)),
            Reject::InvalidName
        );
        assert_eq!(
            w.rejected(create_account(&"x".repeat(129), ProfileStatus::Pending)),
            Reject::InvalidName
        );
        assert_eq!(
            w.rejected(create_account("a\u{0}b", ProfileStatus::Pending)),
            Reject::InvalidName
        );
        let mut no_proof = create_account("Ada", ProfileStatus::Pending);
        if let CommandKind::CreateAccount(c) = &mut no_proof {
            c.proof = String::new();
        }
        assert_eq!(w.rejected(no_proof), Reject::InvalidProof);
    }

    #[test]
    fn only_verified_accounts_trade() {
        let mut w = World::new();
        w.ok(create_account("Pat", ProfileStatus::Pending));
        let pat = AccountId::new(1);
        w.deposit(pat, USD, 1_000_000);
        assert_eq!(
            w.rejected(CommandKind::PlaceOrder(limit_order(
                pat,
                Side::Buy,
                100,
                1,
                TimeInForce::Gtc
            ))),
            Reject::AccountNotVerified
        );
        w.ok(CommandKind::SetProfileStatus {
            account: pat,
            status: ProfileStatus::Verified,
        });
        assert_eq!(w.engine.account_status(pat), Some(ProfileStatus::Verified));
        assert!(w.limit(pat, Side::Buy, 100, 1).is_ok());
        w.ok(CommandKind::SetProfileStatus {
            account: pat,
            status: ProfileStatus::Rejected,
        });
        assert_eq!(
            w.rejected(CommandKind::PlaceOrder(limit_order(
                pat,
                Side::Buy,
                100,
                1,
                TimeInForce::Gtc
            ))),
            Reject::AccountRejected
        );
        assert_eq!(
            w.rejected(CommandKind::Deposit(funds(pat, USD, 5, "late"))),
            Reject::AccountRejected
        );
        assert_eq!(
            w.rejected(CommandKind::SetProfileStatus {
                account: pat,
                status: ProfileStatus::Rejected
            }),
            Reject::StatusUnchanged
        );
    }

    #[test]
    fn the_fee_account_cannot_trade() {
        let mut w = World::new();
        assert_eq!(
            w.rejected(CommandKind::PlaceOrder(limit_order(
                AccountId::FEES,
                Side::Buy,
                100,
                1,
                TimeInForce::Gtc
            ))),
            Reject::FeeAccountCannotTrade
        );
    }

    #[test]
    fn bookmarks_are_a_sorted_bounded_set() {
        let limits = Limits {
            bookmarks_per_account_max: 2,
            ..Limits::default()
        };
        let mut w = World::with_limits(limits);
        w.ok(CommandKind::AddAsset {
            code: AssetCode::new("MSFT").unwrap(),
            scale: 0,
        });
        for (symbol, base) in [("MSFT", 2), ("GOOG", 1)] {
            w.ok(CommandKind::add_product(AddProduct {
                symbol: Symbol::new(symbol).unwrap(),
                name: symbol.into(),
                base: AssetId::new(base),
                quote: USD,
                price_scale: 2,
                tick_size: 1,
                qty_scale: 0,
                lot_size: if symbol == "GOOG" { 10 } else { 1 },
                fees: FeeSchedule::flat(0, 0).unwrap(),
            }));
        }
        let ada = w.trader(0, 0);
        let (p1, p2) = (ProductId::new(1), ProductId::new(2));
        w.ok(CommandKind::AddBookmark {
            account: ada,
            product: p2,
        });
        w.ok(CommandKind::AddBookmark {
            account: ada,
            product: P,
        });
        assert_eq!(w.engine.bookmarks(ada), &[P, p2]);
        assert_eq!(
            w.rejected(CommandKind::AddBookmark {
                account: ada,
                product: P
            }),
            Reject::AlreadyBookmarked
        );
        assert_eq!(
            w.rejected(CommandKind::AddBookmark {
                account: ada,
                product: p1
            }),
            Reject::LimitReached(LimitKind::Bookmarks)
        );
        assert_eq!(
            w.rejected(CommandKind::AddBookmark {
                account: ada,
                product: ProductId::new(9)
            }),
            Reject::UnknownProduct
        );
        w.ok(CommandKind::RemoveBookmark {
            account: ada,
            product: P,
        });
        assert_eq!(w.engine.bookmarks(ada), &[p2]);
        assert_eq!(
            w.rejected(CommandKind::RemoveBookmark {
                account: ada,
                product: P
            }),
            Reject::NotBookmarked
        );
    }

    #[test]
    fn the_account_limit_is_a_rejection() {
        let mut w = World::with_limits(Limits {
            accounts_max: 2,
            ..Limits::default()
        });
        w.ok(create_account("one", ProfileStatus::Pending));
        assert_eq!(
            w.rejected(create_account("two", ProfileStatus::Pending)),
            Reject::LimitReached(LimitKind::Accounts)
        );
    }
}

mod products {
    use super::*;

    fn product(symbol: &str, base: u16, quote: u16) -> CommandKind {
        CommandKind::add_product(AddProduct {
            symbol: Symbol::new(symbol).unwrap(),
            name: "x".into(),
            base: AssetId::new(base),
            quote: AssetId::new(quote),
            price_scale: 2,
            tick_size: 1,
            qty_scale: 0,
            lot_size: 1,
            fees: FeeSchedule::flat(0, 0).unwrap(),
        })
    }

    #[test]
    fn products_are_checked() {
        let mut w = World::new();
        assert_eq!(w.rejected(product("AAPL", 1, 0)), Reject::DuplicateSymbol);
        assert_eq!(w.rejected(product("NEW", 1, 1)), Reject::InvalidProductSpec);
        assert_eq!(w.rejected(product("NEW", 7, 0)), Reject::UnknownAsset);
        assert_eq!(
            w.rejected(CommandKind::AddAsset {
                code: AssetCode::new("USD").unwrap(),
                scale: 2
            }),
            Reject::DuplicateAsset
        );
        assert_eq!(
            w.rejected(CommandKind::AddAsset {
                code: AssetCode::new("BIG").unwrap(),
                scale: 19
            }),
            Reject::InvalidAssetSpec
        );
        // Quantity decimals finer than the base asset's minor unit cannot settle.
        let mut fine = product("FINE", 1, 0);
        if let CommandKind::AddProduct(a) = &mut fine {
            a.qty_scale = 2;
        }
        assert_eq!(w.rejected(fine), Reject::InvalidProductSpec);
        assert_eq!(
            w.engine.product_by_symbol(&Symbol::new("AAPL").unwrap()),
            Some(P)
        );
    }

    #[test]
    fn the_asset_and_product_limits_are_rejections() {
        let limits = Limits {
            assets_max: 3,
            products_max: 1,
            ..Limits::default()
        };
        let mut w = World::with_limits(limits);
        w.ok(CommandKind::AddAsset {
            code: AssetCode::new("EUR").unwrap(),
            scale: 2,
        });
        assert_eq!(
            w.rejected(CommandKind::AddAsset {
                code: AssetCode::new("GBP").unwrap(),
                scale: 2
            }),
            Reject::LimitReached(LimitKind::Assets)
        );
        assert_eq!(
            w.rejected(product("EURUSD", 2, 0)),
            Reject::LimitReached(LimitKind::Products)
        );
    }

    #[test]
    fn a_halted_product_takes_cancels_but_no_new_orders_or_amendments() {
        let mut w = World::new();
        let ada = w.trader(1_000_000, 0);
        let order = w.rest(ada, Side::Buy, 100, 5);
        w.ok(CommandKind::SetProductStatus {
            product: P,
            status: ProductStatus::Halted,
        });
        assert_eq!(
            w.rejected(CommandKind::PlaceOrder(limit_order(
                ada,
                Side::Buy,
                100,
                1,
                TimeInForce::Gtc
            ))),
            Reject::ProductHalted
        );
        assert_eq!(
            w.rejected(CommandKind::AmendOrder(AmendOrder {
                account: ada,
                order,
                qty: Qty::from_lots(4),
                price: None
            })),
            Reject::ProductHalted
        );
        assert_eq!(
            w.rejected(CommandKind::SetProductStatus {
                product: P,
                status: ProductStatus::Halted
            }),
            Reject::StatusUnchanged
        );
        w.cancel(ada, order).unwrap();
        w.ok(CommandKind::SetProductStatus {
            product: P,
            status: ProductStatus::Trading,
        });
        assert!(w.limit(ada, Side::Buy, 100, 1).is_ok());
    }
}

mod funds {
    use super::*;

    #[test]
    fn a_repeated_request_is_a_no_op_that_returns_the_original() {
        let mut w = World::new();
        let ada = w.trader(0, 0);
        let first = w.ok(CommandKind::Deposit(funds(ada, USD, 5_000, "r-1")));
        let first_seq = first[0].command_seq;
        let hash = w.engine.state_hash();
        let again = w.ok(CommandKind::Deposit(funds(ada, USD, 5_000, "r-1")));
        assert!(
            matches!(again[0].kind, EventKind::Deposited { duplicate: true, original_command_seq, .. } if original_command_seq == first_seq)
        );
        assert_eq!(w.engine.state_hash(), hash);
        assert_eq!(w.usd(ada).available, 5_000);
        // The same id with another body is refused.
        assert_eq!(
            w.rejected(CommandKind::Deposit(funds(ada, USD, 5_001, "r-1"))),
            Reject::RequestIdMismatch
        );
        assert_eq!(
            w.rejected(CommandKind::Withdraw(funds(ada, USD, 5_000, "r-1"))),
            Reject::RequestIdMismatch
        );
        // Ids are per account.
        let bob = w.trader(0, 0);
        w.ok(CommandKind::Deposit(funds(bob, USD, 7, "r-1")));
        assert_eq!(w.usd(bob).available, 7);
    }

    #[test]
    fn withdrawals_come_only_from_available_funds() {
        let mut w = World::new();
        let ada = w.trader(10_000, 0);
        w.rest(ada, Side::Buy, 1_000, 5); // holds 5 * (1000 + 2) = 5010
        assert_eq!(
            w.usd(ada),
            Balance {
                available: 4_990,
                held: 5_010
            }
        );
        assert_eq!(
            w.rejected(CommandKind::Withdraw(funds(ada, USD, 4_991, "w-1"))),
            Reject::InsufficientFunds
        );
        w.ok(CommandKind::Withdraw(funds(ada, USD, 4_990, "w-1")));
        assert_eq!(
            w.usd(ada),
            Balance {
                available: 0,
                held: 5_010
            }
        );
        let repeat = w.ok(CommandKind::Withdraw(funds(ada, USD, 4_990, "w-1")));
        assert!(matches!(
            repeat[0].kind,
            EventKind::Withdrawn {
                duplicate: true,
                ..
            }
        ));
        assert_eq!(
            w.engine.asset_info(USD).unwrap().total_supply(),
            Amount::from_minor(5_010)
        );
    }

    #[test]
    fn bad_amounts_are_rejected() {
        let mut w = World::new();
        let ada = w.trader(0, 0);
        for amount in [0, -5, i64::MIN, AMOUNT_MAX + 1] {
            assert_eq!(
                w.rejected(CommandKind::Deposit(funds(ada, USD, amount, "bad"))),
                Reject::InvalidAmount
            );
        }
        assert_eq!(
            w.rejected(CommandKind::Deposit(funds(ada, AssetId::new(9), 5, "bad"))),
            Reject::UnknownAsset
        );
        assert_eq!(
            w.rejected(CommandKind::Deposit(funds(
                AccountId::new(77),
                USD,
                5,
                "bad"
            ))),
            Reject::UnknownAccount
        );
        w.ok(CommandKind::Deposit(funds(ada, USD, AMOUNT_MAX, "all")));
        assert_eq!(
            w.rejected(CommandKind::Deposit(funds(ada, USD, 1, "more"))),
            Reject::Overflow
        );
    }

    #[test]
    fn remembered_requests_are_bounded() {
        let mut w = World::with_limits(Limits {
            funds_requests_per_account_max: 2,
            ..Limits::default()
        });
        let ada = w.trader(0, 0);
        w.ok(CommandKind::Deposit(funds(ada, USD, 1, "a")));
        w.ok(CommandKind::Deposit(funds(ada, USD, 1, "b")));
        assert_eq!(
            w.rejected(CommandKind::Deposit(funds(ada, USD, 1, "c"))),
            Reject::LimitReached(LimitKind::FundsRequestsPerAccount)
        );
    }
}

mod orders {
    use super::*;

    #[test]
    fn a_buy_holds_notional_plus_the_highest_fee_and_a_sell_holds_quantity() {
        let mut w = World::new();
        let ada = w.trader(100_000, 10);
        w.rest(ada, Side::Buy, 18_925, 2);
        // Per share: 189.25 + ceil(0.2% of 189.25) = 18925 + 38 cents.
        assert_eq!(
            w.usd(ada),
            Balance {
                available: 100_000 - 2 * 18_963,
                held: 2 * 18_963
            }
        );
        w.rest(ada, Side::Sell, 20_000, 3);
        assert_eq!(
            w.shares(ada),
            Balance {
                available: 7,
                held: 3
            }
        );
    }

    #[test]
    fn price_time_priority_and_fills_at_the_maker_price() {
        let mut w = World::new();
        let (a, b, c) = (w.trader(0, 10), w.trader(0, 10), w.trader(1_000_000, 0));
        let a1 = w.rest(a, Side::Sell, 101, 3);
        let b1 = w.rest(b, Side::Sell, 100, 2);
        let a2 = w.rest(a, Side::Sell, 100, 4);
        let events = w.limit(c, Side::Buy, 101, 7).unwrap();
        let taker = accepted_id(&events);
        let got: Vec<_> = fills(&events)
            .iter()
            .map(|f| (f.0, f.1, f.2, f.3))
            .collect();
        assert_eq!(
            got,
            vec![
                (b1, taker, 100, 2),
                (a2, taker, 100, 4),
                (a1, taker, 101, 1)
            ]
        );
        assert_eq!(w.levels(Side::Sell), vec![(101, 2)]);
        assert_eq!(w.engine.order(a1).unwrap().remaining, Qty::from_lots(2));
        assert!(w.engine.order(taker).is_none(), "filled in full");
    }

    #[test]
    fn levels_anywhere_in_the_price_range_keep_their_order() {
        let mut w = World::new();
        let buyer = w.trader(AMOUNT_MAX, 0);
        let seller = w.trader(0, 1_000);
        let far = PRICE_TICKS_MAX / 1_000;
        for price in [64, 1, 127, 63, 128, far, 65, 1_000_000] {
            w.rest(buyer, Side::Buy, price, 1);
        }
        let bids: Vec<i64> = w.levels(Side::Buy).iter().map(|l| l.0).collect();
        assert_eq!(bids, vec![far, 1_000_000, 128, 127, 65, 64, 63, 1]);
        for price in [far * 2, far + 1, far + 200, far + 64] {
            w.rest(seller, Side::Sell, price, 1);
        }
        let asks: Vec<i64> = w.levels(Side::Sell).iter().map(|l| l.0).collect();
        assert_eq!(asks, vec![far + 1, far + 64, far + 200, far * 2]);
        // A sell at 1 sweeps every bid, best first, across pages.
        let events = w.limit(seller, Side::Sell, 1, 8).unwrap();
        let prices: Vec<i64> = fills(&events).iter().map(|f| f.2).collect();
        assert_eq!(prices, bids);
        assert!(w.levels(Side::Buy).is_empty());
    }

    #[test]
    fn fees_go_to_the_fee_account_rounded_up() {
        let mut w = World::new();
        let seller = w.trader(0, 10);
        let buyer = w.trader(1_000_000, 0);
        w.rest(seller, Side::Sell, 18_925, 3);
        let events = w.limit(buyer, Side::Buy, 18_925, 3).unwrap();
        // Notional 567.75: maker 0.1% = 0.56775 -> 57 cents, taker 0.2% = 1.1355 -> 114 cents.
        let f = fills(&events);
        assert_eq!((f[0].4, f[0].5), (57, 114));
        assert_eq!(w.usd(AccountId::FEES).available, 171);
        assert_eq!(w.usd(seller).available, 56_775 - 57);
        assert_eq!(
            w.usd(buyer),
            Balance {
                available: 1_000_000 - 56_775 - 114,
                held: 0
            }
        );
        assert_eq!(w.shares(buyer).available, 3);
        assert_eq!(
            w.shares(seller),
            Balance {
                available: 7,
                held: 0
            }
        );
    }

    #[test]
    fn a_buy_filled_at_a_better_price_releases_the_rest_of_its_hold() {
        let mut w = World::new();
        let seller = w.trader(0, 10);
        let buyer = w.trader(100_000, 0);
        w.rest(seller, Side::Sell, 900, 2);
        w.limit(buyer, Side::Buy, 1_000, 2).unwrap();
        assert_eq!(
            w.usd(buyer),
            Balance {
                available: 100_000 - 1_800 - 4,
                held: 0
            }
        );
    }

    #[test]
    fn ioc_cancels_its_rest_and_releases_the_hold() {
        let mut w = World::new();
        let seller = w.trader(0, 10);
        let buyer = w.trader(100_000, 0);
        w.rest(seller, Side::Sell, 1_000, 2);
        let events = w
            .apply(CommandKind::PlaceOrder(limit_order(
                buyer,
                Side::Buy,
                1_000,
                5,
                TimeInForce::Ioc,
            )))
            .unwrap();
        let taker = accepted_id(&events);
        assert_eq!(cancels(&events), vec![(taker, 3, CancelReason::Expired)]);
        assert_eq!(
            w.usd(buyer),
            Balance {
                available: 100_000 - 2_000 - 4,
                held: 0
            }
        );
        assert!(w.levels(Side::Buy).is_empty());
    }

    #[test]
    fn fok_fills_in_full_or_is_rejected() {
        let mut w = World::new();
        let seller = w.trader(0, 10);
        let buyer = w.trader(100_000, 0);
        w.rest(seller, Side::Sell, 1_000, 2);
        w.rest(seller, Side::Sell, 1_001, 2);
        let fok = |qty, price| {
            CommandKind::PlaceOrder(limit_order(buyer, Side::Buy, price, qty, TimeInForce::Fok))
        };
        assert_eq!(w.rejected(fok(5, 1_001)), Reject::FillOrKillUnfillable);
        assert_eq!(w.rejected(fok(3, 1_000)), Reject::FillOrKillUnfillable);
        let events = w.apply(fok(4, 1_001)).unwrap();
        assert_eq!(fills(&events).len(), 2);
        assert!(w.levels(Side::Sell).is_empty());
    }

    #[test]
    fn post_only_rests_or_is_rejected() {
        let mut w = World::new();
        let seller = w.trader(0, 10);
        let buyer = w.trader(100_000, 0);
        w.rest(seller, Side::Sell, 1_000, 2);
        let post = |price| {
            CommandKind::PlaceOrder(limit_order(
                buyer,
                Side::Buy,
                price,
                1,
                TimeInForce::PostOnly,
            ))
        };
        assert_eq!(w.rejected(post(1_000)), Reject::WouldTakeLiquidity);
        w.ok(post(999));
        assert_eq!(w.levels(Side::Buy), vec![(999, 1)]);
    }

    #[test]
    fn a_market_buy_is_bounded_by_available_funds() {
        let mut w = World::new();
        let seller = w.trader(0, 10);
        // One share costs 1000 + 2 fee: 3500 pays for 3 shares (3006), not 4 (4008).
        let buyer = w.trader(3_500, 0);
        w.rest(seller, Side::Sell, 1_000, 5);
        let events = w.market(buyer, Side::Buy, 5).unwrap();
        let taker = accepted_id(&events);
        assert_eq!(fills(&events).iter().map(|f| f.3).sum::<i64>(), 3);
        assert_eq!(
            cancels(&events),
            vec![(taker, 2, CancelReason::InsufficientFunds)]
        );
        assert_eq!(
            w.usd(buyer),
            Balance {
                available: 3_500 - 3_006,
                held: 0
            }
        );
        // It cannot afford even one share now: rejected, nothing changes.
        assert_eq!(
            w.market(buyer, Side::Buy, 1),
            Err(Reject::InsufficientFunds)
        );
    }

    #[test]
    fn a_market_sell_takes_the_bids_and_expires_the_rest() {
        let mut w = World::new();
        let buyer = w.trader(100_000, 0);
        let seller = w.trader(0, 10);
        w.rest(buyer, Side::Buy, 1_000, 2);
        w.rest(buyer, Side::Buy, 990, 1);
        let events = w.market(seller, Side::Sell, 5).unwrap();
        let got: Vec<_> = fills(&events).iter().map(|f| (f.2, f.3)).collect();
        assert_eq!(got, vec![(1_000, 2), (990, 1)]);
        assert_eq!(cancels(&events)[0].1, 2);
        assert_eq!(
            w.shares(seller),
            Balance {
                available: 7,
                held: 0
            }
        );
        // With an empty book a market order is accepted and expires at once.
        let events = w.market(seller, Side::Sell, 1).unwrap();
        assert_eq!(cancels(&events)[0].2, CancelReason::Expired);
        assert_eq!(
            w.shares(seller),
            Balance {
                available: 7,
                held: 0
            }
        );
    }

    #[test]
    fn order_shape_is_checked() {
        let mut w = World::new();
        let ada = w.trader(1_000_000, 10);
        let mut bad = limit_order(ada, Side::Buy, 100, 1, TimeInForce::Gtc);
        for (price, qty, reject) in [
            (0, 1, Reject::InvalidPrice),
            (-5, 1, Reject::InvalidPrice),
            (PRICE_TICKS_MAX + 1, 1, Reject::InvalidPrice),
            (100, 0, Reject::InvalidQuantity),
            (100, -3, Reject::InvalidQuantity),
            (100, QTY_LOTS_MAX + 1, Reject::InvalidQuantity),
            (PRICE_TICKS_MAX, QTY_LOTS_MAX, Reject::Overflow),
        ] {
            bad.price = Some(Price::from_ticks(price));
            bad.qty = Qty::from_lots(qty);
            assert_eq!(
                w.rejected(CommandKind::PlaceOrder(bad)),
                reject,
                "price {price} qty {qty}"
            );
        }
        let no_price = NewOrder {
            price: None,
            ..limit_order(ada, Side::Buy, 100, 1, TimeInForce::Gtc)
        };
        assert_eq!(
            w.rejected(CommandKind::PlaceOrder(no_price)),
            Reject::InvalidPriceForOrderType
        );
        let market_gtc = NewOrder {
            order_type: OrderType::Market,
            price: None,
            ..no_price
        };
        assert_eq!(
            w.rejected(CommandKind::PlaceOrder(market_gtc)),
            Reject::InvalidTimeInForce
        );
        let market_priced = NewOrder {
            order_type: OrderType::Market,
            time_in_force: TimeInForce::Ioc,
            ..limit_order(ada, Side::Buy, 100, 1, TimeInForce::Ioc)
        };
        assert_eq!(
            w.rejected(CommandKind::PlaceOrder(market_priced)),
            Reject::InvalidPriceForOrderType
        );
        let unknown = NewOrder {
            product: ProductId::new(42),
            ..limit_order(ada, Side::Buy, 100, 1, TimeInForce::Gtc)
        };
        assert_eq!(
            w.rejected(CommandKind::PlaceOrder(unknown)),
            Reject::UnknownProduct
        );
        assert_eq!(
            w.rejected(CommandKind::PlaceOrder(limit_order(
                ada,
                Side::Buy,
                100_000,
                100,
                TimeInForce::Gtc
            ))),
            Reject::InsufficientFunds
        );
        assert_eq!(
            w.rejected(CommandKind::PlaceOrder(limit_order(
                ada,
                Side::Sell,
                100,
                11,
                TimeInForce::Gtc
            ))),
            Reject::InsufficientFunds
        );
    }

    #[test]
    fn client_order_ids_are_unique_among_open_orders() {
        let mut w = World::new();
        let ada = w.trader(1_000_000, 0);
        let bob = w.trader(1_000_000, 10);
        let cid = ClientOrderId::new("my-order-1").unwrap();
        let with_cid = |account, price| NewOrder {
            client_order_id: Some(cid),
            ..limit_order(account, Side::Buy, price, 1, TimeInForce::Gtc)
        };
        w.ok(CommandKind::PlaceOrder(with_cid(ada, 100)));
        // Another body with the id of an open order (a repeat with the same body is answered
        // with the first order: `order_keys`).
        assert_eq!(
            w.rejected(CommandKind::PlaceOrder(with_cid(ada, 101))),
            Reject::DuplicateClientOrderId
        );
        // Ids are per account.
        w.ok(CommandKind::PlaceOrder(with_cid(bob, 100)));
        // Once the first is filled and its key is out of the window, the id is free again.
        w.rest(bob, Side::Sell, 100, 1);
        w.now_ms += ORDER_KEY_WINDOW_MS + 1;
        w.ok(CommandKind::PlaceOrder(with_cid(ada, 101)));
    }

    #[test]
    fn cancel_releases_the_hold_exactly_and_only_the_owner_may_cancel() {
        let mut w = World::new();
        let ada = w.trader(100_000, 0);
        let eve = w.trader(100_000, 0);
        let order = w.rest(ada, Side::Buy, 1_000, 7);
        assert_eq!(w.cancel(eve, order), Err(Reject::UnknownOrder));
        let events = w.cancel(ada, order).unwrap();
        assert_eq!(cancels(&events), vec![(order, 7, CancelReason::Requested)]);
        assert_eq!(
            w.usd(ada),
            Balance {
                available: 100_000,
                held: 0
            }
        );
        assert_eq!(w.cancel(ada, order), Err(Reject::UnknownOrder));
        assert!(w.levels(Side::Buy).is_empty());
    }
}

mod order_keys {
    //! Orders are idempotent by client order id within the order-key window.
    use super::*;

    fn keyed(order: NewOrder, cid: &str) -> CommandKind {
        CommandKind::PlaceOrder(NewOrder {
            client_order_id: Some(ClientOrderId::new(cid).unwrap()),
            ..order
        })
    }

    fn market_buy(account: AccountId, qty: i64, cid: &str) -> CommandKind {
        keyed(
            NewOrder {
                order_type: OrderType::Market,
                price: None,
                ..limit_order(account, Side::Buy, 1, qty, TimeInForce::Ioc)
            },
            cid,
        )
    }

    /// The one `OrderDuplicate` of a repeat: (order, original command seq).
    fn duplicate(events: &[Event]) -> (OrderId, u64) {
        match events {
            [
                Event {
                    kind:
                        EventKind::OrderDuplicate {
                            order,
                            original_command_seq,
                            ..
                        },
                    ..
                },
            ] => (*order, *original_command_seq),
            other => panic!("not one OrderDuplicate: {other:?}"),
        }
    }

    /// A seller with 10 shares resting at 10.00 and a buyer with 1,000.00.
    fn market() -> (World, AccountId, AccountId) {
        let mut w = World::new();
        let seller = w.trader(0, 10);
        let buyer = w.trader(100_000, 0);
        w.rest(seller, Side::Sell, 1_000, 10);
        (w, seller, buyer)
    }

    #[test]
    fn a_repeated_market_buy_is_answered_with_the_first_order_and_moves_nothing() {
        let (mut w, _, buyer) = market();
        let first = w.ok(market_buy(buyer, 2, "buy-1"));
        let order = accepted_id(&first);
        let first_seq = w.seq;
        assert_eq!(fills(&first).len(), 1);
        let after_first = (w.usd(buyer), w.engine.balance(buyer, AAPL));
        assert_eq!(after_first.1.available, 2);
        let hash = w.engine.state_hash();

        w.now_ms += 60_000;
        let repeat = w.ok(market_buy(buyer, 2, "buy-1"));
        assert_eq!(duplicate(&repeat), (order, first_seq));
        assert_eq!((w.usd(buyer), w.engine.balance(buyer, AAPL)), after_first);
        assert_eq!(w.engine.state_hash(), hash, "a duplicate changes nothing");
        assert_eq!(w.levels(Side::Sell), vec![(1_000, 8)]);

        // Another body under the same key is refused.
        assert_eq!(
            w.rejected(market_buy(buyer, 3, "buy-1")),
            Reject::DuplicateClientOrderId
        );
        let limit = keyed(
            limit_order(buyer, Side::Buy, 1_000, 2, TimeInForce::Ioc),
            "buy-1",
        );
        assert_eq!(w.rejected(limit), Reject::DuplicateClientOrderId);
        // Another key is another order.
        let other = w.ok(market_buy(buyer, 2, "buy-2"));
        assert!(accepted_id(&other) > order);
    }

    #[test]
    fn a_key_is_forgotten_ten_minutes_and_a_millisecond_later() {
        let (mut w, _, buyer) = market();
        let t0 = w.now_ms;
        let order = accepted_id(&w.ok(market_buy(buyer, 1, "k")));
        w.now_ms = t0 + ORDER_KEY_WINDOW_MS;
        assert_eq!(duplicate(&w.ok(market_buy(buyer, 1, "k"))).0, order);
        w.now_ms = t0 + ORDER_KEY_WINDOW_MS + 1;
        let again = w.ok(market_buy(buyer, 1, "k"));
        assert!(accepted_id(&again) > order, "placed anew: {again:?}");
        assert_eq!(w.engine.balance(buyer, AAPL).available, 2);
        // The new placement is remembered in its turn.
        assert_eq!(
            duplicate(&w.ok(market_buy(buyer, 1, "k"))).0,
            accepted_id(&again)
        );
    }

    #[test]
    fn an_open_order_keeps_its_id_past_the_window() {
        let (mut w, _, _) = market();
        let seller = w.trader(0, 5);
        let ask = keyed(
            limit_order(seller, Side::Sell, 1_100, 1, TimeInForce::Gtc),
            "ask",
        );
        let order = accepted_id(&w.ok(ask.clone()));
        assert_eq!(duplicate(&w.ok(ask.clone())).0, order);
        w.now_ms += ORDER_KEY_WINDOW_MS + 1;
        assert_eq!(w.rejected(ask.clone()), Reject::DuplicateClientOrderId);
        w.cancel(seller, order).unwrap();
        assert!(accepted_id(&w.ok(ask)) > order);
    }

    #[test]
    fn a_rejected_placement_is_not_remembered() {
        let (mut w, _, _) = market();
        let poor = w.trader(10, 0);
        assert_eq!(
            w.rejected(market_buy(poor, 1, "k")),
            Reject::InsufficientFunds
        );
        w.deposit(poor, USD, 10_000);
        let events = w.ok(market_buy(poor, 1, "k"));
        assert_eq!(fills(&events).len(), 1);
    }

    #[test]
    fn the_oldest_key_goes_first_when_the_window_is_full() {
        let mut w = World::with_limits(Limits {
            order_keys_max: 2,
            ..Limits::default()
        });
        let seller = w.trader(0, 10);
        let buyer = w.trader(100_000, 0);
        w.rest(seller, Side::Sell, 1_000, 10);
        let k1 = accepted_id(&w.ok(market_buy(buyer, 1, "k1")));
        let k2 = accepted_id(&w.ok(market_buy(buyer, 1, "k2")));
        let k3 = accepted_id(&w.ok(market_buy(buyer, 1, "k3")));
        // k1 made room for k3; k2 and k3 are held.
        assert_eq!(duplicate(&w.ok(market_buy(buyer, 1, "k3"))).0, k3);
        assert_eq!(duplicate(&w.ok(market_buy(buyer, 1, "k2"))).0, k2);
        let again = accepted_id(&w.ok(market_buy(buyer, 1, "k1")));
        assert!(again > k3 && k1 < k2);
        // And that placement pushed k2 out.
        assert!(accepted_id(&w.ok(market_buy(buyer, 1, "k2"))) > again);
        assert_eq!(w.engine.balance(buyer, AAPL).available, 5);
    }

    #[test]
    fn the_window_survives_an_image_and_is_in_the_hash() {
        let (mut w, _, buyer) = market();
        let order = accepted_id(&w.ok(market_buy(buyer, 1, "k")));
        let image = w.engine.to_image();
        assert_eq!(image.order_keys.len(), 1);
        assert_eq!(image.order_keys[0].order, order.get());
        let mut rebuilt = Engine::from_image(image.clone()).unwrap();
        assert_eq!(rebuilt.state_hash(), w.engine.state_hash());
        assert_eq!(rebuilt.to_image(), image);
        // The rebuilt engine answers the repeat as the original does.
        let repeat = Command {
            seq: w.seq + 1,
            timestamp_ms: w.now_ms,
            kind: market_buy(buyer, 1, "k"),
        };
        let mut events = Vec::new();
        rebuilt.apply(&repeat, &mut events).unwrap();
        assert_eq!(duplicate(&events).0, order);
        assert_eq!(events, w.ok(repeat.kind.clone()));

        // Two engines that differ only by a remembered key hash apart: an IOC that expires
        // unfilled leaves nothing but its key.
        let ioc = limit_order(buyer, Side::Buy, 900, 1, TimeInForce::Ioc);
        let mut plain = Engine::from_image(w.engine.to_image()).unwrap();
        plain
            .apply(
                &Command {
                    seq: w.seq + 1,
                    timestamp_ms: w.now_ms,
                    kind: CommandKind::PlaceOrder(ioc),
                },
                &mut Vec::new(),
            )
            .unwrap();
        w.ok(keyed(ioc, "ioc"));
        assert_ne!(plain.state_hash(), w.engine.state_hash());
        let mut image = w.engine.to_image();
        image.order_keys.pop();
        assert_eq!(image, plain.to_image());
    }
}

mod amend {
    use super::*;

    fn queue(w: &World, side: Side) -> Vec<(OrderId, i64)> {
        w.engine
            .book_orders(P, side)
            .iter()
            .map(|o| (o.id, o.remaining.lots()))
            .collect()
    }

    #[test]
    fn lowering_the_quantity_keeps_priority_and_releases_funds() {
        let mut w = World::new();
        let (a, b) = (w.trader(100_000, 0), w.trader(100_000, 0));
        let a1 = w.rest(a, Side::Buy, 1_000, 5);
        let b1 = w.rest(b, Side::Buy, 1_000, 5);
        let events = w.amend(a, a1, 2, None).unwrap();
        assert!(matches!(
            events[0].kind,
            EventKind::OrderRested {
                priority_kept: true,
                ..
            }
        ));
        assert_eq!(queue(&w, Side::Buy), vec![(a1, 2), (b1, 5)]);
        assert_eq!(
            w.usd(a),
            Balance {
                available: 100_000 - 2_004,
                held: 2_004
            }
        );
    }

    #[test]
    fn raising_the_quantity_or_changing_the_price_loses_priority() {
        let mut w = World::new();
        let (a, b) = (w.trader(100_000, 0), w.trader(100_000, 0));
        let a1 = w.rest(a, Side::Buy, 1_000, 5);
        let b1 = w.rest(b, Side::Buy, 1_000, 5);
        w.amend(a, a1, 6, None).unwrap();
        assert_eq!(queue(&w, Side::Buy), vec![(b1, 5), (a1, 6)]);
        w.amend(b, b1, 5, Some(999)).unwrap();
        w.amend(b, b1, 5, Some(1_000)).unwrap();
        assert_eq!(queue(&w, Side::Buy), vec![(a1, 6), (b1, 5)]);
        assert_eq!(
            w.usd(a),
            Balance {
                available: 100_000 - 6 * 1_002,
                held: 6 * 1_002
            }
        );
    }

    #[test]
    fn a_new_price_that_crosses_matches_as_taker() {
        let mut w = World::new();
        let seller = w.trader(0, 10);
        let buyer = w.trader(100_000, 0);
        let ask = w.rest(seller, Side::Sell, 1_010, 3);
        let bid = w.rest(buyer, Side::Buy, 1_000, 5);
        let events = w.amend(buyer, bid, 5, Some(1_010)).unwrap();
        assert_eq!(fills(&events), vec![(ask, bid, 1_010, 3, 4, 7)]);
        assert_eq!(w.levels(Side::Buy), vec![(1_010, 2)]);
        assert_eq!(w.engine.order(bid).unwrap().remaining, Qty::from_lots(2));
    }

    #[test]
    fn an_amendment_is_checked_like_an_order() {
        let mut w = World::new();
        let ada = w.trader(10_000, 0);
        let eve = w.trader(10_000, 10);
        let order = w.rest(ada, Side::Buy, 1_000, 5);
        assert_eq!(w.amend(ada, order, 5, None), Err(Reject::NothingToAmend));
        assert_eq!(
            w.amend(ada, order, 5, Some(1_000)),
            Err(Reject::NothingToAmend)
        );
        assert_eq!(w.amend(eve, order, 4, None), Err(Reject::UnknownOrder));
        assert_eq!(
            w.amend(ada, OrderId::new(999), 4, None),
            Err(Reject::UnknownOrder)
        );
        assert_eq!(w.amend(ada, order, 0, None), Err(Reject::InvalidQuantity));
        assert_eq!(w.amend(ada, order, 5, Some(-1)), Err(Reject::InvalidPrice));
        let before = w.engine.state_hash();
        assert_eq!(
            w.amend(ada, order, 10, None),
            Err(Reject::InsufficientFunds)
        );
        assert_eq!(w.engine.state_hash(), before);
        // A post-only order may not be amended across the book.
        w.rest(eve, Side::Sell, 1_100, 1);
        w.ok(CommandKind::Withdraw(funds(ada, USD, 3_000, "w")));
        let post = accepted_id(&w.ok(CommandKind::PlaceOrder(limit_order(
            ada,
            Side::Buy,
            1_000,
            1,
            TimeInForce::PostOnly,
        ))));
        assert_eq!(
            w.amend(ada, post, 1, Some(1_100)),
            Err(Reject::WouldTakeLiquidity)
        );
        assert_eq!(w.amend(ada, post, 1, Some(1_099)).map(|e| e.len()), Ok(1));
    }
}

mod self_trade {
    use super::*;

    fn setup(mode: SelfTradePrevention) -> (World, AccountId, OrderId, OrderId, Vec<Event>) {
        let mut w = World::new();
        let ada = w.trader(100_000, 10);
        let bob = w.trader(0, 10);
        let own = w.rest(ada, Side::Sell, 1_000, 2);
        let other = w.rest(bob, Side::Sell, 1_001, 2);
        let order = NewOrder {
            self_trade: mode,
            ..limit_order(ada, Side::Buy, 1_001, 3, TimeInForce::Gtc)
        };
        let events = w.apply(CommandKind::PlaceOrder(order)).unwrap();
        (w, ada, own, other, events)
    }

    #[test]
    fn cancel_resting_is_the_default_and_matching_goes_on() {
        assert_eq!(
            SelfTradePrevention::default(),
            SelfTradePrevention::CancelResting
        );
        let (w, ada, own, other, events) = setup(SelfTradePrevention::CancelResting);
        let taker = accepted_id(&events);
        assert_eq!(cancels(&events), vec![(own, 2, CancelReason::SelfTrade)]);
        assert_eq!(
            fills(&events)
                .iter()
                .map(|f| (f.0, f.3))
                .collect::<Vec<_>>(),
            vec![(other, 2)]
        );
        assert_eq!(w.engine.order(taker).unwrap().remaining, Qty::from_lots(1));
        assert_eq!(
            w.shares(ada),
            Balance {
                available: 12,
                held: 0
            }
        );
    }

    #[test]
    fn cancel_incoming_keeps_the_resting_order() {
        let (w, _, own, _, events) = setup(SelfTradePrevention::CancelIncoming);
        let taker = accepted_id(&events);
        assert!(fills(&events).is_empty());
        assert_eq!(cancels(&events), vec![(taker, 3, CancelReason::SelfTrade)]);
        assert!(w.engine.order(own).is_some());
    }

    #[test]
    fn cancel_both() {
        let (w, ada, own, _, events) = setup(SelfTradePrevention::CancelBoth);
        let taker = accepted_id(&events);
        assert_eq!(
            cancels(&events),
            vec![
                (own, 2, CancelReason::SelfTrade),
                (taker, 3, CancelReason::SelfTrade)
            ]
        );
        assert_eq!(
            w.usd(ada),
            Balance {
                available: 100_000,
                held: 0
            }
        );
        assert_eq!(w.levels(Side::Sell), vec![(1_001, 2)]);
    }
}

mod fees {
    use super::*;

    fn tiered() -> World {
        let fees = FeeSchedule::new(&[
            FeeTier {
                volume_min: 0,
                maker_ppm: 1_000,
                taker_ppm: 2_000,
            },
            FeeTier {
                volume_min: 100_000,
                maker_ppm: 0,
                taker_ppm: 1_000,
            },
        ])
        .unwrap();
        World::with_fees(Limits::default(), fees)
    }

    #[test]
    fn the_tier_follows_trailing_thirty_day_volume_in_engine_time() {
        let mut w = tiered();
        let seller = w.trader(0, 1_000);
        let buyer = w.trader(10_000_000, 0);
        w.rest(seller, Side::Sell, 10_000, 10);
        let first = w.limit(buyer, Side::Buy, 10_000, 10).unwrap();
        assert_eq!((fills(&first)[0].4, fills(&first)[0].5), (100, 200));
        assert_eq!(w.engine.trailing_volume(buyer, USD, w.now_ms), 100_000);
        // 29 days later both are in the second tier.
        w.now_ms += 29 * DAY_MS;
        w.rest(seller, Side::Sell, 10_000, 1);
        let second = w.limit(buyer, Side::Buy, 10_000, 1).unwrap();
        assert_eq!((fills(&second)[0].4, fills(&second)[0].5), (0, 10));
        // 30 days after the first trade its volume has left the window.
        w.now_ms += DAY_MS;
        assert_eq!(w.engine.trailing_volume(buyer, USD, w.now_ms), 10_000);
        w.rest(seller, Side::Sell, 10_000, 1);
        let third = w.limit(buyer, Side::Buy, 10_000, 1).unwrap();
        assert_eq!((fills(&third)[0].4, fills(&third)[0].5), (10, 20));
    }

    #[test]
    fn a_quote_gives_the_fee_the_fill_charges() {
        let mut w = World::new();
        let seller = w.trader(0, 10);
        let buyer = w.trader(1_000_000, 0);
        w.rest(seller, Side::Sell, 18_925, 3);
        let quote = w
            .engine
            .quote_fee(
                buyer,
                P,
                Side::Buy,
                Qty::from_lots(3),
                Some(Price::from_ticks(18_925)),
            )
            .unwrap();
        assert_eq!(quote.liquidity, Liquidity::Taker);
        assert_eq!(quote.hold, Amount::from_minor(3 * (18_925 + 38)));
        let maker_quote = w
            .engine
            .quote_fee(
                seller,
                P,
                Side::Sell,
                Qty::from_lots(3),
                Some(Price::from_ticks(18_925)),
            )
            .unwrap();
        assert_eq!(
            maker_quote.liquidity,
            Liquidity::Maker,
            "no bids: a sell would rest"
        );
        let events = w.limit(buyer, Side::Buy, 18_925, 3).unwrap();
        assert_eq!(fills(&events)[0].5, quote.fee.minor());
        // A resting order's quote is the maker rate.
        let resting = w
            .engine
            .quote_fee(
                buyer,
                P,
                Side::Buy,
                Qty::from_lots(3),
                Some(Price::from_ticks(18_000)),
            )
            .unwrap();
        assert_eq!(
            (resting.liquidity, resting.rate_ppm),
            (Liquidity::Maker, MAKER_PPM)
        );
        assert_eq!(
            w.engine.quote_fee(
                buyer,
                P,
                Side::Buy,
                Qty::from_lots(0),
                Some(Price::from_ticks(1))
            ),
            Err(Reject::InvalidQuantity)
        );
    }
}

mod limits {
    use super::*;

    #[test]
    fn open_orders_per_account_and_per_book_are_bounded() {
        let limits = Limits {
            open_orders_per_account_max: 2,
            orders_per_book_max: 3,
            ..Limits::default()
        };
        let mut w = World::with_limits(limits);
        let ada = w.trader(1_000_000, 0);
        let bob = w.trader(1_000_000, 0);
        w.rest(ada, Side::Buy, 100, 1);
        w.rest(ada, Side::Buy, 101, 1);
        let third = CommandKind::PlaceOrder(limit_order(ada, Side::Buy, 102, 1, TimeInForce::Gtc));
        assert_eq!(
            w.rejected(third),
            Reject::LimitReached(LimitKind::OpenOrdersPerAccount)
        );
        // An IOC never rests, so the limit does not apply to it.
        w.ok(CommandKind::PlaceOrder(limit_order(
            ada,
            Side::Buy,
            102,
            1,
            TimeInForce::Ioc,
        )));
        w.rest(bob, Side::Buy, 100, 1);
        let fourth = CommandKind::PlaceOrder(limit_order(bob, Side::Buy, 100, 1, TimeInForce::Gtc));
        assert_eq!(
            w.rejected(fourth),
            Reject::LimitReached(LimitKind::OrdersPerBook)
        );
    }
}

mod events {
    use super::*;

    #[test]
    fn time_never_goes_back_in_the_events() {
        let mut w = World::new();
        let seller = w.trader(0, 10);
        let buyer = w.trader(1_000_000, 0);
        w.now_ms = T0 + 5_000;
        w.rest(seller, Side::Sell, 1_000, 2);
        // A command stamped earlier (another gateway's clock) acts at the newest time seen.
        w.now_ms = T0 + 1_000;
        let fill = w.limit(buyer, Side::Buy, 1_000, 1).unwrap();
        assert!(!fill.is_empty());
        assert!(
            fill.iter().all(|e| e.timestamp_ms == T0 + 5_000),
            "{fill:?}"
        );
        w.now_ms = T0 + 9_000;
        let later = w.limit(buyer, Side::Buy, 1_000, 1).unwrap();
        assert!(
            later.iter().all(|e| e.timestamp_ms == T0 + 9_000),
            "{later:?}"
        );
        let times: Vec<i64> = w.events.iter().map(|e| e.timestamp_ms).collect();
        assert!(times.windows(2).all(|t| t[0] <= t[1]), "{times:?}");
    }

    #[test]
    fn every_event_has_the_next_global_sequence_number() {
        let mut w = World::new();
        let seller = w.trader(0, 10);
        let buyer = w.trader(1_000_000, 0);
        w.rest(seller, Side::Sell, 1_000, 2);
        let _ = w.limit(buyer, Side::Buy, 2_000, 1_000_000);
        w.limit(buyer, Side::Buy, 1_000, 3).unwrap();
        let seqs: Vec<u64> = w.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
        assert_eq!(w.engine.event_seq(), seqs.len() as u64);
        let fill = w
            .events
            .iter()
            .find(|e| matches!(e.kind, EventKind::Fill { .. }))
            .unwrap();
        assert!(
            matches!(fill.kind, EventKind::Fill { maker_fee, taker_fee, .. } if maker_fee.minor() == 2 && taker_fee.minor() == 4)
        );
    }
}
