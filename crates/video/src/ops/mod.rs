//! One handler per Kinesis Video control-plane operation, grouped by what they act on; each takes
//! its typed request (validated next to its type) and answers its typed response. The operation
//! table here is the service's side of the seam (`tideline_proto::Service`).

mod streams;
mod tags;

use std::sync::LazyLock;

use http::Method;
use serde::Serialize;
use tideline_proto::{json_response, AwsError, BoxFuture, Call, Payload, Reply, RestOperations, Route, Service};

use crate::service::VideoService;

type Response = Result<http::Response<Payload>, AwsError>;

/// A 200 answer with `body`, as every control-plane operation gives.
fn ok<T: Serialize>(body: &T) -> Response {
    Ok(json_response(200, body))
}

/// A response with no members.
#[derive(Serialize)]
struct Empty {}

/// Every control-plane operation: `POST /<operation>`, spelled as the API reference does.
static OPERATIONS: LazyLock<RestOperations<VideoService>> = LazyLock::new(|| {
    RestOperations::new()
        .route(Method::POST, "/createStream", "CreateStream", streams::create)
        .route(Method::POST, "/describeStream", "DescribeStream", streams::describe)
        .route(Method::POST, "/listStreams", "ListStreams", streams::list)
        .route(Method::POST, "/deleteStream", "DeleteStream", streams::delete)
        .route(Method::POST, "/updateStream", "UpdateStream", streams::update)
        .route(Method::POST, "/updateDataRetention", "UpdateDataRetention", streams::update_retention)
        .route(Method::POST, "/getDataEndpoint", "GetDataEndpoint", streams::data_endpoint)
        .route(Method::POST, "/tagStream", "TagStream", tags::tag_stream)
        .route(Method::POST, "/untagStream", "UntagStream", tags::untag_stream)
        .route(Method::POST, "/listTagsForStream", "ListTagsForStream", tags::list_for_stream)
        .route(Method::POST, "/TagResource", "TagResource", tags::tag_resource)
        .route(Method::POST, "/UntagResource", "UntagResource", tags::untag_resource)
        .route(Method::POST, "/ListTagsForResource", "ListTagsForResource", tags::list_for_resource)
});

/// The Kinesis Video control plane on Tideline's port.
impl Service for VideoService {
    fn name(&self) -> &'static str {
        "kinesisvideo"
    }

    /// Kinesis Video's operations share no path prefix (`/createStream`, `/TagResource`, …), so
    /// the service takes every unsigned-by-target request: it must come after the path-routed
    /// services whose prefixes are narrower.
    fn route(&self) -> Route {
        Route::PathPrefix("/")
    }

    fn signing_name(&self) -> &'static str {
        "kinesisvideo"
    }

    fn operation_name(&self, call: &Call<'_>) -> Option<&'static str> {
        OPERATIONS.name_of(call)
    }

    fn handle<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Reply, AwsError>> {
        Box::pin(OPERATIONS.dispatch(self, call))
    }
}
