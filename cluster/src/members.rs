//! Which nodes are alive: the membership that the market-data tier places partitions over
//! (`bourse_marketdata::placement`). No protocol of its own: each node appends a heartbeat,
//! its id and HTTP address, to the members topic ([`members_topic`], one partition) every
//! `interval`, and reads the topic from its end. A node is live to another while that one
//! has heard from it within `timeout`, judged on the reader's own clock when the heartbeat
//! arrives (so the nodes' clocks need not agree). A node is always live to itself.
//!
//! Every node reads the same heartbeats, so the views agree once the heartbeats have
//! arrived. They may differ for up to about `timeout` after a node starts or stops. Placement
//! then differs for that long too, and two nodes may both hold a partition; neither serves
//! what it has not built.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{LogError, LogReader, LogRecord, LogWriter, Moment, ReaderConfig, WriterConfig};

/// The members topic of a cluster: `<prefix>.members`.
pub fn members_topic(prefix: &str) -> String {
    format!("{prefix}.members")
}

/// A live node and where its HTTP API answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub node: u16,
    /// `http://host:port`.
    pub addr: String,
}

/// A heartbeat: the node, little-endian, then its address in UTF-8.
fn encode(node: u16, addr: &str) -> Vec<u8> {
    let mut bytes = node.to_le_bytes().to_vec();
    bytes.extend_from_slice(addr.as_bytes());
    bytes
}

fn decode(bytes: &[u8]) -> Option<Member> {
    let node = u16::from_le_bytes(bytes.get(..2)?.try_into().ok()?);
    let addr = std::str::from_utf8(bytes.get(2..)?).ok()?.to_string();
    Some(Member { node, addr })
}

/// One node's view of who is live, with no thread and no clock of its own: heartbeats go in
/// through [`MemberView::heard`], stamped when they arrived, and [`MemberView::live`] judges
/// at the time it is given.
#[derive(Debug)]
pub struct MemberView<M> {
    me: Member,
    timeout: Duration,
    heard: BTreeMap<u16, (M, String)>,
}

impl<M: Moment> MemberView<M> {
    /// The view of node `me`, before any heartbeat: only `me` is live.
    pub fn new(me: Member, timeout: Duration) -> MemberView<M> {
        MemberView {
            me,
            timeout,
            heard: BTreeMap::new(),
        }
    }

    /// A heartbeat of `member` arrived at `at`.
    pub fn heard(&mut self, member: Member, at: M) {
        let entry = self
            .heard
            .entry(member.node)
            .or_insert((at, member.addr.clone()));
        if at >= entry.0 {
            *entry = (at, member.addr);
        }
    }

    /// The live nodes at `now`, by id: this one, and every other heard from within the
    /// timeout.
    pub fn live(&self, now: M) -> Vec<Member> {
        let mut live: Vec<Member> = self
            .heard
            .iter()
            .filter(|(node, (at, _))| **node != self.me.node && now.since(*at) <= self.timeout)
            .map(|(node, (_, addr))| Member {
                node: *node,
                addr: addr.clone(),
            })
            .collect();
        live.push(self.me.clone());
        live.sort_by_key(|m| m.node);
        live
    }
}

/// Settings of [`Members::start`].
#[derive(Clone, Debug)]
pub struct MembersConfig {
    pub brokers: String,
    /// The cluster's members topic ([`members_topic`]).
    pub topic: String,
    /// This node and its HTTP address.
    pub me: Member,
    /// How often this node appends its heartbeat.
    pub interval: Duration,
    /// How long after its last heartbeat a node still counts as live.
    pub timeout: Duration,
}

impl MembersConfig {
    /// Heartbeats every second, a node dead after 3 s without one.
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>, me: Member) -> Self {
        MembersConfig {
            brokers: brokers.into(),
            topic: topic.into(),
            me,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(3),
        }
    }
}

/// How long the broker may hold a fetch of the members topic: well under the interval, and
/// long enough not to busy the broker (tansu answers a fetch only after this long).
const MEMBERS_FETCH_WAIT: Duration = Duration::from_millis(50);

/// This node's heartbeats and its view of the others'.
pub struct Members {
    view: Arc<Mutex<MemberView<Instant>>>,
    /// When this node has heard every live node at least once: one heartbeat interval and a
    /// half after it started reading.
    settled_at: Instant,
    reader: Mutex<Option<LogReader>>,
    stop: Arc<AtomicBool>,
    beating: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Members {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Members")
            .field("live", &self.live())
            .finish_non_exhaustive()
    }
}

