//! Destination configurations: their validation (member constraints as ValidationException, the
//! rest as InvalidArgumentException, as AWS splits them), UpdateDestination's merge, and their
//! description with AWS's defaults filled in.

use serde_json::{Map, Value};
use tideline_proto::{AwsError, Pattern, Validator};

use crate::model::{
    BufferingHints, DestinationConfig, ExtendedS3Config, HttpEndpointConfig, ProcessingConfiguration, RedshiftConfig,
    RetryOptions, S3Config,
};
use crate::naming::validate_prefixes;

static ROLE_ARN: Pattern = Pattern::new(r"arn:.*:iam::\d{12}:role/[a-zA-Z_0-9+=,.@\-_/]+");
static BUCKET_ARN: Pattern = Pattern::new(r"arn:.*:s3:::[\w\.\-]{1,255}");
/// AWS requires `https://`; Tideline also takes `http://`, for endpoints on the local machine.
static HTTP_URL: Pattern = Pattern::new(r"https?://.*");
/// AWS only takes Redshift cluster host names; Tideline takes any host (a local PostgreSQL).
static JDBC_URL: Pattern = Pattern::new(r"jdbc:(redshift|postgresql)://[A-Za-z0-9.\-]+:\d{1,5}/[a-zA-Z0-9_$-]+");
static FILE_EXTENSION: Pattern = Pattern::new(r"^$|\.[0-9a-z!\-_.*'()]+");

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

fn validate_buffering(v: &mut Validator, path: &str, hints: Option<&BufferingHints>, max_size_mb: i64) {
    if let Some(hints) = hints {
        v.integer(&format!("{path}.sizeInMBs"), hints.size_in_m_bs, 1, max_size_mb);
        v.integer(&format!("{path}.intervalInSeconds"), hints.interval_in_seconds, 0, 900);
    }
}

