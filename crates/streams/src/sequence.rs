//! Sequence numbers: 56-digit decimal strings, like AWS's, that encode where the record lives.
//!
//! Layout (fixed width, so decimal order is numeric order and, within a shard, record order):
//! `49` | stream id (14 digits) | shard index (10) | ordinal (20) | 10 zero digits reserved for
//! sub-sequence numbers of aggregated records. The ordinal is a position in the shard: 0 is the
//! shard's start (its StartingSequenceNumber, before any record) and the record at index `i` has
//! ordinal `i + 1`, so "after the start" and "at the first record" are different numbers, as in
//! AWS. The stream id differs between two incarnations of the same stream name, so a number from
//! a deleted stream is recognised as foreign.

use serde::{Serialize, Serializer};

const PREFIX: &str = "49";
pub const DIGITS: usize = 56;
/// The stream id field is 14 digits wide, but a larger id would still be written in full (as
/// `{:014}` did), so the text can be up to 6 digits longer than `DIGITS`.
const MAX_TEXT: usize = DIGITS + 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceNumber {
    pub stream_id: u64,
    pub shard_index: u32,
    pub ordinal: u64,
}

impl SequenceNumber {
    /// The number of the record at `index`.
    pub fn of_record(stream_id: u64, shard_index: u32, index: u64) -> Self {
        Self { stream_id, shard_index, ordinal: index + 1 }
    }

    /// The number of the position just before the record at `index` (index 0: the shard's start).
    /// It equals the number of the record before it, and a shard closed after `n` records ends at
    /// position `n`.
    pub fn at_position(stream_id: u64, shard_index: u32, index: u64) -> Self {
        Self { stream_id, shard_index, ordinal: index }
    }

    /// Index of the first record at or after this number (AT_SEQUENCE_NUMBER).
    pub fn first_index_at(&self) -> u64 {
        self.ordinal.saturating_sub(1)
    }

    /// Index of the first record after this number (AFTER_SEQUENCE_NUMBER).
    pub fn first_index_after(&self) -> u64 {
        self.ordinal
    }

    pub fn encode(&self) -> String {
        self.text().as_str().to_owned()
    }

    /// The decimal text without a heap allocation: responses carry one number per record, and
    /// `format!` with zero padding (one `write_char` per pad digit) was a sixth of PutRecords' CPU.
    pub fn text(&self) -> SequenceText {
        let mut text = SequenceText { bytes: [b'0'; MAX_TEXT], len: DIGITS };
        if self.stream_id < 100_000_000_000_000 {
            // Every field fits its width: write each one's digits back from where it ends.
            text.bytes[..2].copy_from_slice(PREFIX.as_bytes());
            SequenceText::put_digits(&mut text.bytes[..16], self.stream_id);
            SequenceText::put_digits(&mut text.bytes[..26], u64::from(self.shard_index));
            SequenceText::put_digits(&mut text.bytes[..46], self.ordinal);
            return text;
        }
        text.len = 0;
        text.push(PREFIX.as_bytes());
        text.push_padded(self.stream_id, 14);
        text.push_padded(u64::from(self.shard_index), 10);
        text.push_padded(self.ordinal, 20);
        text.push_padded(0, 10);
        text
    }

    /// Decodes a number this server issued; `None` for anything else.
    pub fn decode(text: &str) -> Option<SequenceNumber> {
        if text.len() != DIGITS || !text.starts_with(PREFIX) || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(SequenceNumber {
            stream_id: text[2..16].parse().ok()?,
            shard_index: text[16..26].parse().ok()?,
            ordinal: text[26..46].parse().ok()?,
        })
    }
}

/// The texts of one shard's record numbers, asked for in ascending index order (a GetRecords
/// batch, a PutRecords response's records of one shard): the first is written in full and each
/// next one advanced from the one before, usually by its last digit alone.
pub struct ShardNumbers {
    stream_id: u64,
    shard_index: u32,
    last: Option<(u64, SequenceText)>,
}

impl ShardNumbers {
    pub fn new(stream_id: u64, shard_index: u32) -> Self {
        ShardNumbers { stream_id, shard_index, last: None }
    }

    pub fn shard_index(&self) -> u32 {
        self.shard_index
    }

    /// The text of the record at `index`.
    pub fn of_record(&mut self, index: u64) -> SequenceText {
        match &mut self.last {
            Some((last, text)) if index >= *last => {
                text.advance(index - *last);
                *last = index;
                *text
            }
            last => {
                let text = SequenceNumber::of_record(self.stream_id, self.shard_index, index).text();
                *last = Some((index, text));
                text
            }
        }
    }
}

