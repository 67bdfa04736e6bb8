//! An engine rebuilt from its image (directly, and through the snapshot bytes) has the same
//! hash and answers every later command exactly like the original.

use bourse_engine::*;
use bourse_snapshots::{decode, encode};

use crate::stream::engine_after;

fn assert_same_state(a: &Engine, b: &Engine, context: &str) {
    assert_eq!(a.state_hash(), b.state_hash(), "{context}: hash");
    assert_eq!(a.event_seq(), b.event_seq(), "{context}: event seq");
    assert_eq!(a.to_image(), b.to_image(), "{context}: image");
}

#[test]
fn image_round_trip_keeps_hash_and_behaviour() {
    for seed in [1u64, 2, 3] {
        let (original, mut stream) = engine_after(seed, 3_000);
        let image = original.to_image();
        let n_orders: usize = image
            .books
            .iter()
            .map(|b| b.bids.len() + b.asks.len())
            .sum();
        assert!(n_orders > 20, "seed {seed}: only {n_orders} resting orders");
        assert!(!image.funds_requests.is_empty());
        assert!(image.accounts.iter().any(|a| !a.volumes.is_empty()));
        assert!(
            image.books.iter().any(|b| b
                .bids
                .iter()
                .chain(&b.asks)
                .any(|o| o.client_order_id.is_some())),
            "seed {seed}: no client order ids resting"
        );

        let direct = Engine::from_image(image).expect("valid image");
        let bytes = encode(77, &original.to_image()).unwrap().to_bytes();
        let (seq, decoded) = decode(&bytes).expect("valid snapshot");
        assert_eq!(seq, 77);
        // Misaligned input is copied to an aligned buffer first.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        let (_, from_shifted) = decode(&shifted[1..]).expect("valid snapshot, misaligned");
        assert_same_state(&original, &from_shifted, "misaligned");
        assert_same_state(&original, &direct, "direct");
        assert_same_state(&original, &decoded, "decoded");

        let mut engines = [original, direct, decoded];
        let mut n_events = 0;
        for i in 0..2_000 {
            let command = stream.next_command();
            let expected = stream.apply(&mut engines[0], &command);
            n_events += expected.1.len();
            for (k, engine) in engines[1..].iter_mut().enumerate() {
                let mut events = Vec::new();
                let result = engine.apply(&command, &mut events);
                assert_eq!(
                    (result, events),
                    expected,
                    "seed {seed}: command {i} ({command:?}), rebuilt engine {k}"
                );
            }
        }
        assert!(n_events > 1_000, "seed {seed}: only {n_events} events");
        assert_same_state(&engines[0], &engines[1], "after the stream");
        assert_same_state(&engines[0], &engines[2], "after the stream");
    }
}

#[test]
fn an_empty_engine_round_trips() {
    let engine = Engine::new(Limits::default());
    let rebuilt = Engine::from_image(engine.to_image()).unwrap();
    assert_same_state(&engine, &rebuilt, "empty");
}

fn first_order(image: &mut EngineImage) -> &mut OrderImage {
    image
        .books
        .iter_mut()
        .flat_map(|b| b.bids.iter_mut().chain(b.asks.iter_mut()))
        .next()
        .expect("an order")
}

/// Invalid images are refused with a typed error, not a panic.
#[test]
fn inconsistent_images_are_refused() {
    let (engine, _) = engine_after(5, 1_500);
    let good = engine.to_image();
    type Mutation = fn(&mut EngineImage);
    let mutations: Vec<(&str, Mutation)> = vec![
        ("no accounts", |i| i.accounts.clear()),
        ("orders_total_max NIL", |i| {
            i.limits.orders_total_max = u32::MAX
        }),
        ("asset code", |i| i.assets[0].code.bytes[0] = b' '),
        ("asset padding", |i| i.assets[0].code.bytes[11] = b'A'),
        ("asset code length", |i| i.assets[0].code.len = 200),
        ("duplicate asset", |i| i.assets[1].code = i.assets[0].code),
        ("supply", |i| i.assets[0].total_supply += 1),
        ("product asset", |i| i.products[0].base = 999),
        ("product status", |i| i.products[0].status = 9),
        ("fee tiers", |i| i.products[0].fee_tiers.clear()),
        ("book count", |i| {
            i.books.pop();
        }),
        ("funds order", |i| i.funds_requests.reverse()),
        ("funds count", |i| i.accounts[1].n_funds_requests += 1),
        ("balance order", |i| {
            let b = i
                .accounts
                .iter_mut()
                .find(|a| a.balances.len() > 1)
                .unwrap();
            b.balances.reverse();
        }),
        ("negative balance", |i| {
            i.accounts[1].balances[0].available = -1
        }),
        ("open count", |i| i.accounts[1].n_open_orders += 1),
        ("volume total", |i| {
            let a = i
                .accounts
                .iter_mut()
                .find(|a| !a.volumes.is_empty())
                .unwrap();
            a.volumes[0].total += 1;
        }),
        ("huge bucket", |i| {
            let a = i
                .accounts
                .iter_mut()
                .find(|a| !a.volumes.is_empty())
                .unwrap();
            a.volumes[0].buckets = [i64::MAX; VOLUME_WINDOW_DAYS];
        }),
        ("next order id", |i| i.next_order_id = 1),
        ("event seq", |i| i.event_seq = u64::MAX),
        ("order held", |i| first_order(i).held += 1),
        ("order price", |i| first_order(i).price = 0),
        ("order account", |i| first_order(i).account = 0),
        ("order tif", |i| first_order(i).time_in_force = 1),
        ("order remaining", |i| first_order(i).remaining = i64::MAX),
        ("order cid", |i| {
            first_order(i).client_order_id = Some(ShortImage {
                len: 0,
                bytes: [0; 36],
            })
        }),
        ("duplicate order", |i| {
            let o = first_order(i).clone();
            let b = i
                .books
                .iter_mut()
                .find(|b| !b.bids.is_empty() || !b.asks.is_empty())
                .unwrap();
            b.bids.push(o.clone());
            b.asks.push(o);
        }),
        ("priority", |i| {
            let b = i
                .books
                .iter_mut()
                .find(|b| b.bids.windows(2).any(|w| w[0].price != w[1].price));
            b.unwrap().bids.reverse();
        }),
    ];
    for (name, mutate) in mutations {
        let mut image = good.clone();
        mutate(&mut image);
        assert!(
            Engine::from_image(image).is_err(),
            "mutation {name:?} was accepted"
        );
    }
    assert!(Engine::from_image(good).is_ok());
}

/// An engine replaced by its rebuilt image every 97 commands ends exactly like one that never
/// was, event for event.
#[test]
fn rebuilding_again_and_again_changes_nothing() {
    for seed in [10u64, 11] {
        let (mut reference, mut stream) = engine_after(seed, 0);
        let mut rebuilt = Engine::from_image(reference.to_image()).unwrap();
        for i in 0..6_000 {
            let command = stream.next_command();
            let expected = stream.apply(&mut reference, &command);
            let mut events = Vec::new();
            let result = rebuilt.apply(&command, &mut events);
            assert_eq!((result, events), expected, "seed {seed}: command {i}");
            if i % 97 == 0 {
                let image = rebuilt.to_image();
                rebuilt = Engine::from_image(image).expect("valid image");
                assert_eq!(rebuilt.state_hash(), reference.state_hash());
            }
        }
        assert_same_state(&reference, &rebuilt, "end");
    }
}
