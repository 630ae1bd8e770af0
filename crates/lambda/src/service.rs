//! The Lambda service's state: configuration, the function registry, the runner, mappings,
//! storage and metrics.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};

use parking_lot::RwLock;
use tideline_firehose::FirehoseService;
use tideline_streams::StreamsService;
use tokio::sync::Semaphore;

use crate::error::Result;
use crate::functions::StoredFunction;
use crate::mappings::metrics::Metrics;
use crate::mappings::Mappings;
use crate::runner::runtimes::RuntimeConfig;
use crate::runner::Runner;
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct LambdaConfig {
    /// `<data-dir>/lambda`, or `None` in memory mode.
    pub data_dir: Option<PathBuf>,
    pub region: String,
    pub account: String,
    pub runtime: RuntimeConfig,
    /// Invocations running at once, server-wide and per function.
    pub max_concurrency: usize,
    pub max_unzipped_bytes: u64,
    /// Asynchronous (Event) invocations queued at once; more are refused.
    pub max_queued_events: usize,
}

pub struct LambdaService {
    pub(crate) config: LambdaConfig,
    pub(crate) store: Arc<Store>,
    pub(crate) runner: Arc<Runner>,
    pub(crate) functions: RwLock<HashMap<String, StoredFunction>>,
    pub(crate) streams: Arc<StreamsService>,
    /// Where on-failure records for delivery streams and buckets go.
    pub(crate) firehose: Arc<FirehoseService>,
    pub(crate) mappings: Mappings,
    pub(crate) metrics: Metrics,
    pub(crate) async_slots: Arc<Semaphore>,
    /// Itself, for the [`tideline_proto::Service`] handler (Invoke's Event type and mappings
    /// spawn tasks that hold the service).
    me: Weak<Self>,
}

impl LambdaService {
    /// Opens the store, gives the runner the functions kept from an earlier run and restarts
    /// their mappings from their checkpoints.
    pub fn open(
        config: LambdaConfig,
        streams: Arc<StreamsService>,
        firehose: Arc<FirehoseService>,
    ) -> Result<Arc<Self>> {
        let store = Arc::new(Store::open(config.data_dir.as_deref())?);
        let runner = Arc::new(Runner::new(config.runtime.clone(), config.max_concurrency));
        let service = Arc::new_cyclic(|me| Self {
            me: me.clone(),
            async_slots: Arc::new(Semaphore::new(config.max_queued_events.max(1))),
            config,
            store,
            runner,
            functions: RwLock::new(HashMap::new()),
            streams,
            firehose,
            mappings: Mappings::default(),
            metrics: Metrics::default(),
        });
        service.load_functions();
        service.load_mappings();
        Ok(service)
    }

    /// A strong handle on this service, for callers holding only a reference.
    pub(crate) fn shared(&self) -> Option<Arc<Self>> {
        self.me.upgrade()
    }

    pub fn function_arn(&self, name: &str) -> String {
        format!("arn:aws:lambda:{}:{}:function:{name}", self.config.region, self.config.account)
    }
}

/// The Lambda API on Tideline's port: REST-JSON requests under its version prefixes, routed by
/// [`crate::rest`]; errors keep Lambda's types and statuses.
impl tideline_proto::Service for LambdaService {
    fn name(&self) -> &'static str {
        "lambda"
    }

    fn route(&self) -> tideline_proto::Route {
        tideline_proto::Route::PathPrefixes(crate::PATH_PREFIXES)
    }

    fn signing_name(&self) -> &'static str {
        crate::SIGNING_NAME
    }

    fn handle<'a>(
        &'a self,
        call: tideline_proto::Call<'a>,
    ) -> tideline_proto::BoxFuture<'a, std::result::Result<tideline_proto::Reply, tideline_proto::AwsError>> {
        Box::pin(async move {
            let Some(service) = self.me.upgrade() else {
                return Err(tideline_proto::AwsError::internal("Lambda is shutting down"));
            };
            let head = call.head;
            let headers = head
                .headers
                .iter()
                .filter_map(|(name, value)| {
                    Some((name.as_str().to_ascii_lowercase(), value.to_str().ok()?.to_string()))
                })
                .collect();
            let request = crate::rest::RestRequest {
                method: head.method.as_str(),
                path: call.operation,
                query: head.uri.query(),
                headers,
                body: bytes::Bytes::copy_from_slice(call.body),
            };
            match crate::rest::handle(&service, request).await {
                Ok(response) => {
                    let mut builder = http::Response::builder().status(response.status);
                    for (name, value) in response.headers {
                        builder = builder.header(name, value);
                    }
                    builder
                        .body(tideline_proto::Payload::Full(response.body.to_vec()))
                        .map(tideline_proto::Reply::Http)
                        .map_err(|error| tideline_proto::AwsError::internal(error.to_string()))
                }
                Err(error) => {
                    let aws = tideline_proto::AwsError::new(
                        tideline_proto::ErrorCode::Named(error.error_type()),
                        error.message(),
                    )
                    .with_status(error.status());
                    Err(error.members().into_iter().fold(aws, |aws, (name, value)| aws.with_member(name, value)))
                }
            }
        })
    }

    fn operation_name(&self, call: &tideline_proto::Call<'_>) -> Option<&'static str> {
        crate::rest::operation(call.head.method.as_str(), call.operation)
    }

    fn metrics_text(&self) -> String {
        self.metrics.render()
    }
}
