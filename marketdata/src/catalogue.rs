//! The catalogue of listed products, with a search index that stays fast with millions of
//! products.
//!
//! Products get ids in the order they are first defined here (0, 1, 2, …). Search is by word
//! prefix, ignoring ASCII case: a product matches a query when every word of the query starts
//! a word of the product's symbol or name (`"app"` finds "Apple Inc.", `"inc app"` too,
//! `"ple"` does not). [`Catalogue::search`] answers in id order.
//!
//! Each product also has a [`Place`]: the feed partition whose message first defined it, and
//! its ordinal among the products that partition defined (0, 1, 2, …). Ids depend on how a
//! node's partitions interleaved; places do not: every node that read a partition from its
//! start gives its products the same ordinals. [`Catalogue::search_placed`] answers in place
//! order, which is what lets nodes that each hold some partitions merge their answers into
//! one listing (`bourse_gateway`'s catalogue).
//!
//! The index maps each 1-, 2- and 3-byte prefix of every word to the ids that have such a
//! word (ascending): a query looks up the first three bytes of each of its words, takes the
//! shortest of those lists, and checks its candidates from the cursor on.

use std::collections::{BTreeMap, BinaryHeap};
use std::hash::BuildHasher;

use rustc_hash::{FxBuildHasher, FxHashMap};

use crate::tick::{ProductDef, Symbol};

/// A listed product.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    /// The symbol.
    pub symbol: Symbol,
    /// The display name.
    pub name: Box<str>,
    /// Index of the quote currency in [`Catalogue::currency`].
    pub currency: u16,
    /// Price grid, 10^-8 units.
    pub tick_size: i64,
}

/// Where a product was first defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A message of this feed partition.
    Feed(u32),
    /// Bourse's engine (a product tradable on Bourse).
    Bourse,
}

/// A product's place: its origin's partition and its ordinal among that partition's products.
/// Places order the catalogue the same way on every node that read the partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Place {
    /// The feed partition ([`Place::BOURSE`] for the engine's products).
    pub partition: u32,
    /// The product's ordinal among the partition's, in the order first defined.
    pub ordinal: u32,
}

impl Place {
    /// The partition of the products Bourse's engine defined first.
    pub const BOURSE: u32 = u32::MAX;
}

/// The listed products and their search index.
#[derive(Default)]
pub struct Catalogue {
    products: Vec<Listing>,
    /// Each product's place, by id.
    places: Vec<Place>,
    /// Each partition's products, by ordinal (so ascending ids).
    by_partition: BTreeMap<u32, Vec<u32>>,
    /// Ids by symbol: the table holds only ids (4 bytes a product), hashed by their symbol.
    by_symbol: hashbrown::HashTable<u32>,
    hasher: FxBuildHasher,
    currencies: Vec<Symbol>,
    postings: FxHashMap<u32, Vec<u32>>,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogue")
            .field("products", &self.products.len())
            .field("currencies", &self.currencies)
            .finish_non_exhaustive()
    }
}

/// Why a definition was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    /// More than 65,536 currencies.
    #[error("too many currencies")]
    TooManyCurrencies,
    /// More than `u32::MAX` products.
    #[error("too many products")]
    TooManyProducts,
}

