//! Where the market data's ticks come from, and Bourse's products in its catalogue.
//!
//! - One node: the embedded exchange simulator, or the Kafka topic (`feed = kafka`).
//! - A cluster (`cluster = kafka`) with `feed = sim`: the simulator must run once, so the
//!   roles node publishes its ticks to the Kafka topic (`kafka-topic` on `kafka-brokers`, as
//!   `bourse feed-sim` does) and every node, the roles node too, consumes the whole topic
//!   itself: all nodes chart the same ticks. With `feed = kafka` every node consumes the
//!   topic (all partitions, a consumer group of its own).
//! - Bourse's own products are defined in the market data at start and again whenever the
//!   engine has more of them ([`Feed::define_new_products`]): a replica applies the default
//!   catalogue from the log after it started.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use bourse_market_service::{Input, MarketService};
use bourse_pipeline::Handle;

use crate::feed_sim::FeedSimArgs;
use crate::settings::{FeedMode, ServeConfig};

/// The running feed (see the module docs).
pub(crate) struct Feed {
    /// Bourse products defined in the market data so far.
    defined: usize,
    /// The simulator publishing to Kafka (a cluster's roles node).
    publisher: Option<(Arc<AtomicBool>, JoinHandle<anyhow::Result<()>>)>,
    /// `market-tier = partitioned`: the tick topic's partitions, read as the placement gives
    /// them (`bourse_gateway::tier`).
    pub(crate) partitioned: Option<u32>,
}

impl Feed {
    /// Defines the engine's products in the market data, then starts the feed. `cluster`:
    /// `None` on a single node, else whether this node runs the once-only roles.
    pub(crate) fn start(
        config: &ServeConfig,
        market: &MarketService,
        handle: &Handle,
        cluster: Option<(u16, bool)>,
    ) -> Result<Feed, String> {
        let mut feed = Feed {
            defined: 0,
            publisher: None,
            partitioned: None,
        };
        feed.define_new_products(market, handle)?;
        match (config.feed, cluster) {
            (FeedMode::Off, _) => {}
            (FeedMode::Sim, None) => {
                let mut products = crate::catalogue::simulated();
                products.extend(bourse_marketdata::sim::Simulator::synthetic(
                    config.sim_products,
                ));
                tracing::info!(
                    "market data: the embedded exchange simulator, {} products, {} ticks/s",
                    products.len(),
                    config.sim_rate
                );
                market.start_simulator(products, config.sim_rate)?;
            }
            (FeedMode::Kafka, None) => {
                let brokers = brokers(config)?;
                tracing::info!(
                    "market data: Kafka topic {} on {brokers}, group {}",
                    config.kafka_topic,
                    config.kafka_group
                );
                market.start_kafka(
                    brokers,
                    &config.kafka_topic,
                    &config.kafka_group,
                    if config.kafka_assignment_group {
                        bourse_feed::AssignmentMode::Group
                    } else {
                        bourse_feed::AssignmentMode::AllPartitions
                    },
                    config.kafka_dead_letter.clone(),
                )?;
            }
            (mode, Some((node, roles))) => {
                let brokers = brokers(config)?;
                bourse_feed::create_topic(brokers, &config.kafka_topic, config.tick_partitions)
                    .map_err(|e| format!("cannot create the tick topic: {e}"))?;
                if config.market_partitioned {
                    let counted = bourse_feed::partition_count(
                        brokers,
                        &config.kafka_topic,
                        std::time::Duration::from_secs(30),
                    )
                    .map_err(|e| format!("cannot count the tick topic's partitions: {e}"))?
                    .ok_or("the tick topic has no partitions")?;
                    feed.partitioned = Some(
                        u32::try_from(counted)
                            .map_err(|_| format!("{counted} partitions of the tick topic"))?,
                    );
                }
                if mode == FeedMode::Sim && roles {
                    feed.publisher = Some(publish_simulator(config, brokers)?);
                }
                let group = format!("{}-node{node}", config.kafka_group);
                tracing::info!(
                    "market data: {} of the Kafka topic {} on {brokers} (group {group}){}",
                    match feed.partitioned {
                        Some(n) => format!("the partitions this node holds, of {n},"),
                        None => "every partition".to_owned(),
                    },
                    config.kafka_topic,
                    if feed.publisher.is_some() {
                        ", which this node's simulator publishes to"
                    } else {
                        ""
                    }
                );
                market.start_kafka(
                    brokers,
                    &config.kafka_topic,
                    &group,
                    if feed.partitioned.is_some() {
                        bourse_feed::AssignmentMode::Given
                    } else {
                        bourse_feed::AssignmentMode::AllPartitions
                    },
                    config.kafka_dead_letter.clone(),
                )?;
            }
        }
        Ok(feed)
    }

    /// Defines Bourse's products in the market data if the engine has more than were defined.
    pub(crate) fn define_new_products(
        &mut self,
        market: &MarketService,
        handle: &Handle,
    ) -> Result<(), String> {
        let count = handle
            .try_query(bourse_engine::Engine::n_products)
            .and_then(|ticket| ticket.wait())
            .map_err(|e| format!("cannot read the engine's products: {e}"))?;
        if count == self.defined {
            return Ok(());
        }
        let defs = handle
            .try_query(bourse_market_service::engine_products)
            .and_then(|ticket| ticket.wait())
            .map_err(|e| format!("cannot read the engine's products: {e}"))?;
        let defined = defs.len();
        market
            .sender()
            .send(Input::Define(defs))
            .map_err(|_| "the market-data thread has stopped".to_string())?;
        self.defined = defined.max(count);
        Ok(())
    }

    /// Stops the simulator's publisher, if this node runs it.
    pub(crate) fn stop(self) {
        if let Some((stop, thread)) = self.publisher {
            stop.store(true, Ordering::Relaxed);
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!("the simulator's publisher failed: {error:#}"),
                Err(_) => tracing::warn!("the simulator's publisher panicked"),
            }
        }
    }
}

fn brokers(config: &ServeConfig) -> Result<&str, String> {
    config
        .kafka_brokers
        .as_deref()
        .ok_or_else(|| "feed = kafka and cluster = kafka need kafka-brokers".to_owned())
}

/// The embedded simulator publishing to the tick topic on its own thread.
fn publish_simulator(
    config: &ServeConfig,
    brokers: &str,
) -> Result<(Arc<AtomicBool>, JoinHandle<anyhow::Result<()>>), String> {
    let args = FeedSimArgs {
        brokers: brokers.to_owned(),
        topic: config.kafka_topic.clone(),
        partitions: config.tick_partitions,
        products: config.sim_products,
        rate: config.sim_rate,
        batch: 1,
        count: 0,
        seed: 1,
    };
    tracing::info!(
        "market data: this node runs the exchange simulator for the cluster, {} ticks/s to {}",
        config.sim_rate,
        config.kafka_topic
    );
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("bourse-sim-publisher".into())
        .spawn(move || crate::feed_sim::publish(&args, &flag))
        .map_err(|e| format!("cannot start the simulator's publisher: {e}"))?;
    Ok((stop, thread))
}
