//! Where a product's market data lives when it is spread over nodes (docs/market-data.md,
//! "Across nodes").
//!
//! - **A symbol's partition** of the tick topic is what the feed's producer picked from the
//!   key (the symbol). [`Partitioner`] recomputes it the way Kafka's clients do, so a node
//!   can tell which partition holds a product it does not hold itself.
//! - **A partition's holders** are a deterministic function of the live nodes: rendezvous
//!   (highest random weight) hashing. Every node scores each partition; the highest score
//!   owns it and the next ones are its standbys. Every node computes the same answer from
//!   the same set of live nodes, with no coordinator. The copies are on distinct nodes by
//!   construction. When a node leaves, only the partitions it held move: its standby is
//!   already the next best, so it becomes the owner with the state it has built, and the
//!   next node in the ranking becomes the new standby. When the node comes back, the
//!   placement is what it was before.

/// A node of the market-data tier (the cluster's node id).
pub type NodeId = u32;

/// How the feed's producer maps a key to a partition: the two key partitioners of Kafka's
/// clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Partitioner {
    /// librdkafka's default (`consistent_random`, and `consistent`): the CRC-32 (IEEE) of
    /// the key, modulo the partitions. What Bourse's own `feed-sim` uses.
    #[default]
    Crc32,
    /// The Java client's default (`murmur2_random` in librdkafka): murmur2 of the key, its
    /// sign bit cleared, modulo the partitions.
    Murmur2,
}

impl std::str::FromStr for Partitioner {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "crc32" | "consistent_random" | "consistent" => Ok(Partitioner::Crc32),
            "murmur2" | "murmur2_random" => Ok(Partitioner::Murmur2),
            other => Err(format!(
                "unknown partitioner {other:?} (crc32 or murmur2, as the feed's producer uses)"
            )),
        }
    }
}

impl Partitioner {
    /// The partition of `key` among `partitions` (at least 1).
    pub fn partition(self, key: &[u8], partitions: u32) -> u32 {
        let hash = match self {
            Partitioner::Crc32 => crc32(key),
            Partitioner::Murmur2 => murmur2(key) & 0x7fff_ffff,
        };
        hash % partitions.max(1)
    }
}