fn words(text: &str) -> impl Iterator<Item = &[u8]> {
    text.as_bytes()
        .split(|b| b.is_ascii() && !b.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
}

fn prefix_key(word: &[u8], len: usize) -> u32 {
    let mut key = (len as u32) << 24;
    for (i, b) in word.iter().take(len).enumerate() {
        key |= u32::from(b.to_ascii_lowercase()) << (8 * (2 - i));
    }
    key
}

fn starts_with_ignore_case(word: &[u8], prefix: &[u8]) -> bool {
    word.len() >= prefix.len() && word[..prefix.len()].eq_ignore_ascii_case(prefix)
}

impl Catalogue {
    /// Adds the product, first defined by `origin`, or updates its name, currency and tick
    /// size (its origin stays); returns its id and whether it is new.
    pub fn define(
        &mut self,
        def: &ProductDef,
        origin: Origin,
    ) -> Result<(u32, bool), CatalogueError> {
        let currency = match self.currencies.iter().position(|c| *c == def.currency) {
            Some(i) => i as u16,
            None => {
                let i = u16::try_from(self.currencies.len())
                    .map_err(|_| CatalogueError::TooManyCurrencies)?;
                self.currencies.push(def.currency);
                i
            }
        };
        let listing = Listing {
            symbol: def.symbol,
            name: def.name.as_str().into(),
            currency,
            tick_size: def.tick_size,
        };
        if let Some(id) = self.id(&def.symbol) {
            let renamed = self.products[id as usize].name != listing.name;
            self.products[id as usize] = listing;
            if renamed {
                self.index(id);
            }
            return Ok((id, false));
        }
        let id = u32::try_from(self.products.len()).map_err(|_| CatalogueError::TooManyProducts)?;
        let partition = match origin {
            Origin::Feed(p) => p.min(Place::BOURSE - 1),
            Origin::Bourse => Place::BOURSE,
        };
        let members = self.by_partition.entry(partition).or_default();
        self.places.push(Place {
            partition,
            ordinal: members.len() as u32,
        });
        members.push(id);
        self.products.push(listing);
        let (products, hasher) = (&self.products, &self.hasher);
        self.by_symbol
            .insert_unique(hasher.hash_one(def.symbol), id, |&i| {
                hasher.hash_one(products[i as usize].symbol)
            });
        self.index(id);
        Ok((id, true))
    }

    fn index(&mut self, id: u32) {
        let listing = &self.products[id as usize];
        let symbol = listing.symbol;
        let name = listing.name.clone();
        for word in words(symbol.as_str()).chain(words(&name)) {
            for len in 1..=word.len().min(3) {
                let list = self.postings.entry(prefix_key(word, len)).or_default();
                match list.last() {
                    Some(&last) if last == id => {}
                    Some(&last) if last > id => {
                        // A renamed product: keep the list ascending.
                        if let Err(at) = list.binary_search(&id) {
                            list.insert(at, id);
                        }
                    }
                    _ => list.push(id),
                }
            }
        }
    }

    /// The id of a symbol.
    pub fn id(&self, symbol: &Symbol) -> Option<u32> {
        self.by_symbol
            .find(self.hasher.hash_one(symbol), |&i| {
                self.products[i as usize].symbol == *symbol
            })
            .copied()
    }

    /// A product by id.
    pub fn get(&self, id: u32) -> Option<&Listing> {
        self.products.get(id as usize)
    }

    /// A product's place.
    pub fn place(&self, id: u32) -> Option<Place> {
        self.places.get(id as usize).copied()
    }

    /// Each product's origin, by id (what a checkpoint keeps).
    pub fn origins(&self) -> impl Iterator<Item = Origin> + '_ {
        self.places.iter().map(|p| match p.partition {
            Place::BOURSE => Origin::Bourse,
            p => Origin::Feed(p),
        })
    }

    /// The feed partitions that defined products, ascending.
    pub fn partitions(&self) -> Vec<u32> {
        self.by_partition
            .keys()
            .copied()
            .filter(|&p| p != Place::BOURSE)
            .collect()
    }

    /// The currency of a listing.
    pub fn currency(&self, listing: &Listing) -> Symbol {
        self.currencies[usize::from(listing.currency)]
    }

    /// How many products are listed.
    pub fn len(&self) -> usize {
        self.products.len()
    }

    /// Whether nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.products.is_empty()
    }

    /// Every listing, in id order.
    pub fn listings(&self) -> &[Listing] {
        &self.products
    }

    /// Every currency, in the order first seen.
    pub fn currencies(&self) -> &[Symbol] {
        &self.currencies
    }

    /// Whether product `id` matches `query` (see the module doc; an empty query matches).
    pub fn matches_query(&self, id: u32, query: &str) -> bool {
        let query: Vec<&[u8]> = words(query).collect();
        (id as usize) < self.products.len() && self.matches(id, &query)
    }

    fn matches(&self, id: u32, query: &[&[u8]]) -> bool {
        let listing = &self.products[id as usize];
        query.iter().all(|q| {
            words(listing.symbol.as_str())
                .chain(words(&listing.name))
                .any(|w| starts_with_ignore_case(w, q))
        })
    }

    /// Up to `limit` ids after `after` (exclusive) that match `query` (see the module doc),
    /// ascending. An empty query matches everything.
    pub fn search(&self, query: &str, after: Option<u32>, limit: usize) -> Vec<u32> {
        let start = after.map_or(0, |a| a as usize + 1);
        let query: Vec<&[u8]> = words(query).collect();
        if query.is_empty() {
            let end = start.saturating_add(limit).min(self.products.len());
            return (start..end.max(start)).map(|id| id as u32).collect();
        }
        // The shortest list of candidates: the rarest prefix among the query's words.
        let Some(list) = self.candidates(&query) else {
            return Vec::new();
        };
        let from = list.partition_point(|&id| (id as usize) < start);
        list[from..]
            .iter()
            .copied()
            .filter(|&id| self.matches(id, &query))
            .take(limit)
            .collect()
    }

    /// The candidates of `query`'s rarest prefix (ascending ids); `None` when a word's prefix
    /// is nobody's (no match).
    fn candidates(&self, query: &[&[u8]]) -> Option<&[u32]> {
        let mut shortest: Option<&Vec<u32>> = None;
        for word in query {
            let list = self.postings.get(&prefix_key(word, word.len().min(3)))?;
            if shortest.is_none_or(|s| list.len() < s.len()) {
                shortest = Some(list);
            }
        }
        shortest.map(Vec::as_slice)
    }

    /// Up to `limit` products first defined by the feed partitions `partitions` (ascending),
    /// after `after` (exclusive) in place order, that match `query` and are not `skip`ped;
    /// with their places, in place order.
    pub fn search_placed(
        &self,
        query: &str,
        partitions: &[u32],
        after: Option<Place>,
        limit: usize,
        skip: impl Fn(u32) -> bool,
    ) -> Vec<(Place, u32)> {
        let floor = after.map_or(0, |a| a.partition);
        let first_ordinal = |p: u32| match after {
            Some(a) if a.partition == p => a.ordinal.saturating_add(1),
            _ => 0,
        };
        let wanted: Vec<u32> = partitions
            .iter()
            .copied()
            .filter(|&p| p >= floor && p != Place::BOURSE)
            .collect();
        let query: Vec<&[u8]> = words(query).collect();
        let mut found = Vec::new();
        if limit == 0 {
            return found;
        }
        if query.is_empty() {
            for &p in &wanted {
                let Some(members) = self.by_partition.get(&p) else {
                    continue;
                };
                let start = first_ordinal(p) as usize;
                for (i, &id) in members.iter().enumerate().skip(start) {
                    if found.len() == limit {
                        return found;
                    }
                    if !skip(id) {
                        let place = Place {
                            partition: p,
                            ordinal: i as u32,
                        };
                        found.push((place, id));
                    }
                }
            }
            return found;
        }
        let Some(list) = self.candidates(&query) else {
            return found;
        };
        // Within a partition ids ascend with ordinals, so the scan starts at the smallest id
        // any wanted partition can still give.
        let Some(start) = wanted
            .iter()
            .filter_map(|&p| {
                let members = self.by_partition.get(&p)?;
                members.get(first_ordinal(p) as usize).copied()
            })
            .min()
        else {
            return found;
        };
        let mut best: BinaryHeap<(Place, u32)> = BinaryHeap::with_capacity(limit + 1);
        let from = list.partition_point(|&id| id < start);
        for &id in &list[from..] {
            let place = self.places[id as usize];
            if wanted.binary_search(&place.partition).is_err()
                || after.is_some_and(|a| place <= a)
                || best.len() == limit && best.peek().is_some_and(|top| place > top.0)
                || skip(id)
                || !self.matches(id, &query)
            {
                continue;
            }
            best.push((place, id));
            if best.len() > limit {
                best.pop();
            }
            // Full, and its last is in the first wanted partition: nothing later can come
            // before it (a later id of that partition has a later ordinal).
            if best.len() == limit && best.peek().is_some_and(|top| top.0.partition == wanted[0]) {
                break;
            }
        }
        best.into_sorted_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(symbol: &str, name: &str) -> ProductDef {
        ProductDef {
            symbol: Symbol::new(symbol).unwrap(),
            name: name.into(),
            currency: Symbol::new("USD").unwrap(),
            tick_size: 1_000_000,
        }
    }

    #[test]
    fn search_by_word_prefix_in_id_order_with_cursors() {
        let mut c = Catalogue::default();
        for (s, n) in [
            ("AAPL", "Apple Inc."),
            ("MSFT", "Microsoft Corporation"),
            ("APP", "AppLovin Corp"),
            ("PLE", "Example Holdings"),
            ("BRK.B", "Berkshire Hathaway Inc. Class B"),
        ] {
            c.define(&def(s, n), Origin::Feed(0)).unwrap();
        }
        fn symbols(c: &Catalogue, ids: Vec<u32>) -> Vec<String> {
            ids.iter()
                .map(|&id| c.get(id).unwrap().symbol.to_string())
                .collect()
        }
        assert_eq!(symbols(&c, c.search("app", None, 10)), ["AAPL", "APP"]);
        assert_eq!(symbols(&c, c.search("APPLE", None, 10)), ["AAPL"]);
        assert_eq!(symbols(&c, c.search("ple", None, 10)), ["PLE"]);
        assert_eq!(symbols(&c, c.search("inc", None, 10)), ["AAPL", "BRK.B"]);
        assert_eq!(symbols(&c, c.search("inc app", None, 10)), ["AAPL"]);
        assert_eq!(symbols(&c, c.search("brk", None, 10)), ["BRK.B"]);
        assert_eq!(symbols(&c, c.search("b", None, 10)), ["BRK.B"]);
        assert_eq!(symbols(&c, c.search("corp", None, 1)), ["MSFT"]);
        assert_eq!(symbols(&c, c.search("corp", Some(1), 1)), ["APP"]);
        assert_eq!(
            symbols(&c, c.search("corp", Some(2), 1)),
            Vec::<String>::new()
        );
        assert_eq!(symbols(&c, c.search("", Some(2), 2)), ["PLE", "BRK.B"]);
        assert_eq!(symbols(&c, c.search("  ", None, 1)), ["AAPL"]);
        assert!(c.search("zzz", None, 10).is_empty());
        // Redefining renames; the old name no longer matches, the id stays.
        assert_eq!(
            c.define(&def("AAPL", "Zebra Fruit"), Origin::Feed(3))
                .unwrap(),
            (0, false)
        );
        assert_eq!(
            symbols(&c, c.search("apple", None, 10)),
            Vec::<String>::new()
        );
        assert_eq!(symbols(&c, c.search("zeb", None, 10)), ["AAPL"]);
        assert_eq!(c.len(), 5);
    }

    #[test]
    fn search_agrees_with_a_scan() {
        use proptest::prelude::*;
        let words = [
            "alpha", "alps", "beta", "bet", "gamma", "al", "a", "zeta", "Alpine",
        ];
        proptest!(|(names in proptest::collection::vec(proptest::collection::vec(0..words.len(), 1..4), 1..60),
                    query in proptest::collection::vec(0..words.len(), 1..3),
                    cut in 1usize..6,
                    after in proptest::option::of(0u32..60))| {
            let mut c = Catalogue::default();
            for (i, name) in names.iter().enumerate() {
                let text: Vec<&str> = name.iter().map(|&w| words[w]).collect();
                c.define(&def(&format!("S{i}"), &text.join(" ")), Origin::Feed(0)).unwrap();
            }
            let q: Vec<String> = query.iter().map(|&w| words[w].chars().take(cut).collect()).collect();
            let q_text = q.join(" ");
            let expected: Vec<u32> = (0..names.len() as u32)
                .filter(|&id| after.is_none_or(|a| id > a))
                .filter(|&id| {
                    let listing = c.get(id).unwrap();
                    q.iter().all(|qw| {
                        listing.name.split(' ').chain([listing.symbol.as_str()])
                            .any(|w| w.to_ascii_lowercase().starts_with(&qw.to_ascii_lowercase()))
                    })
                })
                .collect();
            prop_assert_eq!(c.search(&q_text, after, 1000), expected);
        });
    }

    #[test]
    fn placed_search_agrees_with_a_scan_in_place_order() {
        use proptest::prelude::*;
        let words = ["alpha", "alps", "beta", "bet", "gamma", "al"];
        proptest!(|(products in proptest::collection::vec((0..words.len(), 0u32..4, any::<bool>()), 1..80),
                    query in proptest::option::of(0..words.len()),
                    wanted in proptest::collection::btree_set(0u32..4, 0..4),
                    after in proptest::option::of((0u32..4, 0u32..30)),
                    limit in 0usize..12,
                    skip_mod in 2u32..7)| {
            let mut c = Catalogue::default();
            for (i, &(word, partition, bourse)) in products.iter().enumerate() {
                let origin = if bourse && i % 3 == 0 { Origin::Bourse } else { Origin::Feed(partition) };
                c.define(&def(&format!("S{i}"), words[word]), origin).unwrap();
            }
            let q = query.map_or("", |w| &words[w][..2]);
            let after = after.map(|(partition, ordinal)| Place { partition, ordinal });
            let wanted: Vec<u32> = wanted.into_iter().collect();
            let skip = |id: u32| id % skip_mod == 1;
            let mut expected: Vec<(Place, u32)> = (0..c.len() as u32)
                .map(|id| (c.place(id).unwrap(), id))
                .filter(|(place, id)| {
                    wanted.contains(&place.partition)
                        && after.is_none_or(|a| *place > a)
                        && !skip(*id)
                        && c.get(*id).unwrap().name.starts_with(q)
                })
                .collect();
            expected.sort();
            expected.truncate(limit);
            prop_assert_eq!(c.search_placed(q, &wanted, after, limit, skip), expected);
        });
    }

    #[test]
    fn places_count_per_partition_in_the_order_first_defined() {
        let mut c = Catalogue::default();
        for (s, origin) in [
            ("A", Origin::Feed(2)),
            ("B", Origin::Bourse),
            ("C", Origin::Feed(2)),
            ("D", Origin::Feed(0)),
        ] {
            c.define(&def(s, s), origin).unwrap();
        }
        // Redefined from elsewhere: the place stays.
        c.define(&def("A", "A again"), Origin::Feed(1)).unwrap();
        let place = |partition, ordinal| Some(Place { partition, ordinal });
        assert_eq!(c.place(0), place(2, 0));
        assert_eq!(c.place(1), place(Place::BOURSE, 0));
        assert_eq!(c.place(2), place(2, 1));
        assert_eq!(c.place(3), place(0, 0));
        assert_eq!(c.partitions(), [0, 2]);
        let all = c.search_placed("", &[0, 1, 2], None, 10, |_| false);
        assert_eq!(all.iter().map(|&(_, id)| id).collect::<Vec<_>>(), [3, 0, 2]);
    }
}
