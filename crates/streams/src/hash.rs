//! The 128-bit hash key space: partition keys map to keys by MD5, shards own contiguous ranges.

use std::sync::LazyLock;

use md5_many::Md5Many;

/// The largest hash key, 2^128 - 1.
pub const MAX_HASH_KEY: u128 = u128::MAX;

/// Kinesis routes a record by the MD5 of its partition key read as a big-endian 128-bit integer.
pub fn hash_key_of(partition_key: &[u8]) -> u128 {
    u128::from_be_bytes(md5_many::md5(partition_key))
}

/// The batch engine, with the CPU's SIMD level detected once.
static MD5_LANES: LazyLock<Md5Many> = LazyLock::new(Md5Many::new);

/// [`hash_key_of`] of many partition keys, in order. MD5 is one chain of blocks per message, but
/// the keys of a PutRecords call are independent messages: hashed together they fill SIMD lanes
/// (8 with AVX2, 16 with AVX-512), about 25 ns per short key instead of about 100 one at a time.
pub fn hash_keys_of(partition_keys: &[&[u8]]) -> Vec<u128> {
    let mut digests = vec![[0; 16]; partition_keys.len()];
    MD5_LANES.hash_many(partition_keys, &mut digests);
    digests.into_iter().map(u128::from_be_bytes).collect()
}

/// Parses a decimal hash key (an `ExplicitHashKey` or `NewStartingHashKey`); `None` if it is not a
/// decimal number in [0, 2^128 - 1].
pub fn parse_hash_key(text: &str) -> Option<u128> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u128>().ok()
}

/// Splits the whole key space into `count` contiguous ranges of (nearly) equal width, as
/// CreateStream does: range i starts at floor(i * 2^128 / count).
pub fn even_ranges(count: u32) -> Vec<(u128, u128)> {
    let starts: Vec<u128> = (0..count).map(|i| range_start(i, count)).collect();
    starts
        .iter()
        .enumerate()
        .map(|(i, &start)| {
            let end = starts.get(i + 1).map_or(MAX_HASH_KEY, |next| next - 1);
            (start, end)
        })
        .collect()
}

/// floor(i * 2^128 / count) without 256-bit arithmetic: 2^128 = q * count + r, so the product is
/// i*q + floor(i*r / count), and i*r < count^2 fits easily in a u128.
fn range_start(i: u32, count: u32) -> u128 {
    if i == 0 {
        return 0;
    }
    // Here count >= 2, so q = floor(2^128 / count) fits in a u128.
    let count = u128::from(count);
    let i = u128::from(i);
    let q = MAX_HASH_KEY / count;
    let r = MAX_HASH_KEY % count + 1; // remainder of 2^128 (not 2^128 - 1)
    let (q, r) = if r == count { (q + 1, 0) } else { (q, r) };
    i * q + i * r / count
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn md5_of_known_key() {
        // md5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(hash_key_of(b"a"), 0x0cc175b9c0f1b6a831c399e269772661);
    }

    fn reference(key: &[u8]) -> u128 {
        use md5::{Digest, Md5};
        u128::from_be_bytes(Md5::digest(key).into())
    }

    #[test]
    fn even_ranges_match_aws_for_small_counts() {
        assert_eq!(even_ranges(1), vec![(0, MAX_HASH_KEY)]);
        let two = even_ranges(2);
        assert_eq!(two[0], (0, (1u128 << 127) - 1));
        assert_eq!(two[1], (1u128 << 127, MAX_HASH_KEY));
        let three = even_ranges(3);
        assert_eq!(three[1].0, 113427455640312821154458202477256070485);
    }

    #[test]
    fn hash_keys_parse_strictly() {
        assert_eq!(parse_hash_key("0"), Some(0));
        assert_eq!(parse_hash_key("340282366920938463463374607431768211455"), Some(MAX_HASH_KEY));
        assert_eq!(parse_hash_key("340282366920938463463374607431768211456"), None);
        assert_eq!(parse_hash_key("-1"), None);
        assert_eq!(parse_hash_key(""), None);
    }

    proptest! {
        /// The batch and the one-at-a-time hashes agree with the reference implementation, for
        /// batches mixing key lengths across block boundaries (55/56 and 119/120 bytes are where
        /// MD5's padding needs one more block).
        #[test]
        fn batched_md5_matches_the_reference(keys in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..70)) {
            let slices: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            let expected: Vec<u128> = slices.iter().map(|key| reference(key)).collect();
            prop_assert_eq!(hash_keys_of(&slices), expected.clone());
            prop_assert_eq!(slices.iter().map(|key| hash_key_of(key)).collect::<Vec<_>>(), expected);
        }

        #[test]
        fn batched_md5_matches_at_padding_edges(lengths in prop::collection::vec(prop::sample::select(vec![0usize, 1, 54, 55, 56, 57, 63, 64, 65, 119, 120, 256]), 1..40), byte in any::<u8>()) {
            let keys: Vec<Vec<u8>> = lengths.iter().map(|&len| vec![byte; len]).collect();
            let slices: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            let expected: Vec<u128> = slices.iter().map(|key| reference(key)).collect();
            prop_assert_eq!(hash_keys_of(&slices), expected);
        }

        #[test]
        fn even_ranges_cover_the_space_without_gaps(count in 1u32..2000) {
            let ranges = even_ranges(count);
            prop_assert_eq!(ranges.len(), count as usize);
            prop_assert_eq!(ranges[0].0, 0);
            prop_assert_eq!(ranges[ranges.len() - 1].1, MAX_HASH_KEY);
            for pair in ranges.windows(2) {
                prop_assert!(pair[0].0 <= pair[0].1);
                prop_assert_eq!(pair[0].1 + 1, pair[1].0);
            }
        }
    }
}