impl Members {
    /// Starts reading the members topic at its end and appending this node's heartbeat. The
    /// topic must exist (`bourse_feed::create_topic`, one partition).
    pub fn start(config: MembersConfig) -> Result<Members, LogError> {
        if config.interval.is_zero() || config.timeout <= config.interval {
            return Err(LogError::Config(
                "members: the timeout must be longer than the heartbeat interval".into(),
            ));
        }
        let view = Arc::new(Mutex::new(MemberView::new(
            config.me.clone(),
            config.timeout,
        )));
        let (_, end) = crate::log_bounds(&config.brokers, &config.topic)?;
        let reader = {
            let view = Arc::clone(&view);
            let mut reader = ReaderConfig::new(
                &config.brokers,
                &config.topic,
                format!("members-{}", config.me.node),
            );
            reader.fetch_wait_max = MEMBERS_FETCH_WAIT;
            LogReader::start(&reader, end, move |record: LogRecord<'_>| {
                if let Some(member) = decode(record.bytes) {
                    lock(&view).heard(member, Instant::now());
                }
            })?
        };
        let writer = LogWriter::new(&WriterConfig::new(&config.brokers, &config.topic))?;
        let stop = Arc::new(AtomicBool::new(false));
        let beating = {
            let stop = Arc::clone(&stop);
            let heartbeat = encode(config.me.node, &config.me.addr);
            std::thread::Builder::new()
                .name("bourse-members".into())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        // Not waited for: a heartbeat that fails to go out is the next one's job,
                        // and the others judge by what arrives.
                        let _ = writer.append(&heartbeat);
                        std::thread::park_timeout(config.interval);
                    }
                })
                .map_err(|e| LogError::Config(format!("cannot start the members thread: {e}")))?
        };
        Ok(Members {
            view,
            settled_at: Instant::now() + config.interval + config.interval / 2,
            reader: Mutex::new(Some(reader)),
            stop,
            beating: Mutex::new(Some(beating)),
        })
    }

    /// Whether this node has read the topic long enough to have heard every live node (a
    /// heartbeat interval and a half): before, [`Members::live`] may miss some.
    pub fn settled(&self) -> bool {
        Instant::now() >= self.settled_at
    }

    /// The live nodes now, by id (this one included).
    pub fn live(&self) -> Vec<Member> {
        lock(&self.view).live(Instant::now())
    }

    /// Stops the heartbeats and the reading: the others see this node dead after their
    /// timeout. This node then sees only itself.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(beating) = lock(&self.beating).take() {
            beating.thread().unpark();
            let _ = beating.join();
        }
        if let Some(reader) = lock(&self.reader).take() {
            let _ = reader.stop();
        }
    }
}

impl Drop for Members {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(node: u16) -> Member {
        Member {
            node,
            addr: format!("http://127.0.0.1:{}", 8000 + node),
        }
    }

    #[test]
    fn a_heartbeat_round_trips() {
        assert_eq!(
            decode(&encode(7, "http://h:1")),
            Some(member_at(7, "http://h:1"))
        );
        assert_eq!(decode(&[1]), None);
        assert_eq!(decode(&[1, 0, 0xff]), None);
    }

    fn member_at(node: u16, addr: &str) -> Member {
        Member {
            node,
            addr: addr.into(),
        }
    }

    #[test]
    fn a_node_is_live_while_heard_from_within_the_timeout_and_always_to_itself() {
        let s = Duration::from_secs;
        let mut view = MemberView::new(member(1), s(3));
        assert_eq!(view.live(s(0)), vec![member(1)]);
        view.heard(member(2), s(10));
        view.heard(member(3), s(11));
        assert_eq!(view.live(s(12)), vec![member(1), member(2), member(3)]);
        // 2 falls silent: dead once its last heartbeat is older than the timeout.
        view.heard(member(3), s(13));
        assert_eq!(view.live(s(13)), vec![member(1), member(2), member(3)]);
        assert_eq!(view.live(s(14)), vec![member(1), member(3)]);
        // A late heartbeat stamped earlier does not bring a node back or move it back.
        view.heard(member(3), s(12));
        assert_eq!(view.live(s(16)), vec![member(1), member(3)]);
        // 2 back, at a new address.
        view.heard(member_at(2, "http://other:9"), s(20));
        assert_eq!(
            view.live(s(20)),
            vec![member(1), member_at(2, "http://other:9")]
        );
        // Its own heartbeats do not make this node die or duplicate it.
        view.heard(member(1), s(0));
        assert_eq!(view.live(s(30)), vec![member(1)]);
    }
}
