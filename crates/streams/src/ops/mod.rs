//! One handler per Data Streams operation, grouped by what they act on. Each handler takes its
//! typed request (validated next to its type) and returns its typed response.
//! The operation table here is the service's side of the seam (`tideline_proto::Service`).

mod consumers;
pub(crate) mod reading;
pub(crate) mod records;
mod settings;
pub(crate) mod shapes;
mod shards;
mod streams;
mod subscribe;
mod tags;
mod wire;

use std::sync::LazyLock;

use tideline_proto::{AwsError, BoxFuture, Call, Operations, Reply, Route, Service};

use crate::service::StreamsService;

/// A response with no members: `{}` on the wire, which every SDK accepts.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Empty {}

/// Every Data Streams operation and its handler.
pub(crate) static OPERATIONS: LazyLock<Operations<StreamsService>> = LazyLock::new(|| {
    Operations::new()
        .op("CreateStream", streams::create_stream)
        .op("DeleteStream", streams::delete_stream)
        .op("DescribeStream", streams::describe_stream)
        .op("DescribeStreamSummary", streams::describe_stream_summary)
        .op("ListStreams", streams::list_streams)
        .op("DescribeLimits", streams::describe_limits)
        .op("UpdateStreamMode", streams::update_stream_mode)
        .op("ListShards", shards::list_shards)
        .op("SplitShard", shards::split_shard)
        .op("MergeShards", shards::merge_shards)
        .op("UpdateShardCount", shards::update_shard_count)
        .op("PutRecord", records::put_record)
        .wire("PutRecords", records::put_records)
        .op("GetShardIterator", reading::get_shard_iterator)
        .encoded("GetRecords", reading::get_records)
        .events("SubscribeToShard", subscribe::subscribe_to_shard)
        .op("IncreaseStreamRetentionPeriod", settings::increase_retention)
        .op("DecreaseStreamRetentionPeriod", settings::decrease_retention)
        .op("StartStreamEncryption", settings::start_encryption)
        .op("StopStreamEncryption", settings::stop_encryption)
        .op("EnableEnhancedMonitoring", settings::enable_monitoring)
        .op("DisableEnhancedMonitoring", settings::disable_monitoring)
        .op("PutResourcePolicy", settings::put_resource_policy)
        .op("GetResourcePolicy", settings::get_resource_policy)
        .op("DeleteResourcePolicy", settings::delete_resource_policy)
        .op("AddTagsToStream", tags::add_tags_to_stream)
        .op("RemoveTagsFromStream", tags::remove_tags_from_stream)
        .op("ListTagsForStream", tags::list_tags_for_stream)
        .op("TagResource", tags::tag_resource)
        .op("UntagResource", tags::untag_resource)
        .op("ListTagsForResource", tags::list_tags_for_resource)
        .op("RegisterStreamConsumer", consumers::register_stream_consumer)
        .op("DeregisterStreamConsumer", consumers::deregister_stream_consumer)
        .op("DescribeStreamConsumer", consumers::describe_stream_consumer)
        .op("ListStreamConsumers", consumers::list_stream_consumers)
});

/// The Data Streams API on Tideline's port.
impl Service for StreamsService {
    fn name(&self) -> &'static str {
        "kinesis"
    }

    fn route(&self) -> Route {
        Route::Target(crate::TARGET_PREFIX)
    }

    fn signing_name(&self) -> &'static str {
        "kinesis"
    }

    fn operation_name(&self, call: &Call<'_>) -> Option<&'static str> {
        OPERATIONS.name_of(call)
    }

    fn handle<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Reply, AwsError>> {
        Box::pin(OPERATIONS.dispatch(self, call))
    }

    fn metrics_text(&self) -> String {
        let mut text = self.metrics.render();
        if let Some((cap, usage)) = self.storage.memory_use() {
            text.push_str(&crate::metrics::memory_cap_text(cap, usage));
        }
        if let Some(policy) = self.storage.fsync_policy() {
            text.push_str(&crate::metrics::fsync_text(policy));
        }
        text
    }
}
