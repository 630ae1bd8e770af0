//! Writing records: PutRecord and PutRecords, their validation and results. They write through
//! the crate's write path (`writer.rs`); PutRecords' hand-written wire format is in `wire/`.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tideline_proto::{AwsError, Blob, ErrorCode, Validator};
use tideline_storage::NewRecord;

use super::wire::put_records::{PutRecordsOutput, ResultRecord};
use crate::hash::{hash_key_of, hash_keys_of, parse_hash_key};
use crate::model::{shard_id, ShardIdText};
use crate::rules;
use crate::sequence::{SequenceNumber, SequenceText};
use crate::service::{Caller, StreamsService};
use crate::writer::{append, Placement, Written};

pub(crate) fn hash_key(partition_key: &[u8], explicit: Option<&str>) -> Result<u128, AwsError> {
    explicit.map_or_else(|| Ok(hash_key_of(partition_key)), explicit_hash_key)
}

/// The MD5 hash keys of many records' partition keys, in order, computed together
/// ([`hash_keys_of`]). A record with an `ExplicitHashKey` gets the empty key's instead of hashing
/// its own: [`chosen_hash_key`] uses the explicit one.
pub(crate) fn partition_key_hashes<'a>(records: impl Iterator<Item = (&'a [u8], Option<&'a str>)>) -> Vec<u128> {
    let keys: Vec<&[u8]> = records.map(|(key, explicit)| if explicit.is_some() { &[] } else { key }).collect();
    hash_keys_of(&keys)
}

/// A record's hash key: its `ExplicitHashKey`, or else `digest`, its partition key's MD5.
pub(crate) fn chosen_hash_key(digest: u128, explicit: Option<&str>) -> Result<u128, AwsError> {
    explicit.map_or(Ok(digest), explicit_hash_key)
}

fn explicit_hash_key(text: &str) -> Result<u128, AwsError> {
    parse_hash_key(text).ok_or_else(|| {
        AwsError::invalid_argument(format!(
            "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {text}"
        ))
    })
}

/// Records over the stream's maximum record size (the default 1 MiB) are refused as AWS does.
pub(crate) fn check_record_size(data: &[u8]) -> Result<(), AwsError> {
    if data.len() <= rules::MAX_RECORD_BYTES {
        return Ok(());
    }
    Err(AwsError::invalid_argument(format!(
        "Record data size {} exceeds the stream's max record size of {} bytes",
        data.len(),
        rules::MAX_RECORD_BYTES
    )))
}

fn encryption_type(encrypted: bool) -> &'static str {
    if encrypted {
        "KMS"
    } else {
        "NONE"
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    data: Option<Blob>,
    partition_key: Option<String>,
    explicit_hash_key: Option<String>,
    sequence_number_for_ordering: Option<String>,
}

