//! Where each assigned partition stands on the consumer thread, and which polled message is
//! handed over: once per offset, from assigned partitions only, and never past a record batch
//! the broker skipped (see [`Probe`]).

use crate::FeedError;
use crate::context::{AssignmentChange, fetch_start};
use crate::stats::FeedStats;

/// Where each partition stands, as the consumer thread sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    Unassigned,
    Assigned {
        /// The next offset to hand over; `None`: from the earliest, nothing seen yet.
        next: Option<i64>,
        /// The offset last committed for monitoring.
        committed: Option<i64>,
        /// Set until the first message after the assignment proves that the fetch started at
        /// or before the caller's offset.
        probe: Option<Probe>,
    },
}

/// The check of the first fetch after an assignment at offset `target`. A broker may answer a
/// fetch at an offset inside a record batch with the *next* batch (tansu 0.6.0 does), which
/// would silently skip the rest of that batch. The fetch starts `start_rewind_messages` early;
/// when the first message still comes after `target`, the consumer fetches again from
/// `REWIND_FACTOR` times further back, dropping what comes before `target`, until a message at
/// or before `target` arrives, or the fetch started at offset 0 and the gap is real.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Probe {
    /// The caller's offset.
    pub(crate) target: i64,
    /// Where the current fetch started.
    pub(crate) start: i64,
}

/// The first rewind of a [`Probe`] that started exactly at its target, in messages.
const REWIND_FIRST: i64 = 256;
/// Each further rewind goes this many times further back.
const REWIND_FACTOR: i64 = 8;

impl Probe {
    /// A probe for an assignment at `next` fetched from `rewind` messages earlier, unless there
    /// is nothing before it to skip.
    pub(crate) fn at(next: Option<i64>, rewind: i64) -> Option<Probe> {
        next.filter(|target| *target > 0).map(|target| Probe {
            target,
            start: fetch_start(target, rewind),
        })
    }

    /// Where to fetch from next, further back than `start`.
    pub(crate) fn rewound(self) -> Probe {
        let distance = self.target - self.start;
        let distance = if distance == 0 {
            REWIND_FIRST
        } else {
            distance.saturating_mul(REWIND_FACTOR)
        };
        Probe {
            target: self.target,
            start: self.target.saturating_sub(distance).max(0),
        }
    }
}

/// What to do with a polled message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Hand it to the handler.
    Deliver,
    /// Drop it: behind the position, or not assigned.
    Discard,
    /// Drop it and fetch the partition again from this offset (see [`Probe`]).
    Rewind { from: i64 },
    /// Hand it over although it comes after the caller's offset: the offsets between are not on
    /// the broker.
    DeliverAfterGap { expected: i64 },
}

/// Applies an assignment change to the slots and the shared statistics.
pub(crate) fn apply_change(
    slots: &mut [Slot],
    stats: &FeedStats,
    start_rewind_messages: i64,
    change: AssignmentChange,
) -> Result<(), FeedError> {
    match change {
        AssignmentChange::Assigned(starts) => {
            for (partition, next) in starts {
                // The context refused partitions beyond the table before assigning them.
                let index = usize::try_from(partition).ok().filter(|i| *i < slots.len());
                let Some(index) = index else {
                    unreachable!("partition {partition} beyond the checked range");
                };
                slots[index] = Slot::Assigned {
                    next,
                    committed: None,
                    probe: Probe::at(next, start_rewind_messages),
                };
                stats.set_assigned(partition, true, next);
            }
        }
        AssignmentChange::Revoked(partitions) => {
            for partition in partitions {
                if let Some(slot) = usize::try_from(partition)
                    .ok()
                    .and_then(|index| slots.get_mut(index))
                {
                    *slot = Slot::Unassigned;
                    stats.set_assigned(partition, false, None);
                }
            }
        }
        AssignmentChange::RevokedAll => {
            for (index, slot) in slots.iter_mut().enumerate() {
                if *slot != Slot::Unassigned
                    && let Ok(partition) = i32::try_from(index)
                {
                    *slot = Slot::Unassigned;
                    stats.set_assigned(partition, false, None);
                }
            }
        }
        AssignmentChange::Rejected(error) => return Err(error),
    }
    Ok(())
}

