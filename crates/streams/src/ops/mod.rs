//! One handler per Data Streams operation, grouped by what they act on. Each handler takes its
//! typed request (validated next to its type) and returns its typed response.

mod consumers;
mod reading;
mod records;
mod settings;
mod shapes;
mod shards;
mod streams;
mod subscribe;
mod tags;

pub(crate) use subscribe::subscribe_to_shard;

use tideline_proto::{AwsError, Codec, ErrorCode};

use crate::service::{Caller, StreamsService};

/// A response with no members: `{}` on the wire, which every SDK accepts.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Empty {}

pub(crate) async fn dispatch(
    service: &StreamsService,
    caller: Option<&Caller>,
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
        ($handler:path, caller) => {{
            let request = codec.decode(body)?;
            let response = $handler(service, caller, request).await?;
            Ok(codec.encode(&response))
        }};
    }
    match operation {
        "CreateStream" => run!(streams::create_stream),
        "DeleteStream" => run!(streams::delete_stream),
        "DescribeStream" => run!(streams::describe_stream),
        "DescribeStreamSummary" => run!(streams::describe_stream_summary),
        "ListStreams" => run!(streams::list_streams),
        "DescribeLimits" => run!(streams::describe_limits),
        "UpdateStreamMode" => run!(streams::update_stream_mode),
        "ListShards" => run!(shards::list_shards),
        "SplitShard" => run!(shards::split_shard),
        "MergeShards" => run!(shards::merge_shards),
        "UpdateShardCount" => run!(shards::update_shard_count),
        "PutRecord" => run!(records::put_record, caller),
        // Encodes its own response: see `PutRecordsOutput::encode`.
        "PutRecords" => Ok(records::put_records(service, caller, codec.decode(body)?).await?.encode(codec)),
        "GetShardIterator" => run!(reading::get_shard_iterator, caller),
        // Encodes its own response: see `GetRecordsOutput::encode`.
        "GetRecords" => Ok(reading::get_records(service, caller, codec.decode(body)?).await?.encode(codec)),
        "IncreaseStreamRetentionPeriod" => run!(settings::increase_retention),
        "DecreaseStreamRetentionPeriod" => run!(settings::decrease_retention),
        "StartStreamEncryption" => run!(settings::start_encryption),
        "StopStreamEncryption" => run!(settings::stop_encryption),
        "EnableEnhancedMonitoring" => run!(settings::enable_monitoring),
        "DisableEnhancedMonitoring" => run!(settings::disable_monitoring),
        "PutResourcePolicy" => run!(settings::put_resource_policy),
        "GetResourcePolicy" => run!(settings::get_resource_policy),
        "DeleteResourcePolicy" => run!(settings::delete_resource_policy),
        "AddTagsToStream" => run!(tags::add_tags_to_stream),
        "RemoveTagsFromStream" => run!(tags::remove_tags_from_stream),
        "ListTagsForStream" => run!(tags::list_tags_for_stream),
        "TagResource" => run!(tags::tag_resource),
        "UntagResource" => run!(tags::untag_resource),
        "ListTagsForResource" => run!(tags::list_tags_for_resource),
        "RegisterStreamConsumer" => run!(consumers::register_stream_consumer),
        "DeregisterStreamConsumer" => run!(consumers::deregister_stream_consumer),
        "DescribeStreamConsumer" => run!(consumers::describe_stream_consumer),
        "ListStreamConsumers" => run!(consumers::list_stream_consumers),
        _ => Err(AwsError::bare(ErrorCode::UnknownOperation)),
    }
}
