//! UpdateShardCount with UNIFORM_SCALING, planned as the splits and merges AWS would perform, so
//! every new shard has at most a parent and an adjacent parent and consumers can follow lineage.

use crate::hash::even_ranges;
use crate::model::StreamMeta;

/// Moves the stream's open shards to `target` evenly sized ranges. `ending_index(shard)` gives the
/// record count of each originally open shard being closed (the caller seals them first).
/// Intermediate shards made on the way are closed empty.
pub fn scale_uniformly(meta: &mut StreamMeta, target: u32, now_ms: i64, ending_index: impl Fn(u32) -> u64) {
    let targets = even_ranges(target);
    let originally_open: Vec<u32> = meta.open_shards().map(|(index, _)| index).collect();
    let end_of = |index: u32| if originally_open.contains(&index) { ending_index(index) } else { 0 };

    // 1. Split every open shard at each target boundary strictly inside it.
    for &(boundary, _) in targets.iter().skip(1) {
        let owner = meta.open_shards().find(|(_, s)| s.start_hash < boundary && boundary <= s.end_hash).map(|(i, _)| i);
        if let Some(owner) = owner {
            let ending = end_of(owner);
            meta.split(owner, boundary, ending, now_ms);
        }
    }

    // 2. Merge, left to right, the pieces that fall inside the same target range.
    for &(start, end) in &targets {
        loop {
            let mut pieces: Vec<(u128, u32)> = meta
                .open_shards()
                .filter(|(_, s)| start <= s.start_hash && s.end_hash <= end)
                .map(|(i, s)| (s.start_hash, i))
                .collect();
            if pieces.len() < 2 {
                break;
            }
            pieces.sort_unstable();
            let (left, right) = (pieces[0].1, pieces[1].1);
            let ending = (end_of(left), end_of(right));
            meta.merge(left, right, ending, now_ms);
        }
    }
}

/// The originally open shards that `scale_uniformly` will close: all but those already equal to
/// a target range. The caller seals exactly these in storage before applying the plan.
pub fn shards_closed_by_scaling(meta: &StreamMeta, target: u32) -> Vec<u32> {
    let targets = even_ranges(target);
    meta.open_shards().filter(|(_, s)| !targets.contains(&(s.start_hash, s.end_hash))).map(|(index, _)| index).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::MAX_HASH_KEY;
    use crate::model::StreamMode;
    use proptest::prelude::*;

    fn check_open_shards_are_even(meta: &StreamMeta, target: u32) {
        let mut open: Vec<(u128, u128)> = meta.open_shards().map(|(_, s)| (s.start_hash, s.end_hash)).collect();
        open.sort_unstable();
        assert_eq!(open, even_ranges(target));
        assert_eq!(open.last().map(|r| r.1), Some(MAX_HASH_KEY));
    }

    #[test]
    fn doubling_splits_each_shard_once() {
        let mut meta = StreamMeta::new(1, "s".into(), 0, 2, StreamMode::Provisioned);
        scale_uniformly(&mut meta, 4, 0, |i| u64::from(i) + 10);
        check_open_shards_are_even(&meta, 4);
        assert_eq!(meta.shards.len(), 6);
        assert_eq!(meta.shards[0].ending_index, Some(10));
        assert!(meta.shards[2..].iter().all(|s| s.parent.is_some() && s.adjacent_parent.is_none()));
    }

    #[test]
    fn closed_set_matches_what_scaling_closes() {
        let mut meta = StreamMeta::new(1, "s".into(), 0, 5, StreamMode::Provisioned);
        let closed = shards_closed_by_scaling(&meta, 3);
        scale_uniformly(&mut meta, 3, 0, |_| 1);
        for index in 0..5u32 {
            assert_eq!(meta.shards[index as usize].is_open(), !closed.contains(&index));
        }
    }

    proptest! {
        #[test]
        fn any_allowed_scaling_yields_even_ranges_with_valid_lineage(current in 1u32..40, factor in 0.5f64..2.0) {
            let target = ((f64::from(current) * factor).round() as u32).clamp(1, current * 2);
            let mut meta = StreamMeta::new(1, "s".into(), 0, current, StreamMode::Provisioned);
            scale_uniformly(&mut meta, target, 0, |_| 7);
            check_open_shards_are_even(&meta, target);
            for (index, shard) in meta.shards.iter().enumerate() {
                if let Some(parent) = shard.parent {
                    prop_assert!((parent as usize) < index);
                    prop_assert!(!meta.shards[parent as usize].is_open());
                }
            }
        }
    }
}
