//! The settings of `bourse serve` and where they come from.
//!
//! Each setting is declared once, as a field of [`ServeConfig`]: its clap attributes give the
//! flag (`--ring-size`), the environment variable (`BOURSE_RING_SIZE`), the default and the
//! parser that checks the value, and its doc comment is the `--help` line. The key in the TOML
//! file is the flag's name (`ring_size` works there too). A value is taken from the first of:
//!
//! 1. a flag (`--ring-size 1024` or `--ring-size=1024`; a repeated flag: the last one),
//! 2. the environment (`BOURSE_RING_SIZE=1024`; an empty variable counts as unset),
//! 3. the TOML file named by `--config FILE` or `BOURSE_CONFIG`,
//! 4. the default (`docs/serve.md` has the table).
//!
//! clap does 1, 2 and 4. The file's values go in as the defaults, so clap's own precedence
//! (command line, environment, default) is exactly the one above, and
//! `ArgMatches::value_source` says where each value came from. Every layer goes through the
//! same clap parsers: the variables that are set, and then the file's keys, are parsed on
//! their own first, so that a bad value is refused naming the variable or the file's key
//! (clap would name the flag), even where a higher layer would have overridden it. An unknown
//! flag or key is refused too. [`load`] does all this and [`Loaded::describe`] prints the
//! outcome.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bourse_journal::{Durability, JournalConfig};
use bourse_pipeline::{PipelineConfig, SnapshotMode, SyncMode, Topology};
use bourse_store::{Retention, SegmentFill, StoreConfig};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, CommandFactory, FromArgMatches, Parser};

mod parsers;
pub use parsers::RatePairs;
use parsers::*;

/// Other nodes' HTTP base addresses (`http://host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peers(pub Vec<String>);

/// The highest node id.
pub const NODE_ID_MAX: u64 = 1023;

/// The most partitions a tick topic may have (the feed consumer's table).
pub const TICK_PARTITIONS_MAX: u64 = bourse_feed::PARTITIONS_MAX as u64;

/// Where the configuration file is named: `--config FILE` or this variable.
pub const CONFIG_ENV: &str = "BOURSE_CONFIG";

/// The help heading of the settings; it is also how [`settings`] tells them from `--config`
/// and `--help`.
const HEADING: &str = "Settings";

/// What `bourse serve --help` says above the settings.
const ABOUT: &str = "Runs the Bourse server: recovers the data directory (snapshot + journal), \
starts the pipeline and runs until SIGINT or SIGTERM, then drains the ring, commits and (by \
default) writes a snapshot.

Each setting is a flag --KEY, an environment variable and a key in the TOML file (--config FILE \
or BOURSE_CONFIG); flags win over the environment, the environment over the file, the file over \
the defaults. Numbers may use _ separators (1_000_000); booleans are true or false (also yes/no, \
on/off, 1/0).";

/// `bourse serve`'s command line: the configuration file and the settings.
#[derive(Debug, Parser)]
#[command(
    name = "bourse serve",
    about = ABOUT,
    no_binary_name = true,
    args_override_self = true
)]
struct ServeCommand {
    /// A TOML file of settings, one `key = value` per line (keys as the flags' names).
    #[arg(long, env = CONFIG_ENV, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: ServeConfig,
}

/// Where `bourse serve` takes its ticks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedMode {
    /// The embedded exchange simulator.
    Sim,
    /// The Kafka topic.
    Kafka,
    /// No feed (only Bourse's own trades make ticks).
    Off,
}

/// Where the load generator's acknowledgements go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckLog {
    Stdout,
    File(PathBuf),
}

/// The most synthetic products the simulator makes.
const SIM_PRODUCTS_MAX: u64 = 10_000_000;
/// The highest rate of the embedded load generator, in commands per second.
const LOAD_RATE_MAX: u64 = 10_000_000;
/// The longest raw ticks are kept: 100 years.
const TICK_RETENTION_HOURS_MAX: u64 = 24 * 365 * 100;
/// The largest journal segment, in MiB.
const SEGMENT_SIZE_MIB_MAX: u64 = 2048;

