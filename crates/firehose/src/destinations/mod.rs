//! Where batches go. Each destination type is one folder (`s3/`, `http/`, `redshift/`): its
//! configuration type with the [`DestinationSpec`] (validation, Describe's defaults, the
//! deliverer it builds) in `config.rs`, the [`Destination`] that delivers in `mod.rs`. The
//! delivery loop (`delivery`) owns buffering, retries and the error output, so a destination only
//! makes one attempt at a time. `registry` turns the API's members and the stored metadata into
//! a [`DestinationConfig`] through the list below, the one line a new destination adds.

pub mod config;
pub mod http;
pub mod redshift;
mod registry;
pub mod s3;
pub mod stores;

pub use registry::{DestinationConfig, DestinationType};

/// Every destination type Tideline delivers to.
static DESTINATION_TYPES: &[&dyn registry::DestinationKind] = &[
    &registry::Registered::<s3::ExtendedS3Config>::NEW,
    &registry::Registered::<http::HttpEndpointConfig>::NEW,
    &registry::Registered::<redshift::RedshiftConfig>::NEW,
];

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tideline_proto::{AwsError, Validator};

use crate::error::{ErrorOutput, FirehoseError};
use crate::model::{BufferingHints, DeliveryStreamMeta, ProcessingConfiguration, S3Location};
use crate::processing::{FailedRecord, OutRecord};
use crate::service::FirehoseService;

/// One buffered batch, processed and ready for a destination.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The delivery stream's version (a new configuration delivers under a new version).
    pub version: u64,
    pub records: Vec<OutRecord>,
}

/// Why an attempt failed; shown by DescribeDeliveryStream and written with records that end up in
/// the error output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct DeliveryError {
    /// Firehose's error code, e.g. `S3.AccessDenied`, `HttpEndpoint.RequestTimeout`: one of a
    /// fixed set named in the code, never built from a message.
    pub code: &'static str,
    pub message: String,
    pub retry: Retry,
}

/// Whether trying again can help. Only transient failures are retried: a permanent one (an object
/// key the store refuses, an HTTP 413) would fail the same way forever and hold up every later
/// record, so its records go to the error output at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The destination may take the same request later (unreachable, access denied, 5xx, ...).
    Transient,
    /// The same request can never succeed.
    Permanent,
}

impl DeliveryError {
    /// A transient failure: the attempt is retried.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry: Retry::Transient }
    }

    /// A failure that no retry can fix.
    pub fn permanent(code: &'static str, message: impl Into<String>) -> Self {
        Self { retry: Retry::Permanent, ..Self::new(code, message) }
    }

    pub fn is_permanent(&self) -> bool {
        self.retry == Retry::Permanent
    }
}

/// What the API and the delivery loop need from one destination type's configuration,
/// implemented in the destination's `config.rs`.
pub trait DestinationSpec: std::fmt::Debug + Send + Sync {
    /// The destination's name in CloudWatch metric names (`DeliveryToS3.Records`, ...).
    fn metric_name(&self) -> &'static str;
    fn buffering_hints(&self) -> Option<&BufferingHints>;
    fn processing_configuration(&self) -> Option<&ProcessingConfiguration>;
    /// The bucket that receives records the destination could not take (processing failures,
    /// exhausted retries).
    fn error_bucket(&self) -> S3Location;
    /// Where `S3BackupMode` copies every source record, when it is on.
    fn backup(&self) -> Option<S3Location>;
    /// Checks the configuration: member constraints into `v`, the rest as Err.
    fn validate(&self, v: &mut Validator, path: &str) -> Result<(), AwsError>;

    /// Adds the destination's description (AWS's defaults filled in, secrets left out) to
    /// DescribeDeliveryStream's `Destinations` entry.
    fn describe(&self, entry: &mut Map<String, Value>) -> Result<(), AwsError>;

    /// The destination this configuration describes.
    fn build(
        &self,
        service: &FirehoseService,
        meta: &DeliveryStreamMeta,
    ) -> Result<Arc<dyn Destination>, FirehoseError>;
}

#[async_trait::async_trait]
pub trait Destination: Send + Sync {
    /// One attempt at delivering every record of the batch. Called again with the same batch
    /// after a transient failure, so it must be safe to repeat (at-least-once delivery). Records
    /// the destination refuses one by one (a record that cannot be converted, an object key the
    /// store refuses) are returned: they go to the error output while the rest counts as
    /// delivered. A permanent error sends the whole batch to the error output without retries.
    async fn deliver(&self, batch: &Batch) -> Result<Vec<FailedRecord>, DeliveryError>;

    /// How long a failing batch is retried before its records go to the error output, under
    /// `error_output`; None: retried until it succeeds (S3, as AWS does for 24 hours).
    fn retry_duration(&self) -> Option<Duration>;

    /// The `!{firehose:error-output-type}` of records whose retries ran out (e.g.
    /// `http-endpoint-failed`) or that failed permanently.
    fn error_output(&self) -> ErrorOutput;
}
