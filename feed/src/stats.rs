//! Counters shared between the consumer thread and its observers.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// Stored in an offset or watermark slot while the value is unknown.
const UNKNOWN: i64 = -1;

/// Live counters of one [`crate::Consumer`], shared with an `Arc`.
///
/// Written by the consumer thread only, with relaxed atomics: each value is current on its own,
/// but two values read one after the other need not come from the same instant.
#[derive(Debug)]
pub struct FeedStats {
    messages: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    discarded: AtomicU64,
    gaps: AtomicU64,
    broker_reachable: AtomicBool,
    running: AtomicBool,
    partitions: Box<[PartitionSlot]>,
}

#[derive(Debug)]
struct PartitionSlot {
    assigned: AtomicBool,
    next_offset: AtomicI64,
    low_watermark: AtomicI64,
    high_watermark: AtomicI64,
}

/// One partition's position as seen by [`FeedStats::lags`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionLag {
    /// The partition number.
    pub partition: i32,
    /// The next offset the consumer will hand to the handler, if a message was seen or the
    /// caller gave one.
    pub next_offset: Option<i64>,
    /// The partition's high watermark (offset of the next message the broker will write) at the
    /// last statistics report.
    pub high_watermark: Option<i64>,
    /// `high_watermark - next_offset` (or minus the low watermark when reading from the
    /// earliest and nothing was read yet); `None` until the first statistics report.
    pub lag: Option<i64>,
}

impl FeedStats {
    pub(crate) fn new(partitions_max: usize) -> FeedStats {
        let partitions = (0..partitions_max)
            .map(|_| PartitionSlot {
                assigned: AtomicBool::new(false),
                next_offset: AtomicI64::new(UNKNOWN),
                low_watermark: AtomicI64::new(UNKNOWN),
                high_watermark: AtomicI64::new(UNKNOWN),
            })
            .collect();
        FeedStats {
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            broker_reachable: AtomicBool::new(false),
            running: AtomicBool::new(true),
            partitions,
        }
    }

    /// Messages handed to the handler.
    pub fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    /// Payload bytes handed to the handler (keys not counted).
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Errors reported by the client (broker transport, fetch, commit, rebalance). The thread
    /// keeps running through all of them.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Messages dropped: behind the partition's position (handed over already, or fetched early
    /// on purpose after an assignment, see `ConsumerConfig::start_rewind_messages`), or from a
    /// partition no longer assigned.
    pub fn discarded(&self) -> u64 {
        self.discarded.load(Ordering::Relaxed)
    }

    /// Assignments whose first message came after the caller's offset although the fetch
    /// started at offset 0: the offsets between are not on the broker (retention, compaction,
    /// a recreated topic). Normally zero.
    pub fn gaps(&self) -> u64 {
        self.gaps.load(Ordering::Relaxed)
    }

    /// Whether the brokers leading the assigned partitions answer: false after a transport
    /// failure or while a statistics report shows them not `UP`; true again after a report
    /// shows them `UP` or a message arrives. False before the first connection.
    pub fn broker_reachable(&self) -> bool {
        self.broker_reachable.load(Ordering::Relaxed)
    }

    /// Whether the consumer thread is still running.
    pub fn running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// The lag of one partition: the high watermark minus the next offset to read. `None` if
    /// the partition is not assigned or no statistics report arrived yet.
    pub fn lag(&self, partition: i32) -> Option<i64> {
        self.partition_lag(partition).and_then(|lag| lag.lag)
    }

    /// The positions and lags of every assigned partition, by partition number.
    pub fn lags(&self) -> Vec<PartitionLag> {
        (0..self.partitions.len())
            .filter_map(|index| i32::try_from(index).ok())
            .filter_map(|partition| self.partition_lag(partition))
            .collect()
    }

    /// The sum of the known partition lags.
    pub fn total_lag(&self) -> i64 {
        self.lags().iter().filter_map(|lag| lag.lag).sum()
    }

