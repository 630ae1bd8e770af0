//! The console as a [`Service`]: it claims exactly its own paths (so every other request is
//! routed, and refused, as before), serves its page and assets without a signature, and answers
//! its data calls only when signed for `kinesis` like any Data Streams call (with `--auth`, by a
//! known key; without it, signed by anyone, as every AWS call must be).

use std::sync::Arc;

use http::Method;
use tideline_proto::rest::RestOperations;
use tideline_proto::{AwsError, BoxFuture, Call, ErrorCode, Reply, Route, Service};
use tideline_streams::StreamsService;

use crate::api;
use crate::assets::{serve_asset, ASSETS};

/// What the page is told about the server.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// The region the server verifies signatures for: the page signs for it.
    pub region: String,
    /// `--auth` is on.
    pub auth: bool,
}

/// Data calls; everything else the console serves is public.
const API_PREFIX: &str = "/console/api/";

/// Every path the console answers: its assets, `config.json` and the data calls.
const PATHS: &[&str] = &[
    "/",
    "/console",
    "/console/",
    "/console/console.css",
    "/console/sigv4.js",
    "/console/aws.js",
    "/console/dom.js",
    "/console/chart.js",
    "/console/metrics.js",
    "/console/streams.js",
    "/console/stream.js",
    "/console/records.js",
    "/console/services.js",
    "/console/console.js",
    "/console/config.json",
    "/console/api/metrics",
    "/console/api/shards",
];

/// The state the console's handlers read.
pub struct Console {
    pub config: ConsoleConfig,
    pub streams: Arc<StreamsService>,
    /// The other services, whose metrics the charts draw.
    pub services: Vec<Arc<dyn Service>>,
}

pub struct ConsoleService {
    console: Console,
    operations: RestOperations<Console>,
}

impl ConsoleService {
    pub fn new(config: ConsoleConfig, streams: Arc<StreamsService>, services: Vec<Arc<dyn Service>>) -> Arc<Self> {
        let operations = ASSETS
            .iter()
            .fold(RestOperations::new(), |table, asset| {
                table.route(Method::GET, asset.path, "GetConsoleAsset", serve_asset::<Console>)
            })
            .route(Method::GET, "/console/config.json", "GetConsoleConfig", api::config)
            .route(Method::GET, "/console/api/metrics", "GetConsoleMetrics", api::metrics)
            .route(Method::GET, "/console/api/shards", "GetConsoleShards", api::shards);
        Arc::new(Self { console: Console { config, streams, services }, operations })
    }
}

impl Service for ConsoleService {
    fn name(&self) -> &'static str {
        "console"
    }

    fn route(&self) -> Route {
        Route::Paths(PATHS)
    }

    /// The data calls are Data Streams data, so they are signed as Kinesis calls are.
    fn signing_name(&self) -> &'static str {
        "kinesis"
    }

    fn handle<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Reply, AwsError>> {
        Box::pin(async move {
            // `POST /` without an X-Amz-Target is a client's mistake, not a console page: it gets
            // the UnknownOperationException it got before the console claimed `/`.
            if self.operations.name_of(&call).is_none() {
                return Err(AwsError::bare(ErrorCode::UnknownOperation));
            }
            self.operations.dispatch(&self.console, call).await
        })
    }

    fn operation_name(&self, call: &Call<'_>) -> Option<&'static str> {
        self.operations.name_of(call)
    }

    /// Pages and assets need no signature; neither does a request to them that names no
    /// operation (`POST /`), so that it is refused with UnknownOperationException, signed or not,
    /// as before the console claimed `/`.
    fn is_public(&self, head: &http::request::Parts) -> bool {
        !head.uri.path().starts_with(API_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_and_call_is_a_claimed_path() {
        for asset in ASSETS {
            assert!(PATHS.contains(&asset.path), "{} is served but not routed", asset.path);
        }
        for path in ["/console/config.json", "/console/api/metrics", "/console/api/shards"] {
            assert!(PATHS.contains(&path));
        }
        assert_eq!(PATHS.len(), ASSETS.len() + 3);
    }
}
