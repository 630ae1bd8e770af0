//! PutRecords on the wire: the request decoder, written by hand so that every record's data and
//! partition key go into one arena, and the response encoder, which writes JSON directly.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use tideline_proto::{Arena, AwsError, Codec, DecodeRequest, EncodeResponse, Optional};

use crate::model::ShardIdText;
use crate::ops::records::{PutRecordsEntry, PutRecordsInput};
use crate::rules;
use crate::sequence::{SequenceNumber, SequenceText, ShardNumbers};

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

/// A JSON request of the shape SDKs send is read in one pass (`put_records_json.rs`); anything
/// else, and CBOR, goes through the serde decoder below, which decides what is refused and how.
impl DecodeRequest for PutRecordsInput {
    fn decode(codec: Codec, body: &[u8]) -> Result<Self, AwsError> {
        match codec {
            Codec::Json => super::put_records_json::read(body).map_or_else(|| codec.decode(body), Ok),
            Codec::Cbor => codec.decode(body),
        }
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
pub(crate) enum ResultRecord {
    Appended { shard_index: u32, record_index: u64 },
    Throttled(String),
}

pub struct PutRecordsOutput {
    pub(crate) failed_record_count: u32,
    pub(crate) stream_id: u64,
    pub(crate) records: Vec<ResultRecord>,
    pub(crate) encryption_type: &'static str,
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
        // Each shard's records are numbered in ascending order, mostly one after another.
        let mut numbers: Vec<ShardNumbers> = Vec::new();
        for (i, record) in self.records.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match record {
                &ResultRecord::Appended { shard_index, record_index } => {
                    let at = match numbers.iter().position(|shard| shard.shard_index() == shard_index) {
                        Some(at) => at,
                        None => {
                            numbers.push(ShardNumbers::new(self.stream_id, shard_index));
                            numbers.len() - 1
                        }
                    };
                    let sequence_number = numbers[at].of_record(record_index);
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
