//! The catalogue's listing order, and its pages when the market data is spread over nodes
//! (`market-tier = partitioned`, `tier.rs`).
//!
//! **The order** is the same on every node, whatever it holds:
//! 1. the products tradable on Bourse, in the engine's order (its product ids);
//! 2. then the feed's other products by place (`bourse_marketdata::catalogue::Place`): the
//!    partition of the tick topic that first defined them, then the order it defined them
//!    in. Every node that read a partition gives its products the same places.
//!
//! **The cursor** is the last product's key: its engine id for a tradable product, else
//! `(partition + 1) << 32 | ordinal`. It names a position, not a product, so it stays valid
//! while products are added: a page never repeats or skips a product it had already passed.
//!
//! **Across nodes** (scatter-gather): the node asked lists the tradable products itself (every
//! node has the engine), then asks, for every partition at or after the cursor's, one node
//! that holds it: itself for the partitions it holds ready, else each partition's owner, all
//! at once (`GET /api/v1/cluster/products`, one request per node). Each answers its first
//! `limit + 1` products after the cursor, in order; the merge of those is the page. A
//! partition whose node did not answer or was not ready is asked of its next holder; with no
//! holder left the page is 503, never a page with a hole in it.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bourse_cluster::Member;
use bourse_marketdata::Market;
use bourse_marketdata::catalogue::Place;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::convert::Target;
use crate::error::{ApiError, bad_request, market_unavailable as unavailable};
use crate::listing::{Listing, PageRates, listing_json};
use crate::query::{ApiQuery, Count, Cursor};
use crate::render::{self, ProductUnits};
use crate::schema::CurrencyCode;
use crate::state::AppState;
use crate::tier::{FORWARDED, MarketTier};

/// How long a node's part of a page may take.
const PART_TIMEOUT: Duration = Duration::from_secs(10);

/// The most bytes of a node's part read (500 listings are well under a megabyte).
const PART_BODY_MAX: usize = 16 << 20;

/// The largest key: `(u32::MAX + 1) << 32 | u32::MAX` is never reached, but a cursor is an
/// `i64` in the API.
pub(crate) const KEY_MAX: u64 = i64::MAX as u64;

/// The key of a feed product's place.
fn place_key(place: Place) -> u64 {
    ((u64::from(place.partition) + 1) << 32) | u64::from(place.ordinal)
}

/// The place a key at or after which feed products are listed (`None`: from the first).
fn key_place(key: u64) -> Option<Place> {
    let partition = u32::try_from((key >> 32).checked_sub(1)?).ok()?;
    Some(Place {
        partition,
        ordinal: key as u32,
    })
}

/// The symbols of the products tradable on Bourse, in the engine's order.
pub(crate) async fn tradable_symbols(state: &AppState) -> Result<Vec<String>, ApiError> {
    state
        .query(|engine| {
            (0..engine.n_products() as u32)
                .filter_map(|id| {
                    let units = ProductUnits::of(engine, bourse_engine::ProductId::new(id))?;
                    Some(units.symbol())
                })
                .collect()
        })
        .await
}

/// A page's products found here: (key, market-data id), in order.
type Found = Vec<(u64, u32)>;

/// The tradable products after `after` that match `query`, up to `limit`.
fn tradable_page(
    market: &Market,
    tradable: &[String],
    query: &str,
    after: Option<u64>,
    limit: usize,
) -> Found {
    let catalogue = market.catalogue();
    tradable
        .iter()
        .enumerate()
        .map(|(engine_id, symbol)| (engine_id as u64, symbol))
        .filter(|&(key, _)| after.is_none_or(|a| key > a))
        .filter_map(|(key, symbol)| {
            let id = catalogue.id(&bourse_marketdata::tick::Symbol::new(symbol)?)?;
            catalogue.matches_query(id, query).then_some((key, id))
        })
        .take(limit)
        .collect()
}

/// The feed's products of `partitions` (ascending) after `after` that match `query` and are
/// not tradable, up to `limit`.
fn feed_page(
    market: &Market,
    tradable: &HashSet<&str>,
    query: &str,
    partitions: &[u32],
    after: Option<u64>,
    limit: usize,
) -> Found {
    let catalogue = market.catalogue();
    let after = after.and_then(key_place);
    catalogue
        .search_placed(query, partitions, after, limit, |id| {
            catalogue
                .get(id)
                .is_some_and(|l| tradable.contains(l.symbol.as_str()))
        })
        .into_iter()
        .map(|(place, id)| (place_key(place), id))
        .collect()
}

/// The listings of `found`, rendered here.
fn render_found(
    market: &Market,
    found: &Found,
    target: Option<&Target>,
) -> Result<Vec<(u64, Listing)>, ApiError> {
    let mut reader = market.reader().map_err(unavailable)?;
    let mut rates = target.cloned().map(PageRates::new);
    let mut out = Vec::with_capacity(found.len());
    for &(key, id) in found {
        if let Some(listing) = listing_json(market, &mut reader, id, rates.as_mut())? {
            out.push((key, listing));
        }
    }
    Ok(out)
}