/// Whether a polled message is handed over: its partition is assigned and its offset is not
/// behind the position (a message prefetched before a reassignment could be), and the first
/// message after an assignment does not skip past the caller's offset (see [`Probe`]). With
/// `dense` (the topic's offsets are dense; the value is the rewind) no message skips past the
/// next offset either: the partition is fetched again from before it.
pub(crate) fn admit(
    slots: &mut [Slot],
    stats: &FeedStats,
    dense: Option<i64>,
    partition: i32,
    offset: i64,
) -> Admission {
    let slot = usize::try_from(partition)
        .ok()
        .and_then(|index| slots.get_mut(index));
    let Some(Slot::Assigned { next, probe, .. }) = slot else {
        stats.add_discarded();
        return Admission::Discard;
    };
    let mut admitted = Admission::Deliver;
    if let Some(check) = *probe {
        if offset <= check.target {
            *probe = None;
        } else if check.start > 0 {
            let rewound = check.rewound();
            *probe = Some(rewound);
            stats.add_discarded();
            return Admission::Rewind {
                from: rewound.start,
            };
        } else {
            *probe = None;
            stats.add_gap();
            admitted = Admission::DeliverAfterGap {
                expected: check.target,
            };
        }
    }
    if next.is_some_and(|next| offset < next) {
        stats.add_discarded();
        return Admission::Discard;
    }
    if let (Some(rewind), Some(expected)) = (dense, *next)
        && probe.is_none()
        && offset > expected
    {
        let again = Probe {
            target: expected,
            start: fetch_start(expected, rewind),
        };
        *probe = Some(again);
        stats.add_discarded();
        return Admission::Rewind { from: again.start };
    }
    *next = Some(offset + 1);
    stats.set_next_offset(partition, offset + 1);
    admitted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_assignments() {
        let stats = FeedStats::new(4);
        let mut slots = vec![Slot::Unassigned; 4];
        let assigned = AssignmentChange::Assigned(vec![(0, Some(5)), (2, None)]);
        apply_change(&mut slots, &stats, 0, assigned).expect("in range");
        assert_eq!(
            slots[0],
            Slot::Assigned {
                next: Some(5),
                committed: None,
                probe: Some(Probe {
                    target: 5,
                    start: 5
                }),
            }
        );
        assert!(stats.is_assigned(2));
        apply_change(&mut slots, &stats, 0, AssignmentChange::Revoked(vec![0])).expect("ok");
        assert_eq!(slots[0], Slot::Unassigned);
        assert!(!stats.is_assigned(0));
        apply_change(&mut slots, &stats, 0, AssignmentChange::RevokedAll).expect("ok");
        assert!(slots.iter().all(|slot| *slot == Slot::Unassigned));
        let rejected = AssignmentChange::Rejected(FeedError::Timeout("test"));
        assert!(apply_change(&mut slots, &stats, 0, rejected).is_err());
    }

    #[test]
    fn admit_passes_each_offset_once_and_only_from_assigned_partitions() {
        use Admission::{Deliver, Discard};
        let stats = FeedStats::new(4);
        let mut slots = vec![Slot::Unassigned; 4];
        let assigned = AssignmentChange::Assigned(vec![(0, Some(10)), (1, None)]);
        apply_change(&mut slots, &stats, 0, assigned).expect("in range");
        let mut admit = |partition, offset| admit(&mut slots, &stats, None, partition, offset);
        assert_eq!(admit(0, 9), Discard, "behind the caller's offset");
        assert_eq!(admit(0, 10), Deliver);
        assert_eq!(admit(0, 10), Discard, "twice");
        assert_eq!(admit(0, 12), Deliver, "a gap (compaction, control records)");
        assert_eq!(admit(0, 11), Discard, "backwards");
        assert_eq!(admit(1, 0), Deliver, "from the earliest");
        assert_eq!(admit(1, 5), Deliver, "no probe from the earliest");
        assert_eq!(admit(2, 0), Discard, "unassigned");
        assert_eq!(admit(9, 0), Discard, "out of range");
        assert_eq!(admit(-1, 0), Discard, "negative");
        assert_eq!(stats.discarded(), 6);
        assert_eq!(stats.gaps(), 0);
        let next_offset = stats.lags().first().and_then(|lag| lag.next_offset);
        assert_eq!(next_offset, Some(13));
    }

    #[test]
    fn a_fetch_that_skips_the_callers_offset_is_rewound_until_it_does_not() {
        use Admission::{Deliver, Discard, Rewind};
        let stats = FeedStats::new(4);
        let mut slots = vec![Slot::Unassigned; 4];
        let assigned = AssignmentChange::Assigned(vec![(0, Some(5000))]);
        apply_change(&mut slots, &stats, 0, assigned).expect("in range");
        let mut admit = |offset| admit(&mut slots, &stats, None, 0, offset);
        // The broker answered from the next record batch: fetch again from further back.
        assert_eq!(admit(5300), Rewind { from: 5000 - 256 });
        assert_eq!(admit(5300), Rewind { from: 5000 - 2048 });
        // That fetch starts before the caller's offset: drop up to it, deliver from it.
        assert_eq!(admit(2952), Discard);
        assert_eq!(admit(4999), Discard);
        assert_eq!(admit(5000), Deliver);
        assert_eq!(admit(5001), Deliver);
        assert_eq!(stats.gaps(), 0);
    }

    #[test]
    fn a_rewound_start_rewinds_further_by_the_factor() {
        use Admission::{Deliver, Discard, Rewind};
        let stats = FeedStats::new(4);
        let mut slots = vec![Slot::Unassigned; 4];
        let assigned = AssignmentChange::Assigned(vec![(0, Some(50_000)), (1, Some(500))]);
        apply_change(&mut slots, &stats, 1_000, assigned).expect("in range");
        let mut admit = |partition, offset| admit(&mut slots, &stats, None, partition, offset);
        // The fetch started at 49 000; the broker began at 50 300: 8 000 further back.
        assert_eq!(admit(0, 50_300), Rewind { from: 42_000 });
        assert_eq!(admit(0, 41_000), Discard);
        assert_eq!(admit(0, 50_000), Deliver);
        // Partition 1 was fetched from 0 already: 600 is a real gap.
        assert_eq!(admit(1, 600), Admission::DeliverAfterGap { expected: 500 });
        assert_eq!(stats.gaps(), 1);
    }

    #[test]
    fn a_gap_that_remains_from_offset_zero_is_real() {
        use Admission::{Deliver, DeliverAfterGap, Rewind};
        let stats = FeedStats::new(4);
        let mut slots = vec![Slot::Unassigned; 4];
        let assigned = AssignmentChange::Assigned(vec![(0, Some(300))]);
        apply_change(&mut slots, &stats, 0, assigned).expect("in range");
        let mut admit = |offset| admit(&mut slots, &stats, None, 0, offset);
        assert_eq!(admit(1000), Rewind { from: 44 });
        assert_eq!(admit(1000), Rewind { from: 0 });
        assert_eq!(admit(1000), DeliverAfterGap { expected: 300 });
        assert_eq!(admit(1001), Deliver);
        assert_eq!(stats.gaps(), 1);
    }

    #[test]
    fn with_dense_offsets_a_gap_mid_stream_is_fetched_again() {
        use Admission::{Deliver, Discard, Rewind};
        let stats = FeedStats::new(4);
        let mut slots = vec![Slot::Unassigned; 4];
        let assigned = AssignmentChange::Assigned(vec![(0, None)]);
        apply_change(&mut slots, &stats, 0, assigned).expect("in range");
        let mut admit = |offset| admit(&mut slots, &stats, Some(100), 0, offset);
        assert_eq!(admit(0), Deliver);
        assert_eq!(admit(1), Deliver);
        // The broker skipped 2 to 499: fetch again from 100 before the gap (none before 0).
        assert_eq!(admit(500), Rewind { from: 0 });
        assert_eq!(admit(0), Discard, "already handed over");
        assert_eq!(admit(1), Discard);
        assert_eq!(admit(2), Deliver);
        assert_eq!(admit(3), Deliver);
        assert_eq!(stats.gaps(), 0);
    }
}
