//! What a delivery stream is, as stored in metadata and as the API shapes describe it. The
//! destination configurations are the AWS wire shapes themselves (PascalCase), so that what a
//! client sent is what DescribeDeliveryStream gives back; members Tideline only stores
//! (CloudWatch logging, KMS settings, secrets) are kept as opaque JSON. Here are the parts that
//! destination types share; each type's own configuration is in its folder under `destinations/`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::destinations::DestinationConfig;

/// One delivery stream. Persisted as JSON under `deliverystream/<name>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryStreamMeta {
    /// The storage log that buffers this stream's accepted records (shard 0 of this id).
    pub id: u64,
    pub name: String,
    pub arn: String,
    pub kind: DeliveryStreamType,
    /// Starts at 1, +1 on every UpdateDestination (and part of every S3 object name).
    pub version: u64,
    pub created_ms: i64,
    pub updated_ms: i64,
    #[serde(default)]
    pub source: Option<KinesisStreamSource>,
    pub destination: DestinationConfig,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub encryption: Option<Encryption>,
}

/// Firehose's record ids are opaque; Tideline's say which buffer and position hold the record
/// (PutRecord's `RecordId`, and the `recordId` the transformation hook sees).
pub fn record_id(stream_id: u64, index: u64) -> String {
    format!("{stream_id:016x}{index:032x}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryStreamType {
    DirectPut,
    KinesisStreamAsSource,
}

impl DeliveryStreamType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DirectPut => "DirectPut",
            Self::KinesisStreamAsSource => "KinesisStreamAsSource",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KinesisStreamSource {
    pub stream_arn: String,
    pub stream_name: String,
    pub role_arn: String,
    /// When the delivery stream started reading (Describe's DeliveryStartTimestamp).
    pub start_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Encryption {
    pub key_type: String,
    pub key_arn: Option<String>,
    pub enabled: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BufferingHints {
    pub size_in_m_bs: Option<i64>,
    pub interval_in_seconds: Option<i64>,
}

impl BufferingHints {
    pub const DEFAULT_SIZE_MB: i64 = 5;
    pub const DEFAULT_INTERVAL_SECS: i64 = 300;

    pub fn size_bytes(&self) -> usize {
        usize::try_from(self.size_in_m_bs.unwrap_or(Self::DEFAULT_SIZE_MB)).unwrap_or(1) * 1024 * 1024
    }

    pub fn interval_ms(&self) -> i64 {
        self.interval_in_seconds.unwrap_or(Self::DEFAULT_INTERVAL_SECS) * 1000
    }

    pub fn filled(&self) -> Self {
        Self {
            size_in_m_bs: Some(self.size_in_m_bs.unwrap_or(Self::DEFAULT_SIZE_MB)),
            interval_in_seconds: Some(self.interval_in_seconds.unwrap_or(Self::DEFAULT_INTERVAL_SECS)),
        }
    }
}

/// S3DestinationConfiguration (and the S3 part of the other destinations).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3Config {
    #[serde(rename = "RoleARN")]
    pub role_arn: Option<String>,
    #[serde(rename = "BucketARN")]
    pub bucket_arn: Option<String>,
    pub prefix: Option<String>,
    pub error_output_prefix: Option<String>,
    pub buffering_hints: Option<BufferingHints>,
    pub compression_format: Option<String>,
    pub encryption_configuration: Option<Value>,
    pub cloud_watch_logging_options: Option<Value>,
}

/// Where objects go: the bucket and the prefixes, with the compression applied to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub prefix: String,
    pub error_output_prefix: Option<String>,
    pub compression: String,
}

/// `arn:aws:s3:::bucket` → `bucket`.
pub fn bucket_name(bucket_arn: &str) -> &str {
    bucket_arn.rsplit(":::").next().unwrap_or(bucket_arn)
}

impl S3Config {
    pub fn location(&self) -> S3Location {
        S3Location {
            bucket: bucket_name(self.bucket_arn.as_deref().unwrap_or_default()).to_string(),
            prefix: self.prefix.clone().unwrap_or_default(),
            error_output_prefix: self.error_output_prefix.clone().filter(|prefix| !prefix.is_empty()),
            compression: self.compression_format.clone().unwrap_or_else(|| "UNCOMPRESSED".into()),
        }
    }

    /// S3DestinationDescription: the configuration with AWS's defaults filled in.
    pub fn described(&self) -> Self {
        let mut described = self.clone();
        described.buffering_hints = Some(self.buffering_hints.clone().unwrap_or_default().filled());
        described.compression_format.get_or_insert_with(|| "UNCOMPRESSED".into());
        described.encryption_configuration.get_or_insert_with(no_encryption);
        described.cloud_watch_logging_options.get_or_insert_with(logging_disabled);
        described.prefix.get_or_insert_with(String::new);
        described
    }
}

fn no_encryption() -> Value {
    serde_json::json!({ "NoEncryptionConfig": "NoEncryption" })
}

fn logging_disabled() -> Value {
    serde_json::json!({ "Enabled": false })
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessingConfiguration {
    pub enabled: Option<bool>,
    #[serde(default)]
    pub processors: Vec<Processor>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Processor {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(default)]
    pub parameters: Vec<ProcessorParameter>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessorParameter {
    pub parameter_name: String,
    pub parameter_value: String,
}

impl ProcessingConfiguration {
    /// The first processor of this type, if any.
    pub fn processor(&self, kind: &str) -> Option<&Processor> {
        self.processors.iter().find(|processor| processor.kind == kind)
    }
}

impl Processor {
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|parameter| parameter.parameter_name == name)
            .map(|parameter| parameter.parameter_value.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RetryOptions {
    pub duration_in_seconds: Option<i64>,
}

impl RetryOptions {
    pub const DEFAULT_SECS: i64 = 300;
}
