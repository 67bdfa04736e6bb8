//! The settings of `bourse serve` and where they come from.
//!
//! Every setting has one name used everywhere: the flag `--ring-size`, the environment
//! variable `BOURSE_RING_SIZE`, the key `ring-size` in the TOML file (`ring_size` works there
//! too). A value is taken from the first of these that has it:
//!
//! 1. a flag (`--ring-size 1024` or `--ring-size=1024`; a repeated flag: the last one),
//! 2. the environment (`BOURSE_RING_SIZE=1024`; an empty variable counts as unset),
//! 3. the TOML file named by `--config FILE` or `BOURSE_CONFIG`,
//! 4. the default ([`SETTINGS`] lists them; `docs/serve.md` has the table).
//!
//! An unknown flag, an unknown key in the file or a value that does not parse is an error that
//! names the flag, variable or key, and where it came from. [`load`] takes the environment as
//! a function, so tests do not touch the process's own.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bourse_journal::{Durability, JournalConfig};
use bourse_pipeline::{PipelineConfig, RING_SIZE_MIN, SnapshotMode, SyncMode, Topology};
use bourse_store::{Retention, SegmentFill, StoreConfig};

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

/// One setting: its name (flag without `--`, TOML key), environment variable, default and
/// meaning, as `bourse serve --help` and `docs/serve.md` show them.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub key: &'static str,
    pub env: &'static str,
    pub default: &'static str,
    pub values: &'static str,
    pub help: &'static str,
}

