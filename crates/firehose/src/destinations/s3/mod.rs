//! The S3 destination (ExtendedS3DestinationConfiguration and S3DestinationConfiguration): records
//! concatenated (or converted to Parquet) into objects named as Firehose names them, grouped by
//! evaluated prefix when dynamic partitioning is on, compressed, and written to a bucket through
//! `object_store`. The same writer serves the error output and the S3 backup of every destination.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};

mod config;

pub use config::ExtendedS3Config;

use super::stores::{store_error, Buckets};
use super::{Batch, DeliveryError, Destination};
use crate::error::{ErrorOutput, FirehoseError, RecordError};
use crate::model::S3Location;
use crate::naming::{error_output_template, evaluate_prefix, object_key, PrefixContext};
use crate::processing::compression::Compression;
use crate::processing::parquet::{to_parquet, Catalog, TableSchema};
use crate::processing::{FailedRecord, OutRecord};
use crate::service::now_ms;

/// The error code of an object key the store refuses.
pub const INVALID_OBJECT_KEY: &str = "S3.InvalidObjectKey";

/// Writes records as objects under one bucket location.
#[derive(Clone)]
pub struct ObjectWriter {
    buckets: Arc<Buckets>,
    location: S3Location,
    compression: Compression,
    /// FileExtension overrides the default extension (which follows the compression).
    extension: Option<String>,
    stream_name: String,
    version: u64,
}

/// An object's content before compression.
struct ObjectBody {
    prefix: String,
    content: Vec<u8>,
    /// `.parquet` when the records were converted.
    format_extension: &'static str,
}

impl ObjectWriter {
    pub fn new(
        buckets: Arc<Buckets>,
        location: S3Location,
        stream_name: &str,
        version: u64,
    ) -> Result<Self, FirehoseError> {
        let compression = Compression::from_aws(&location.compression)
            .ok_or_else(|| FirehoseError::UnsupportedCompression(location.compression.clone()))?;
        Ok(Self { buckets, location, compression, extension: None, stream_name: stream_name.to_string(), version })
    }

    fn with_extension(mut self, extension: Option<String>) -> Self {
        self.extension = extension.filter(|extension| !extension.is_empty());
        self
    }

    async fn put(&self, body: ObjectBody) -> Result<(), DeliveryError> {
        let name = format!("{}-{}", self.stream_name, self.version);
        let compression = self.compression;
        let ObjectBody { prefix, content, format_extension } = body;
        // Compressing up to 128 MiB is seconds of CPU: not on the runtime threads.
        let content = cpu_bound(move || compression.compress(&content, &name))
            .await?
            .map_err(|error| DeliveryError::new("S3.InternalError", format!("compression failed: {error}")))?;
        let extension = match &self.extension {
            Some(extension) => extension.clone(),
            None => format!("{format_extension}{}", self.compression.extension()),
        };
        let key = object_key(&prefix, &self.stream_name, self.version, now_ms(), &extension);
        // A key made of partition keys (`a/../../b`) is refused the same way on every attempt.
        let path = ObjectPath::parse(&key).map_err(|error| {
            DeliveryError::permanent(INVALID_OBJECT_KEY, format!("invalid object key {key}: {error}"))
        })?;
        let store = self.buckets.bucket(&self.location.bucket)?;
        store.put(&path, PutPayload::from(content)).await.map_err(|error| store_error(&error))?;
        tracing::debug!(bucket = %self.location.bucket, %key, "object delivered");
        Ok(())
    }

    /// Writes the records as they are, one object per evaluated prefix.
    pub async fn write_records(&self, records: &[OutRecord]) -> Result<(), DeliveryError> {
        let (groups, failed) = self.group(records);
        if let Some(failure) = failed.first() {
            return Err(DeliveryError::new(failure.error.code(), failure.error.message()));
        }
        for (prefix, records) in groups {
            self.put(ObjectBody { prefix, content: concatenate(&records), format_extension: "" }).await?;
        }
        Ok(())
    }

