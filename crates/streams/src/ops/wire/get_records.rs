//! GetRecords on the wire: the response encoder, which writes JSON directly.

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use tideline_proto::{append_base64, Blob, Codec, EncodeResponse, Timestamp};
use tideline_storage::StoredRecord;

use crate::ops::shapes::ChildShard;
use crate::sequence::{SequenceText, ShardNumbers};

/// Records read from one shard, as GetRecords and SubscribeToShard events return them. Each is
/// numbered as it is written out, its sequence number's text advanced from the one before: a
/// copy of every record with its number beside it (a few hundred bytes each) cost a tenth of
/// a GetRecords call.
pub struct ShardRecords {
    pub(crate) stream_id: u64,
    pub(crate) shard_index: u32,
    /// In ascending index order.
    pub(crate) records: Vec<StoredRecord>,
}

impl ShardRecords {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records, taken out, with their sequence numbers' texts.
    pub fn into_numbered(self) -> impl Iterator<Item = (SequenceText, StoredRecord)> {
        let mut numbers = ShardNumbers::new(self.stream_id, self.shard_index);
        self.records.into_iter().map(move |record| (numbers.of_record(record.index), record))
    }

    fn numbered(&self) -> impl Iterator<Item = RecordOut<'_>> {
        let mut numbers = ShardNumbers::new(self.stream_id, self.shard_index);
        self.records.iter().map(move |record| RecordOut { sequence_number: numbers.of_record(record.index), record })
    }
}

impl Serialize for ShardRecords {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.numbered())
    }
}

/// A stored record on the wire, serialised straight from the bytes read off the log.
struct RecordOut<'a> {
    sequence_number: SequenceText,
    record: &'a StoredRecord,
}

impl RecordOut<'_> {
    fn partition_key(&self) -> &str {
        // UTF-8: it was a string when appended, and the frame's CRC guards it since.
        std::str::from_utf8(&self.record.partition_key).unwrap_or_default()
    }

    fn encryption_type(&self) -> &'static str {
        if self.record.encrypted {
            "KMS"
        } else {
            "NONE"
        }
    }

    /// The record as serde_json writes it (see `GetRecordsOutput::encode`). The sequence
    /// number, base64 and encryption type never need escaping; the partition key may.
    fn write_json(&self, out: &mut Vec<u8>, arrival: &mut LastArrival) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"SequenceNumber\":\"");
        out.extend_from_slice(self.sequence_number.as_bytes());
        out.extend_from_slice(b"\",\"ApproximateArrivalTimestamp\":");
        arrival.write(self.record.arrival_ms, out)?;
        out.extend_from_slice(b",\"Data\":\"");
        append_base64(&self.record.data, out);
        out.extend_from_slice(b"\",\"PartitionKey\":");
        let key = &self.record.partition_key;
        if is_plain_ascii(key) {
            // Written as is, as serde_json writes it; this skips its UTF-8 check and escaping
            // scan. Other keys (escapes, non-ASCII text) still go through serde_json.
            out.push(b'"');
            out.extend_from_slice(key);
            out.push(b'"');
        } else {
            serde_json::to_writer(&mut *out, self.partition_key())?;
        }
        out.extend_from_slice(b",\"EncryptionType\":\"");
        out.extend_from_slice(self.encryption_type().as_bytes());
        out.extend_from_slice(b"\"}");
        Ok(())
    }
}

/// Whether `key` is ASCII that serde_json writes as is: no control characters, `"` or `\`.
/// The loop has no early exit so that the compiler vectorizes it: a byte-at-a-time scan that
/// stopped at the first other byte cost about 115 instructions per record (a tenth of encoding
/// one), for keys that nearly always pass.
fn is_plain_ascii(key: &[u8]) -> bool {
    key.iter().fold(true, |plain, &b| plain & (0x20..0x80).contains(&b) & (b != b'"') & (b != b'\\'))
}

/// Where the last arrival timestamp written in a response is. The records of one PutRecords call
/// share their arrival time, so most records repeat the one before; copying its text costs a
/// fraction of formatting the float again.
#[derive(Default)]
struct LastArrival {
    written: Option<(i64, std::ops::Range<usize>)>,
}

impl LastArrival {
    fn write(&mut self, arrival_ms: i64, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match &self.written {
            Some((ms, text)) if *ms == arrival_ms => out.extend_from_within(text.clone()),
            _ => {
                let start = out.len();
                serde_json::to_writer(&mut *out, &Timestamp(arrival_ms))?;
                self.written = Some((arrival_ms, start..out.len()));
            }
        }
        Ok(())
    }
}

impl Serialize for RecordOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("Record", 5)?;
        out.serialize_field("SequenceNumber", &self.sequence_number)?;
        out.serialize_field("ApproximateArrivalTimestamp", &Timestamp(self.record.arrival_ms))?;
        out.serialize_field("Data", &Blob(self.record.data.clone()))?;
        out.serialize_field("PartitionKey", self.partition_key())?;
        out.serialize_field("EncryptionType", self.encryption_type())?;
        out.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetRecordsOutput {
    pub(crate) records: ShardRecords,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_shard_iterator: Option<String>,
    pub(crate) millis_behind_latest: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) child_shards: Option<Vec<ChildShard>>,
}

/// The members of `GetRecordsOutput` after `Records`, in its order and with its names.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct AfterRecords<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    next_shard_iterator: &'a Option<String>,
    millis_behind_latest: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    child_shards: &'a Option<Vec<ChildShard>>,
}

impl EncodeResponse for GetRecordsOutput {
    /// The response body. JSON is written directly, byte for byte what serde_json writes for
    /// this type (a test checks): serde_json scans every string for characters to escape, and
    /// for 10,000 records that scan (base64 data and sequence numbers, which never need it) was
    /// half the cost of a call.
    fn encode(&self, codec: Codec) -> Vec<u8> {
        match codec {
            Codec::Json => self.to_json().unwrap_or_else(|_| codec.encode(self)),
            Codec::Cbor => codec.encode(self),
        }
    }
}

impl GetRecordsOutput {
    fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        let records = &self.records.records;
        let data: usize = records.iter().map(|record| record.data.len() + record.partition_key.len()).sum();
        // Each record: its base64 data and about 200 bytes of members.
        let mut out = Vec::with_capacity(256 + data / 3 * 4 + records.len() * 200);
        out.extend_from_slice(b"{\"Records\":[");
        let mut arrival = LastArrival::default();
        for (i, record) in self.records.numbered().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            record.write_json(&mut out, &mut arrival)?;
        }
        out.push(b']');
        // The other members as serde_json writes them, without their object's opening brace.
        let rest = serde_json::to_vec(&AfterRecords {
            next_shard_iterator: &self.next_shard_iterator,
            millis_behind_latest: self.millis_behind_latest,
            child_shards: &self.child_shards,
        })?;
        if rest.len() > 2 {
            out.push(b',');
        }
        out.extend_from_slice(rest.get(1..).unwrap_or(b"}"));
        Ok(out)
    }
}
