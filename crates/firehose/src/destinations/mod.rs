//! Where batches go. Each destination type is one file behind the [`Destination`] trait; the
//! delivery loop (`delivery`) owns buffering, retries and the error output, so a destination only
//! makes one attempt at a time.

pub mod http;
pub mod redshift;
pub mod s3;
pub mod stores;

use std::time::Duration;

use crate::error::ErrorOutput;
use crate::processing::{FailedRecord, OutRecord};

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
    /// Firehose's error code, e.g. `S3.AccessDenied`, `HttpEndpoint.RequestTimeout`.
    pub code: String,
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
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into(), retry: Retry::Transient }
    }

    /// A failure that no retry can fix.
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { retry: Retry::Permanent, ..Self::new(code, message) }
    }

    pub fn is_permanent(&self) -> bool {
        self.retry == Retry::Permanent
    }
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