    /// Writes records that failed, as Firehose's error records (one JSON document per line), under
    /// the error output prefix with `error_output_type`.
    pub async fn write_errors(
        &self,
        failed: &[FailedRecord],
        output: ErrorOutput,
        attempts: u32,
    ) -> Result<(), DeliveryError> {
        let Some(oldest) = failed.iter().map(|failure| failure.record.arrival_ms).min() else { return Ok(()) };
        let empty = BTreeMap::new();
        let context = PrefixContext {
            timestamp_ms: oldest,
            query_keys: &empty,
            lambda_keys: &empty,
            error_output_type: Some(output.as_str()),
        };
        let template = error_output_template(Some(&self.location.prefix), self.location.error_output_prefix.as_deref());
        let prefix = evaluate_prefix(template, &context)
            .map_err(|error| DeliveryError::new("S3.InvalidErrorOutputPrefix", error.to_string()))?;
        let now = now_ms();
        let mut content = Vec::new();
        for failure in failed {
            let line = serde_json::json!({
                "attemptsMade": attempts,
                "arrivalTimestamp": failure.record.arrival_ms,
                "errorCode": failure.error.code(),
                "errorMessage": failure.error.message(),
                "attemptEndingTimestamp": now,
                "rawData": base64::engine::general_purpose::STANDARD.encode(&failure.record.data),
            });
            content.extend_from_slice(line.to_string().as_bytes());
            content.push(b'\n');
        }
        self.put(ObjectBody { prefix, content, format_extension: "" }).await
    }

    /// Records by evaluated prefix; a record whose prefix cannot be evaluated (a partition key it
    /// lacks) fails alone.
    fn group<'a>(&self, records: &'a [OutRecord]) -> (BTreeMap<String, Vec<&'a OutRecord>>, Vec<FailedRecord>) {
        let oldest = records.iter().map(|record| record.arrival_ms).min().unwrap_or(0);
        let mut groups: BTreeMap<String, Vec<&OutRecord>> = BTreeMap::new();
        let mut failed = Vec::new();
        for record in records {
            let context = PrefixContext {
                timestamp_ms: oldest,
                query_keys: &record.query_keys,
                lambda_keys: &record.lambda_keys,
                error_output_type: None,
            };
            match evaluate_prefix(&self.location.prefix, &context) {
                Ok(prefix) => groups.entry(prefix).or_default().push(record),
                Err(error) => failed
                    .push(FailedRecord { record: record.clone(), error: RecordError::Partitioning(error.to_string()) }),
            }
        }
        (groups, failed)
    }
}

/// Runs CPU-heavy work on the blocking pool; a panic in it fails the attempt (the batch is kept
/// and retried).
async fn cpu_bound<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, DeliveryError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| DeliveryError::new("S3.InternalError", format!("processing failed: {error}")))
}

fn concatenate(records: &[&OutRecord]) -> Vec<u8> {
    let mut content = Vec::with_capacity(records.iter().map(|record| record.data.len()).sum());
    for record in records {
        content.extend_from_slice(&record.data);
    }
    content
}

/// Record format conversion to Parquet, with the table the configuration names.
struct Conversion {
    schema: TableSchema,
    compression: String,
}

pub struct S3Destination {
    writer: ObjectWriter,
    conversion: Option<Conversion>,
}

impl S3Destination {
    pub fn new(
        config: &ExtendedS3Config,
        buckets: Arc<Buckets>,
        catalog: &Catalog,
        stream_name: &str,
        version: u64,
    ) -> Result<Self, FirehoseError> {
        let writer = ObjectWriter::new(buckets, config.location(), stream_name, version)?
            .with_extension(config.file_extension.clone());
        let conversion = match config.format_conversion() {
            None => None,
            Some(conversion) => {
                let schema = conversion.schema_configuration.clone().unwrap_or_default();
                let database = schema.database_name.unwrap_or_default();
                let table = schema.table_name.unwrap_or_default();
                let schema =
                    catalog.table(&database, &table).cloned().ok_or(FirehoseError::UnknownTable { database, table })?;
                Some(Conversion { schema, compression: conversion.parquet_compression() })
            }
        };
        Ok(Self { writer, conversion })
    }
}