/// The effective settings of `bourse serve`, one field per setting. `std::option::Option` is
/// spelt out where `off` is a value, so that clap hands the whole text to the parser instead
/// of making the flag optional.
#[derive(Debug, Clone, PartialEq, Args)]
#[command(next_help_heading = HEADING)]
pub struct ServeConfig {
    /// Holds journal/ and snapshots/; created if missing. One server per directory.
    #[arg(long, env = "BOURSE_DATA_DIR", default_value = "./bourse-data")]
    #[arg(value_name = "DIR", value_parser = path)]
    pub data_dir: PathBuf,
    /// Where the HTTP API listens (port 0: any free one; off: nowhere); the bound address is
    /// printed at start-up.
    #[arg(long, env = "BOURSE_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    #[arg(value_name = "HOST:PORT|off", value_parser = off_or(socket_addr))]
    pub http_addr: std::option::Option<SocketAddr>,
    /// The web terminal's built files (npm --prefix web run build), served at / next to the API.
    #[arg(long, env = "BOURSE_WEB_DIR", default_value = "web/dist")]
    #[arg(value_name = "DIR", value_parser = path)]
    pub web_dir: PathBuf,
    /// New accounts are verified at once (the embedded demo) instead of pending.
    #[arg(long, env = "BOURSE_AUTO_VERIFY", default_value = "true")]
    #[arg(action = ArgAction::Set, value_parser = boolean)]
    pub auto_verify: bool,
    /// The bearer token of /api/v1/admin/* (at least 16 printable characters; off disables the
    /// admin API). Never printed: prefer the variable to the flag.
    #[arg(long, env = "BOURSE_ADMIN_TOKEN", default_value = "off")]
    #[arg(hide_env_values = true, value_name = "TOKEN|off", value_parser = off_or(admin_token))]
    pub admin_token: std::option::Option<String>,
    /// Authenticated requests per second per account, 0 for no limit (a burst of the same size);
    /// more get 429 with Retry-After.
    #[arg(long, env = "BOURSE_RATE_LIMIT", default_value = "1000")]
    #[arg(value_parser = whole::<u32>(0, u32::MAX.into()))]
    pub rate_limit: u32,
    /// A WebSocket client's outgoing queue, in messages; a client that overflows it is told
    /// (slow_consumer) and closed.
    #[arg(long, env = "BOURSE_WS_QUEUE", default_value = "1024")]
    #[arg(value_parser = whole::<usize>(1, u64::MAX))]
    pub ws_queue: usize,
    /// Where ticks come from: the embedded exchange simulator, the Kafka topic (kafka-brokers), or
    /// nowhere.
    #[arg(long, env = "BOURSE_FEED", default_value = "sim")]
    #[arg(value_parser = OneOf(&[
        ("sim", FeedMode::Sim),
        ("kafka", FeedMode::Kafka),
        ("off", FeedMode::Off),
    ]))]
    pub feed: FeedMode,
    /// The Kafka brokers of the tick feed (feed = kafka needs them).
    #[arg(long, env = "BOURSE_KAFKA_BROKERS", default_value = "off")]
    #[arg(value_name = "HOST:PORT[,...]|off", value_parser = off_or(brokers))]
    pub kafka_brokers: std::option::Option<String>,
    /// The topic of ticks, keyed by symbol (docs/market-data.md).
    #[arg(long, env = "BOURSE_KAFKA_TOPIC", default_value = "ticks")]
    #[arg(value_name = "TOPIC", value_parser = kafka_name)]
    pub kafka_topic: String,
    /// The consumer group: gateways of one group share the topic's partitions.
    #[arg(long, env = "BOURSE_KAFKA_GROUP", default_value = "bourse")]
    #[arg(value_name = "GROUP", value_parser = kafka_name)]
    pub kafka_group: String,
    /// Malformed feed messages are also sent to this topic (they are counted and skipped either
    /// way).
    #[arg(long, env = "BOURSE_KAFKA_DEAD_LETTER", default_value = "off")]
    #[arg(value_name = "TOPIC|off", value_parser = off_or(kafka_name))]
    pub kafka_dead_letter: std::option::Option<String>,
    /// group: the consumer group shares the partitions among gateways; all: this gateway reads
    /// every partition.
    #[arg(
        long = "kafka-assignment",
        env = "BOURSE_KAFKA_ASSIGNMENT",
        default_value = "group"
    )]
    #[arg(action = ArgAction::Set, value_parser = OneOf(&[("group", true), ("all", false)]))]
    pub kafka_assignment_group: bool,
    /// Synthetic products SIM0000001... the simulator adds to the eight default stocks.
    #[arg(long, env = "BOURSE_SIM_PRODUCTS", default_value = "0")]
    #[arg(value_parser = whole::<usize>(0, SIM_PRODUCTS_MAX))]
    pub sim_products: usize,
    /// How many ticks per second the simulator makes, over all its products.
    #[arg(long, env = "BOURSE_SIM_RATE", default_value = "20")]
    #[arg(value_parser = whole::<u64>(0, u64::MAX))]
    pub sim_rate: u64,
    /// A tick this many milliseconds behind its product's newest one is refused (candle rule 6).
    #[arg(long, env = "BOURSE_LATE_MS", default_value = "60000")]
    #[arg(value_parser = whole::<i64>(0, u64::MAX))]
    pub late_ms: i64,
    /// How many hours (of exchange time) raw ticks are kept; candles are kept longer
    /// (docs/market-data.md).
    #[arg(long, env = "BOURSE_TICK_RETENTION_HOURS", default_value = "168")]
    #[arg(value_parser = whole::<u64>(1, TICK_RETENTION_HOURS_MAX))]
    pub tick_retention_hours: u64,
    /// The size of each new segment file of the tick log, in MiB (1 to 2048); the candle logs'
    /// are an eighth of it, at least 1 MiB.
    #[arg(long, env = "BOURSE_MARKET_SEGMENT_MIB", default_value = "64")]
    #[arg(value_parser = whole::<u64>(1, SEGMENT_SIZE_MIB_MAX))]
    pub market_segment_mib: u64,
    /// The market data writes a checkpoint (its logs synced, its state saved) after this many
    /// ticks (or as many as it has products, if more), and at shutdown.
    #[arg(
        long,
        env = "BOURSE_MARKET_CHECKPOINT_TICKS",
        default_value = "1000000"
    )]
    #[arg(value_parser = whole::<u64>(1, u64::MAX))]
    pub market_checkpoint_ticks: u64,
    /// A liquidity-provider account quotes around each tradable product's feed price.
    #[arg(long, env = "BOURSE_LIQUIDITY", default_value = "true")]
    #[arg(action = ArgAction::Set, value_parser = boolean)]
    pub liquidity: bool,
    /// What a commit waits for before anything is acknowledged: the disk, writeback started,
    /// nothing.
    #[arg(long, env = "BOURSE_DURABILITY", default_value = "durable")]
    #[arg(value_parser = OneOf(&[
        ("durable", Durability::Durable),
        ("async", Durability::Async),
        ("none", Durability::None),
    ]))]
    pub durability: Durability,
    /// Durable, single topology: sync on a sync thread while the engine applies, or on the engine
    /// thread.
    #[arg(long, env = "BOURSE_SYNC", default_value = "thread")]
    #[arg(value_parser = OneOf(&[("thread", SyncMode::Thread), ("inline", SyncMode::Inline)]))]
    pub sync: SyncMode,
    /// New journal segments are written with zeros once (cheaper syncs) or only fallocate()d.
    #[arg(long, env = "BOURSE_SEGMENT_FILL", default_value = "zeroes")]
    #[arg(value_parser = OneOf(&[
        ("zeroes", SegmentFill::Zeroes),
        ("allocate", SegmentFill::Allocate),
    ]))]
    pub segment_fill: SegmentFill,
    /// Entries in the command ring (a power of two, at least 64); a full ring answers busy.
    #[arg(long, env = "BOURSE_RING_SIZE", default_value = "65536", value_parser = ring_size)]
    pub ring_size: usize,
    /// One engine thread, or journaler and engine in parallel (LMAX).
    #[arg(long, env = "BOURSE_TOPOLOGY", default_value = "single")]
    #[arg(value_parser = OneOf(&[
        ("single", Topology::Single),
        ("parallel", Topology::Parallel),
        ("lmax", Topology::Parallel),
    ]))]
    pub topology: Topology,
    /// The most commands one batch (one group commit) takes.
    #[arg(long, env = "BOURSE_BATCH_MAX", default_value = "4096")]
    #[arg(value_parser = whole::<usize>(1, u64::MAX))]
    pub batch_max: usize,
    /// How many event batches the event bus holds for a reader (the history) before that
    /// reader has fallen behind (it then answers 503 until a restart rebuilds it).
    #[arg(long, env = "BOURSE_BUS_CAPACITY", default_value = "4096")]
    #[arg(value_parser = whole::<usize>(1, 1 << 24))]
    pub bus_capacity: usize,
    /// How many microseconds an idle pipeline thread spins before it parks.
    #[arg(long, env = "BOURSE_SPIN_US", default_value = "50")]
    #[arg(value_parser = whole::<u64>(0, u64::MAX))]
    pub spin_us: u64,
    /// The size of each new segment file of the journal, in MiB (1 to 2048).
    #[arg(long, env = "BOURSE_SEGMENT_SIZE_MIB", default_value = "64")]
    #[arg(value_parser = whole::<u64>(1, SEGMENT_SIZE_MIB_MAX))]
    pub segment_size_mib: u64,
    /// The size of each new segment file of the history log, in MiB (1 to 2048). A batch's
    /// history larger than a segment is split across records.
    #[arg(long, env = "BOURSE_HISTORY_SEGMENT_MIB", default_value = "16")]
    #[arg(value_parser = whole::<u64>(1, SEGMENT_SIZE_MIB_MAX))]
    pub history_segment_mib: u64,
    /// Request a snapshot through the ring after this many commands (0: never).
    #[arg(long, env = "BOURSE_SNAPSHOT_EVERY", default_value = "1000000")]
    #[arg(value_parser = whole::<u64>(0, u64::MAX))]
    pub snapshot_every: u64,
    /// The newest this many snapshot files are kept.
    #[arg(long, env = "BOURSE_SNAPSHOTS_KEPT", default_value = "3")]
    #[arg(value_parser = whole::<usize>(1, u64::MAX))]
    pub snapshots_kept: usize,
    /// A fork()ed child writes periodic snapshots, or the engine thread does.
    #[arg(long, env = "BOURSE_SNAPSHOT_MODE", default_value = "fork")]
    #[arg(value_parser = OneOf(&[
        ("fork", SnapshotMode::Fork),
        ("in-thread", SnapshotMode::InThread),
    ]))]
    pub snapshot_mode: SnapshotMode,
    /// Write a snapshot after the ring is drained at shutdown.
    #[arg(long, env = "BOURSE_SNAPSHOT_ON_SHUTDOWN", default_value = "true")]
    #[arg(action = ArgAction::Set, value_parser = boolean)]
    pub snapshot_on_shutdown: bool,
    /// Journal segments older than every kept snapshot: kept, deleted or moved to DIR.
    #[arg(long, env = "BOURSE_RETENTION", default_value = "keep")]
    #[arg(value_name = "keep|delete|archive:DIR", value_parser = retention)]
    pub retention: Retention,
    /// Run the embedded load generator at this many commands per second (0: off).
    #[arg(long, env = "BOURSE_LOAD_RATE", default_value = "0")]
    #[arg(value_parser = whole::<u64>(0, LOAD_RATE_MAX))]
    pub load_rate: u64,
    /// The load generator writes `<seq> <crc32c>` per acknowledged command to this file (- for
    /// stdout).
    #[arg(long, env = "BOURSE_ACK_LOG", default_value = "off")]
    #[arg(value_name = "FILE|-|off", value_parser = off_or(ack_log))]
    pub ack_log: std::option::Option<AckLog>,
    /// off: one node, its journal is the log; kafka: one of several equal nodes sharing the
    /// shard's command log on kafka-brokers (docs/cluster.md).
    #[arg(long = "cluster", env = "BOURSE_CLUSTER", default_value = "off")]
    #[arg(action = ArgAction::Set, value_parser = OneOf(&[("off", false), ("kafka", true)]))]
    pub cluster_kafka: bool,
    /// This node's id in the cluster (0 to 1023), unique among its nodes.
    #[arg(long, env = "BOURSE_NODE_ID", default_value = "0")]
    #[arg(value_parser = whole::<u16>(0, NODE_ID_MAX))]
    pub node_id: u16,
    /// How many nodes the cluster has: a checkpoint hash is the cluster's when more than half
    /// of them published it.
    #[arg(long, env = "BOURSE_CLUSTER_NODES", default_value = "3")]
    #[arg(value_parser = whole::<usize>(1, NODE_ID_MAX + 1))]
    pub cluster_nodes: usize,
    /// The other nodes' HTTP addresses (http://HOST:PORT,...), asked by GET /api/v1/cluster.
    #[arg(long, env = "BOURSE_CLUSTER_PEERS", default_value = "off")]
    #[arg(value_name = "URL[,URL...]|off", value_parser = off_or(peers))]
    pub cluster_peers: std::option::Option<Peers>,
    /// The command log's topics are <prefix>.commands.<shard> and <prefix>.checkpoints.<shard>.
    #[arg(long, env = "BOURSE_CLUSTER_PREFIX", default_value = "bourse")]
    #[arg(value_name = "PREFIX", value_parser = kafka_name)]
    pub cluster_prefix: String,
    /// The engine shard this node replicates.
    #[arg(long, env = "BOURSE_SHARD", default_value = "0")]
    #[arg(value_parser = whole::<u16>(0, u16::MAX.into()))]
    pub shard: u16,
    /// A node that has not had the whole command log for this long answers authenticated
    /// requests 503 (stale for reads, unavailable for writes).
    #[arg(long, env = "BOURSE_MAX_STALENESS_MS", default_value = "1000")]
    #[arg(value_parser = whole::<u64>(10, 3_600_000))]
    pub max_staleness_ms: u64,
    /// Every node publishes its state hash after every this many log offsets and stops if the
    /// cluster's majority disagrees (0: no checkpoints).
    #[arg(long, env = "BOURSE_CHECKPOINT_EVERY", default_value = "10000")]
    #[arg(value_parser = whole::<u64>(0, u64::MAX))]
    pub checkpoint_every: u64,
    /// How long a node's log producer waits to batch its appends together (librdkafka's
    /// `linger.ms`, in microseconds): the log's group commit (docs/cluster.md).
    #[arg(long, env = "BOURSE_LOG_LINGER_US", default_value = "8000")]
    #[arg(value_parser = whole::<u64>(0, 1_000_000))]
    pub log_linger_us: u64,
    /// How long the broker may hold a replica's fetch of the log when it has nothing new
    /// (`fetch.wait.max.ms`); tansu 0.6.0 holds every fetch this long (docs/cluster.md).
    #[arg(long, env = "BOURSE_LOG_FETCH_WAIT_MS", default_value = "1")]
    #[arg(value_parser = whole::<u64>(0, 500))]
    pub log_fetch_wait_ms: u64,
    /// strict: refuse a command topic weaker than replication 3, min.insync.replicas 2, no
    /// unclean leader election; development: say so and go on (and create a missing topic).
    #[arg(
        long = "cluster-topic-check",
        env = "BOURSE_CLUSTER_TOPIC_CHECK",
        default_value = "strict"
    )]
    #[arg(action = ArgAction::Set, value_parser = OneOf(&[("strict", false), ("development", true)]))]
    pub cluster_development: bool,
    /// A peer (http://HOST:PORT) whose newest snapshot this node starts from when its data
    /// directory is empty (a node joining the cluster); needs admin-token.
    #[arg(long, env = "BOURSE_JOIN_FROM", default_value = "off")]
    #[arg(value_name = "URL|off", value_parser = off_or(peer))]
    pub join_from: std::option::Option<String>,
    /// In a cluster, all: every node reads every partition of the tick topic; partitioned:
    /// each node reads the partitions it holds (owner or standby, placed by rendezvous hashing
    /// over the live nodes) and asks a holder for the products it does not hold
    /// (docs/market-data.md, "Across nodes").
    #[arg(
        long = "market-tier",
        env = "BOURSE_MARKET_TIER",
        default_value = "all"
    )]
    #[arg(action = ArgAction::Set, value_parser = OneOf(&[("all", false), ("partitioned", true)]))]
    pub market_partitioned: bool,
    /// Partitions of the tick topic a cluster creates (an existing topic keeps its own).
    #[arg(long, env = "BOURSE_TICK_PARTITIONS", default_value = "3")]
    #[arg(value_parser = whole::<i32>(1, TICK_PARTITIONS_MAX))]
    pub tick_partitions: i32,
    /// market-tier = partitioned: how many nodes hold each partition (an owner and standbys).
    #[arg(long, env = "BOURSE_MARKET_COPIES", default_value = "2")]
    #[arg(value_parser = whole::<usize>(1, 16))]
    pub market_copies: usize,
    /// How the tick feed's producer picks a symbol's partition: crc32 (librdkafka's default,
    /// what feed-sim uses) or murmur2 (the Java client's default).
    #[arg(long, env = "BOURSE_TICK_PARTITIONER", default_value = "crc32")]
    #[arg(value_parser = partitioner)]
    pub tick_partitioner: bourse_marketdata::placement::Partitioner,
    /// market-tier = partitioned: the exchange-rate products (BASEQUOTE) whose partitions every
    /// node holds besides its own, so that any node converts prices (off: none).
    #[arg(
        long = "rate-pairs",
        env = "BOURSE_RATE_PAIRS",
        default_value = "EURUSD,GBPUSD,USDJPY,USDINR"
    )]
    #[arg(value_name = "PAIR[,PAIR...]|off", value_parser = off_or(rate_pairs))]
    pub rate_pairs: std::option::Option<RatePairs>,
    /// The address the other nodes reach this node's HTTP API at (auto: http:// and
    /// http-addr).
    #[arg(long, env = "BOURSE_CLUSTER_ADVERTISE", default_value = "auto")]
    #[arg(value_name = "URL|auto", value_parser = auto_or(peer))]
    pub cluster_advertise: std::option::Option<String>,
    /// The node that runs what must run once: the default catalogue, the liquidity provider
    /// and the periodic snapshot records.
    #[arg(long, env = "BOURSE_ROLES_NODE", default_value = "0")]
    #[arg(value_parser = whole::<u16>(0, NODE_ID_MAX))]
    pub roles_node: u16,
    /// Each setting's key and value as given (secrets masked), in the order of `--help`.
    #[arg(skip)]
    texts: Vec<(String, String)>,
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    /// The environment variable.
    Env(String),
    Flag,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(path) => write!(f, "file {}", path.display()),
            Origin::Env(var) => write!(f, "env {var}"),
            Origin::Flag => f.write_str("flag"),
        }
    }
}