    fn partition_lag(&self, partition: i32) -> Option<PartitionLag> {
        let slot = self.slot(partition)?;
        if !slot.assigned.load(Ordering::Relaxed) {
            return None;
        }
        let known = |value: i64| (value >= 0).then_some(value);
        let next_offset = known(slot.next_offset.load(Ordering::Relaxed));
        let low_watermark = known(slot.low_watermark.load(Ordering::Relaxed));
        let high_watermark = known(slot.high_watermark.load(Ordering::Relaxed));
        let lag = match (high_watermark, next_offset.or(low_watermark)) {
            (Some(high), Some(next)) => Some((high - next).max(0)),
            _ => None,
        };
        Some(PartitionLag {
            partition,
            next_offset,
            high_watermark,
            lag,
        })
    }

    fn slot(&self, partition: i32) -> Option<&PartitionSlot> {
        usize::try_from(partition)
            .ok()
            .and_then(|index| self.partitions.get(index))
    }

    pub(crate) fn add_delivered(&self, messages: u64, bytes: u64) {
        self.messages.fetch_add(messages, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn add_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_discarded(&self) {
        self.discarded.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_gap(&self) {
        self.gaps.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_broker_reachable(&self, reachable: bool) -> bool {
        self.broker_reachable.swap(reachable, Ordering::Relaxed)
    }

    pub(crate) fn set_stopped(&self) {
        self.running.store(false, Ordering::Relaxed);
    }

    /// Marks `partition` assigned (or not) and resets its position and watermarks: its lag is
    /// unknown until the next statistics report (watermarks from before, say of a partition
    /// that was empty when it was last assigned, would show a lag of 0 for one that is far
    /// behind). The caller checked the range.
    pub(crate) fn set_assigned(&self, partition: i32, assigned: bool, next_offset: Option<i64>) {
        if let Some(slot) = self.slot(partition) {
            slot.next_offset
                .store(next_offset.unwrap_or(UNKNOWN), Ordering::Relaxed);
            slot.low_watermark.store(UNKNOWN, Ordering::Relaxed);
            slot.high_watermark.store(UNKNOWN, Ordering::Relaxed);
            slot.assigned.store(assigned, Ordering::Relaxed);
        }
    }

    pub(crate) fn is_assigned(&self, partition: i32) -> bool {
        self.slot(partition)
            .is_some_and(|slot| slot.assigned.load(Ordering::Relaxed))
    }

    pub(crate) fn set_next_offset(&self, partition: i32, next_offset: i64) {
        if let Some(slot) = self.slot(partition) {
            slot.next_offset.store(next_offset, Ordering::Relaxed);
        }
    }

    pub(crate) fn set_watermarks(&self, partition: i32, low: i64, high: i64) {
        if let Some(slot) = self.slot(partition) {
            slot.low_watermark
                .store(low.max(UNKNOWN), Ordering::Relaxed);
            slot.high_watermark
                .store(high.max(UNKNOWN), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_high_watermark_minus_next_offset() {
        let stats = FeedStats::new(4);
        assert_eq!(stats.lag(1), None, "unassigned partition has no lag");
        stats.set_assigned(1, true, None);
        assert_eq!(stats.lag(1), None, "no statistics report yet");
        stats.set_watermarks(1, 10, 100);
        assert_eq!(stats.lag(1), Some(90), "from the earliest: high - low");
        stats.set_next_offset(1, 60);
        assert_eq!(stats.lag(1), Some(40));
        stats.set_watermarks(1, 10, -1001);
        assert_eq!(stats.lag(1), None, "librdkafka's invalid offset is unknown");
        assert_eq!(stats.lag(7), None, "out of range");
        assert_eq!(stats.lag(-1), None);
        stats.set_watermarks(1, 10, 100);
        stats.set_assigned(2, true, Some(100));
        stats.set_watermarks(2, 0, 150);
        assert_eq!(stats.total_lag(), 40 + 50);
        assert_eq!(stats.lags().len(), 2);
    }

    #[test]
    fn a_partition_assigned_again_has_no_lag_until_the_next_report() {
        let stats = FeedStats::new(4);
        // Assigned while empty: caught up.
        stats.set_assigned(3, true, None);
        stats.set_watermarks(3, 0, 0);
        assert_eq!(stats.lag(3), Some(0));
        // Taken away, then given back far behind: not caught up until a report says so.
        stats.set_assigned(3, false, None);
        stats.set_assigned(3, true, None);
        assert_eq!(stats.lag(3), None);
        stats.set_watermarks(3, 0, 250_000);
        assert_eq!(stats.lag(3), Some(250_000));
    }
}
