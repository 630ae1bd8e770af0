//! For offline tools (`tideline check`): what they find in a data directory, named as a Kinesis
//! user knows it: stream names, shard ids and sequence numbers.

use std::collections::BTreeMap;

use tideline_storage::{MetadataStore, StorageError};

use crate::model::StreamMeta;
use crate::sequence::SequenceNumber;
use crate::service::STREAM_KEY_PREFIX;

pub use crate::model::shard_id;

/// Stream id → name, for every stream the metadata store holds (unreadable entries skipped).
pub fn stream_names(metadata: &MetadataStore) -> Result<BTreeMap<u64, String>, StorageError> {
    Ok(metadata
        .scan_prefix(STREAM_KEY_PREFIX)?
        .into_iter()
        .filter_map(|(_, bytes)| serde_json::from_slice::<StreamMeta>(&bytes).ok())
        .map(|meta| (meta.id, meta.name))
        .collect())
}

/// The sequence number of the record at `index` of a shard.
pub fn sequence_number(stream_id: u64, shard_index: u32, index: u64) -> String {
    SequenceNumber::of_record(stream_id, shard_index, index).encode()
}
