//! Which offset a consumer may commit when messages of a partition finish out of order (the
//! consumer's lanes handle different keys concurrently): the lowest offset still in flight,
//! or, with none in flight, the one after the highest handed out. A message that never
//! finishes (a shutdown in the middle of its retries) keeps everything after it uncommitted,
//! so it and the rest are delivered again.

use std::collections::{BTreeSet, HashMap};

#[derive(Debug)]
struct Partition {
    in_flight: BTreeSet<i64>,
    /// One past the highest offset handed out.
    next: i64,
    /// The last offset committed (or asked to be).
    committed: i64,
}

/// In-flight offsets per (topic, partition).
#[derive(Debug, Default)]
pub(crate) struct Offsets {
    partitions: HashMap<(String, i32), Partition>,
}

impl Offsets {
    /// A message was handed to a lane.
    pub(crate) fn dispatched(&mut self, topic: &str, partition: i32, offset: i64) {
        // The first offset seen is where the group stood: nothing before it needs committing.
        let p = self
            .partitions
            .entry((topic.to_owned(), partition))
            .or_insert_with(|| Partition {
                in_flight: BTreeSet::new(),
                next: offset,
                committed: offset,
            });
        p.in_flight.insert(offset);
        p.next = p.next.max(offset + 1);
    }

    /// A message is done (applied, skipped as a duplicate or dead-lettered); returns the offset
    /// to commit for its partition if that moved forward.
    pub(crate) fn done(&mut self, topic: &str, partition: i32, offset: i64) -> Option<i64> {
        let p = self.partitions.get_mut(&(topic.to_owned(), partition))?;
        p.in_flight.remove(&offset);
        let commit = p.in_flight.first().copied().unwrap_or(p.next);
        (commit > p.committed).then(|| {
            p.committed = commit;
            commit
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Offsets;

    #[test]
    fn out_of_order_completions_commit_only_past_a_gap_free_prefix() {
        let mut offsets = Offsets::default();
        for offset in 10..15 {
            offsets.dispatched("t", 0, offset);
        }
        assert_eq!(offsets.done("t", 0, 12), None, "10 and 11 still run");
        assert_eq!(offsets.done("t", 0, 11), None);
        assert_eq!(offsets.done("t", 0, 10), Some(13), "10..=12 done, 13 runs");
        assert_eq!(offsets.done("t", 0, 14), None, "13 still runs");
        assert_eq!(offsets.done("t", 0, 13), Some(15));
        assert_eq!(offsets.done("t", 0, 13), None, "a repeat moves nothing");
    }

    #[test]
    fn partitions_are_independent_and_an_unfinished_message_holds_its_partition_back() {
        let mut offsets = Offsets::default();
        offsets.dispatched("t", 0, 0);
        offsets.dispatched("t", 0, 1);
        offsets.dispatched("t", 1, 7);
        offsets.dispatched("u", 0, 3);
        assert_eq!(offsets.done("t", 1, 7), Some(8));
        assert_eq!(offsets.done("u", 0, 3), Some(4));
        // Offset 0 never finishes (aborted by a shutdown): 1 finishing commits nothing.
        assert_eq!(offsets.done("t", 0, 1), None);
        assert_eq!(
            offsets.done("x", 0, 1),
            None,
            "unknown partitions are ignored"
        );
    }
}