/// Every setting of `bourse serve`, in the order they are shown.
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "data-dir",
        env: "BOURSE_DATA_DIR",
        default: "./bourse-data",
        values: "a directory",
        help: "journal/ and snapshots/ live here; created if missing",
    },
    Setting {
        key: "http-addr",
        env: "BOURSE_HTTP_ADDR",
        default: "127.0.0.1:8080",
        values: "HOST:PORT (port 0: any free one), off",
        help: "where the HTTP API listens; the bound address is printed at start-up",
    },
    Setting {
        key: "web-dir",
        env: "BOURSE_WEB_DIR",
        default: "web/dist",
        values: "a directory",
        help: "the web terminal's built files (npm --prefix web run build), served at / next to the API",
    },
    Setting {
        key: "auto-verify",
        env: "BOURSE_AUTO_VERIFY",
        default: "true",
        values: "true, false",
        help: "new accounts are verified at once (the embedded demo) instead of pending",
    },
    Setting {
        key: "admin-token",
        env: "BOURSE_ADMIN_TOKEN",
        default: "off",
        values: "a secret of at least 16 characters, off",
        help: "the bearer token of /api/v1/admin/* (status, profile checks); off disables them; never printed",
    },
    Setting {
        key: "rate-limit",
        env: "BOURSE_RATE_LIMIT",
        default: "1000",
        values: "requests per second, 0 for none",
        help: "per-account limit on authenticated requests (a burst of the same size); more get 429 with Retry-After",
    },
    Setting {
        key: "ws-queue",
        env: "BOURSE_WS_QUEUE",
        default: "1024",
        values: "messages, at least 1",
        help: "a WebSocket client's outgoing queue; one that overflows is told (slow_consumer) and closed",
    },
    Setting {
        key: "feed",
        env: "BOURSE_FEED",
        default: "sim",
        values: "sim, kafka, off",
        help: "where ticks come from: the embedded exchange simulator, the Kafka topic (kafka-brokers), or nowhere",
    },
    Setting {
        key: "kafka-brokers",
        env: "BOURSE_KAFKA_BROKERS",
        default: "off",
        values: "HOST:PORT[,HOST:PORT...], off",
        help: "the Kafka brokers of the tick feed (feed = kafka)",
    },
    Setting {
        key: "kafka-topic",
        env: "BOURSE_KAFKA_TOPIC",
        default: "ticks",
        values: "a topic name",
        help: "the topic of ticks, keyed by symbol (docs/market-data.md)",
    },
    Setting {
        key: "kafka-group",
        env: "BOURSE_KAFKA_GROUP",
        default: "bourse",
        values: "a consumer group id",
        help: "gateways of one group share the topic's partitions",
    },
    Setting {
        key: "kafka-assignment",
        env: "BOURSE_KAFKA_ASSIGNMENT",
        default: "group",
        values: "group, all",
        help: "group: the consumer group shares the partitions among gateways; all: this gateway reads every partition",
    },
    Setting {
        key: "kafka-dead-letter",
        env: "BOURSE_KAFKA_DEAD_LETTER",
        default: "off",
        values: "a topic name, off",
        help: "malformed feed messages are also sent there (they are counted and skipped either way)",
    },
    Setting {
        key: "sim-products",
        env: "BOURSE_SIM_PRODUCTS",
        default: "0",
        values: "a number of products",
        help: "synthetic products SIM0000001... the simulator adds to the eight default stocks",
    },
    Setting {
        key: "sim-rate",
        env: "BOURSE_SIM_RATE",
        default: "20",
        values: "ticks per second",
        help: "how many ticks per second the simulator makes, over all its products",
    },
    Setting {
        key: "late-ms",
        env: "BOURSE_LATE_MS",
        default: "60000",
        values: "milliseconds",
        help: "a tick this far behind its product's newest one is refused (candle rule 6)",
    },
    Setting {
        key: "tick-retention-hours",
        env: "BOURSE_TICK_RETENTION_HOURS",
        default: "168",
        values: "hours of exchange time",
        help: "how long raw ticks are kept; candles are kept longer (docs/market-data.md)",
    },
    Setting {
        key: "liquidity",
        env: "BOURSE_LIQUIDITY",
        default: "true",
        values: "true, false",
        help: "a liquidity-provider account quotes around each tradable product's feed price",
    },
    Setting {
        key: "durability",
        env: "BOURSE_DURABILITY",
        default: "durable",
        values: "durable, async, none",
        help: "what a commit waits for before anything is acknowledged",
    },
    Setting {
        key: "sync",
        env: "BOURSE_SYNC",
        default: "thread",
        values: "thread, inline",
        help: "durable, single topology: sync on a sync thread while the engine applies, or on the engine thread",
    },
    Setting {
        key: "segment-fill",
        env: "BOURSE_SEGMENT_FILL",
        default: "zeroes",
        values: "zeroes, allocate",
        help: "new journal segments are written with zeros once (cheaper syncs) or only fallocate()d",
    },
    Setting {
        key: "ring-size",
        env: "BOURSE_RING_SIZE",
        default: "65536",
        values: "a power of two >= 64",
        help: "entries in the command ring; a full ring answers busy",
    },
    Setting {
        key: "topology",
        env: "BOURSE_TOPOLOGY",
        default: "single",
        values: "single, parallel",
        help: "one engine thread, or journaler and engine in parallel (LMAX)",
    },
    Setting {
        key: "batch-max",
        env: "BOURSE_BATCH_MAX",
        default: "4096",
        values: "1 or more",
        help: "the most commands one batch (one group commit) takes",
    },
    Setting {
        key: "spin-us",
        env: "BOURSE_SPIN_US",
        default: "50",
        values: "microseconds",
        help: "how long an idle pipeline thread spins before it parks",
    },
    Setting {
        key: "segment-size-mib",
        env: "BOURSE_SEGMENT_SIZE_MIB",
        default: "64",
        values: "1 to 2048",
        help: "size of each new journal segment file",
    },
    Setting {
        key: "snapshot-every",
        env: "BOURSE_SNAPSHOT_EVERY",
        default: "1000000",
        values: "commands; 0 = never",
        help: "request a snapshot through the ring after this many commands",
    },
    Setting {
        key: "snapshots-kept",
        env: "BOURSE_SNAPSHOTS_KEPT",
        default: "3",
        values: "1 or more",
        help: "the newest this many snapshot files are kept",
    },
    Setting {
        key: "snapshot-mode",
        env: "BOURSE_SNAPSHOT_MODE",
        default: "fork",
        values: "fork, in-thread",
        help: "a fork()ed child writes periodic snapshots, or the engine thread does",
    },
    Setting {
        key: "snapshot-on-shutdown",
        env: "BOURSE_SNAPSHOT_ON_SHUTDOWN",
        default: "true",
        values: "true, false",
        help: "write a snapshot after the ring is drained at shutdown",
    },
    Setting {
        key: "retention",
        env: "BOURSE_RETENTION",
        default: "keep",
        values: "keep, delete, archive:DIR",
        help: "journal segments older than every kept snapshot: kept, deleted or moved to DIR",
    },
    Setting {
        key: "load-rate",
        env: "BOURSE_LOAD_RATE",
        default: "0",
        values: "commands/s; 0 = off",
        help: "run the embedded load generator at this rate",
    },
    Setting {
        key: "ack-log",
        env: "BOURSE_ACK_LOG",
        default: "off",
        values: "off, -, a file",
        help: "the load generator writes `<seq> <crc32c>` per acknowledged command (- = stdout)",
    },
];

/// Where the configuration file is named: `--config FILE` or this variable.
pub const CONFIG_ENV: &str = "BOURSE_CONFIG";

/// Where the load generator's acknowledgements go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckLog {
    Stdout,
    File(PathBuf),
}

