//! What destination configurations share: validation helpers (member constraints as
//! ValidationException, the rest as InvalidArgumentException, as AWS splits them) and the pieces of
//! UpdateDestination's merge and of descriptions. Each destination's own checks, defaults and
//! merge are its `DestinationSpec`, in its file.

use serde_json::{Map, Value};
use tideline_proto::{AwsError, Pattern, Validator};

use crate::model::{BufferingHints, ProcessingConfiguration, RetryOptions, S3Config};

static ROLE_ARN: Pattern = Pattern::new(r"arn:.*:iam::\d{12}:role/[a-zA-Z_0-9+=,.@\-_/]+");
static BUCKET_ARN: Pattern = Pattern::new(r"arn:.*:s3:::[\w\.\-]{1,255}");
/// AWS requires `https://`; Tideline also takes `http://`, for endpoints on the local machine.
pub(crate) static HTTP_URL: Pattern = Pattern::new(r"https?://.*");
/// AWS only takes Redshift cluster host names; Tideline takes any host (a local PostgreSQL).
pub(crate) static JDBC_URL: Pattern =
    Pattern::new(r"jdbc:(redshift|postgresql)://[A-Za-z0-9.\-]+:\d{1,5}/[a-zA-Z0-9_$-]+");
pub(crate) static FILE_EXTENSION: Pattern = Pattern::new(r"^$|\.[0-9a-z!\-_.*'()]+");

const COMPRESSION_FORMATS: &[&str] = &["UNCOMPRESSED", "GZIP", "ZIP", "Snappy", "HADOOP_SNAPPY"];
const PROCESSOR_TYPES: &[&str] = &[
    "RecordDeAggregation",
    "Decompression",
    "CloudWatchLogProcessing",
    "Lambda",
    "MetadataExtraction",
    "AppendDelimiterToRecord",
];
/// Processor types Tideline runs; the others are refused rather than silently ignored.
const SUPPORTED_PROCESSORS: &[&str] = &["Lambda", "MetadataExtraction", "AppendDelimiterToRecord"];

pub(crate) fn validate_buffering(v: &mut Validator, path: &str, hints: Option<&BufferingHints>, max_size_mb: i64) {
    if let Some(hints) = hints {
        v.integer(&format!("{path}.sizeInMBs"), hints.size_in_m_bs, 1, max_size_mb);
        v.integer(&format!("{path}.intervalInSeconds"), hints.interval_in_seconds, 0, 900);
    }
}

pub(crate) fn validate_retry(v: &mut Validator, path: &str, retry: Option<&RetryOptions>) {
    if let Some(retry) = retry {
        v.integer(&format!("{path}.durationInSeconds"), retry.duration_in_seconds, 0, 7200);
    }
}

/// `<path>.roleARN`, which every configuration that has one must give.
pub(crate) fn validate_role_arn(v: &mut Validator, path: &str, role_arn: Option<&str>) {
    let member = format!("{path}.roleARN");
    if v.required(&member, role_arn) {
        v.string(&member, role_arn, 1, 512, Some(&ROLE_ARN));
    }
}

pub(crate) fn validate_s3(v: &mut Validator, path: &str, config: &S3Config) {
    validate_role_arn(v, path, config.role_arn.as_deref());
    if v.required(&format!("{path}.bucketARN"), config.bucket_arn.as_ref()) {
        v.string(&format!("{path}.bucketARN"), config.bucket_arn.as_deref(), 1, 2048, Some(&BUCKET_ARN));
    }
    v.string(&format!("{path}.prefix"), config.prefix.as_deref(), 0, 1024, None);
    v.string(&format!("{path}.errorOutputPrefix"), config.error_output_prefix.as_deref(), 0, 1024, None);
    validate_buffering(v, &format!("{path}.bufferingHints"), config.buffering_hints.as_ref(), 128);
    v.one_of(&format!("{path}.compressionFormat"), config.compression_format.as_deref(), COMPRESSION_FORMATS);
}