/// A configuration that cannot be used, with a message naming the flag, variable or key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// What the command line asked for.
#[derive(Debug)]
pub enum Invocation {
    /// `--help`: print [`help`] and exit.
    Help,
    Serve(Box<Loaded>),
}

/// The effective configuration and where each value came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: ServeConfig,
    /// Where each setting that is not at its default came from, by key.
    pub origins: BTreeMap<String, Origin>,
    pub config_file: Option<PathBuf>,
}

impl Loaded {
    /// One line per setting: `key = value  (origin)`.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        if let Some(file) = &self.config_file {
            out.push_str(&format!("  config file: {}\n", file.display()));
        }
        for (key, text) in &self.config.texts {
            let origin = self.origins.get(key).unwrap_or(&Origin::Default);
            out.push_str(&format!("  {key:<21} = {text:<24} ({origin})\n"));
        }
        out
    }
}

/// The text of `bourse serve --help`.
pub fn help() -> String {
    ServeCommand::command().render_help().to_string()
}

/// Reads the settings from the arguments after `serve`, the environment and the configuration
/// file, in that order of precedence.
pub fn load(args: &[String]) -> Result<Invocation, ConfigError> {
    load_from(ServeCommand::command(), args)
}

/// [`load`] with the command built by the caller (the tests take the environment out of it).
fn load_from(command: Command, args: &[String]) -> Result<Invocation, ConfigError> {
    let command = command.mut_args(unset_if_empty);
    // A bad variable is refused as such, even under a flag (clap would name the flag); only
    // --help goes first.
    let environment = check(&command, &environment(&command));
    let matches = match parse(command.clone(), args) {
        Ok(None) => return Ok(Invocation::Help),
        Ok(Some(matches)) => environment.map(|()| matches)?,
        Err(error) => return Err(environment.err().unwrap_or(error)),
    };
    let config_file = matches.get_one::<PathBuf>("config").cloned();
    let (matches, file) = match &config_file {
        None => (matches, Vec::new()),
        Some(path) => {
            let file = read_file(path, &command)?;
            check(&command, &file)?;
            let with_file = file.iter().fold(command.clone(), |command, given| {
                command.mut_arg(&given.id, |arg| arg.default_value(given.text.clone()))
            });
            match parse(with_file, args)? {
                Some(matches) => (matches, file),
                None => return Ok(Invocation::Help),
            }
        }
    };
    let mut config = ServeCommand::from_arg_matches(&matches)
        .map_err(|e| other(&e))?
        .settings;
    if config.market_partitioned && !config.cluster_kafka {
        return Err(ConfigError(
            "market-tier = partitioned spreads the tick topic's partitions over a cluster's \
             nodes: it needs cluster = kafka"
                .into(),
        ));
    }
    let mut origins = BTreeMap::new();
    for arg in settings(&command) {
        let (key, text, origin) = effective(arg, &matches, &file, config_file.as_deref());
        if let Some(origin) = origin {
            origins.insert(key.clone(), origin);
        }
        config.texts.push((key, text));
    }
    Ok(Invocation::Serve(Box::new(Loaded {
        config,
        origins,
        config_file,
    })))
}

