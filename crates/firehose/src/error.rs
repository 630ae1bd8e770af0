//! Firehose's errors, typed. [`FirehoseError`]: why a configuration cannot be delivered or an
//! operation failed, each variant with the AWS error the API answers it with (mapped to
//! `AwsError` here, in one place). [`RecordError`]: why a record ends up in the error output, each
//! with Firehose's error code and the `!{firehose:error-output-type}` it is filed under, so nothing
//! is classified by parsing codes or messages. (Why a delivery attempt failed, and whether
//! retrying can help, is `destinations::DeliveryError`.)

use tideline_proto::{AwsError, ErrorCode};
use tideline_storage::StorageError;

use crate::destinations::DeliveryError;

/// Why a delivery stream's configuration cannot be delivered, or a Firehose operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FirehoseError {
    /// A Prefix or ErrorOutputPrefix that Firehose refuses (InvalidArgumentException).
    #[error("{0}")]
    InvalidPrefix(String),
    /// A prefix expression that a record's keys cannot fill (`!{partitionKeyFromQuery:id}`).
    #[error("{0}")]
    UnfilledExpression(String),
    /// A MetadataExtractionQuery that does not compile (InvalidArgumentException).
    #[error("{0}")]
    InvalidQuery(String),
    /// A MetadataExtractionQuery that fails on a record.
    #[error("{0}")]
    QueryFailed(String),
    /// A record that is not what its processing needs (not JSON, not of the table's shape).
    #[error("{0}")]
    MalformedRecord(String),
    /// The file given with `--glue-catalog` cannot be read or understood.
    #[error("{0}")]
    InvalidCatalog(String),
    /// A format conversion names a table the catalog lacks (InvalidArgumentException).
    #[error("Table {table} in database {database} is not in the catalog given with --glue-catalog")]
    UnknownTable { database: String, table: String },
    /// Processor parameters Tideline cannot run (InvalidArgumentException).
    #[error("{0}")]
    InvalidProcessor(String),
    /// An HTTP endpoint configuration no request can be made from (InvalidArgumentException).
    #[error("{0}")]
    InvalidEndpoint(String),
    /// A Redshift configuration no connection or COPY can be made from (InvalidArgumentException).
    #[error("{0}")]
    InvalidRedshift(String),
    /// A CompressionFormat Tideline cannot write (InvalidArgumentException).
    #[error("Unsupported compression format {0}")]
    UnsupportedCompression(String),
    /// The durable buffer or the metadata failed: the server's fault, never the client's.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The HTTP client for endpoints and function URLs cannot be built (no usable TLS roots).
    #[error("Internal service failure: cannot make HTTP requests: {0}")]
    HttpClient(String),
}

impl FirehoseError {
    /// The AWS error type an API call that meets this error answers with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Storage(_) | Self::HttpClient(_) => ErrorCode::ServiceUnavailableException,
            Self::InvalidPrefix(_)
            | Self::UnfilledExpression(_)
            | Self::InvalidQuery(_)
            | Self::QueryFailed(_)
            | Self::MalformedRecord(_)
            | Self::InvalidCatalog(_)
            | Self::UnknownTable { .. }
            | Self::InvalidProcessor(_)
            | Self::InvalidEndpoint(_)
            | Self::InvalidRedshift(_)
            | Self::UnsupportedCompression(_) => ErrorCode::InvalidArgument,
        }
    }
}

/// The one place a Firehose error becomes an AWS error.
impl From<FirehoseError> for AwsError {
    fn from(error: FirehoseError) -> Self {
        match &error {
            FirehoseError::Storage(storage) => {
                tracing::error!(%storage, "firehose storage failure");
                AwsError::new(error.code(), format!("Internal service failure: {storage}"))
            }
            _ => AwsError::new(error.code(), error.to_string()),
        }
    }
}

/// The folders of the error output (`!{firehose:error-output-type}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorOutput {
    ProcessingFailed,
    FormatConversionFailed,
    PartitioningFailed,
    HttpEndpointFailed,
    /// AWS files failed Redshift loads under `errors/`.
    Errors,
}

impl ErrorOutput {
    pub const ALL: [Self; 5] = [
        Self::ProcessingFailed,
        Self::FormatConversionFailed,
        Self::PartitioningFailed,
        Self::HttpEndpointFailed,
        Self::Errors,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProcessingFailed => "processing-failed",
            Self::FormatConversionFailed => "format-conversion-failed",
            Self::PartitioningFailed => "partitioning-failed",
            Self::HttpEndpointFailed => "http-endpoint-failed",
            Self::Errors => "errors",
        }
    }
}

/// Why one record could not be processed or delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The transformation function failed the record, or every invocation for it (`Lambda.*`).
    #[error("{code}: {message}")]
    Transformation { code: &'static str, message: String },
    /// The MetadataExtraction query, or a partition key the prefix needs, failed for the record.
    #[error("{PARTITIONING}: {0}")]
    Partitioning(String),
    /// The record does not fit the conversion's table.
    #[error("{FORMAT_CONVERSION}: {0}")]
    FormatConversion(String),
    /// The destination refused the record for good, or its retries ran out.
    #[error("{error}")]
    Delivery { error: DeliveryError, output: ErrorOutput },
}

const PARTITIONING: &str = "DynamicPartitioning.MetadataExtractionFailed";
const FORMAT_CONVERSION: &str = "DataFormatConversion.MalformedData";

impl RecordError {
    /// Firehose's error code (`errorCode` of the error record).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Transformation { code, .. } => code,
            Self::Partitioning(_) => PARTITIONING,
            Self::FormatConversion(_) => FORMAT_CONVERSION,
            Self::Delivery { error, .. } => error.code,
        }
    }

    /// The `errorMessage` of the error record.
    pub fn message(&self) -> &str {
        match self {
            Self::Transformation { message, .. } | Self::Partitioning(message) | Self::FormatConversion(message) => {
                message
            }
            Self::Delivery { error, .. } => &error.message,
        }
    }

    pub fn output(&self) -> ErrorOutput {
        match self {
            Self::Transformation { .. } => ErrorOutput::ProcessingFailed,
            Self::Partitioning(_) => ErrorOutput::PartitioningFailed,
            Self::FormatConversion(_) => ErrorOutput::FormatConversionFailed,
            Self::Delivery { output, .. } => *output,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_messages_and_folders() {
        let lambda = RecordError::Transformation { code: "Lambda.FunctionError", message: "boom".into() };
        assert_eq!(
            (lambda.code(), lambda.message(), lambda.output().as_str()),
            ("Lambda.FunctionError", "boom", "processing-failed")
        );
        let query = RecordError::Partitioning("no key".into());
        assert_eq!((query.code(), query.output().as_str()), (PARTITIONING, "partitioning-failed"));
        let conversion = RecordError::FormatConversion("bad".into());
        assert_eq!(conversion.output().as_str(), "format-conversion-failed");
        let http = RecordError::Delivery {
            error: DeliveryError::new("HttpEndpoint.RequestTimeout", "slow"),
            output: ErrorOutput::HttpEndpointFailed,
        };
        assert_eq!(
            (http.code(), http.message(), http.output().as_str()),
            ("HttpEndpoint.RequestTimeout", "slow", "http-endpoint-failed")
        );
        assert_eq!(http.to_string(), "HttpEndpoint.RequestTimeout: slow");
    }
}
