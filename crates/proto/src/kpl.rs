//! De-aggregation of Kinesis Producer Library (KPL) aggregated records: the KPL's wire format, shared
//! by Firehose (a Kinesis data stream source delivers the user records) and `tideline tail`.
//!
//! Layout: the magic `F3 89 9A C2`, a protobuf `AggregatedRecord`, then the MD5 of the protobuf bytes.
//! Anything else, or an aggregate that fails a check, is delivered as it is (as the KCL does).

use bytes::Bytes;
use md5::{Digest, Md5};
use prost::Message;

const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KplRecord {
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Bytes,
}

/// The KPL's `messages.proto` (proto2). Its `required` fields are declared `optional` here so that a
/// missing one can be told from a zero value and rejected, as protobuf-java rejects such a message.
#[derive(Clone, PartialEq, Message)]
struct AggregatedRecord {
    #[prost(string, repeated, tag = "1")]
    partition_key_table: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    explicit_hash_key_table: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    records: Vec<Record>,
}

#[derive(Clone, PartialEq, Message)]
struct Record {
    #[prost(uint64, optional, tag = "1")]
    partition_key_index: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    explicit_hash_key_index: Option<u64>,
    /// `Bytes` so that decoding from a `Bytes` buffer slices the user data instead of copying it.
    #[prost(bytes = "bytes", optional, tag = "3")]
    data: Option<Bytes>,
    #[prost(message, repeated, tag = "4")]
    tags: Vec<Tag>,
}

#[derive(Clone, PartialEq, Message)]
struct Tag {
    #[prost(string, optional, tag = "1")]
    key: Option<String>,
    #[prost(string, optional, tag = "2")]
    value: Option<String>,
}