/// The setting `arg`'s key, its value as text (a secret masked) and where it came from (`None`:
/// the default).
fn effective(
    arg: &Arg,
    matches: &ArgMatches,
    file: &[Given],
    config_file: Option<&Path>,
) -> (String, String, Option<Origin>) {
    let id = arg.get_id().as_str();
    let key = arg.get_long().unwrap_or(id).to_string();
    let text = matches
        .get_raw(id)
        .and_then(|mut values| values.next_back())
        .map(|text| text.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = if arg.is_hide_env_values_set() && text != "off" {
        "(set, not shown)".to_string()
    } else {
        text
    };
    let origin = match matches.value_source(id) {
        Some(ValueSource::CommandLine) => Some(Origin::Flag),
        Some(ValueSource::EnvVariable) => arg
            .get_env()
            .map(|var| Origin::Env(var.to_string_lossy().into_owned())),
        _ if file.iter().any(|given| given.id == id) => config_file.map(|f| Origin::File(f.into())),
        _ => None,
    };
    (key, text, origin)
}

/// The settings among `command`'s arguments (not `--config`, not `--help`).
fn settings(command: &Command) -> impl Iterator<Item = &Arg> {
    command
        .get_arguments()
        .filter(|arg| arg.get_help_heading() == Some(HEADING))
}

/// An empty environment variable counts as unset.
fn unset_if_empty(arg: Arg) -> Arg {
    let empty = arg
        .get_env()
        .and_then(std::env::var_os)
        .is_some_and(|value| value.is_empty());
    if empty {
        arg.env(None::<&'static str>)
    } else {
        arg
    }
}

/// A value from the environment or the file: which setting, the text, and how an error names
/// it.
struct Given {
    id: String,
    key: String,
    text: OsString,
    name: String,
}

/// The settings' variables that are set.
fn environment(command: &Command) -> Vec<Given> {
    let mut given = Vec::new();
    for arg in settings(command) {
        let Some(var) = arg.get_env() else { continue };
        let Some(text) = std::env::var_os(var).filter(|text| !text.is_empty()) else {
            continue;
        };
        given.push(Given {
            id: arg.get_id().to_string(),
            key: arg.get_long().unwrap_or_default().to_string(),
            text,
            name: var.to_string_lossy().into_owned(),
        });
    }
    given
}

/// The settings in a TOML file, as text (integers and booleans converted).
fn read_file(path: &Path, command: &Command) -> Result<Vec<Given>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "cannot read the config file {}: {e}",
            path.display()
        ))
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        ConfigError(format!(
            "the config file {} is not valid TOML: {}",
            path.display(),
            e.to_string().trim_end()
        ))
    })?;
    let mut given = Vec::new();
    for (key, value) in table {
        let flag = key.replace('_', "-");
        let Some(arg) = settings(command).find(|arg| arg.get_long() == Some(flag.as_str())) else {
            let known: Vec<&str> = settings(command).filter_map(Arg::get_long).collect();
            return Err(ConfigError(format!(
                "unknown key `{key}` in the config file {} (known keys: {})",
                path.display(),
                known.join(", ")
            )));
        };
        let name = format!("`{key}` in {}", path.display());
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(ConfigError(format!(
                    "invalid value for {name}: a {}, where a string, an integer or a boolean is expected",
                    other.type_str()
                )));
            }
        };
        given.push(Given {
            id: arg.get_id().to_string(),
            key: flag,
            text: text.into(),
            name,
        });
    }
    Ok(given)
}

