//! One handler per Kinesis Video control-plane operation, grouped by what they act on; each takes
//! its typed request (validated next to its type) and answers its typed response. The operation
//! table here is the service's side of the seam (`tideline_proto::Service`).

mod get_media;
mod put_media;
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

/// The paths of [`OPERATIONS`], which are the service's route: they share no prefix.
const PATHS: &[&str] = &[
    "/createStream",
    "/describeStream",
    "/listStreams",
    "/deleteStream",
    "/updateStream",
    "/updateDataRetention",
    "/getDataEndpoint",
    "/tagStream",
    "/untagStream",
    "/listTagsForStream",
    "/TagResource",
    "/UntagResource",
    "/ListTagsForResource",
    "/putMedia",
    "/getMedia",
    "/listFragments",
    "/getMediaForFragmentList",
];

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
        // The media side: kinesis-video-media and kinesis-video-archived-media sign as
        // `kinesisvideo` too, so one service serves them all.
        .route(Method::POST, "/putMedia", "PutMedia", put_media::put_media)
        .route(Method::POST, "/getMedia", "GetMedia", get_media::get_media)
        .route(Method::POST, "/listFragments", "ListFragments", get_media::list_fragments)
        .route(
            Method::POST,
            "/getMediaForFragmentList",
            "GetMediaForFragmentList",
            get_media::get_media_for_fragment_list,
        )
});

/// The Kinesis Video control plane on Tideline's port.
impl Service for VideoService {
    fn name(&self) -> &'static str {
        "kinesisvideo"
    }

    fn route(&self) -> Route {
        Route::Paths(PATHS)
    }

    fn signing_name(&self) -> &'static str {
        "kinesisvideo"
    }

    fn operation_name(&self, call: &Call<'_>) -> Option<&'static str> {
        OPERATIONS.name_of(call)
    }

    /// PutMedia's body is one long-lived media stream.
    fn streams_body(&self, head: &http::request::Parts) -> bool {
        head.uri.path() == "/putMedia"
    }

    fn handle<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Reply, AwsError>> {
        Box::pin(OPERATIONS.dispatch(self, call))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_names_every_operation_of_the_table() {
        for path in PATHS {
            let head = http::Request::post(*path).body(()).unwrap().into_parts().0;
            let call = Call { head: &head, ..Call::in_process(path, tideline_proto::Codec::Json, b"") };
            assert!(OPERATIONS.name_of(&call).is_some(), "{path} is routed but has no operation");
        }
        assert_eq!(PATHS.len(), 17);
    }
}
