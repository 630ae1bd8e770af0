//! On-failure destinations: a Tideline stream receives the on-failure record.

use base64::Engine;
use tideline_proto::{AwsError, Call, Codec, Service};
use tideline_streams::StreamsService;

/// Writes one record to `stream`.
///
/// Through the Data Streams operation table: the streams crate has a typed in-process reading API
/// but its write path is crate-private, so PutRecord is the one public way in.
pub async fn put(streams: &StreamsService, stream: &str, partition_key: &str, data: Vec<u8>) -> Result<(), AwsError> {
    let request = serde_json::json!({
        "StreamName": stream,
        "PartitionKey": partition_key,
        "Data": base64::engine::general_purpose::STANDARD.encode(data),
    });
    let body = serde_json::to_vec(&request).map_err(|error| AwsError::internal(error.to_string()))?;
    streams.handle(Call::in_process("PutRecord", Codec::Json, &body)).await.map(|_| ())
}