fn validate_retry(v: &mut Validator, path: &str, retry: Option<&RetryOptions>) {
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

fn validate_processing(
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

/// Checks an ExtendedS3DestinationConfiguration (S3DestinationConfiguration is its subset).
pub(crate) fn validate_extended_s3(v: &mut Validator, path: &str, config: &ExtendedS3Config) -> Result<(), AwsError> {
    validate_s3(v, path, &config.s3);
    let processing =
        validate_processing(v, &format!("{path}.processingConfiguration"), config.processing_configuration.as_ref());
    v.one_of(&format!("{path}.s3BackupMode"), config.s3_backup_mode.as_deref(), &["Disabled", "Enabled"]);
    if let Some(backup) = &config.s3_backup_configuration {
        validate_s3(v, &format!("{path}.s3BackupConfiguration"), backup);
    }
    v.string(&format!("{path}.fileExtension"), config.file_extension.as_deref(), 0, 128, Some(&FILE_EXTENSION));
    v.string(&format!("{path}.customTimeZone"), config.custom_time_zone.as_deref(), 0, 50, None);
    if !v.is_ok() {
        return Ok(());
    }
    processing?;
    if config.s3_backup_mode.as_deref() == Some("Enabled") && config.s3_backup_configuration.is_none() {
        return Err(AwsError::invalid_argument(
            "S3BackupConfiguration must be specified when S3BackupMode is Enabled.",
        ));
    }
    if config.custom_time_zone.as_deref().is_some_and(|zone| !zone.is_empty() && zone != "UTC") {
        return Err(AwsError::invalid_argument("Tideline supports only the UTC CustomTimeZone."));
    }
    if config.format_conversion().is_some()
        && config.s3.compression_format.as_deref().is_some_and(|c| c != "UNCOMPRESSED")
    {
        return Err(AwsError::invalid_argument(
            "CompressionFormat must be UNCOMPRESSED when data format conversion is enabled; set the Parquet compression in the serializer instead.",
        ));
    }
    validate_prefixes(
        config.s3.prefix.as_deref(),
        config.s3.error_output_prefix.as_deref(),
        config.dynamic_partitioning(),
    )
    .map_err(AwsError::invalid_argument)
}

pub(crate) fn validate_http(v: &mut Validator, path: &str, config: &HttpEndpointConfig) -> Result<(), AwsError> {
    let endpoint_path = format!("{path}.endpointConfiguration");
    if v.required(&endpoint_path, config.endpoint_configuration.as_ref()) {
        let endpoint = config.endpoint_configuration.clone().unwrap_or_default();
        if v.required(&format!("{endpoint_path}.url"), endpoint.url.as_ref()) {
            v.string(&format!("{endpoint_path}.url"), endpoint.url.as_deref(), 1, 1000, Some(&HTTP_URL));
        }
        v.string(&format!("{endpoint_path}.name"), endpoint.name.as_deref(), 1, 256, None);
        v.string(&format!("{endpoint_path}.accessKey"), endpoint.access_key.as_deref(), 0, 4096, None);
    }
    validate_buffering(v, &format!("{path}.bufferingHints"), config.buffering_hints.as_ref(), 64);
    if let Some(request) = &config.request_configuration {
        v.one_of(
            &format!("{path}.requestConfiguration.contentEncoding"),
            request.content_encoding.as_deref(),
            &["NONE", "GZIP"],
        );
    }
    validate_retry(v, &format!("{path}.retryOptions"), config.retry_options.as_ref());
    v.one_of(&format!("{path}.s3BackupMode"), config.s3_backup_mode.as_deref(), &["FailedDataOnly", "AllData"]);
    validate_s3_part(v, path, config.processing_configuration.as_ref(), &config.s3_configuration, None)
}

/// What the HTTP endpoint and Redshift destinations share: the processing configuration, the
/// required `S3Configuration` (which the model keeps as a default-empty member: absent when
/// neither of its required ARNs is there) and an optional S3 backup configuration.
fn validate_s3_part(
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

pub(crate) fn validate_redshift(v: &mut Validator, path: &str, config: &RedshiftConfig) -> Result<(), AwsError> {
    validate_role_arn(v, path, config.role_arn.as_deref());
    if v.required(&format!("{path}.clusterJDBCURL"), config.cluster_jdbc_url.as_ref()) {
        v.string(&format!("{path}.clusterJDBCURL"), config.cluster_jdbc_url.as_deref(), 1, 512, Some(&JDBC_URL));
    }
    if v.required(&format!("{path}.copyCommand"), config.copy_command.as_ref()) {
        let table = config.copy_command.as_ref().map(|copy| copy.data_table_name.as_str());
        v.string(&format!("{path}.copyCommand.dataTableName"), table, 1, 512, None);
    }
    v.string(&format!("{path}.username"), config.username.as_deref(), 1, 512, None);
    v.string(&format!("{path}.password"), config.password.as_deref(), 6, 512, None);
    validate_retry(v, &format!("{path}.retryOptions"), config.retry_options.as_ref());
    v.one_of(&format!("{path}.s3BackupMode"), config.s3_backup_mode.as_deref(), &["Disabled", "Enabled"]);
    validate_s3_part(
        v,
        path,
        config.processing_configuration.as_ref(),
        &config.s3_configuration,
        config.s3_backup_configuration.as_ref(),
    )
}

/// UpdateDestination: the update's members replace the configuration's, objects merged member by
/// member (`S3Update` updates `S3Configuration`, `S3BackupUpdate` the backup configuration).
pub(crate) fn merge(current: &DestinationConfig, update: &Value) -> Result<DestinationConfig, AwsError> {
    let (mut base, rebuild): (Value, fn(Value) -> serde_json::Result<DestinationConfig>) = match current {
        DestinationConfig::ExtendedS3(config) => {
            (to_value(config)?, |value| serde_json::from_value(value).map(DestinationConfig::ExtendedS3))
        }
        DestinationConfig::HttpEndpoint(config) => {
            (to_value(config)?, |value| serde_json::from_value(value).map(DestinationConfig::HttpEndpoint))
        }
        DestinationConfig::Redshift(config) => {
            (to_value(config)?, |value| serde_json::from_value(value).map(DestinationConfig::Redshift))
        }
    };
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
    rebuild(base).map_err(|error| AwsError::invalid_argument(format!("Invalid destination update: {error}")))
}

fn to_value<T: serde::Serialize>(config: &T) -> Result<Value, AwsError> {
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

/// The destination's entry of DescribeDeliveryStream's `Destinations`.
pub(crate) fn describe(destination: &DestinationConfig) -> Result<Value, AwsError> {
    let mut entry = Map::new();
    entry.insert("DestinationId".into(), Value::from(DESTINATION_ID));
    match destination {
        DestinationConfig::ExtendedS3(config) => {
            let mut extended = config.clone();
            extended.s3 = config.s3.described();
            extended.s3_backup_mode.get_or_insert_with(|| "Disabled".into());
            extended.s3_backup_configuration = config.s3_backup_configuration.as_ref().map(S3Config::described);
            let mut extended = to_value(&extended)?;
            rename(&mut extended, "S3BackupConfiguration", "S3BackupDescription");
            entry.insert("S3DestinationDescription".into(), to_value(&config.s3.described())?);
            entry.insert("ExtendedS3DestinationDescription".into(), extended);
        }
        DestinationConfig::HttpEndpoint(config) => {
            let mut http = config.clone();
            if let Some(endpoint) = &mut http.endpoint_configuration {
                endpoint.access_key = None;
            }
            http.buffering_hints = Some(config.buffering_hints.clone().unwrap_or_default().filled());
            http.retry_options.get_or_insert(RetryOptions { duration_in_seconds: Some(RetryOptions::DEFAULT_SECS) });
            http.s3_backup_mode.get_or_insert_with(|| "FailedDataOnly".into());
            http.s3_configuration = config.s3_configuration.described();
            let mut http = to_value(&http)?;
            rename(&mut http, "S3Configuration", "S3DestinationDescription");
            entry.insert("HttpEndpointDestinationDescription".into(), http);
        }
        DestinationConfig::Redshift(config) => {
            let mut redshift = config.clone();
            redshift.password = None;
            redshift.retry_options.get_or_insert(RetryOptions { duration_in_seconds: Some(3600) });
            redshift.s3_backup_mode.get_or_insert_with(|| "Disabled".into());
            redshift.s3_configuration = config.s3_configuration.described();
            redshift.s3_backup_configuration = config.s3_backup_configuration.as_ref().map(S3Config::described);
            let mut redshift = to_value(&redshift)?;
            rename(&mut redshift, "S3Configuration", "S3DestinationDescription");
            rename(&mut redshift, "S3BackupConfiguration", "S3BackupDescription");
            entry.insert("RedshiftDestinationDescription".into(), redshift);
        }
    }
    let mut entry = Value::Object(entry);
    strip_nulls(&mut entry);
    Ok(entry)
}

/// Members never set are left out, as AWS leaves them out.
fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(object) => {
            object.retain(|_, member| !member.is_null());
            object.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

fn rename(value: &mut Value, from: &str, to: &str) {
    if let Some(object) = value.as_object_mut() {
        if let Some(moved) = object.remove(from) {
            object.insert(to.into(), moved);
        }
    }
}

/// A delivery stream has one destination, always with this id.
pub(crate) const DESTINATION_ID: &str = "destinationId-000000000001";
