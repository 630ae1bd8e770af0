//! One handler per Firehose operation, grouped by what they act on. Each handler takes its typed
//! request (validated next to its type) and returns its typed response.
//! The operation table here is the service's side of the seam (`tideline_proto::Service`).

mod configuration;
mod delivery_streams;
mod encryption;
pub(crate) mod records;
mod tags;

use std::sync::{Arc, LazyLock};

use tideline_proto::{AwsError, BoxFuture, Call, Operations, Reply, Route, Service};

use crate::service::FirehoseService;

/// A response with no members.
#[derive(serde::Serialize)]
pub(crate) struct Empty {}

/// Every Firehose operation and its handler.
pub(crate) static OPERATIONS: LazyLock<Operations<Arc<FirehoseService>>> = LazyLock::new(|| {
    Operations::new()
        .op("CreateDeliveryStream", delivery_streams::create)
        .op("DeleteDeliveryStream", delivery_streams::delete)
        .op("DescribeDeliveryStream", delivery_streams::describe)
        .op("ListDeliveryStreams", delivery_streams::list)
        .op("UpdateDestination", delivery_streams::update_destination)
        .op("PutRecord", records::put_record)
        .op("PutRecordBatch", records::put_record_batch)
        .op("TagDeliveryStream", tags::tag)
        .op("UntagDeliveryStream", tags::untag)
        .op("ListTagsForDeliveryStream", tags::list)
        .op("StartDeliveryStreamEncryption", encryption::start)
        .op("StopDeliveryStreamEncryption", encryption::stop)
});

/// The Firehose API on Tideline's port.
impl Service for FirehoseService {
    fn name(&self) -> &'static str {
        "firehose"
    }

    fn route(&self) -> Route {
        Route::Target(crate::TARGET_PREFIX)
    }

    fn signing_name(&self) -> &'static str {
        "firehose"
    }

    fn operation_name(&self, call: &Call<'_>) -> Option<&'static str> {
        OPERATIONS.name_of(call)
    }

    fn handle<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Reply, AwsError>> {
        Box::pin(async move {
            let Some(service) = self.shared() else { return Err(AwsError::internal("Firehose is shutting down")) };
            OPERATIONS.dispatch(&service, call).await
        })
    }

    fn metrics_text(&self) -> String {
        self.metrics.render()
    }
}
