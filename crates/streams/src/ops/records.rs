//! Writing records: PutRecord and PutRecords, and the routing and durable append they share.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use tideline_proto::{Arena, AwsError, Blob, Codec, EncodeResponse, ErrorCode, Optional, Validator};
use tideline_storage::{AppendBatch, AppendOutcome, NewRecord, ShardKey};

use crate::hash::{hash_key_of, parse_hash_key};
use crate::model::{shard_id, ShardIdText};
use crate::rules;
use crate::sequence::{SequenceNumber, SequenceText};
use crate::service::{storage_failure, Caller, StreamEntry, StreamsService};

/// What became of a record: where it landed, or which shard's write limit refused it.
#[derive(Clone, Copy)]
enum Placement {
    Appended { shard_index: u32, record_index: u64 },
    Throttled { shard_index: u32 },
}

/// Records written by one request, in request order, and the stream state they were written under.
struct Written {
    placements: Vec<Placement>,
    stream_id: u64,
    encrypted: bool,
}

/// How many times a write re-routes after racing a reshard that closed its shard.
const MAX_REROUTES: usize = 5;

/// Routes each record (by hash key) to the open shard owning it and appends them durably.
/// With `--enforce-limits`, a record over its shard's write limit is refused (and not written).
/// A shard can be closed by a concurrent reshard between routing and appending; storage then
/// refuses the batch and hands its records back, and they are routed again once the new shard
/// tree is installed.
async fn append(
    service: &StreamsService,
    name: &str,
    entry: &Arc<StreamEntry>,
    records: Vec<(u128, NewRecord)>,
) -> Result<Written, AwsError> {
    let mut placements: Vec<Option<Placement>> = vec![None; records.len()];
    let mut hashes = Vec::with_capacity(records.len());
    // Records not placed yet, with their positions in the request, in request order.
    let mut pending: Vec<(usize, NewRecord)> = Vec::with_capacity(records.len());
    for (position, (hash, record)) in records.into_iter().enumerate() {
        hashes.push(hash);
        pending.push((position, record));
    }
    for attempt in 0..MAX_REROUTES {
        let mut changed = entry.changed.subscribe();
        // Route every pending record first, counting per shard, so that each shard's batch is
        // allocated once at its final size (they used to grow record by record).
        let mut routes: Vec<Option<usize>> = Vec::with_capacity(pending.len()); // batch, or throttled
        let mut shards: Vec<(u32, usize)> = Vec::new(); // (shard index, records)
        let (stream_id, encrypted) = {
            let state = entry.state.read();
            if !state.meta.status.accepts_data() {
                return Err(service.stream_not_found(name));
            }
            let (stream_id, encrypted) = (state.meta.id, state.meta.encryption_key.is_some());
            for (position, record) in &pending {
                let Some(shard_index) = state.routing.shard_for(hashes[*position]) else {
                    return Err(AwsError::internal("no open shard owns the hash key"));
                };
                // Only the first routing is charged: a record re-routed after a reshard was admitted.
                if let (Some(limits), 0) = (&service.limits, attempt) {
                    let size = record.data.len() + record.partition_key.len();
                    if !limits.admit_write(ShardKey { stream_id, shard_index }, size) {
                        placements[*position] = Some(Placement::Throttled { shard_index });
                        routes.push(None);
                        continue;
                    }
                }
                let batch = match shards.iter().position(|&(shard, _)| shard == shard_index) {
                    Some(batch) => batch,
                    None => {
                        shards.push((shard_index, 0));
                        shards.len() - 1
                    }
                };
                shards[batch].1 += 1;
                routes.push(Some(batch));
            }
            (stream_id, encrypted)
        };
        let mut batches: Vec<(AppendBatch, Vec<usize>)> = shards
            .iter()
            .map(|&(shard_index, count)| {
                let shard = ShardKey { stream_id, shard_index };
                (AppendBatch { shard, records: Vec::with_capacity(count) }, Vec::with_capacity(count))
            })
            .collect();
        // The records move into the batches (a throttled one is dropped: it is not written).
        for ((position, record), route) in pending.drain(..).zip(routes) {
            if let Some(batch) = route {
                let (batch, positions) = &mut batches[batch];
                batch.records.push(NewRecord { encrypted, ..record });
                positions.push(position);
            }
        }
        let (batches, positions): (Vec<AppendBatch>, Vec<Vec<usize>>) = batches.into_iter().unzip();
        let shards: Vec<u32> = batches.iter().map(|batch| batch.shard.shard_index).collect();
        let outcomes = service.storage.append(batches).await.map_err(storage_failure)?;
        for ((outcome, positions), shard_index) in outcomes.into_iter().zip(positions).zip(shards) {
            match outcome {
                AppendOutcome::Appended { first_index, .. } => {
                    for (offset, position) in positions.into_iter().enumerate() {
                        placements[position] =
                            Some(Placement::Appended { shard_index, record_index: first_index + offset as u64 });
                    }
                }
                AppendOutcome::ShardSealed(records) => pending.extend(positions.into_iter().zip(records)),
            }
        }
        if pending.is_empty() {
            let placements = placements.into_iter().flatten().collect();
            return Ok(Written { placements, stream_id, encrypted });
        }
        pending.sort_unstable_by_key(|(position, _)| *position);
        // Wait for the reshard that sealed the shard to install the new tree.
        let _ = tokio::time::timeout(Duration::from_secs(2), changed.changed()).await;
    }
    Err(AwsError::internal("records could not be routed to an open shard"))
}

