//! The catalogue of listed products, with a search index that stays fast with millions of
//! products.
//!
//! Products get ids in the order they are first defined (0, 1, 2, …), which is also the order
//! of the catalogue's pages. Search is by word prefix, ignoring ASCII case: a product matches
//! a query when every word of the query starts a word of the product's symbol or name
//! (`"app"` finds "Apple Inc.", `"inc app"` too, `"ple"` does not). Results come in id order,
//! so a page after a cursor is a binary search away.
//!
//! The index maps each 1-, 2- and 3-byte prefix of every word to the ids that have such a
//! word (ascending): a query looks up the first three bytes of each of its words, takes the
//! shortest of those lists, and checks its candidates from the cursor on.

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

/// The listed products and their search index.
#[derive(Default)]
pub struct Catalogue {
    products: Vec<Listing>,
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
    /// Adds the product, or updates its name, currency and tick size; returns its id and
    /// whether it is new.
    pub fn define(&mut self, def: &ProductDef) -> Result<(u32, bool), CatalogueError> {
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
        let mut shortest: Option<&Vec<u32>> = None;
        for word in &query {
            let Some(list) = self.postings.get(&prefix_key(word, word.len().min(3))) else {
                return Vec::new();
            };
            if shortest.is_none_or(|s| list.len() < s.len()) {
                shortest = Some(list);
            }
        }
        let Some(list) = shortest else {
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
            c.define(&def(s, n)).unwrap();
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
        assert_eq!(c.define(&def("AAPL", "Zebra Fruit")).unwrap(), (0, false));
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
                c.define(&def(&format!("S{i}"), &text.join(" "))).unwrap();
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
}
