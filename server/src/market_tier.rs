//! `market-tier = partitioned` in a cluster: this node's heartbeats on the members topic and
//! the placement of the tick topic's partitions over the live nodes
//! (`bourse_gateway::tier`, docs/market-data.md "Across nodes").

use std::sync::Arc;

use bourse_cluster::{Member, Members, MembersConfig, members_topic};
use bourse_gateway::tier::{MarketTier, TierConfig};
use bourse_market_service::MarketService;

use crate::settings::ServeConfig;

/// Starts the heartbeats and the placement over `partitions` partitions, handing this
/// node's to `market`'s consumer (started with `AssignmentMode::Given`).
pub(crate) fn start_market_tier(
    config: &ServeConfig,
    partitions: u32,
    market: &Arc<MarketService>,
) -> Result<Arc<MarketTier>, String> {
    let brokers = config
        .kafka_brokers
        .as_deref()
        .ok_or("market-tier = partitioned needs kafka-brokers")?;
    let addr = match (&config.cluster_advertise, config.http_addr) {
        (Some(url), _) => url.clone(),
        (None, Some(addr)) if !addr.ip().is_unspecified() => format!("http://{addr}"),
        (None, Some(addr)) => {
            return Err(format!(
                "market-tier = partitioned: http-addr {addr} is not an address the other nodes \
                 can reach; set cluster-advertise"
            ));
        }
        (None, None) => {
            return Err(
                "market-tier = partitioned needs the HTTP API (http-addr): the other nodes ask \
                 this one for the products it holds"
                    .into(),
            );
        }
    };
    let topic = members_topic(&config.cluster_prefix);
    bourse_feed::create_topic(brokers, &topic, 1)
        .map_err(|e| format!("cannot create the members topic {topic}: {e}"))?;
    let members = Members::start(MembersConfig::new(
        brokers,
        &topic,
        Member {
            node: config.node_id,
            addr: addr.clone(),
        },
    ))
    .map_err(|e| format!("cannot start the members' heartbeats: {e}"))?;
    let mut pinned: Vec<u32> = config
        .rate_pairs
        .as_ref()
        .map_or(&[][..], |pairs| &pairs.0[..])
        .iter()
        .map(|pair| {
            config
                .tick_partitioner
                .partition(pair.as_bytes(), partitions)
        })
        .collect();
    pinned.sort_unstable();
    pinned.dedup();
    let tier = MarketTier::start(
        TierConfig {
            me: config.node_id,
            partitions,
            copies: config.market_copies,
            partitioner: config.tick_partitioner,
            pinned: pinned.clone(),
        },
        members,
        Arc::clone(market),
    )?;
    tracing::info!(
        "market tier: node {} at {addr}, {partitions} partitions, {} copies each ({:?} \
         partitioner), the rates' partitions {pinned:?} on every node, members on {topic}",
        config.node_id,
        config.market_copies,
        config.tick_partitioner
    );
    Ok(tier)
}