/// A catalogue page: up to `limit` products after the cursor `after`, in listing order, and
/// the next page's cursor. On one node (or `market-tier = all`) every product is here; with
/// the tier, the partitions are asked of the nodes holding them (module docs).
pub(crate) async fn page(
    state: &AppState,
    query: &str,
    after: Option<u64>,
    limit: usize,
    target: Option<Target>,
) -> Result<(Vec<serde_json::Value>, Option<u64>), ApiError> {
    let tradable = tradable_symbols(state).await?;
    let tier = state.cluster.as_ref().and_then(|c| c.market_tier.clone());
    let want = limit.saturating_add(1);
    let (mut listed, local_partitions) = {
        let market = state.market.read().map_err(unavailable)?;
        let mut found = tradable_page(&market, &tradable, query, after, want);
        let partitions = match &tier {
            None => market.catalogue().partitions(),
            Some(tier) => (0..tier.partitions()).filter(|&p| tier.ready(p)).collect(),
        };
        if found.len() < want {
            let names: HashSet<&str> = tradable.iter().map(String::as_str).collect();
            let rest = want - found.len();
            found.extend(feed_page(&market, &names, query, &partitions, after, rest));
        }
        (
            to_values(render_found(&market, &found, target.as_ref())?)?,
            partitions,
        )
    };
    // Tradable products alone fill the page: no feed product is on it.
    let tradable_full = listed.len() == want && listed[want - 1].0 < 1 << 32;
    if let Some(tier) = tier
        && !tradable_full
    {
        let floor = after.and_then(key_place).map_or(0, |p| p.partition);
        // A full page from this node's partitions ends at a partition; another node's
        // partitions after that one cannot be on it.
        let ceiling = if listed.len() == want {
            key_place(listed[want - 1].0).map_or(0, |p| p.partition)
        } else {
            tier.partitions().saturating_sub(1)
        };
        let remote: Vec<u32> = (floor..=ceiling)
            .filter(|p| *p < tier.partitions() && !local_partitions.contains(p))
            .collect();
        // Each node's products may all come before this node's: ask each for a whole page.
        listed.extend(gather(&tier, &remote, query, after, want, target.as_ref()).await?);
        listed.sort_by_key(|(key, _)| *key);
        listed.truncate(want);
    }
    let next = (listed.len() > limit).then(|| listed[limit - 1].0);
    listed.truncate(limit);
    Ok((listed.into_iter().map(|(_, v)| v).collect(), next))
}

fn to_values(listed: Vec<(u64, Listing)>) -> Result<Vec<(u64, serde_json::Value)>, ApiError> {
    listed
        .into_iter()
        .map(|(key, listing)| {
            let value = serde_json::to_value(listing).map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            })?;
            Ok((key, value))
        })
        .collect()
}

/// Asks the holders of `partitions` for their products after `after`, `limit` at most from
/// each node; each partition of a node that fails is asked of its next holder.
async fn gather(
    tier: &MarketTier,
    partitions: &[u32],
    query: &str,
    after: Option<u64>,
    limit: usize,
    target: Option<&Target>,
) -> Result<Vec<(u64, serde_json::Value)>, ApiError> {
    let holders: BTreeMap<u32, Vec<Member>> = partitions
        .iter()
        .map(|&p| (p, tier.holders_of_partition(p)))
        .collect();
    let mut tries: BTreeMap<u32, usize> = partitions.iter().map(|&p| (p, 0)).collect();
    let mut listed = Vec::new();
    let mut why = String::new();
    while !tries.is_empty() {
        // Each partition goes to its next untried holder; a node gets all of its at once.
        let mut asks: BTreeMap<u16, (Member, Vec<u32>)> = BTreeMap::new();
        for (&p, &tried) in &tries {
            let Some(member) = holders.get(&p).and_then(|h| h.get(tried)) else {
                return Err(no_holder(p, &why));
            };
            asks.entry(member.node)
                .or_insert_with(|| (member.clone(), Vec::new()))
                .1
                .push(p);
        }
        let answers = futures_util::future::join_all(
            asks.into_values()
                .map(|(member, ps)| ask(member, ps, query, after, limit, target)),
        )
        .await;
        for (member, asked, answer) in answers {
            match answer {
                Ok(part) => {
                    listed.extend(part.items.into_iter().map(|i| (i.key, i.product)));
                    for p in asked {
                        if part.not_ready.contains(&p) {
                            why = format!("node {} has not caught up with it", member.node);
                            *tries.entry(p).or_default() += 1;
                        } else {
                            tries.remove(&p);
                        }
                    }
                }
                Err(e) => {
                    why = format!("node {} ({}) did not answer: {e}", member.node, member.addr);
                    for p in asked {
                        *tries.entry(p).or_default() += 1;
                    }
                }
            }
        }
    }
    Ok(listed)
}