fn hash_key(partition_key: &[u8], explicit: Option<&str>) -> Result<u128, AwsError> {
    match explicit {
        None => Ok(hash_key_of(partition_key)),
        Some(text) => parse_hash_key(text).ok_or_else(|| {
            AwsError::invalid_argument(format!(
                "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {text}"
            ))
        }),
    }
}

/// Records over the stream's maximum record size (the default 1 MiB) are refused as AWS does.
fn check_record_size(data: &[u8]) -> Result<(), AwsError> {
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
    let size = data.len();
    let written =
        append(service, &name, &entry, vec![(hash, NewRecord { partition_key, data, encrypted: false })]).await?;
    match written.placements.first() {
        Some(&Placement::Appended { shard_index, record_index }) => {
            service.metrics.record_put(&name, "PutRecord", 1, size as u64, started.elapsed());
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

/// AWS's message for a record refused by its shard's write limit.
fn rate_exceeded(service: &StreamsService, stream: &str, shard_index: u32) -> String {
    format!("Rate exceeded for shard {} in stream {stream} under account {}.", shard_id(shard_index), service.account())
}

/// One record of a PutRecords call. `data` and `partition_key` (UTF-8) are slices of the one
/// buffer the whole request's records were decoded into.
pub struct PutRecordsEntry {
    data: Option<Bytes>,
    partition_key: Option<Bytes>,
    explicit_hash_key: Option<String>,
}

pub struct PutRecordsInput {
    stream_name: Option<String>,
    stream_arn: Option<String>,
    records: Option<Vec<PutRecordsEntry>>,
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

/// Which of `names` a member name is (`None`: a member this operation does not have).
struct MemberName(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for MemberName {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for MemberName {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("field identifier")
    }
    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|known| *known == name))
    }
    fn visit_bytes<E: de::Error>(self, name: &[u8]) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|known| known.as_bytes() == name))
    }
}

/// Reads an object's members as serde's derive does: `read` gets the index in `names` of each
/// known member (to read its value), unknown members are skipped, and a member given twice is
/// refused.
fn read_members<'de, A: MapAccess<'de>>(
    map: &mut A,
    names: &'static [&'static str],
    mut read: impl FnMut(&mut A, usize) -> Result<(), A::Error>,
) -> Result<(), A::Error> {
    let mut seen = 0u64; // one bit per name
    while let Some(member) = map.next_key_seed(MemberName(names))? {
        let Some(index) = member else {
            map.next_value::<IgnoredAny>()?;
            continue;
        };
        if seen & (1 << index) != 0 {
            return Err(de::Error::duplicate_field(names[index]));
        }
        seen |= 1 << index;
        read(map, index)?;
    }
    Ok(())
}

/// PutRecords is decoded by hand rather than derived so that every record's data and partition
/// key go into one [`Arena`] (one allocation per 64 KiB) instead of two allocations per record.
/// Member names, `null`s, unknown members and error messages behave as the derived decoder's.
impl<'de> Deserialize<'de> for PutRecordsInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct("PutRecordsInput", InputVisitor::NAMES, InputVisitor)
    }
}

struct InputVisitor;