/// The effective settings of `bourse serve`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub http_addr: Option<std::net::SocketAddr>,
    /// The web terminal's built files, served at `/` (the API keeps `/api/`).
    pub web_dir: PathBuf,
    pub auto_verify: bool,
    /// The admin API's bearer token; `None`: the admin API is off.
    pub admin_token: Option<String>,
    /// Authenticated requests per second per account; 0: no limit.
    pub rate_limit: u32,
    /// Messages a WebSocket client's queue holds.
    pub ws_queue: usize,
    /// Where ticks come from.
    pub feed: FeedMode,
    pub kafka_brokers: Option<String>,
    pub kafka_topic: String,
    pub kafka_group: String,
    pub kafka_dead_letter: Option<String>,
    /// Partitions come from the consumer group (else: every partition).
    pub kafka_assignment_group: bool,
    pub sim_products: usize,
    pub sim_rate: u64,
    pub late_ms: i64,
    pub tick_retention_hours: u64,
    /// Whether the liquidity provider quotes.
    pub liquidity: bool,
    pub durability: Durability,
    pub sync: SyncMode,
    pub segment_fill: SegmentFill,
    pub ring_size: usize,
    pub topology: Topology,
    pub batch_max: usize,
    pub spin_us: u64,
    pub segment_size_mib: u64,
    /// Commands between periodic snapshots; 0: none.
    pub snapshot_every: u64,
    pub snapshots_kept: usize,
    pub snapshot_mode: SnapshotMode,
    pub snapshot_on_shutdown: bool,
    pub retention: Retention,
    /// Commands per second of the embedded load generator; 0: off.
    pub load_rate: u64,
    pub ack_log: Option<AckLog>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        let mut config = ServeConfig {
            data_dir: PathBuf::new(),
            http_addr: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 8080))),
            web_dir: PathBuf::new(),
            auto_verify: true,
            admin_token: None,
            rate_limit: 0,
            ws_queue: 0,
            feed: FeedMode::Sim,
            kafka_brokers: None,
            kafka_topic: String::new(),
            kafka_group: String::new(),
            kafka_dead_letter: None,
            kafka_assignment_group: true,
            sim_products: 0,
            sim_rate: 0,
            late_ms: 0,
            tick_retention_hours: 0,
            liquidity: true,
            durability: Durability::Durable,
            sync: SyncMode::Thread,
            segment_fill: SegmentFill::Zeroes,
            ring_size: 0,
            topology: Topology::Single,
            batch_max: 0,
            spin_us: 0,
            segment_size_mib: 0,
            snapshot_every: 0,
            snapshots_kept: 0,
            snapshot_mode: SnapshotMode::Fork,
            snapshot_on_shutdown: false,
            retention: Retention::Keep,
            load_rate: 0,
            ack_log: None,
        };
        // One source of truth for the defaults: the table.
        for setting in SETTINGS {
            config
                .set(setting.key, setting.default)
                .expect("the defaults parse");
        }
        config
    }
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    Env(&'static str),
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
    pub origins: BTreeMap<&'static str, Origin>,
    pub config_file: Option<PathBuf>,
}

impl Loaded {
    /// One line per setting: `key = value  (origin)`.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        if let Some(file) = &self.config_file {
            out.push_str(&format!("  config file: {}\n", file.display()));
        }
        for setting in SETTINGS {
            let origin = self.origins.get(setting.key).unwrap_or(&Origin::Default);
            out.push_str(&format!(
                "  {:<21} = {:<24} ({origin})\n",
                setting.key,
                self.config.value(setting.key)
            ));
        }
        out
    }
}