/// A sequence number's decimal text, on the stack; serializes as a string.
#[derive(Clone, Copy)]
pub struct SequenceText {
    bytes: [u8; MAX_TEXT],
    len: usize,
}

impl SequenceText {
    fn push(&mut self, text: &[u8]) {
        self.bytes[self.len..self.len + text.len()].copy_from_slice(text);
        self.len += text.len();
    }

    /// Writes `value`'s decimal digits so that the last one ends `field` (already zeros).
    fn put_digits(field: &mut [u8], mut value: u64) {
        let mut end = field.len();
        while value > 0 && end > 0 {
            end -= 1;
            field[end] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }

    /// `value` in decimal, left-padded with zeros to `width` digits (longer if it needs more).
    fn push_padded(&mut self, value: u64, width: usize) {
        let mut digits = [b'0'; 20];
        let mut start = digits.len();
        let mut rest = value;
        while rest > 0 {
            start -= 1;
            digits[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        let start = start.min(digits.len() - width);
        self.push(&digits[start..]);
    }

    /// Moves the number `by` records on within its shard: adds to the ordinal's digits (the
    /// 20 before the 10 reserved ones), usually the last digit alone: a tenth of the
    /// instructions of writing the number in full.
    fn advance(&mut self, by: u64) {
        let ordinal_end = self.len - 10;
        let mut carry = by;
        for digit in self.bytes[ordinal_end - 20..ordinal_end].iter_mut().rev() {
            if carry == 0 {
                break;
            }
            let sum = u64::from(*digit - b'0') + carry;
            *digit = b'0' + (sum % 10) as u8;
            carry = sum / 10;
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever pushed.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

impl Serialize for SequenceText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for SequenceText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_56_digits() {
        let seq = SequenceNumber::of_record(7, 3, 41);
        let text = seq.encode();
        assert_eq!(text.len(), 56);
        assert_eq!(text, "49000000000000070000000003000000000000000000420000000000");
        assert_eq!((seq.first_index_at(), seq.first_index_after()), (41, 42));
        assert_eq!(SequenceNumber::at_position(7, 3, 0).first_index_at(), 0);
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
        fn advancing_matches_the_later_number(stream_id: u64, shard_index: u32, ordinal: u64, by in 0u64..100_000) {
            for stream_id in [stream_id % 100_000_000_000_000, stream_id] {
                let ordinal = ordinal.min(u64::MAX - by);
                let mut text = SequenceNumber { stream_id, shard_index, ordinal }.text();
                text.advance(by);
                let later = SequenceNumber { stream_id, shard_index, ordinal: ordinal + by }.text();
                prop_assert_eq!(text.as_str(), later.as_str());
            }
        }

        #[test]
        fn a_shards_numbers_match_each_written_in_full(stream_id: u64, shard_index: u32, start: u64, steps in proptest::collection::vec(-3i64..1_000, 1..40)) {
            // Mostly ascending, as reads and responses ask; a step back starts again in full.
            let mut numbers = ShardNumbers::new(stream_id, shard_index);
            let mut index = start % (u64::MAX / 2);
            for step in steps {
                index = index.saturating_add_signed(step);
                let full = SequenceNumber::of_record(stream_id, shard_index, index).text();
                let advanced = numbers.of_record(index);
                prop_assert_eq!(advanced.as_str(), full.as_str());
            }
        }

        #[test]
        fn order_follows_record_index(stream_id in 0u64..99_999_999_999_999, shard_index: u32, a: u64, b: u64) {
            let x = SequenceNumber { stream_id, shard_index, ordinal: a };
            let y = SequenceNumber { stream_id, shard_index, ordinal: b };
            prop_assert_eq!(x.encode().cmp(&y.encode()), a.cmp(&b));
            prop_assert_eq!(SequenceNumber::decode(&x.encode()), Some(x));
        }

        #[test]
        fn text_matches_format(stream_id: u64, shard_index: u32, ordinal: u64) {
            // Both the fixed layout (ids below 10^14, all of them in practice) and longer ids.
            for stream_id in [stream_id % 100_000_000_000_000, stream_id] {
                let seq = SequenceNumber { stream_id, shard_index, ordinal };
                let expected = format!("{PREFIX}{stream_id:014}{shard_index:010}{ordinal:020}{:010}", 0);
                prop_assert_eq!(seq.encode(), expected);
            }
        }
    }
}