/// CRC-32 as zlib and librdkafka's `rd_crc32` compute it (reflected, polynomial
/// 0xEDB88320).
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`, librdkafka's
/// `rd_murmur2`), as an unsigned 32-bit value.
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, byte) in rest.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The rendezvous score of `node` for `partition`: a fixed mix of both (splitmix64's
/// finaliser), the same on every node and in every version.
fn score(node: NodeId, partition: u32) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    mix(mix(u64::from(node).wrapping_add(0x9e37_79b9_7f4a_7c15)) ^ u64::from(partition))
}

/// The nodes that hold `partition` among `live`, best first: the owner, then up to
/// `copies - 1` standbys. Fewer when fewer nodes are live; duplicates in `live` count once.
pub fn holders(partition: u32, live: &[NodeId], copies: usize) -> Vec<NodeId> {
    let mut ranked: Vec<(u64, NodeId)> = live.iter().map(|&n| (score(n, partition), n)).collect();
    // Highest score first; a tie (never seen, but possible) goes to the higher id.
    ranked.sort_unstable_by(|a, b| b.cmp(a));
    ranked.dedup_by_key(|(_, node)| *node);
    ranked
        .into_iter()
        .take(copies)
        .map(|(_, node)| node)
        .collect()
}

/// The owner of `partition` among `live`, if any node is live.
pub fn owner(partition: u32, live: &[NodeId]) -> Option<NodeId> {
    live.iter()
        .copied()
        .max_by_key(|&n| (score(n, partition), n))
}

/// What `node` holds among `partitions` partitions when `live` are the live nodes and each
/// partition is held `copies` times.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holding {
    /// The partitions it owns (serves).
    pub owned: Vec<u32>,
    /// The partitions it keeps as a standby (consumes and builds, serves if asked).
    pub standby: Vec<u32>,
}

impl Holding {
    /// Every partition it holds, ascending.
    pub fn all(&self) -> Vec<u32> {
        let mut all: Vec<u32> = self.owned.iter().chain(&self.standby).copied().collect();
        all.sort_unstable();
        all
    }
}

/// The partitions `node` owns and keeps as a standby.
pub fn holding(node: NodeId, live: &[NodeId], partitions: u32, copies: usize) -> Holding {
    let mut holding = Holding::default();
    for partition in 0..partitions {
        match holders(partition, live, copies)
            .iter()
            .position(|&n| n == node)
        {
            Some(0) => holding.owned.push(partition),
            Some(_) => holding.standby.push(partition),
            None => {}
        }
    }
    holding
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_zlibs() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn murmur2_matches_kafkas_own_test_vectors() {
        // org.apache.kafka.common.utils.UtilsTest.testMurmur2, as signed Java ints.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(
                murmur2(key) as i32,
                want,
                "{}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn the_partitioners_spread_symbols_over_every_partition() {
        for partitioner in [Partitioner::Crc32, Partitioner::Murmur2] {
            let mut counts = [0u32; 12];
            for i in 0..12_000 {
                let symbol = format!("P{i:07}");
                counts[partitioner.partition(symbol.as_bytes(), 12) as usize] += 1;
            }
            // 1,000 expected each; a fair hash stays well within 20%.
            assert!(
                counts.iter().all(|&c| (800..=1200).contains(&c)),
                "{partitioner:?}: {counts:?}"
            );
        }
        assert_eq!(Partitioner::Crc32.partition(b"AAPL", 0), 0);
    }

    #[test]
    fn the_holders_are_distinct_and_the_owner_is_the_first() {
        let live = [1, 2, 3];
        for partition in 0..1000 {
            let holders = holders(partition, &live, 2);
            assert_eq!(holders.len(), 2);
            assert_ne!(holders[0], holders[1]);
            assert_eq!(owner(partition, &live), Some(holders[0]));
            // The order of the live list does not matter.
            assert_eq!(super::holders(partition, &[3, 1, 2, 3], 2), holders);
        }
        assert_eq!(holders(7, &[5], 2), vec![5]);
        assert!(holders(7, &[], 2).is_empty());
        assert_eq!(owner(7, &[]), None);
    }

    #[test]
    fn ownership_is_balanced_over_the_nodes() {
        let live = [1, 2, 3];
        let partitions = 4096;
        for node in live {
            let holding = holding(node, &live, partitions, 2);
            // 1,365 of each expected.
            assert!(
                (1200..=1530).contains(&holding.owned.len()),
                "node {node} owns {}",
                holding.owned.len()
            );
            assert!(
                (1200..=1530).contains(&holding.standby.len()),
                "node {node} stands by for {}",
                holding.standby.len()
            );
        }
    }

    #[test]
    fn a_node_leaving_moves_only_its_partitions_and_its_standby_takes_over() {
        let all = [1, 2, 3, 4];
        let without_two = [1, 3, 4];
        for partition in 0..2000 {
            let before = holders(partition, &all, 2);
            let after = holders(partition, &without_two, 2);
            if !before.contains(&2) {
                assert_eq!(before, after, "partition {partition} moved");
                continue;
            }
            // The survivor keeps its copy; where 2 owned, its standby now owns.
            let survivor = before.iter().copied().find(|&n| n != 2);
            assert_eq!(after.first().copied(), survivor, "partition {partition}");
            assert!(!after.contains(&2));
            assert_eq!(after.len(), 2);
        }
        // Back again: the placement is what it was.
        for partition in 0..2000 {
            assert_eq!(
                holders(partition, &all, 2),
                holders(partition, &[4, 3, 2, 1], 2)
            );
        }
    }

    #[test]
    fn partitioner_names_parse() {
        assert_eq!("crc32".parse(), Ok(Partitioner::Crc32));
        assert_eq!("murmur2_random".parse(), Ok(Partitioner::Murmur2));
        assert!("random".parse::<Partitioner>().is_err());
    }
}