/// Reads the settings from the arguments after `serve`, the environment (`env` looks a
/// variable up) and the configuration file, in that order of precedence.
pub fn load(
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Invocation, ConfigError> {
    let env = |name: &str| env(name).filter(|value| !value.is_empty());
    let mut flags: Vec<(&'static Setting, String)> = Vec::new();
    let mut config_flag = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            return Ok(Invocation::Help);
        }
        let Some(name) = arg.strip_prefix("--") else {
            return Err(ConfigError(format!(
                "unexpected argument {arg:?} to `bourse serve` (settings are flags: --key VALUE; see `bourse serve --help`)"
            )));
        };
        let (name, inline) = match name.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (name, None),
        };
        let mut value = || -> Result<String, ConfigError> {
            match &inline {
                Some(value) => Ok(value.clone()),
                None => args
                    .next()
                    .cloned()
                    .ok_or_else(|| ConfigError(format!("--{name} needs a value"))),
            }
        };
        if name == "config" {
            config_flag = Some(PathBuf::from(value()?));
            continue;
        }
        let setting = SETTINGS.iter().find(|s| s.key == name).ok_or_else(|| {
            ConfigError(format!(
                "unknown flag --{name} for `bourse serve` (see `bourse serve --help`)"
            ))
        })?;
        flags.push((setting, value()?));
    }

    let mut loaded = Loaded {
        config: ServeConfig::default(),
        origins: BTreeMap::new(),
        config_file: config_flag.or_else(|| env(CONFIG_ENV).map(PathBuf::from)),
    };
    if let Some(path) = loaded.config_file.clone() {
        for (setting, value) in read_file(&path)? {
            loaded.set(setting, &value, Origin::File(path.clone()))?;
        }
    }
    for setting in SETTINGS {
        if let Some(value) = env(setting.env) {
            loaded.set(setting, &value, Origin::Env(setting.env))?;
        }
    }
    for (setting, value) in flags {
        loaded.set(setting, &value, Origin::Flag)?;
    }
    Ok(Invocation::Serve(Box::new(loaded)))
}

impl Loaded {
    fn set(
        &mut self,
        setting: &'static Setting,
        value: &str,
        origin: Origin,
    ) -> Result<(), ConfigError> {
        self.config.set(setting.key, value).map_err(|why| {
            let name = match &origin {
                Origin::Flag => format!("--{}", setting.key),
                Origin::Env(var) => var.to_string(),
                Origin::File(path) => format!("`{}` in {}", setting.key, path.display()),
                Origin::Default => format!("the default of {}", setting.key),
            };
            ConfigError(format!(
                "invalid value for {name}: {value:?}: {why} (expected {})",
                setting.values
            ))
        })?;
        self.origins.insert(setting.key, origin);
        Ok(())
    }
}

/// The settings in a TOML file, as strings (integers and booleans converted).
fn read_file(path: &Path) -> Result<Vec<(&'static Setting, String)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "cannot read the config file {}: {e}",
            path.display()
        ))
    })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        ConfigError(format!(
            "the config file {} is not valid TOML: {}",
            path.display(),
            e.to_string().trim_end()
        ))
    })?;
    let mut settings = Vec::new();
    for (key, value) in table {
        let name = key.replace('_', "-");
        let setting = SETTINGS.iter().find(|s| s.key == name).ok_or_else(|| {
            let known: Vec<_> = SETTINGS.iter().map(|s| s.key).collect();
            ConfigError(format!(
                "unknown key `{key}` in the config file {} (known keys: {})",
                path.display(),
                known.join(", ")
            ))
        })?;
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(ConfigError(format!(
                    "invalid value for `{key}` in {}: a {}, where a string, an integer or a boolean is expected ({})",
                    path.display(),
                    other.type_str(),
                    setting.values
                )));
            }
        };
        settings.push((setting, value));
    }
    Ok(settings)
}

fn parse_u64(value: &str) -> Result<u64, String> {
    value
        .replace('_', "")
        .parse()
        .map_err(|_| "not a whole number".to_string())
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err("not a boolean".to_string()),
    }
}

fn usize_of(n: u64) -> Result<usize, String> {
    usize::try_from(n).map_err(|_| "too large".to_string())
}