/// One node's part of a page.
async fn ask(
    member: Member,
    partitions: Vec<u32>,
    query: &str,
    after: Option<u64>,
    limit: usize,
    target: Option<&Target>,
) -> (Member, Vec<u32>, Result<CataloguePart, String>) {
    let list: Vec<String> = partitions.iter().map(u32::to_string).collect();
    let mut path = format!(
        "/api/v1/cluster/products?partitions={}&limit={limit}&currency={}&query={}",
        list.join(","),
        target.map_or("own", |t| &t.currency),
        percent_encoding::utf8_percent_encode(query, percent_encoding::NON_ALPHANUMERIC)
    );
    if let Some(after) = after {
        path.push_str(&format!("&cursor={after}"));
    }
    let asked = tokio::time::timeout(
        PART_TIMEOUT,
        crate::peer::get_with(
            &member.addr,
            &path,
            None,
            &[(FORWARDED, "1")],
            PART_BODY_MAX,
        ),
    )
    .await;
    let answer = match asked {
        Err(_) => Err("no answer in time".to_string()),
        Ok(Err(e)) => Err(e),
        Ok(Ok(answer)) if answer.status != StatusCode::OK => Err(format!(
            "{}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        )),
        Ok(Ok(answer)) => serde_json::from_slice(&answer.body).map_err(|e| e.to_string()),
    };
    (member, partitions, answer)
}

fn no_holder(partition: u32, why: &str) -> ApiError {
    let mut message = format!("no live node answered for partition {partition} of the catalogue");
    if !why.is_empty() {
        message.push_str(&format!(" ({why})"));
    }
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
}

/// `?partitions=&query=&limit=&cursor=&currency=` of `GET /cluster/products`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct PartQuery {
    /// The partitions asked, comma-separated (at most 4,096).
    partitions: String,
    /// As `GET /products`'s.
    #[param(max_length = 64)]
    query: Option<String>,
    /// Products at most, 1 to 501.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 501)]
    limit: Option<Count<{ render::PAGE_MAX + 1 }>>,
    /// The listing key after which to list.
    #[param(value_type = Option<i64>, minimum = 0)]
    cursor: Option<Cursor<KEY_MAX>>,
    /// The currency of the prices, or `own`.
    #[param(value_type = Option<CurrencyCode>)]
    currency: Option<String>,
}

/// A product of a node's part, with its listing key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PartItem {
    key: u64,
    #[schema(value_type = Listing)]
    product: serde_json::Value,
}

/// A node's part of a catalogue page.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CataloguePart {
    /// The products of the partitions asked that this node holds ready, in listing order.
    items: Vec<PartItem>,
    /// The partitions asked that this node does not hold caught up (ask another holder).
    not_ready: Vec<u32>,
}

/// `GET /cluster/products`: this node's part of a catalogue page, for the node that gathers
/// it (`market-tier = partitioned`).
#[utoipa::path(
    get,
    path = "/api/v1/cluster/products",
    tag = "cluster",
    params(PartQuery),
    responses(
        (status = 200, description = "the feed products of the partitions asked that this node holds ready, in listing order", body = CataloguePart),
        (status = 400, description = "`invalid_request`", body = crate::openapi::ErrorBody),
        (status = 404, description = "`not_partitioned`: this node's market data is not spread over nodes", body = crate::openapi::ErrorBody),
    )
)]
pub(crate) async fn part(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<PartQuery>,
) -> Result<Response, ApiError> {
    let Some(tier) = state.cluster.as_ref().and_then(|c| c.market_tier.clone()) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_partitioned",
            "this node's market data is not spread over nodes",
        ));
    };
    let mut asked = Vec::new();
    for text in q.partitions.split(',').take(4097) {
        match text.parse::<u32>() {
            Ok(p) if p < tier.partitions() => asked.push(p),
            _ => return Err(bad_request(format!("{text:?} is not a partition"))),
        }
    }
    asked.sort_unstable();
    asked.dedup();
    let target = crate::convert::for_public(&state, &headers, q.currency.as_deref())
        .await?
        .map(|t| Target {
            explicit: false,
            ..t
        });
    let query = q.query.unwrap_or_default();
    let limit = q.limit.map_or(render::PAGE_DEFAULT, |Count(n)| n);
    let after = q.cursor.map(|Cursor(c)| c);
    let tradable = tradable_symbols(&state).await?;
    let (ready, not_ready): (Vec<u32>, Vec<u32>) = asked.iter().partition(|&&p| tier.ready(p));
    let items = {
        let market = state.market.read().map_err(unavailable)?;
        let names: HashSet<&str> = tradable.iter().map(String::as_str).collect();
        let found = feed_page(&market, &names, &query, &ready, after, limit);
        to_values(render_found(&market, &found, target.as_ref())?)?
    };
    let part = CataloguePart {
        items: items
            .into_iter()
            .map(|(key, product)| PartItem { key, product })
            .collect(),
        not_ready,
    };
    let mut response = Json(part).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}
