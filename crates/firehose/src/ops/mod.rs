//! One handler per Firehose operation, grouped by what they act on. Each handler takes its typed
//! request (validated next to its type) and returns its typed response.

mod configuration;
mod delivery_streams;
mod encryption;
mod records;
mod tags;

use std::sync::Arc;

use tideline_proto::{AwsError, Codec, ErrorCode};

use crate::service::FirehoseService;

/// A response with no members.
#[derive(serde::Serialize)]
pub(crate) struct Empty {}

pub(crate) async fn dispatch(
    service: &Arc<FirehoseService>,
    operation: &str,
    codec: Codec,
    body: &[u8],
) -> Result<Vec<u8>, AwsError> {
    macro_rules! run {
        ($handler:path) => {{
            let request = codec.decode(body)?;
            let response = $handler(service, request).await?;
            Ok(codec.encode(&response))
        }};
    }
    match operation {
        "CreateDeliveryStream" => run!(delivery_streams::create),
        "DeleteDeliveryStream" => run!(delivery_streams::delete),
        "DescribeDeliveryStream" => run!(delivery_streams::describe),
        "ListDeliveryStreams" => run!(delivery_streams::list),
        "UpdateDestination" => run!(delivery_streams::update_destination),
        "PutRecord" => run!(records::put_record),
        "PutRecordBatch" => run!(records::put_record_batch),
        "TagDeliveryStream" => run!(tags::tag),
        "UntagDeliveryStream" => run!(tags::untag),
        "ListTagsForDeliveryStream" => run!(tags::list),
        "StartDeliveryStreamEncryption" => run!(encryption::start),
        "StopDeliveryStreamEncryption" => run!(encryption::stop),
        _ => Err(AwsError::bare(ErrorCode::UnknownOperation)),
    }
}