#[async_trait::async_trait]
impl Destination for S3Destination {
    async fn deliver(&self, batch: &Batch) -> Result<Vec<FailedRecord>, DeliveryError> {
        let (groups, mut failed) = self.writer.group(&batch.records);
        for (prefix, records) in groups {
            let body = match &self.conversion {
                None => ObjectBody { prefix, content: concatenate(&records), format_extension: "" },
                Some(conversion) => {
                    let data: Vec<Bytes> = records.iter().map(|record| record.data.clone()).collect();
                    let (schema, compression) = (conversion.schema.clone(), conversion.compression.clone());
                    let converted = cpu_bound(move || to_parquet(&data, &schema, &compression)).await?;
                    failed.extend(converted.failed.into_iter().filter_map(|(index, reason)| {
                        Some(FailedRecord {
                            record: (*records.get(index)?).clone(),
                            error: RecordError::FormatConversion(reason),
                        })
                    }));
                    let Some(parquet) = converted.parquet else { continue };
                    // Parquet compresses its pages itself; the object is not compressed again.
                    ObjectBody { prefix, content: parquet, format_extension: ".parquet" }
                }
            };
            match self.writer.put(body).await {
                Ok(()) => {}
                // This prefix's records fail alone; the other prefixes are delivered.
                // Only partition keys can make an object key invalid once the prefix was accepted.
                Err(error) if error.is_permanent() => failed.extend(records.iter().map(|record| FailedRecord {
                    record: (*record).clone(),
                    error: RecordError::Delivery { error: error.clone(), output: ErrorOutput::PartitioningFailed },
                })),
                Err(error) => return Err(error),
            }
        }
        Ok(failed)
    }

    fn retry_duration(&self) -> Option<Duration> {
        None
    }

    fn error_output(&self) -> ErrorOutput {
        ErrorOutput::ProcessingFailed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destinations::stores::BucketsConfig;
    use crate::model::S3Config;

    fn partitioned(buckets: Arc<Buckets>) -> S3Destination {
        let config = ExtendedS3Config {
            s3: S3Config {
                bucket_arn: Some("arn:aws:s3:::lake".into()),
                prefix: Some("c=!{partitionKeyFromQuery:customer}/".into()),
                ..S3Config::default()
            },
            ..ExtendedS3Config::default()
        };
        S3Destination::new(&config, buckets, &Catalog::default(), "stream", 1).expect("destination")
    }

    fn record(id: &str, customer: &str) -> OutRecord {
        let mut record = OutRecord::new(id.into(), 0, Bytes::from(id.to_string()));
        record.query_keys.insert("customer".into(), customer.into());
        record
    }

    #[tokio::test]
    async fn an_invalid_object_key_fails_its_records_alone() {
        let buckets = Arc::new(Buckets::new(BucketsConfig::Memory));
        let destination = partitioned(Arc::clone(&buckets));
        let batch = Batch { version: 1, records: vec![record("1", "a"), record("2", "a/../../b"), record("3", "b")] };
        let failed = destination.deliver(&batch).await.expect("the valid prefixes are delivered");
        let failed: Vec<(&str, &str)> =
            failed.iter().map(|failure| (failure.record.record_id.as_str(), failure.error.code())).collect();
        assert_eq!(failed, [("2", INVALID_OBJECT_KEY)]);
        let store = buckets.bucket("lake").expect("bucket");
        let listed: Vec<String> = futures_util::TryStreamExt::try_collect::<Vec<_>>(store.list(None))
            .await
            .expect("list")
            .into_iter()
            .map(|meta| meta.location.to_string())
            .collect();
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert!(listed.iter().all(|key| key.starts_with("c=a/") || key.starts_with("c=b/")), "{listed:?}");
    }
}