pub(crate) fn validate_processing(
    v: &mut Validator,
    path: &str,
    processing: Option<&ProcessingConfiguration>,
) -> Result<(), AwsError> {
    let Some(processing) = processing else { return Ok(()) };
    for (i, processor) in processing.processors.iter().enumerate() {
        v.one_of(&format!("{path}.processors.{}.member.type", i + 1), Some(&processor.kind), PROCESSOR_TYPES);
        for (j, parameter) in processor.parameters.iter().enumerate() {
            let member = format!("{path}.processors.{}.member.parameters.{}.member.parameterValue", i + 1, j + 1);
            v.string(&member, Some(&parameter.parameter_value), 1, 5120, None);
        }
    }
    if !processing.enabled.unwrap_or(true) {
        return Ok(());
    }
    match processing.processors.iter().find(|processor| !SUPPORTED_PROCESSORS.contains(&processor.kind.as_str())) {
        Some(processor) if PROCESSOR_TYPES.contains(&processor.kind.as_str()) => {
            Err(AwsError::invalid_argument(format!("Processor type {} is not supported by Tideline.", processor.kind)))
        }
        _ => Ok(()),
    }
}

/// What the HTTP endpoint and Redshift destinations share: the processing configuration, the
/// required `S3Configuration` (which the model keeps as a default-empty member: absent when
/// neither of its required ARNs is there) and an optional S3 backup configuration.
pub(crate) fn validate_s3_part(
    v: &mut Validator,
    path: &str,
    processing: Option<&ProcessingConfiguration>,
    s3: &S3Config,
    backup: Option<&S3Config>,
) -> Result<(), AwsError> {
    let processing = validate_processing(v, &format!("{path}.processingConfiguration"), processing);
    if v.required(&format!("{path}.s3Configuration"), s3.bucket_arn.as_ref().or(s3.role_arn.as_ref())) {
        validate_s3(v, &format!("{path}.s3Configuration"), s3);
    }
    if let Some(backup) = backup {
        validate_s3(v, &format!("{path}.s3BackupConfiguration"), backup);
    }
    if v.is_ok() {
        processing?;
    }
    Ok(())
}

/// UpdateDestination: the update's members replace the configuration's, objects merged member by
/// member (`S3Update` updates `S3Configuration`, `S3BackupUpdate` the backup configuration).
pub(crate) fn merge_update<T: serde::Serialize + serde::de::DeserializeOwned>(
    config: &T,
    update: &Value,
) -> Result<T, AwsError> {
    let mut base = to_value(config)?;
    let mut renamed = Map::new();
    for (key, value) in update.as_object().into_iter().flatten() {
        let key = match key.as_str() {
            "S3Update" => "S3Configuration".to_string(),
            "S3BackupUpdate" => "S3BackupConfiguration".to_string(),
            _ => key.clone(),
        };
        renamed.insert(key, value.clone());
    }
    merge_values(&mut base, Value::Object(renamed));
    serde_json::from_value(base)
        .map_err(|error| AwsError::invalid_argument(format!("Invalid destination update: {error}")))
}

pub(crate) fn to_value<T: serde::Serialize>(config: &T) -> Result<Value, AwsError> {
    serde_json::to_value(config).map_err(|error| AwsError::internal(error.to_string()))
}

fn merge_values(base: &mut Value, update: Value) {
    match (base, update) {
        (Value::Object(base), Value::Object(update)) => {
            for (key, value) in update {
                match base.get_mut(&key) {
                    Some(existing) if existing.is_object() && value.is_object() => merge_values(existing, value),
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, update) => *base = update,
    }
}

pub(crate) fn rename(value: &mut Value, from: &str, to: &str) {
    if let Some(object) = value.as_object_mut() {
        if let Some(moved) = object.remove(from) {
            object.insert(to.into(), moved);
        }
    }
}