impl ServeConfig {
    /// Sets the setting `key` from its text; the error says what is wrong with the value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "data-dir" => {
                if value.is_empty() {
                    return Err("empty".into());
                }
                self.data_dir = PathBuf::from(value);
            }
            "durability" => {
                self.durability = match value {
                    "durable" => Durability::Durable,
                    "async" => Durability::Async,
                    "none" => Durability::None,
                    _ => return Err("unknown durability".into()),
                }
            }
            "http-addr" => {
                self.http_addr = match value {
                    "off" => None,
                    addr => Some(
                        addr.parse::<std::net::SocketAddr>()
                            .map_err(|e| format!("not HOST:PORT ({e})"))?,
                    ),
                }
            }
            "web-dir" => {
                if value.is_empty() {
                    return Err("empty".into());
                }
                self.web_dir = PathBuf::from(value);
            }
            "auto-verify" => {
                self.auto_verify = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err("not true or false".into()),
                }
            }
            "admin-token" => {
                self.admin_token = match value {
                    "off" => None,
                    token if token.len() >= 16 && token.bytes().all(|b| b.is_ascii_graphic()) => {
                        Some(token.to_string())
                    }
                    _ => {
                        return Err(
                            "at least 16 printable characters without spaces, or off".into()
                        );
                    }
                }
            }
            "ws-queue" => {
                self.ws_queue = match value.parse::<usize>() {
                    Ok(n) if n >= 1 => n,
                    _ => return Err("not a whole number of messages, at least 1".into()),
                }
            }
            "feed" => {
                self.feed = match value {
                    "sim" => FeedMode::Sim,
                    "kafka" => FeedMode::Kafka,
                    "off" => FeedMode::Off,
                    _ => return Err("not sim, kafka or off".into()),
                }
            }
            "kafka-brokers" => {
                self.kafka_brokers = match value {
                    "off" => None,
                    list if !list.is_empty() && list.split(',').all(|b| b.contains(':')) => {
                        Some(list.to_string())
                    }
                    _ => return Err("not HOST:PORT[,HOST:PORT...] or off".into()),
                }
            }
            "kafka-dead-letter" if value == "off" => self.kafka_dead_letter = None,
            "kafka-assignment" => {
                self.kafka_assignment_group = match value {
                    "group" => true,
                    "all" => false,
                    _ => return Err("not group or all".into()),
                }
            }
            "kafka-topic" | "kafka-group" | "kafka-dead-letter" => {
                let valid = !value.is_empty()
                    && value.len() <= 249
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                if !valid {
                    return Err("1 to 249 of A-Z a-z 0-9 . _ -".into());
                }
                match key {
                    "kafka-topic" => self.kafka_topic = value.to_string(),
                    "kafka-group" => self.kafka_group = value.to_string(),
                    _ => self.kafka_dead_letter = Some(value.to_string()),
                }
            }
            "sim-products" => {
                let n = usize_of(parse_u64(value)?)?;
                if n > 10_000_000 {
                    return Err("at most 10000000".into());
                }
                self.sim_products = n;
            }
            "sim-rate" => self.sim_rate = parse_u64(value)?,
            "late-ms" => {
                self.late_ms =
                    i64::try_from(parse_u64(value)?).map_err(|_| "too large".to_string())?
            }
            "tick-retention-hours" => match parse_u64(value)? {
                0 => return Err("at least 1 hour".into()),
                n if n > 24 * 365 * 100 => return Err("at most 100 years".into()),
                n => self.tick_retention_hours = n,
            },
            "liquidity" => {
                self.liquidity = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err("not true or false".into()),
                }
            }
            "rate-limit" => {
                self.rate_limit = value
                    .parse()
                    .map_err(|_| "not a whole number of requests per second".to_string())?
            }
            "sync" => {
                self.sync = match value {
                    "thread" => SyncMode::Thread,
                    "inline" => SyncMode::Inline,
                    _ => return Err("unknown sync mode".into()),
                }
            }
            "segment-fill" => {
                self.segment_fill = match value {
                    "zeroes" => SegmentFill::Zeroes,
                    "allocate" => SegmentFill::Allocate,
                    _ => return Err("unknown segment fill".into()),
                }
            }
            "ring-size" => {
                let n = usize_of(parse_u64(value)?)?;
                if !n.is_power_of_two() || n < RING_SIZE_MIN {
                    return Err(format!("not a power of two of at least {RING_SIZE_MIN}"));
                }
                self.ring_size = n;
            }
            "topology" => self.topology = value.parse::<Topology>()?,
            "batch-max" => {
                let n = usize_of(parse_u64(value)?)?;
                if n == 0 {
                    return Err("must be at least 1".into());
                }
                self.batch_max = n;
            }
            "spin-us" => self.spin_us = parse_u64(value)?,
            "segment-size-mib" => {
                let n = parse_u64(value)?;
                if !(1..=2048).contains(&n) {
                    return Err("out of range".into());
                }
                self.segment_size_mib = n;
            }
            "snapshot-every" => self.snapshot_every = parse_u64(value)?,
            "snapshots-kept" => {
                let n = usize_of(parse_u64(value)?)?;
                if n == 0 {
                    return Err("must be at least 1".into());
                }
                self.snapshots_kept = n;
            }
            "snapshot-mode" => {
                self.snapshot_mode = match value {
                    "fork" => SnapshotMode::Fork,
                    "in-thread" => SnapshotMode::InThread,
                    _ => return Err("unknown snapshot mode".into()),
                }
            }
            "snapshot-on-shutdown" => self.snapshot_on_shutdown = parse_bool(value)?,
            "retention" => {
                self.retention = match value {
                    "keep" => Retention::Keep,
                    "delete" => Retention::Delete,
                    _ => match value.strip_prefix("archive:") {
                        Some(dir) if !dir.is_empty() => Retention::Archive(PathBuf::from(dir)),
                        Some(_) => return Err("archive: needs a directory".into()),
                        None => return Err("unknown retention".into()),
                    },
                }
            }
            "load-rate" => {
                let n = parse_u64(value)?;
                if n > 10_000_000 {
                    return Err("more than 10,000,000 commands/s".into());
                }
                self.load_rate = n;
            }
            "ack-log" => {
                self.ack_log = match value {
                    "off" => None,
                    "-" => Some(AckLog::Stdout),
                    "" => return Err("empty".into()),
                    path => Some(AckLog::File(PathBuf::from(path))),
                }
            }
            _ => return Err(format!("no setting {key}")),
        }
        Ok(())
    }

    /// The market data's configuration.
    pub fn market(&self) -> bourse_marketdata::MarketConfig {
        bourse_marketdata::MarketConfig {
            late_ms: self.late_ms,
            tick_retention_ms: i64::try_from(self.tick_retention_hours.saturating_mul(3_600_000))
                .unwrap_or(i64::MAX),
            ..bourse_marketdata::MarketConfig::new(self.data_dir.join("market"))
        }
    }

    /// The setting `key` as text (what `set` would take back).
    pub fn value(&self, key: &str) -> String {
        match key {
            "data-dir" => self.data_dir.display().to_string(),
            "durability" => match self.durability {
                Durability::Durable => "durable",
                Durability::Async => "async",
                Durability::None => "none",
            }
            .to_string(),
            "http-addr" => match self.http_addr {
                Some(addr) => addr.to_string(),
                None => "off".to_string(),
            },
            "web-dir" => self.web_dir.display().to_string(),
            "auto-verify" => self.auto_verify.to_string(),
            "admin-token" => match self.admin_token {
                Some(_) => "(set, not shown)".to_string(),
                None => "off".to_string(),
            },
            "rate-limit" => self.rate_limit.to_string(),
            "ws-queue" => self.ws_queue.to_string(),
            "feed" => match self.feed {
                FeedMode::Sim => "sim",
                FeedMode::Kafka => "kafka",
                FeedMode::Off => "off",
            }
            .to_string(),
            "kafka-brokers" => self.kafka_brokers.clone().unwrap_or_else(|| "off".into()),
            "kafka-topic" => self.kafka_topic.clone(),
            "kafka-group" => self.kafka_group.clone(),
            "kafka-dead-letter" => self
                .kafka_dead_letter
                .clone()
                .unwrap_or_else(|| "off".into()),
            "kafka-assignment" => if self.kafka_assignment_group {
                "group"
            } else {
                "all"
            }
            .to_string(),
            "sim-products" => self.sim_products.to_string(),
            "sim-rate" => self.sim_rate.to_string(),
            "late-ms" => self.late_ms.to_string(),
            "tick-retention-hours" => self.tick_retention_hours.to_string(),
            "liquidity" => self.liquidity.to_string(),
            "sync" => match self.sync {
                SyncMode::Thread => "thread",
                SyncMode::Inline => "inline",
            }
            .to_string(),
            "segment-fill" => match self.segment_fill {
                SegmentFill::Zeroes => "zeroes",
                SegmentFill::Allocate => "allocate",
            }
            .to_string(),
            "ring-size" => self.ring_size.to_string(),
            "topology" => match self.topology {
                Topology::Single => "single",
                Topology::Parallel => "parallel",
            }
            .to_string(),
            "batch-max" => self.batch_max.to_string(),
            "spin-us" => self.spin_us.to_string(),
            "segment-size-mib" => self.segment_size_mib.to_string(),
            "snapshot-every" => self.snapshot_every.to_string(),
            "snapshots-kept" => self.snapshots_kept.to_string(),
            "snapshot-mode" => match self.snapshot_mode {
                SnapshotMode::Fork => "fork",
                SnapshotMode::InThread => "in-thread",
            }
            .to_string(),
            "snapshot-on-shutdown" => self.snapshot_on_shutdown.to_string(),
            "retention" => match &self.retention {
                Retention::Keep => "keep".to_string(),
                Retention::Delete => "delete".to_string(),
                Retention::Archive(dir) => format!("archive:{}", dir.display()),
            },
            "load-rate" => self.load_rate.to_string(),
            "ack-log" => match &self.ack_log {
                None => "off".to_string(),
                Some(AckLog::Stdout) => "-".to_string(),
                Some(AckLog::File(path)) => path.display().to_string(),
            },
            _ => String::new(),
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

    /// The API's settings.
    pub fn api(&self) -> bourse_gateway::ApiConfig {
        bourse_gateway::ApiConfig {
            auto_verify: self.auto_verify,
            admin_token: self.admin_token.clone(),
            rate_limit: self.rate_limit,
            web_dir: self.web_dir.clone(),
        }
    }

    /// The pipeline's configuration.
    pub fn pipeline(&self) -> PipelineConfig {
        PipelineConfig {
            ring_size: self.ring_size,
            topology: self.topology,
            batch_max: self.batch_max,
            spin: Duration::from_micros(self.spin_us),
            snapshot_mode: self.snapshot_mode,
            snapshot_on_shutdown: self.snapshot_on_shutdown,
            sync: self.sync,
            ..PipelineConfig::default()
        }
    }
}

/// The text of `bourse serve --help`.
pub fn help() -> String {
    let mut out = String::from(
        "usage: bourse serve [--config FILE] [--KEY VALUE ...]\n\n\
         Recovers the data directory (snapshot + journal), starts the pipeline and runs until\n\
         SIGINT or SIGTERM, then drains the ring, commits and (by default) writes a snapshot.\n\n\
         Each setting is a flag --KEY, an environment variable and a key in the TOML file\n\
         (--config FILE or BOURSE_CONFIG); flags win over the environment, the environment over\n\
         the file, the file over the defaults.\n\n",
    );
    for s in SETTINGS {
        out.push_str(&format!(
            "  --{:<21} {:<28} default {}\n  {:<23} {}\n",
            s.key, s.env, s.default, "", s.help
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Write;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn run(argv: &str, env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match load(&args(argv), &|name| env.get(name).cloned())? {
            Invocation::Serve(loaded) => Ok(*loaded),
            Invocation::Help => panic!("help"),
        }
    }

    fn toml_file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let loaded = run("", &[]).unwrap();
        let c = &loaded.config;
        assert_eq!(c.data_dir, PathBuf::from("./bourse-data"));
        assert_eq!(c.web_dir, PathBuf::from("web/dist"));
        assert_eq!(c.durability, Durability::Durable);
        assert_eq!(c.ring_size, 65536);
        assert_eq!(c.topology, Topology::Single);
        assert_eq!(c.batch_max, 4096);
        assert_eq!(c.snapshot_every, 1_000_000);
        assert_eq!(c.snapshots_kept, 3);
        assert_eq!(c.snapshot_mode, SnapshotMode::Fork);
        assert!(c.snapshot_on_shutdown);
        assert_eq!(c.retention, Retention::Keep);
        assert_eq!(c.load_rate, 0);
        assert_eq!(c.ack_log, None);
        assert!(loaded.origins.is_empty());
        // Every setting reads back what it was set to.
        for s in SETTINGS {
            assert_eq!(c.value(s.key), s.default, "{}", s.key);
        }
    }

    #[test]
    fn flags_beat_env_beat_file_beat_defaults() {
        let file = toml_file(
            "ring-size = 1024\ndurability = \"async\"\nbatch_max = 7\nretention = \"archive:/tmp/old\"\n",
        );
        let path = file.path().to_str().unwrap();
        let loaded = run(
            &format!("--config {path} --ring-size=4096 --topology parallel"),
            &[
                ("BOURSE_RING_SIZE", "2048"),
                ("BOURSE_DURABILITY", "none"),
                ("BOURSE_TOPOLOGY", "single"),
            ],
        )
        .unwrap();
        let c = &loaded.config;
        assert_eq!(c.ring_size, 4096, "flag over env over file");
        assert_eq!(c.topology, Topology::Parallel, "flag over env");
        assert_eq!(c.durability, Durability::None, "env over file");
        assert_eq!(c.batch_max, 7, "file over default (snake_case key)");
        assert_eq!(c.retention, Retention::Archive(PathBuf::from("/tmp/old")));
        assert_eq!(c.snapshots_kept, 3, "default");
        assert_eq!(loaded.origins["ring-size"], Origin::Flag);
        assert_eq!(
            loaded.origins["durability"],
            Origin::Env("BOURSE_DURABILITY")
        );
        assert_eq!(
            loaded.origins["batch-max"],
            Origin::File(file.path().to_path_buf())
        );
        assert!(!loaded.origins.contains_key("snapshots-kept"));
        let described = loaded.describe();
        assert!(
            described.contains("ring-size             = 4096"),
            "{described}"
        );
        assert!(described.contains("(env BOURSE_DURABILITY)"), "{described}");
    }

    #[test]
    fn the_config_file_can_be_named_in_the_environment_and_empty_variables_are_unset() {
        let file = toml_file("snapshot-every = 0\nsnapshot-on-shutdown = false\n");
        let loaded = run(
            "--load-rate 1_000",
            &[
                (CONFIG_ENV, file.path().to_str().unwrap()),
                ("BOURSE_SNAPSHOT_EVERY", ""),
            ],
        )
        .unwrap();
        assert_eq!(loaded.config.snapshot_every, 0);
        assert!(!loaded.config.snapshot_on_shutdown);
        assert_eq!(loaded.config.load_rate, 1000);
        assert_eq!(loaded.config_file.as_deref(), Some(file.path()));
    }

    #[test]
    fn a_repeated_flag_takes_the_last_value() {
        let loaded = run(
            "--ack-log - --ack-log acks.txt --ack-log=off --data-dir d",
            &[],
        )
        .unwrap();
        assert_eq!(loaded.config.ack_log, None);
        let loaded = run("--ack-log - ", &[]).unwrap();
        assert_eq!(loaded.config.ack_log, Some(AckLog::Stdout));
        assert_eq!(loaded.config.data_dir, PathBuf::from("./bourse-data"));
    }

    fn error(argv: &str, env: &[(&str, &str)]) -> String {
        run(argv, env).unwrap_err().to_string()
    }

    #[test]
    fn bad_values_name_the_flag_variable_or_key() {
        let e = error("--ring-size 1000", &[]);
        assert!(
            e.contains("--ring-size") && e.contains("power of two"),
            "{e}"
        );
        let e = error("--batch-max=0", &[]);
        assert!(e.contains("--batch-max") && e.contains("at least 1"), "{e}");
        let e = error("", &[("BOURSE_DURABILITY", "fast")]);
        assert!(
            e.contains("BOURSE_DURABILITY") && e.contains("\"fast\""),
            "{e}"
        );
        assert!(e.contains("durable, async, none"), "{e}");
        let e = error("--snapshot-on-shutdown maybe", &[]);
        assert!(
            e.contains("--snapshot-on-shutdown") && e.contains("boolean"),
            "{e}"
        );
        let e = error("--retention archive:", &[]);
        assert!(e.contains("--retention"), "{e}");
        let e = error("--topology ring", &[]);
        assert!(
            e.contains("--topology") && e.contains("unknown topology"),
            "{e}"
        );
        let e = error("--load-rate", &[]);
        assert!(e.contains("--load-rate needs a value"), "{e}");
        let e = error("--ringsize 64", &[]);
        assert!(e.contains("unknown flag --ringsize"), "{e}");
        let e = error("serve", &[]);
        assert!(e.contains("unexpected argument \"serve\""), "{e}");
        // A bad value loses even if a higher source would override it: the operator wants to
        // know about it.
        let e = error("--durability none", &[("BOURSE_RING_SIZE", "12")]);
        assert!(e.contains("BOURSE_RING_SIZE"), "{e}");
    }

    #[test]
    fn file_errors_name_the_key_and_the_file() {
        let file = toml_file("ring-size = 64\nring-sise = 128\n");
        let e = error(&format!("--config {}", file.path().display()), &[]);
        assert!(e.contains("unknown key `ring-sise`"), "{e}");
        assert!(e.contains(&file.path().display().to_string()), "{e}");
        assert!(e.contains("known keys: data-dir"), "{e}");

        let file = toml_file("segment-size-mib = -4\n");
        let e = error(&format!("--config {}", file.path().display()), &[]);
        assert!(
            e.contains("`segment-size-mib` in") && e.contains("\"-4\""),
            "{e}"
        );

        let file = toml_file("ring-size = [64]\n");
        let e = error(&format!("--config {}", file.path().display()), &[]);
        assert!(e.contains("`ring-size`") && e.contains("array"), "{e}");

        let file = toml_file("ring-size = \n");
        let e = error(&format!("--config {}", file.path().display()), &[]);
        assert!(e.contains("not valid TOML"), "{e}");

        let e = error("--config /nonexistent/bourse.toml", &[]);
        assert!(
            e.contains("cannot read the config file /nonexistent/bourse.toml"),
            "{e}"
        );
    }

    #[test]
    fn help_is_recognised_and_lists_every_setting() {
        assert!(matches!(
            load(&args("--ring-size 64 --help"), &|_| None),
            Ok(Invocation::Help)
        ));
        let text = help();
        for s in SETTINGS {
            assert!(text.contains(s.key) && text.contains(s.env), "{}", s.key);
        }
    }

    #[test]
    fn docs_serve_md_has_a_row_for_every_setting() {
        let doc = include_str!("../../docs/serve.md");
        for s in SETTINGS {
            let row = format!("| `{}` | `{}` | `{}` |", s.key, s.env, s.default);
            assert!(doc.contains(&row), "docs/serve.md lacks the row {row}");
        }
    }

    #[test]
    fn store_and_pipeline_configs_follow_the_settings() {
        let loaded = run(
            "--data-dir /d --segment-size-mib 2 --durability async --snapshots-kept 5 --spin-us 7 --snapshot-mode in-thread",
            &[],
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
}
