//! GetRecords on the wire: the response encoder, which writes JSON directly.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use tideline_proto::{Blob, Codec, EncodeResponse, Timestamp};
use tideline_storage::StoredRecord;

use crate::ops::shapes::ChildShard;
use crate::sequence::SequenceText;

/// A stored record on the wire, serialised straight from the bytes read off the log.
pub struct RecordOut {
    pub(crate) sequence_number: SequenceText,
    pub(crate) record: StoredRecord,
}

impl RecordOut {
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
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"SequenceNumber\":\"");
        out.extend_from_slice(self.sequence_number.as_bytes());
        out.extend_from_slice(b"\",\"ApproximateArrivalTimestamp\":");
        serde_json::to_writer(&mut *out, &Timestamp(self.record.arrival_ms))?;
        out.extend_from_slice(b",\"Data\":\"");
        let start = out.len();
        out.resize(start + base64::encoded_len(self.record.data.len(), true).unwrap_or(0), 0);
        let written = STANDARD.encode_slice(&self.record.data, &mut out[start..]).map_err(serde::ser::Error::custom)?;
        out.truncate(start + written);
        out.extend_from_slice(b"\",\"PartitionKey\":");
        serde_json::to_writer(&mut *out, self.partition_key())?;
        out.extend_from_slice(b",\"EncryptionType\":\"");
        out.extend_from_slice(self.encryption_type().as_bytes());
        out.extend_from_slice(b"\"}");
        Ok(())
    }
}

impl Serialize for RecordOut {
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
    pub(crate) records: Vec<RecordOut>,
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
        let data: usize = self.records.iter().map(|r| r.record.data.len() + r.record.partition_key.len()).sum();
        // Each record: its base64 data and about 200 bytes of members.
        let mut out = Vec::with_capacity(256 + data / 3 * 4 + self.records.len() * 200);
        out.extend_from_slice(b"{\"Records\":[");
        for (i, record) in self.records.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            record.write_json(&mut out)?;
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