/// Parses `given` on its own, through the settings' parsers (as `--key=value` flags), so that
/// a bad value is refused with the name of its variable or file key.
fn check(command: &Command, given: &[Given]) -> Result<(), ConfigError> {
    let flags = given.iter().map(|given| {
        let mut flag = OsString::from(format!("--{}=", given.key));
        flag.push(&given.text);
        flag
    });
    let without_env = command
        .clone()
        .mut_args(|arg| arg.env(None::<&'static str>));
    match without_env.try_get_matches_from(flags) {
        Ok(_) => Ok(()),
        Err(error) => Err(
            match given
                .iter()
                .find(|given| Some(&*given.key) == failed_key(&error))
            {
                Some(given) => invalid(&given.name, &given.text.to_string_lossy(), &error),
                None => other(&error),
            },
        ),
    }
}

/// Parses the command line; `None`: `--help`.
fn parse(command: Command, args: &[String]) -> Result<Option<ArgMatches>, ConfigError> {
    match command.try_get_matches_from(args) {
        Ok(matches) => Ok(Some(matches)),
        Err(error) if error.kind() == ErrorKind::DisplayHelp => Ok(None),
        Err(error) => Err(
            match (failed_key(&error), error.get(ContextKind::InvalidValue)) {
                (Some(key), Some(ContextValue::String(value)))
                    if error.kind() == ErrorKind::ValueValidation =>
                {
                    invalid(&format!("--{key}"), value, &error)
                }
                _ => other(&error),
            },
        ),
    }
}

/// The key of the flag a clap error is about (`ring-size` of `--ring-size <RING_SIZE>`).
fn failed_key(error: &clap::Error) -> Option<&str> {
    match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg.split_whitespace().next()?.strip_prefix("--"),
        _ => None,
    }
}

/// `invalid value for NAME: "VALUE": why`, the why from the setting's parser.
fn invalid(name: &str, value: &str, error: &clap::Error) -> ConfigError {
    let why = match std::error::Error::source(error) {
        Some(source) => source.to_string(),
        None => error.kind().to_string(),
    };
    ConfigError(format!("invalid value for {name}: {value:?}: {why}"))
}

/// Any other clap error, as clap words it (an unknown flag, a missing value).
fn other(error: &clap::Error) -> ConfigError {
    let text = error.render().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    ConfigError(text.trim_end().to_string())
}

impl ServeConfig {
    /// The setting `key` as it was given (a secret masked; empty for an unknown key).
    pub fn value(&self, key: &str) -> String {
        self.texts
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, text)| text.clone())
            .unwrap_or_default()
    }

    /// The market data's configuration.
    pub fn market(&self) -> bourse_marketdata::MarketConfig {
        bourse_marketdata::MarketConfig {
            late_ms: self.late_ms,
            segment_size_bytes: self.market_segment_mib << 20,
            checkpoint_ticks: self.market_checkpoint_ticks,
            tick_retention_ms: i64::try_from(self.tick_retention_hours.saturating_mul(3_600_000))
                .unwrap_or(i64::MAX),
            ..bourse_marketdata::MarketConfig::new(self.data_dir.join("market"))
        }
    }

    /// The store's configuration.
    pub fn store(&self) -> StoreConfig {
        StoreConfig {
            journal: JournalConfig {
                segment_size_bytes: self.segment_size_mib << 20,
                durability: self.durability,
                ..JournalConfig::default()
            },
            segment_fill: self.segment_fill,
            snapshots_kept: self.snapshots_kept,
            retention: self.retention.clone(),
            ..StoreConfig::new(&self.data_dir)
        }
    }

    /// The size of the history log's segment files, in bytes.
    pub fn history_segment_bytes(&self) -> u64 {
        self.history_segment_mib << 20
    }

    /// The API's settings.
    pub fn api(&self) -> bourse_gateway::ApiConfig {
        bourse_gateway::ApiConfig {
            auto_verify: self.auto_verify,
            admin_token: self.admin_token.clone(),
            rate_limit: self.rate_limit,
            web_dir: self.web_dir.clone(),
            snapshots_dir: self.store().snapshots_dir(),
        }
    }

    /// The pipeline's configuration.
    pub fn pipeline(&self) -> PipelineConfig {
        PipelineConfig {
            ring_size: self.ring_size,
            topology: self.topology,
            batch_max: self.batch_max,
            bus_capacity: self.bus_capacity,
            spin: Duration::from_micros(self.spin_us),
            snapshot_mode: self.snapshot_mode,
            snapshot_on_shutdown: self.snapshot_on_shutdown,
            sync: self.sync,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::io::Write;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    /// [`load`] without the environment: every setting's variable is taken out of the command.
    fn run(argv: &str) -> Result<Loaded, ConfigError> {
        let command = ServeCommand::command().mut_args(|arg| arg.env(None::<&'static str>));
        match load_from(command, &args(argv))? {
            Invocation::Serve(loaded) => Ok(*loaded),
            Invocation::Help => panic!("help"),
        }
    }

    fn error(argv: &str) -> String {
        run(argv).unwrap_err().to_string()
    }

    fn toml_file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    /// The value and the origin `describe` shows for `key`.
    fn shown(described: &str, key: &str) -> (String, String) {
        let line = described
            .lines()
            .find(|line| line.trim_start().starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no line for {key} in\n{described}"));
        let (_, rest) = line.split_once(" = ").unwrap();
        let (value, origin) = rest.rsplit_once(" (").unwrap();
        (
            value.trim().to_string(),
            origin.trim_end_matches(')').to_string(),
        )
    }

    fn commands() -> Command {
        let mut command = ServeCommand::command();
        command.build();
        command
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let loaded = run("").unwrap();
        let c = &loaded.config;
        assert_eq!(c.data_dir, PathBuf::from("./bourse-data"));
        assert_eq!(c.http_addr, Some(SocketAddr::from(([127, 0, 0, 1], 8080))));
        assert_eq!(c.web_dir, PathBuf::from("web/dist"));
        assert!(c.auto_verify && c.liquidity && c.kafka_assignment_group);
        assert_eq!(
            (c.admin_token.as_deref(), c.kafka_brokers.as_deref()),
            (None, None)
        );
        assert_eq!((c.rate_limit, c.ws_queue), (1000, 1024));
        assert_eq!(c.feed, FeedMode::Sim);
        assert_eq!(
            (c.kafka_topic.as_str(), c.kafka_group.as_str()),
            ("ticks", "bourse")
        );
        assert_eq!((c.sim_products, c.sim_rate, c.late_ms), (0, 20, 60_000));
        assert_eq!(c.tick_retention_hours, 168);
        assert_eq!(
            (c.market_segment_mib, c.market_checkpoint_ticks),
            (64, 1_000_000)
        );
        assert_eq!(c.durability, Durability::Durable);
        assert_eq!(c.sync, SyncMode::Thread);
        assert_eq!(c.segment_fill, SegmentFill::Zeroes);
        assert_eq!(c.ring_size, 65536);
        assert_eq!(c.topology, Topology::Single);
        assert_eq!((c.batch_max, c.spin_us, c.segment_size_mib), (4096, 50, 64));
        assert_eq!(c.snapshot_every, 1_000_000);
        assert_eq!(c.snapshots_kept, 3);
        assert_eq!(c.snapshot_mode, SnapshotMode::Fork);
        assert!(c.snapshot_on_shutdown);
        assert_eq!(c.retention, Retention::Keep);
        assert_eq!(c.load_rate, 0);
        assert_eq!(c.ack_log, None);
        assert!(!c.cluster_kafka && !c.cluster_development);
        assert_eq!(
            (c.node_id, c.roles_node, c.shard, c.cluster_nodes),
            (0, 0, 0, 3)
        );
        assert_eq!((c.max_staleness_ms, c.checkpoint_every), (1000, 10_000));
        assert_eq!(
            (c.cluster_peers.as_ref(), c.join_from.as_deref()),
            (None, None)
        );
        assert!(!c.market_partitioned && c.cluster_advertise.is_none());
        assert_eq!((c.tick_partitions, c.market_copies), (3, 2));
        assert_eq!(
            c.tick_partitioner,
            bourse_marketdata::placement::Partitioner::Crc32
        );
        assert_eq!(
            c.rate_pairs.as_ref().map(|p| p.0.join(",")).as_deref(),
            Some("EURUSD,GBPUSD,USDJPY,USDINR")
        );
        assert!(loaded.origins.is_empty());
        // Every setting is shown, with its default, in the order of --help.
        let command = commands();
        let keys: Vec<&str> = settings(&command).filter_map(Arg::get_long).collect();
        let shown_keys: Vec<&str> = c.texts.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(shown_keys, keys);
        assert_eq!(keys.len(), 56);
        for arg in settings(&command) {
            let key = arg.get_long().unwrap();
            let default = arg.get_default_values()[0].to_str().unwrap();
            assert_eq!(c.value(key), default, "{key}");
        }
    }

    #[test]
    fn each_setting_has_one_name_a_default_and_a_help_line() {
        let command = commands();
        for arg in settings(&command) {
            let key = arg.get_long().unwrap();
            let env = format!("BOURSE_{}", key.to_uppercase().replace('-', "_"));
            assert_eq!(arg.get_env(), Some(OsStr::new(&env)), "{key}");
            assert_eq!(arg.get_default_values().len(), 1, "{key}");
            assert!(arg.get_help().is_some(), "{key}");
            assert!(
                matches!(arg.get_action(), ArgAction::Set),
                "{key} takes a value"
            );
        }
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_the_defaults() {
        let file = toml_file(
            "ring-size = 1024\ndurability = \"async\"\nbatch_max = 7\nretention = \"archive:/tmp/old\"\n",
        );
        let path = file.path().to_str().unwrap();
        let loaded = run(&format!(
            "--config {path} --ring-size=4096 --topology lmax --load-rate 1_000"
        ))
        .unwrap();
        let c = &loaded.config;
        assert_eq!(c.ring_size, 4096, "flag over file");
        assert_eq!(c.topology, Topology::Parallel);
        assert_eq!(c.load_rate, 1000);
        assert_eq!(c.durability, Durability::Async, "file over default");
        assert_eq!(c.batch_max, 7, "file over default (snake_case key)");
        assert_eq!(c.retention, Retention::Archive(PathBuf::from("/tmp/old")));
        assert_eq!(c.snapshots_kept, 3, "default");
        assert_eq!(loaded.config_file.as_deref(), Some(file.path()));
        assert_eq!(loaded.origins["ring-size"], Origin::Flag);
        assert_eq!(
            loaded.origins["batch-max"],
            Origin::File(file.path().to_path_buf())
        );
        assert!(!loaded.origins.contains_key("snapshots-kept"));
        let described = loaded.describe();
        assert!(
            described.contains(&format!("config file: {path}")),
            "{described}"
        );
        assert_eq!(
            shown(&described, "ring-size"),
            ("4096".into(), "flag".into())
        );
        assert_eq!(
            shown(&described, "durability"),
            ("async".into(), format!("file {path}"))
        );
        assert_eq!(
            shown(&described, "snapshots-kept"),
            ("3".into(), "default".into())
        );
    }

    #[test]
    fn a_repeated_flag_takes_the_last_value() {
        let loaded = run("--ack-log - --ack-log acks.txt --ack-log=off --data-dir d").unwrap();
        assert_eq!(loaded.config.ack_log, None);
        assert_eq!(loaded.config.value("ack-log"), "off");
        let loaded = run("--ack-log - --kafka-assignment all --liquidity no").unwrap();
        assert!(!loaded.config.kafka_assignment_group && !loaded.config.liquidity);
        assert_eq!(loaded.config.ack_log, Some(AckLog::Stdout));
        assert_eq!(loaded.config.data_dir, PathBuf::from("./bourse-data"));
    }

    #[test]
    fn bad_values_name_the_flag() {
        let e = error("--ring-size 1000");
        assert_eq!(
            e,
            "invalid value for --ring-size: \"1000\": not a power of two of at least 64"
        );
        let e = error("--batch-max=0");
        assert!(e.contains("--batch-max") && e.contains("at least 1"), "{e}");
        let e = error("--durability fast");
        assert!(e.contains("not one of durable, async, none"), "{e}");
        let e = error("--snapshot-on-shutdown maybe");
        assert!(
            e.contains("--snapshot-on-shutdown") && e.contains("boolean"),
            "{e}"
        );
        let e = error("--retention archive:");
        assert!(
            e.contains("--retention") && e.contains("needs a directory"),
            "{e}"
        );
        let e = error("--topology ring");
        assert!(
            e.contains("--topology") && e.contains("single, parallel"),
            "{e}"
        );
        let e = error("--admin-token short");
        assert!(
            e.contains("--admin-token") && e.contains("at least 16"),
            "{e}"
        );
        let e = error("--http-addr localhost");
        assert!(e.contains("--http-addr") && e.contains("HOST:PORT"), "{e}");
        let e = error("--load-rate");
        assert!(
            e.contains("--load-rate") && e.contains("value is required"),
            "{e}"
        );
        let e = error("--ringsize 64");
        assert!(
            e.contains("unexpected argument '--ringsize'") && e.contains("'--ring-size'"),
            "{e}"
        );
        let e = error("serve");
        assert!(e.contains("unexpected argument 'serve'"), "{e}");
    }

    #[test]
    fn file_errors_name_the_key_and_the_file() {
        let file = toml_file("ring-size = 64\nring-sise = 128\n");
        let path = file.path().display().to_string();
        let e = error(&format!("--config {path}"));
        assert!(
            e.contains("unknown key `ring-sise`") && e.contains(&path),
            "{e}"
        );
        assert!(e.contains("known keys: data-dir"), "{e}");

        let file = toml_file("segment-size-mib = -4\n");
        let e = error(&format!("--config {}", file.path().display()));
        assert_eq!(
            e,
            format!(
                "invalid value for `segment-size-mib` in {}: \"-4\": not a whole number",
                file.path().display()
            )
        );

        // A bad value in the file is refused even where a flag overrides it.
        let file = toml_file("ring-size = 3\n");
        let e = error(&format!(
            "--config {} --ring-size 64",
            file.path().display()
        ));
        assert!(
            e.contains("`ring-size` in") && e.contains("power of two"),
            "{e}"
        );

        let file = toml_file("ring-size = [64]\n");
        let e = error(&format!("--config {}", file.path().display()));
        assert!(e.contains("`ring-size`") && e.contains("array"), "{e}");

        let file = toml_file("config = \"other.toml\"\n");
        let e = error(&format!("--config {}", file.path().display()));
        assert!(e.contains("unknown key `config`"), "{e}");

        let file = toml_file("ring-size = \n");
        let e = error(&format!("--config {}", file.path().display()));
        assert!(e.contains("not valid TOML"), "{e}");

        let e = error("--config /nonexistent/bourse.toml");
        assert!(
            e.contains("cannot read the config file /nonexistent/bourse.toml"),
            "{e}"
        );
    }

    #[test]
    fn help_is_recognised_and_lists_every_setting() {
        let command = ServeCommand::command().mut_args(|arg| arg.env(None::<&'static str>));
        assert!(matches!(
            load_from(command, &args("--ring-size 64 --help")),
            Ok(Invocation::Help)
        ));
        let text = help();
        let command = commands();
        for arg in settings(&command) {
            let key = arg.get_long().unwrap();
            let env = arg.get_env().unwrap().to_str().unwrap();
            assert!(
                text.contains(&format!("--{key} ")) && text.contains(env),
                "{key}"
            );
        }
        assert!(
            text.contains("[possible values: durable, async, none]"),
            "{text}"
        );
    }

    #[test]
    fn cluster_settings_are_read_and_checked() {
        let loaded = run(
            "--cluster kafka --node-id 2 --cluster-peers http://127.0.0.1:1/,http://h:2 \
             --join-from http://127.0.0.1:3 --cluster-topic-check development",
        )
        .unwrap();
        let c = &loaded.config;
        assert!(c.cluster_kafka && c.cluster_development);
        assert_eq!(c.node_id, 2);
        assert_eq!(
            c.cluster_peers.as_ref().map(|p| p.0.clone()),
            Some(vec![
                "http://127.0.0.1:1".to_owned(),
                "http://h:2".to_owned()
            ])
        );
        assert_eq!(c.join_from.as_deref(), Some("http://127.0.0.1:3"));
        for (argv, says) in [
            ("--node-id 1024", "at most 1023"),
            ("--cluster-peers 127.0.0.1:1", "does not start with http://"),
            ("--cluster-peers http://h", "not http://HOST:PORT"),
            ("--join-from http://a:1,http://b:2", "one http://HOST:PORT"),
            ("--cluster raft", "raft"),
            ("--max-staleness-ms 5", "at least 10"),
        ] {
            let e = error(argv);
            assert!(e.contains(says), "{argv}: {e}");
        }
    }

    #[test]
    fn a_partitioned_market_tier_needs_a_cluster() {
        let e = error("--market-tier partitioned");
        assert!(e.contains("needs cluster = kafka"), "{e}");
        let loaded = run("--market-tier partitioned --cluster kafka --tick-partitions 12").unwrap();
        assert!(loaded.config.market_partitioned);
        assert_eq!(loaded.config.tick_partitions, 12);
        let e = error("--rate-pairs EURUSD,eurusd");
        assert!(
            e.contains("--rate-pairs") && e.contains("\"eurusd\" is not a pair"),
            "{e}"
        );
        let e = error("--tick-partitioner random");
        assert!(
            e.contains("--tick-partitioner") && e.contains("crc32"),
            "{e}"
        );
    }

    #[test]
    fn docs_serve_md_has_a_row_for_every_setting() {
        let doc = include_str!("../../docs/serve.md");
        let command = commands();
        for arg in settings(&command) {
            let row = format!(
                "| `{}` | `{}` | `{}` |",
                arg.get_long().unwrap(),
                arg.get_env().unwrap().to_str().unwrap(),
                arg.get_default_values()[0].to_str().unwrap()
            );
            assert!(doc.contains(&row), "docs/serve.md lacks the row {row}");
        }
    }

    #[test]
    fn store_and_pipeline_configs_follow_the_settings() {
        let loaded = run(
            "--data-dir /d --segment-size-mib 2 --durability async --snapshots-kept 5 --spin-us 7 --snapshot-mode in-thread",
        )
        .unwrap();
        let store = loaded.config.store();
        assert_eq!(store.dir, PathBuf::from("/d"));
        assert_eq!(store.journal.segment_size_bytes, 2 << 20);
        assert_eq!(store.journal.durability, Durability::Async);
        assert_eq!(store.snapshots_kept, 5);
        let pipeline = loaded.config.pipeline();
        assert_eq!(pipeline.spin, Duration::from_micros(7));
        assert_eq!(pipeline.snapshot_mode, SnapshotMode::InThread);
        assert!(pipeline.snapshot_on_shutdown);
        assert_eq!(pipeline.ring_size, 65536);
    }

    // The environment: clap reads the variables when the command is built, so these tests
    // run `load` in a child process (this test binary) with the environment they choose.

    /// Where [`in_child`] puts the arguments, separated by U+001F.
    const CHILD_ARGS: &str = "BOURSE_SETTINGS_TEST_ARGS";

    /// Runs [`load`] in a child process with `argv` and, of the `BOURSE_*` variables, only
    /// `env`; returns what it printed: the effective configuration, `help` and the help text,
    /// or `error: ` and the error.
    fn in_child(argv: &str, env: &[(&str, &str)]) -> String {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child.args([
            "--exact",
            "settings::tests::child",
            "--nocapture",
            "--test-threads=1",
        ]);
        for (var, _) in std::env::vars_os() {
            if var.to_string_lossy().starts_with("BOURSE_") {
                child.env_remove(var);
            }
        }
        child.env(CHILD_ARGS, args(argv).join("\u{1f}"));
        child.envs(env.iter().copied());
        let output = child.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}");
        let start = stdout.find("<<<").expect("the child's output") + 3;
        let end = stdout.rfind(">>>").expect("the end of the child's output");
        stdout[start..end].to_string()
    }

    /// The child's side of [`in_child`]; in the test run itself (no `CHILD_ARGS`) it does
    /// nothing.
    #[test]
    fn child() {
        let Some(argv) = std::env::var_os(CHILD_ARGS) else {
            return;
        };
        let argv: Vec<String> = argv
            .to_string_lossy()
            .split('\u{1f}')
            .filter(|arg| !arg.is_empty())
            .map(String::from)
            .collect();
        let outcome = match load(&argv) {
            Ok(Invocation::Serve(loaded)) => loaded.describe(),
            Ok(Invocation::Help) => format!("help\n{}", help()),
            Err(e) => format!("error: {e}"),
        };
        println!("<<<{outcome}>>>");
    }

    #[test]
    fn flags_beat_env_beat_file_beat_defaults() {
        let file = toml_file(
            "ring-size = 1024\ndurability = \"async\"\nbatch_max = 7\nsnapshot-every = 0\n",
        );
        let path = file.path().to_str().unwrap();
        let described = in_child(
            &format!("--config {path} --ring-size=4096 --topology parallel"),
            &[
                ("BOURSE_RING_SIZE", "2048"),
                ("BOURSE_DURABILITY", "none"),
                ("BOURSE_TOPOLOGY", "single"),
                ("BOURSE_SNAPSHOTS_KEPT", "5"),
                ("BOURSE_SNAPSHOT_EVERY", ""),
            ],
        );
        let file_origin = format!("file {path}");
        assert_eq!(
            shown(&described, "ring-size"),
            ("4096".into(), "flag".into())
        );
        assert_eq!(
            shown(&described, "topology"),
            ("parallel".into(), "flag".into())
        );
        assert_eq!(
            shown(&described, "durability"),
            ("none".into(), "env BOURSE_DURABILITY".into())
        );
        assert_eq!(
            shown(&described, "snapshots-kept"),
            ("5".into(), "env BOURSE_SNAPSHOTS_KEPT".into())
        );
        assert_eq!(
            shown(&described, "batch-max"),
            ("7".into(), file_origin.clone())
        );
        // An empty variable counts as unset.
        assert_eq!(
            shown(&described, "snapshot-every"),
            ("0".into(), file_origin)
        );
        assert_eq!(
            shown(&described, "spin-us"),
            ("50".into(), "default".into())
        );
    }

    #[test]
    fn the_config_file_can_be_named_in_the_environment() {
        let file = toml_file("snapshot-on-shutdown = false\n");
        let path = file.path().to_str().unwrap();
        let described = in_child("", &[(CONFIG_ENV, path)]);
        assert!(
            described.contains(&format!("config file: {path}")),
            "{described}"
        );
        assert_eq!(
            shown(&described, "snapshot-on-shutdown"),
            ("false".into(), format!("file {path}"))
        );
        // The flag beats the variable.
        let described = in_child("--config /nonexistent.toml", &[(CONFIG_ENV, path)]);
        assert!(described.contains("/nonexistent.toml"), "{described}");
    }

    #[test]
    fn bad_variables_are_named_even_under_a_flag() {
        let e = in_child("", &[("BOURSE_DURABILITY", "fast")]);
        assert_eq!(
            e,
            "error: invalid value for BOURSE_DURABILITY: \"fast\": not one of durable, async, none"
        );
        let e = in_child("--ring-size 64", &[("BOURSE_RING_SIZE", "12")]);
        assert!(e.contains("BOURSE_RING_SIZE: \"12\""), "{e}");
        let e = in_child("--ring-sise 64", &[("BOURSE_RING_SIZE", "12")]);
        assert!(e.contains("BOURSE_RING_SIZE: \"12\""), "{e}");
        // Except --help.
        let help = in_child("--help", &[("BOURSE_RING_SIZE", "12")]);
        assert!(help.starts_with("help\n"), "{help}");
        // A bad variable wins over a bad file: the environment is checked first.
        let file = toml_file("batch-max = 0\n");
        let path = file.path().to_str().unwrap();
        let e = in_child(&format!("--config {path}"), &[("BOURSE_SPIN_US", "x")]);
        assert!(e.contains("BOURSE_SPIN_US"), "{e}");
    }

    #[test]
    fn the_admin_token_is_never_shown() {
        let token = "s3cret-admin-token-0123";
        let described = in_child("", &[("BOURSE_ADMIN_TOKEN", token)]);
        assert_eq!(
            shown(&described, "admin-token"),
            ("(set, not shown)".into(), "env BOURSE_ADMIN_TOKEN".into())
        );
        assert!(!described.contains(token), "{described}");
        let help = in_child("--help", &[("BOURSE_ADMIN_TOKEN", token)]);
        assert!(
            help.starts_with("help\n") && help.contains("BOURSE_ADMIN_TOKEN"),
            "{help}"
        );
        assert!(!help.contains(token), "{help}");
    }
}
