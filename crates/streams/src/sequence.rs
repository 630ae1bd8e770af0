//! Sequence numbers: 56-digit decimal strings, like AWS's, that encode where the record lives.
//!
//! Layout (fixed width, so decimal order is numeric order and, within a shard, record order):
//! `49` | stream id (14 digits) | shard index (10) | record index in the shard (20) | 10 zero digits
//! reserved for sub-sequence numbers of aggregated records. The stream id differs between two
//! incarnations of the same stream name, so a number from a deleted stream is recognised as foreign.

use std::fmt::Write;

const PREFIX: &str = "49";
pub const DIGITS: usize = 56;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceNumber {
    pub stream_id: u64,
    pub shard_index: u32,
    pub record_index: u64,
}

impl SequenceNumber {
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(DIGITS);
        let _ = write!(out, "{PREFIX}{:014}{:010}{:020}{:010}", self.stream_id, self.shard_index, self.record_index, 0);
        out
    }

    /// Decodes a number this server issued; `None` for anything else.
    pub fn decode(text: &str) -> Option<SequenceNumber> {
        if text.len() != DIGITS || !text.starts_with(PREFIX) || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(SequenceNumber {
            stream_id: text[2..16].parse().ok()?,
            shard_index: text[16..26].parse().ok()?,
            record_index: text[26..46].parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_56_digits() {
        let seq = SequenceNumber { stream_id: 7, shard_index: 3, record_index: 42 };
        let text = seq.encode();
        assert_eq!(text.len(), 56);
        assert_eq!(text, "49000000000000070000000003000000000000000000420000000000");
        assert_eq!(SequenceNumber::decode(&text), Some(seq));
    }

    #[test]
    fn foreign_numbers_do_not_decode() {
        assert_eq!(SequenceNumber::decode("0"), None);
        assert_eq!(SequenceNumber::decode(&"1".repeat(56)), None);
        assert_eq!(SequenceNumber::decode(&format!("49{}", "x".repeat(54))), None);
        assert_eq!(SequenceNumber::decode(&format!("49{}", "9".repeat(54))), None);
        // shard index overflows u32
    }

    proptest! {
        #[test]
        fn order_follows_record_index(stream_id in 0u64..99_999_999_999_999, shard_index: u32, a: u64, b: u64) {
            let x = SequenceNumber { stream_id, shard_index, record_index: a };
            let y = SequenceNumber { stream_id, shard_index, record_index: b };
            prop_assert_eq!(x.encode().cmp(&y.encode()), a.cmp(&b));
            prop_assert_eq!(SequenceNumber::decode(&x.encode()), Some(x));
        }
    }
}