impl InputVisitor {
    const NAMES: &'static [&'static str] = &["StreamName", "StreamARN", "Records"];
}

impl<'de> Visitor<'de> for InputVisitor {
    type Value = PutRecordsInput;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("struct PutRecordsInput")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut input = PutRecordsInput { stream_name: None, stream_arn: None, records: None };
        let mut arena = Arena::new();
        read_members(&mut map, Self::NAMES, |map, index| {
            match index {
                0 => input.stream_name = map.next_value()?,
                1 => input.stream_arn = map.next_value()?,
                _ => input.records = map.next_value_seed(Optional(Entries(&mut arena)))?,
            }
            Ok(())
        })?;
        Ok(input)
    }
}

struct Entries<'a>(&'a mut Arena);

impl<'de> DeserializeSeed<'de> for Entries<'_> {
    type Value = Vec<PutRecordsEntry>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Entries<'_> {
    type Value = Vec<PutRecordsEntry>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a sequence")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // A hint (CBOR has one) comes from the client: trust it only up to the most a valid call
        // carries. JSON has none; growing to 500 entries by doubling cost more than the unused
        // space of a smaller call.
        let hint = seq.size_hint().unwrap_or(rules::MAX_PUT_RECORDS);
        let mut entries = Vec::with_capacity(hint.min(rules::MAX_PUT_RECORDS));
        while let Some(entry) = seq.next_element_seed(Entry(&mut *self.0))? {
            entries.push(entry);
        }
        Ok(entries)
    }
}

struct Entry<'a>(&'a mut Arena);

impl Entry<'_> {
    const NAMES: &'static [&'static str] = &["Data", "PartitionKey", "ExplicitHashKey"];
}

impl<'de> DeserializeSeed<'de> for Entry<'_> {
    type Value = PutRecordsEntry;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_struct("PutRecordsEntry", Self::NAMES, self)
    }
}

impl<'de> Visitor<'de> for Entry<'_> {
    type Value = PutRecordsEntry;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("struct PutRecordsEntry")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entry = PutRecordsEntry { data: None, partition_key: None, explicit_hash_key: None };
        let arena = self.0;
        read_members(&mut map, Self::NAMES, |map, index| {
            match index {
                0 => entry.data = map.next_value_seed(Optional(arena.blob()))?,
                1 => entry.partition_key = map.next_value_seed(Optional(arena.text()))?,
                _ => entry.explicit_hash_key = map.next_value()?,
            }
            Ok(())
        })?;
        Ok(entry)
    }
}

/// The error code of a record refused by its shard's write limit.
const THROTTLED: &str = "ProvisionedThroughputExceededException";

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsResultEntry<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence_number: Option<SequenceText>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shard_id: Option<ShardIdText>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<&'a str>,
}

/// A record's result: its place (the texts are made while encoding), or the throttling message.
enum ResultRecord {
    Appended { shard_index: u32, record_index: u64 },
    Throttled(String),
}

pub struct PutRecordsOutput {
    failed_record_count: u32,
    stream_id: u64,
    records: Vec<ResultRecord>,
    encryption_type: &'static str,
}

impl EncodeResponse for PutRecordsOutput {
    /// The response body. JSON is written directly, byte for byte what serde_json writes for
    /// this type (a test checks): serde_json scans every string it writes for characters to
    /// escape, and those scans were most of the cost of answering a call of 500 records. The
    /// numbers and shard ids are ASCII digits that never need escaping.
    fn encode(&self, codec: Codec) -> Vec<u8> {
        match codec {
            Codec::Json => self.to_json(),
            Codec::Cbor => codec.encode(self),
        }
    }
}