/// The user records inside a KPL aggregated record, or None when `data` is not one (no magic,
/// bad MD5, or undecodable protobuf): such data is delivered as it is.
pub fn deaggregate(data: &Bytes) -> Option<Vec<KplRecord>> {
    if data.len() < MAGIC.len() + DIGEST_LEN || data[..MAGIC.len()] != MAGIC {
        return None;
    }
    let digest_at = data.len() - DIGEST_LEN;
    let message = data.slice(MAGIC.len()..digest_at);
    if Md5::digest(&message).as_slice() != &data[digest_at..] {
        return None;
    }
    let aggregate = AggregatedRecord::decode(message).ok()?;
    let lookup = |table: &[String], index: u64| usize::try_from(index).ok().and_then(|i| table.get(i)).cloned();
    aggregate
        .records
        .into_iter()
        .map(|record| {
            if record.tags.iter().any(|tag| tag.key.is_none()) {
                return None;
            }
            let partition_key = lookup(&aggregate.partition_key_table, record.partition_key_index?)?;
            let explicit_hash_key = match record.explicit_hash_key_index {
                Some(index) => Some(lookup(&aggregate.explicit_hash_key_table, index)?),
                None => None,
            };
            Some(KplRecord { partition_key, explicit_hash_key, data: record.data? })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(message: &[u8]) -> Bytes {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(message);
        out.extend_from_slice(&Md5::digest(message));
        Bytes::from(out)
    }

    fn record(pk: u64, ehk: Option<u64>, data: &'static [u8]) -> Record {
        Record {
            partition_key_index: Some(pk),
            explicit_hash_key_index: ehk,
            data: Some(Bytes::from_static(data)),
            tags: vec![],
        }
    }

    fn aggregate(records: Vec<Record>) -> AggregatedRecord {
        AggregatedRecord {
            partition_key_table: vec!["pk-a".into(), "pk-b".into()],
            explicit_hash_key_table: vec!["340282366920938463463374607431768211455".into()],
            records,
        }
    }

    #[test]
    fn deaggregates_user_records_in_order() {
        let mut tagged = record(0, None, b"third");
        tagged.tags = vec![Tag { key: Some("k".into()), value: None }];
        let agg = aggregate(vec![record(0, None, b"first"), record(1, Some(0), b"second"), tagged]);
        let records = deaggregate(&frame(&agg.encode_to_vec())).unwrap();
        assert_eq!(
            records,
            vec![
                KplRecord { partition_key: "pk-a".into(), explicit_hash_key: None, data: Bytes::from_static(b"first") },
                KplRecord {
                    partition_key: "pk-b".into(),
                    explicit_hash_key: Some("340282366920938463463374607431768211455".into()),
                    data: Bytes::from_static(b"second"),
                },
                KplRecord { partition_key: "pk-a".into(), explicit_hash_key: None, data: Bytes::from_static(b"third") },
            ]
        );
    }

    #[test]
    fn user_data_is_sliced_from_the_input_not_copied() {
        let input = frame(&aggregate(vec![record(0, None, b"payload bytes")]).encode_to_vec());
        let records = deaggregate(&input).unwrap();
        let range = input.as_ptr() as usize..input.as_ptr() as usize + input.len();
        assert!(range.contains(&(records[0].data.as_ptr() as usize)));
    }

    #[test]
    fn an_aggregate_without_records_yields_no_records() {
        assert_eq!(deaggregate(&frame(&aggregate(vec![]).encode_to_vec())), Some(vec![]));
    }

    #[test]
    fn plain_data_is_not_an_aggregate() {
        for data in [&b""[..], b"{\"a\":1}", &MAGIC, &[0xF3, 0x89, 0x9A, 0xC2, 0, 1, 2]] {
            assert_eq!(deaggregate(&Bytes::copy_from_slice(data)), None);
        }
        // Magic and digest of an empty message, but one byte short of the full header.
        let short = frame(b"");
        assert_eq!(deaggregate(&short.slice(..short.len() - 1)), None);
    }

    #[test]
    fn a_corrupted_digest_or_body_is_not_an_aggregate() {
        let good = frame(&aggregate(vec![record(0, None, b"x")]).encode_to_vec());
        assert!(deaggregate(&good).is_some());
        for at in [MAGIC.len(), good.len() / 2, good.len() - 1] {
            let mut bad = good.to_vec();
            bad[at] ^= 0x01;
            assert_eq!(deaggregate(&Bytes::from(bad)), None, "flipped byte {at}");
        }
    }

    #[test]
    fn undecodable_protobuf_with_a_valid_digest_is_not_an_aggregate() {
        // A field header announcing a 127-byte string that is not there.
        assert_eq!(deaggregate(&frame(&[0x0A, 0x7F, b'a'])), None);
        // A partition key that is not UTF-8.
        assert_eq!(deaggregate(&frame(&[0x0A, 0x01, 0xFF])), None);
    }

    #[test]
    fn out_of_range_indexes_or_missing_required_fields_are_not_an_aggregate() {
        let cases = [
            record(2, None, b"x"),
            record(0, Some(1), b"x"),
            record(u64::MAX, None, b"x"),
            Record { partition_key_index: None, ..record(0, None, b"x") },
            Record { data: None, ..record(0, None, b"x") },
            Record { tags: vec![Tag { key: None, value: Some("v".into()) }], ..record(0, None, b"x") },
        ];
        for bad in cases {
            let agg = aggregate(vec![record(0, None, b"ok"), bad.clone()]);
            assert_eq!(deaggregate(&frame(&agg.encode_to_vec())), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn round_trip(
            keys in proptest::collection::vec("[ -~]{1,256}", 1..5),
            hash_keys in proptest::collection::vec("[0-9]{1,39}", 0..3),
            user in proptest::collection::vec(
                (any::<usize>(), any::<Option<usize>>(), proptest::collection::vec(any::<u8>(), 0..300)),
                0..20,
            ),
        ) {
            let mut expected = Vec::new();
            let mut records = Vec::new();
            for (pk, ehk, data) in user {
                let pk = pk % keys.len();
                let ehk = ehk.filter(|_| !hash_keys.is_empty()).map(|i| i % hash_keys.len());
                records.push(Record {
                    partition_key_index: Some(pk as u64),
                    explicit_hash_key_index: ehk.map(|i| i as u64),
                    data: Some(Bytes::from(data.clone())),
                    tags: vec![],
                });
                expected.push(KplRecord {
                    partition_key: keys[pk].clone(),
                    explicit_hash_key: ehk.map(|i| hash_keys[i].clone()),
                    data: Bytes::from(data),
                });
            }
            let agg = AggregatedRecord {
                partition_key_table: keys,
                explicit_hash_key_table: hash_keys,
                records,
            };
            prop_assert_eq!(deaggregate(&frame(&agg.encode_to_vec())), Some(expected));
        }

        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = deaggregate(&Bytes::from(data.clone()));
            let _ = deaggregate(&frame(&data));
        }
    }
}
