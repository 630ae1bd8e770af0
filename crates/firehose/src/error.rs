//! Why a record ends up in the error output, typed: each failure knows Firehose's error code and
//! the `!{firehose:error-output-type}` it is filed under, so nothing is classified by parsing
//! codes or messages. (Why a delivery attempt failed, and whether retrying can help, is
//! `destinations::DeliveryError`.)

use crate::destinations::DeliveryError;

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
    pub fn code(&self) -> &str {
        match self {
            Self::Transformation { code, .. } => code,
            Self::Partitioning(_) => PARTITIONING,
            Self::FormatConversion(_) => FORMAT_CONVERSION,
            Self::Delivery { error, .. } => &error.code,
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