impl PutRecordsOutput {
    fn entry<'a>(&self, record: &'a ResultRecord) -> PutRecordsResultEntry<'a> {
        match record {
            &ResultRecord::Appended { shard_index, record_index } => PutRecordsResultEntry {
                sequence_number: Some(SequenceNumber::of_record(self.stream_id, shard_index, record_index).text()),
                shard_id: Some(ShardIdText::of(shard_index)),
                error_code: None,
                error_message: None,
            },
            ResultRecord::Throttled(message) => PutRecordsResultEntry {
                sequence_number: None,
                shard_id: None,
                error_code: Some(THROTTLED),
                error_message: Some(message),
            },
        }
    }

    fn to_json(&self) -> Vec<u8> {
        // An appended record's entry is 111 bytes with its separator.
        let mut out = Vec::with_capacity(96 + self.records.len() * 111);
        out.extend_from_slice(b"{\"FailedRecordCount\":");
        out.extend_from_slice(self.failed_record_count.to_string().as_bytes());
        out.extend_from_slice(b",\"Records\":[");
        for (i, record) in self.records.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match record {
                &ResultRecord::Appended { shard_index, record_index } => {
                    let sequence_number = SequenceNumber::of_record(self.stream_id, shard_index, record_index).text();
                    out.extend_from_slice(b"{\"SequenceNumber\":\"");
                    out.extend_from_slice(sequence_number.as_bytes());
                    out.extend_from_slice(b"\",\"ShardId\":\"");
                    out.extend_from_slice(ShardIdText::of(shard_index).as_bytes());
                    out.extend_from_slice(b"\"}");
                }
                ResultRecord::Throttled(message) => {
                    out.extend_from_slice(b"{\"ErrorCode\":\"");
                    out.extend_from_slice(THROTTLED.as_bytes());
                    out.extend_from_slice(b"\",\"ErrorMessage\":");
                    // The message holds the stream name: escaped as serde_json escapes it.
                    if serde_json::to_writer(&mut out, message).is_err() {
                        out.extend_from_slice(b"\"\"");
                    }
                    out.push(b'}');
                }
            }
        }
        out.extend_from_slice(b"],\"EncryptionType\":\"");
        out.extend_from_slice(self.encryption_type.as_bytes());
        out.extend_from_slice(b"\"}");
        out
    }
}

impl Serialize for PutRecordsOutput {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Entries<'a>(&'a PutRecordsOutput);
        impl Serialize for Entries<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.records.iter().map(|record| self.0.entry(record)))
            }
        }
        let mut out = serializer.serialize_struct("PutRecordsOutput", 3)?;
        out.serialize_field("FailedRecordCount", &self.failed_record_count)?;
        out.serialize_field("Records", &Entries(self))?;
        out.serialize_field("EncryptionType", self.encryption_type)?;
        out.end()
    }
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
    if total > rules::MAX_PUT_RECORDS_BYTES {
        return Err(AwsError::invalid_argument(format!(
            "Records size exceeds 5 MB limit. Total size of the records in the request was {total} bytes."
        )));
    }
    let mut records = Vec::with_capacity(entries.len());
    for record in entries {
        let partition_key = record.partition_key.unwrap_or_default();
        let hash = hash_key(&partition_key, record.explicit_hash_key.as_deref())?;
        let data = record.data.unwrap_or_default();
        check_record_size(&data)?;
        records.push((hash, NewRecord { partition_key, data, encrypted: false }));
    }
    let sizes: Vec<usize> = records.iter().map(|(_, record)| record.data.len()).collect();
    let written = append(service, &name, &entry, records).await?;
    let appended = || written.placements.iter().zip(&sizes).filter(|(p, _)| matches!(p, Placement::Appended { .. }));
    let throttled = written.placements.len() - appended().count();
    let bytes: usize = appended().map(|(_, size)| size).sum();
    service.metrics.record_put(&name, "PutRecords", appended().count() as u64, bytes as u64, started.elapsed());
    if throttled > 0 {
        service.metrics.record_throttled_writes(&name, throttled as u64);
    }
    let records = written
        .placements
        .iter()
        .map(|placement| match *placement {
            Placement::Appended { shard_index, record_index } => ResultRecord::Appended { shard_index, record_index },
            Placement::Throttled { shard_index } => ResultRecord::Throttled(rate_exceeded(service, &name, shard_index)),
        })
        .collect();
    Ok(PutRecordsOutput {
        failed_record_count: throttled as u32,
        stream_id: written.stream_id,
        records,
        encryption_type: encryption_type(written.encrypted),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(String::from_utf8(output.to_json()).unwrap(), serde_json::to_string(&output).unwrap());
        let empty = PutRecordsOutput { failed_record_count: 0, stream_id: 1, records: vec![], encryption_type: "NONE" };
        assert_eq!(empty.encode(Codec::Json), serde_json::to_vec(&empty).unwrap());
        assert!(String::from_utf8(output.to_json()).unwrap().contains(
            r#"{"SequenceNumber":"49000000000000120000000003000000000000000000420000000000","ShardId":"shardId-000000000003"}"#
        ));
    }
}