impl PutRecordInput {
    fn validate(&self) -> Result<(), AwsError> {
        let mut v = Validator::new();
        v.required("partitionKey", self.partition_key.as_ref());
        v.string("partitionKey", self.partition_key.as_deref(), 1, 256, None);
        rules::hash_key(&mut v, "explicitHashKey", self.explicit_hash_key.as_deref());
        v.required("data", self.data.as_ref());
        v.blob("data", self.data.as_ref().map(|d| &d.0[..]), rules::MAX_API_RECORD_BYTES);
        rules::sequence_number(&mut v, "sequenceNumberForOrdering", self.sequence_number_for_ordering.as_deref());
        rules::stream_target(&mut v, self.stream_name.as_deref(), self.stream_arn.as_deref());
        v.finish()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordOutput {
    shard_id: ShardIdText,
    sequence_number: SequenceText,
    encryption_type: &'static str,
}

pub async fn put_record(
    service: &StreamsService,
    caller: Option<&Caller>,
    input: PutRecordInput,
) -> Result<PutRecordOutput, AwsError> {
    input.validate()?;
    let (name, entry) = service.target(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    service.authorize(caller, &entry.state.read().meta, "kinesis:PutRecord", None)?;
    let started = std::time::Instant::now();
    let partition_key = Bytes::from(input.partition_key.unwrap_or_default());
    let hash = hash_key(&partition_key, input.explicit_hash_key.as_deref())?;
    if let Some(ordering) = input.sequence_number_for_ordering.as_deref() {
        // Sequence numbers only grow within a shard, so the ordering it asks for always holds;
        // a number this server never issued is refused as AWS refuses it.
        if SequenceNumber::decode(ordering).is_none() {
            return Err(AwsError::invalid_argument(format!(
                "ExclusiveMinimumSequenceNumber {ordering} used in PutRecord on stream {name} under account {} is invalid.",
                service.account()
            )));
        }
    }
    let data = input.data.unwrap_or_default().0;
    check_record_size(&data)?;
    let written =
        append(service, &name, &entry, &[hash], [NewRecord { partition_key, data, encrypted: false }]).await?;
    match written.placements.first() {
        Some(&Placement::Appended { shard_index, record_index }) => {
            service.metrics.record_put(&name, "PutRecord", 1, written.appended_bytes, started.elapsed());
            Ok(PutRecordOutput {
                shard_id: ShardIdText::of(shard_index),
                sequence_number: SequenceNumber::of_record(written.stream_id, shard_index, record_index).text(),
                encryption_type: encryption_type(written.encrypted),
            })
        }
        Some(&Placement::Throttled { shard_index }) => {
            service.metrics.record_throttled_writes(&name, 1);
            Err(AwsError::new(ErrorCode::ProvisionedThroughputExceeded, rate_exceeded(service, &name, shard_index)))
        }
        None => Err(AwsError::internal("record was not placed")),
    }
}

/// Counts a PutRecords call's appended and throttled records in the stream's metrics.
pub(crate) fn record_put(service: &StreamsService, name: &str, written: &Written, started: std::time::Instant) {
    let (records, bytes, throttled) = (written.appended_records, written.appended_bytes, written.throttled());
    service.metrics.record_put(name, "PutRecords", records, bytes, started.elapsed());
    if throttled > 0 {
        service.metrics.record_throttled_writes(name, throttled);
    }
}

/// AWS's message for a record refused by its shard's write limit.
pub(crate) fn rate_exceeded(service: &StreamsService, stream: &str, shard_index: u32) -> String {
    format!("Rate exceeded for shard {} in stream {stream} under account {}.", shard_id(shard_index), service.account())
}

/// One record of a PutRecords call. `data` and `partition_key` (UTF-8) are slices of the one
/// buffer the whole request's records were decoded into.
pub struct PutRecordsEntry {
    pub(crate) data: Option<Bytes>,
    pub(crate) partition_key: Option<Bytes>,
    pub(crate) explicit_hash_key: Option<String>,
}

pub struct PutRecordsInput {
    pub(crate) stream_name: Option<String>,
    pub(crate) stream_arn: Option<String>,
    pub(crate) records: Option<Vec<PutRecordsEntry>>,
}

impl PutRecordsEntry {
    /// Whether every member constraint certainly holds, decided without allocating. Most calls
    /// are valid, and building each record's member paths (`records.N.member.partitionKey`) for
    /// the full check cost as much as the rest of the call; a `false` here only means "run the
    /// full check", which is exact.
    fn plainly_valid(&self) -> bool {
        // A key of 1 to 256 bytes has 1 to 256 characters; longer ones are counted exactly.
        let key = self.partition_key.as_ref().is_some_and(|key| (1..=256).contains(&key.len()));
        // ASCII digits without a leading zero, at most 39 of them, match `rules::HASH_KEY`.
        let hash_key = self.explicit_hash_key.as_deref().is_none_or(|text| {
            text == "0"
                || (text.len() <= 39
                    && text.as_bytes().first().is_some_and(|b| (b'1'..=b'9').contains(b))
                    && text.bytes().all(|b| b.is_ascii_digit()))
        });
        let data = self.data.as_ref().is_some_and(|data| data.len() <= rules::MAX_API_RECORD_BYTES);
        key && hash_key && data
    }

    fn validate(&self, v: &mut Validator, number: usize) {
        let path = |member: &str| format!("records.{number}.member.{member}");
        // Always UTF-8: it was decoded from a string member.
        let partition_key = self.partition_key.as_deref().map(|key| std::str::from_utf8(key).unwrap_or_default());
        v.required(&path("partitionKey"), partition_key);
        v.string(&path("partitionKey"), partition_key, 1, 256, None);
        rules::hash_key(v, &path("explicitHashKey"), self.explicit_hash_key.as_deref());
        v.required(&path("data"), self.data.as_ref());
        v.blob(&path("data"), self.data.as_deref(), rules::MAX_API_RECORD_BYTES);
    }
}

impl PutRecordsInput {
    fn validate(&self) -> Result<(), AwsError> {
        let mut v = Validator::new();
        v.required("records", self.records.as_ref());
        if let Some(records) = &self.records {
            if !(1..=rules::MAX_PUT_RECORDS).contains(&records.len()) {
                let rendered = format!(
                    "[{}]",
                    vec!["com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry"; records.len()].join(", ")
                );
                v.length("records", Some(&rendered), records.len(), 1, rules::MAX_PUT_RECORDS);
            }
            for (i, record) in records.iter().enumerate() {
                if !record.plainly_valid() {
                    record.validate(&mut v, i + 1);
                }
            }
        }
        rules::stream_target(&mut v, self.stream_name.as_deref(), self.stream_arn.as_deref());
        v.finish()
    }
}

/// PutRecords' limit on a request's data and partition keys together.
pub(crate) fn check_total_size(total: usize) -> Result<(), AwsError> {
    if total <= rules::MAX_PUT_RECORDS_BYTES {
        return Ok(());
    }
    Err(AwsError::invalid_argument(format!(
        "Records size exceeds 5 MB limit. Total size of the records in the request was {total} bytes."
    )))
}

pub async fn put_records(
    service: &StreamsService,
    caller: Option<&Caller>,
    input: PutRecordsInput,
) -> Result<PutRecordsOutput, AwsError> {
    input.validate()?;
    let (name, entry) = service.target(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    service.authorize(caller, &entry.state.read().meta, "kinesis:PutRecords", None)?;
    let started = std::time::Instant::now();
    let entries = input.records.unwrap_or_default();
    let total: usize = entries
        .iter()
        .map(|e| e.data.as_ref().map_or(0, Bytes::len) + e.partition_key.as_ref().map_or(0, Bytes::len))
        .sum();
    check_total_size(total)?;
    let mut hashes = partition_key_hashes(
        entries.iter().map(|e| (e.partition_key.as_deref().unwrap_or_default(), e.explicit_hash_key.as_deref())),
    );
    for (record, hash) in entries.iter().zip(&mut hashes) {
        *hash = chosen_hash_key(*hash, record.explicit_hash_key.as_deref())?;
        check_record_size(record.data.as_deref().unwrap_or_default())?;
    }
    let records = entries.into_iter().map(|record| NewRecord {
        partition_key: record.partition_key.unwrap_or_default(),
        data: record.data.unwrap_or_default(),
        encrypted: false,
    });
    let written = append(service, &name, &entry, &hashes, records).await?;
    record_put(service, &name, &written, started);
    let records = written
        .placements
        .iter()
        .map(|placement| match *placement {
            Placement::Appended { shard_index, record_index } => ResultRecord::Appended { shard_index, record_index },
            Placement::Throttled { shard_index } => ResultRecord::Throttled(rate_exceeded(service, &name, shard_index)),
        })
        .collect();
    Ok(PutRecordsOutput {
        failed_record_count: written.throttled() as u32,
        stream_id: written.stream_id,
        records,
        encryption_type: encryption_type(written.encrypted),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tideline_proto::{Codec, EncodeResponse};

    /// PutRecords as serde's derive decoded it before the hand-written decoder (same type names,
    /// which appear in error messages).
    mod derived {
        use serde::Deserialize;
        use tideline_proto::Blob;

        #[derive(Deserialize, Debug, PartialEq)]
        #[serde(rename_all = "PascalCase")]
        pub struct PutRecordsInput {
            pub stream_name: Option<String>,
            #[serde(rename = "StreamARN")]
            pub stream_arn: Option<String>,
            pub records: Option<Vec<PutRecordsEntry>>,
        }

        #[derive(Deserialize, Debug, PartialEq)]
        #[serde(rename_all = "PascalCase")]
        pub struct PutRecordsEntry {
            pub data: Option<Blob>,
            pub partition_key: Option<String>,
            pub explicit_hash_key: Option<String>,
        }
    }

    fn as_derived(input: PutRecordsInput) -> derived::PutRecordsInput {
        derived::PutRecordsInput {
            stream_name: input.stream_name,
            stream_arn: input.stream_arn,
            records: input.records.map(|records| {
                records
                    .into_iter()
                    .map(|entry| derived::PutRecordsEntry {
                        data: entry.data.map(Blob),
                        partition_key: entry.partition_key.map(|key| String::from_utf8(key.to_vec()).unwrap()),
                        explicit_hash_key: entry.explicit_hash_key,
                    })
                    .collect()
            }),
        }
    }

    #[test]
    fn decodes_as_the_derived_decoder_did() {
        let bodies: &[&str] = &[
            r#"{"StreamName":"s","Records":[{"Data":"aGVsbG8=","PartitionKey":"k"},{"PartitionKey":"é","Data":"","ExplicitHashKey":"12"}]}"#,
            r#"{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s","Records":[]}"#,
            r#"{"StreamName":null,"Records":null,"Other":[1,{"a":2}]}"#,
            r#"{"Records":[{"Data":null,"PartitionKey":null,"ExplicitHashKey":null,"Extra":"x"}]}"#,
            r#"{"Records":[{}]}"#,
            r#"{}"#,
            r#"{"Records":[{"Data":"abc","PartitionKey":"k"}]}"#,
            r#"{"Records":[{"Data":"ab!=","PartitionKey":"k"}]}"#,
            r#"{"Records":[{"Data":5,"PartitionKey":"k"}]}"#,
            r#"{"Records":[{"Data":"aGVsbG8=","PartitionKey":5}]}"#,
            r#"{"Records":[{"Data":"aGVsbG8=","PartitionKey":"k","PartitionKey":"j"}]}"#,
            r#"{"StreamName":"a","StreamName":"b"}"#,
            r#"{"Records":[null]}"#,
            r#"{"Records":{"Data":"aGVsbG8="}}"#,
            r#"{"Records":"x"}"#,
            r#"{"StreamName":5}"#,
            r#"{"Records":[{"Data":"aGVsbG8=","PartitionKey":"k\u00e9\n"}]}"#,
            r#"{"Records":[{"Data":"aGVsbG8=","PartitionKey":"k"}]"#,
            r#"{"Records":[{"Data":"aGVsbG8=","PartitionKey":"k"}]} x"#,
            r#""#,
        ];
        for body in bodies {
            for codec in [Codec::Json, Codec::Cbor] {
                let body = match codec {
                    Codec::Json => body.as_bytes().to_vec(),
                    // The same value in CBOR, where the JSON is well formed.
                    Codec::Cbor => match serde_json::from_str::<serde_json::Value>(body) {
                        Ok(value) => codec.encode(&value),
                        Err(_) => continue,
                    },
                };
                let ours = codec.decode::<PutRecordsInput>(&body).map(as_derived).map_err(|e| e.message);
                let derived = codec.decode::<derived::PutRecordsInput>(&body).map_err(|e| e.message);
                assert_eq!(ours, derived, "{codec:?} {}", String::from_utf8_lossy(&body));
            }
        }
    }

    #[test]
    fn cbor_blobs_are_raw_bytes() {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Entry {
            data: Blob,
            partition_key: &'static str,
        }
        let body = Codec::Cbor.encode(&serde_json::json!({ "StreamName": "s" }));
        assert!(Codec::Cbor.decode::<PutRecordsInput>(&body).is_ok());
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Input {
            records: Vec<Entry>,
        }
        let input = Input { records: vec![Entry { data: Blob(Bytes::from_static(&[0, 255, 1])), partition_key: "k" }] };
        let decoded = Codec::Cbor.decode::<PutRecordsInput>(&Codec::Cbor.encode(&input)).unwrap();
        let records = decoded.records.unwrap();
        assert_eq!(records[0].data.as_deref(), Some(&[0u8, 255, 1][..]));
        assert_eq!(records[0].partition_key.as_deref(), Some(&b"k"[..]));
    }

    #[test]
    fn validation_messages_do_not_change() {
        let decode = |body: &str| Codec::Json.decode::<PutRecordsInput>(body.as_bytes()).unwrap();
        let message = |body: &str| decode(body).validate().unwrap_err().message.unwrap();
        let long = "x".repeat(257);
        let long_chars = "é".repeat(200); // 400 bytes, 200 characters: valid
        assert!(decode(&format!(r#"{{"StreamName":"s","Records":[{{"Data":"","PartitionKey":"{long_chars}"}}]}}"#))
            .validate()
            .is_ok());
        assert!(decode(r#"{"StreamName":"s","Records":[{"Data":"","PartitionKey":"k","ExplicitHashKey":"0"}]}"#)
            .validate()
            .is_ok());
        assert_eq!(
            message(&format!(
                r#"{{"StreamName":"s","Records":[{{"Data":"","PartitionKey":"k"}},{{"PartitionKey":"{long}","ExplicitHashKey":"01"}},{{"Data":"","PartitionKey":""}}]}}"#
            )),
            format!(
                "4 validation errors detected: \
                 Value '{long}' at 'records.2.member.partitionKey' failed to satisfy constraint: Member must have length less than or equal to 256; \
                 Value '01' at 'records.2.member.explicitHashKey' failed to satisfy constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{{0,38}}); \
                 Value null at 'records.2.member.data' failed to satisfy constraint: Member must not be null; \
                 Value '' at 'records.3.member.partitionKey' failed to satisfy constraint: Member must have length greater than or equal to 1"
            )
        );
        assert_eq!(
            message(r#"{"StreamName":"s","Records":[]}"#),
            "1 validation error detected: Value '[]' at 'records' failed to satisfy constraint: Member must have length greater than or equal to 1"
        );
    }

    #[test]
    fn json_is_written_as_serde_json_writes_it() {
        let output = PutRecordsOutput {
            failed_record_count: 1,
            stream_id: 12,
            records: vec![
                ResultRecord::Appended { shard_index: 3, record_index: 41 },
                ResultRecord::Throttled("Rate exceeded for shard shardId-000000000001 in stream \"s\"/é.".into()),
                ResultRecord::Appended { shard_index: u32::MAX, record_index: u64::MAX - 1 },
            ],
            encryption_type: "KMS",
        };
        assert_eq!(String::from_utf8(output.encode(Codec::Json)).unwrap(), serde_json::to_string(&output).unwrap());
        let empty = PutRecordsOutput { failed_record_count: 0, stream_id: 1, records: vec![], encryption_type: "NONE" };
        assert_eq!(empty.encode(Codec::Json), serde_json::to_vec(&empty).unwrap());
        assert!(String::from_utf8(output.encode(Codec::Json)).unwrap().contains(
            r#"{"SequenceNumber":"49000000000000120000000003000000000000000000420000000000","ShardId":"shardId-000000000003"}"#
        ));
    }

    #[test]
    fn numbers_of_a_shard_written_one_after_another_match_serde_json() {
        // Consecutive, carrying (9 → 10, 99 → 100), skipping and going back (a record routed
        // again after a reshard), interleaved across shards, with short and long stream ids.
        let indexes = [(3, 41), (0, 8), (3, 42), (0, 9), (0, 98), (3, 45), (0, 99), (3, 43), (0, 0), (3, 44)];
        for stream_id in [12, 123_456_789_012_345_678] {
            let output = PutRecordsOutput {
                failed_record_count: 0,
                stream_id,
                records: indexes
                    .iter()
                    .map(|&(shard_index, record_index)| ResultRecord::Appended { shard_index, record_index })
                    .collect(),
                encryption_type: "NONE",
            };
            assert_eq!(String::from_utf8(output.encode(Codec::Json)).unwrap(), serde_json::to_string(&output).unwrap());
        }
    }
}
