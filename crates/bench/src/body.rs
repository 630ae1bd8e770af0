//! Request bodies, built once per worker so that sending costs only a reference-count increment.
//! The only thing that varies per request is a 12-byte stamp (record id and send time) at the
//! start of a latency record's data, patched in place: 12 bytes are exactly 16 base64 characters,
//! so the rest of the encoded data does not change.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use serde::Serialize;

/// AWS's limit on one record's data.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// AWS's limit on a PutRecords call: data plus partition keys.
pub const MAX_PUT_RECORDS_BYTES: usize = 5 * 1024 * 1024;
/// An upper bound on the length of the partition keys made by [`partition_key`].
pub const LONGEST_KEY: usize = 24;
/// Record id (u32) and send time (u64 nanoseconds since the run's epoch), big-endian.
pub const STAMP_BYTES: usize = 12;
const STAMP_BASE64: usize = STAMP_BYTES / 3 * 4;

/// The `i`th partition key. MD5 spreads such keys uniformly over the hash space, so a set of a few
/// hundred covers every shard about equally.
pub fn partition_key(i: usize) -> String {
    format!("pk{i}")
}

/// `size` bytes of deterministic filler that does not compress (xorshift), different per seed.
pub fn record_data(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Entry<'a> {
    data: &'a str,
    partition_key: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsBody<'a> {
    stream_name: &'a str,
    records: Vec<Entry<'a>>,
}

/// A PutRecords body of `keys.len()` records that all carry `data`.
pub fn put_records(stream: &str, keys: &[String], data: &[u8]) -> Bytes {
    let encoded = STANDARD.encode(data);
    let records = keys.iter().map(|key| Entry { data: &encoded, partition_key: key }).collect();
    Bytes::from(serde_json::to_vec(&PutRecordsBody { stream_name: stream, records }).unwrap_or_default())
}

/// A PutRecord body, with the offset of its data's first base64 character so a stamp can be
/// patched in.
#[derive(Clone, Debug)]
pub struct PutRecordTemplate {
    body: Vec<u8>,
    data_offset: usize,
}

impl PutRecordTemplate {
    pub fn new(stream: &str, key: &str, data: &[u8]) -> Self {
        // serde_json escapes the names; base64 never needs escaping.
        let mut body = format!(
            r#"{{"StreamName":{},"PartitionKey":{},"Data":""#,
            serde_json::Value::from(stream),
            serde_json::Value::from(key)
        )
        .into_bytes();
        let data_offset = body.len();
        body.extend_from_slice(STANDARD.encode(data).as_bytes());
        body.extend_from_slice(b"\"}");
        Self { body, data_offset }
    }

    /// The body as is (throughput runs: nothing varies).
    pub fn bytes(&self) -> Bytes {
        Bytes::copy_from_slice(&self.body)
    }

    /// A copy of the body whose data starts with `stamp`.
    pub fn stamped(&self, stamp: Stamp) -> Bytes {
        let mut body = self.body.clone();
        if body.len() >= self.data_offset + STAMP_BASE64 {
            let mut encoded = [0u8; STAMP_BASE64];
            // The buffer is exactly the encoded length of STAMP_BYTES.
            if STANDARD.encode_slice(stamp.to_bytes(), &mut encoded).is_ok() {
                body[self.data_offset..self.data_offset + STAMP_BASE64].copy_from_slice(&encoded);
            }
        }
        Bytes::from(body)
    }
}

/// What a latency record carries so that a consumer can tell which record it is and when it was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub id: u32,
    /// Nanoseconds since the run's epoch (an `Instant` shared by producers and consumers).
    pub sent_ns: u64,
}

impl Stamp {
    pub fn to_bytes(self) -> [u8; STAMP_BYTES] {
        let mut out = [0u8; STAMP_BYTES];
        out[..4].copy_from_slice(&self.id.to_be_bytes());
        out[4..].copy_from_slice(&self.sent_ns.to_be_bytes());
        out
    }

    /// Reads the stamp from the start of a record's base64 `Data`; `None` for records that are
    /// too short to carry one.
    pub fn from_base64_data(data: &str) -> Option<Self> {
        let prefix = data.as_bytes().get(..STAMP_BASE64)?;
        let mut raw = [0u8; STAMP_BYTES + 3];
        let n = STANDARD.decode_slice(prefix, &mut raw).ok()?;
        if n != STAMP_BYTES {
            return None;
        }
        let id = u32::from_be_bytes(raw[..4].try_into().ok()?);
        let sent_ns = u64::from_be_bytes(raw[4..12].try_into().ok()?);
        Some(Self { id, sent_ns })
    }
}

/// Decoded length of a base64 string, without decoding it.
pub fn base64_decoded_len(encoded: &str) -> usize {
    let padding = encoded.bytes().rev().take_while(|&b| b == b'=').count().min(2);
    (encoded.len() / 4 * 3).saturating_sub(padding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_records_body_is_valid_json_with_every_key() {
        let keys: Vec<String> = (0..3).map(partition_key).collect();
        let data = record_data(100, 1);
        let body = put_records("s\"1", &keys, &data);
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["StreamName"], "s\"1");
        let records = value["Records"].as_array().unwrap();
        assert_eq!(records.len(), 3);
        for (record, key) in records.iter().zip(&keys) {
            assert_eq!(record["PartitionKey"], key.as_str());
            assert_eq!(STANDARD.decode(record["Data"].as_str().unwrap()).unwrap(), data);
        }
    }

    #[test]
    fn stamps_patch_only_the_first_twelve_bytes() {
        let data = record_data(100, 2);
        let template = PutRecordTemplate::new("stream", "key", &data);
        let stamp = Stamp { id: 0xDEAD_BEEF, sent_ns: 123_456_789_012 };
        let value: serde_json::Value = serde_json::from_slice(&template.stamped(stamp)).unwrap();
        assert_eq!(value["StreamName"], "stream");
        assert_eq!(value["PartitionKey"], "key");
        let encoded = value["Data"].as_str().unwrap();
        let decoded = STANDARD.decode(encoded).unwrap();
        assert_eq!(decoded.len(), 100);
        assert_eq!(&decoded[..STAMP_BYTES], &stamp.to_bytes());
        assert_eq!(&decoded[STAMP_BYTES..], &data[STAMP_BYTES..]);
        assert_eq!(Stamp::from_base64_data(encoded), Some(stamp));
        // The unstamped template is the plain record.
        let plain: serde_json::Value = serde_json::from_slice(&template.bytes()).unwrap();
        assert_eq!(STANDARD.decode(plain["Data"].as_str().unwrap()).unwrap(), data);
    }

    #[test]
    fn short_or_foreign_data_has_no_stamp() {
        assert_eq!(Stamp::from_base64_data("aGVsbG8="), None);
        assert_eq!(Stamp::from_base64_data("not base64 at all!!"), None);
    }

    #[test]
    fn decoded_length_accounts_for_padding() {
        for size in 0..20 {
            let encoded = STANDARD.encode(record_data(size, 3));
            assert_eq!(base64_decoded_len(&encoded), size, "size {size}");
        }
    }

    #[test]
    fn filler_differs_by_seed_and_keys_stay_short() {
        assert_ne!(record_data(32, 1), record_data(32, 2));
        assert!(partition_key(999_999_999).len() <= LONGEST_KEY);
    }
}
