//! ExtendedS3DestinationConfiguration (and the older S3DestinationConfiguration, stored in this
//! extended form as AWS does): its members, checks, Describe defaults and the destination it
//! builds.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tideline_proto::{AwsError, Validator};

use super::S3Destination;
use crate::destinations::config::{rename, to_value, validate_processing, validate_s3, FILE_EXTENSION};
use crate::destinations::{Destination, DestinationSpec, DestinationType};
use crate::error::FirehoseError;
use crate::model::{BufferingHints, DeliveryStreamMeta, ProcessingConfiguration, S3Config, S3Location};
use crate::naming::validate_prefixes;
use crate::service::FirehoseService;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExtendedS3Config {
    #[serde(flatten)]
    pub s3: S3Config,
    pub processing_configuration: Option<ProcessingConfiguration>,
    pub s3_backup_mode: Option<String>,
    pub s3_backup_configuration: Option<S3Config>,
    pub data_format_conversion_configuration: Option<DataFormatConversion>,
    pub dynamic_partitioning_configuration: Option<DynamicPartitioning>,
    pub file_extension: Option<String>,
    pub custom_time_zone: Option<String>,
}

impl ExtendedS3Config {
    pub fn location(&self) -> S3Location {
        self.s3.location()
    }

    pub fn dynamic_partitioning(&self) -> bool {
        self.dynamic_partitioning_configuration.as_ref().is_some_and(|config| config.enabled.unwrap_or(false))
    }

    pub fn format_conversion(&self) -> Option<&DataFormatConversion> {
        self.data_format_conversion_configuration.as_ref().filter(|config| config.enabled.unwrap_or(true))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DynamicPartitioning {
    pub enabled: Option<bool>,
    pub retry_options: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DataFormatConversion {
    pub enabled: Option<bool>,
    pub schema_configuration: Option<SchemaConfiguration>,
    pub input_format_configuration: Option<Value>,
    pub output_format_configuration: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SchemaConfiguration {
    #[serde(rename = "RoleARN")]
    pub role_arn: Option<String>,
    pub catalog_id: Option<String>,
    pub database_name: Option<String>,
    pub table_name: Option<String>,
    pub region: Option<String>,
    pub version_id: Option<String>,
}

impl DataFormatConversion {
    /// `OutputFormatConfiguration.Serializer.ParquetSerDe.Compression` (default SNAPPY).
    pub fn parquet_compression(&self) -> String {
        self.output_format_configuration
            .as_ref()
            .and_then(|output| output.pointer("/Serializer/ParquetSerDe/Compression"))
            .and_then(Value::as_str)
            .unwrap_or("SNAPPY")
            .to_string()
    }
}

impl DestinationType for ExtendedS3Config {
    const STORED_AS: &'static str = "ExtendedS3";
    const CONFIGURATIONS: &'static [&'static str] =
        &["S3DestinationConfiguration", "ExtendedS3DestinationConfiguration"];
    const UPDATES: &'static [&'static str] = &["S3DestinationUpdate", "ExtendedS3DestinationUpdate"];

    /// S3DestinationConfiguration has only the S3 members: the extended ones stay unset.
    fn from_member(member: &str, value: Value) -> Result<Self, serde_json::Error> {
        if member == "S3DestinationConfiguration" {
            let s3: S3Config = serde_json::from_value(value)?;
            return Ok(Self { s3, ..Self::default() });
        }
        serde_json::from_value(value)
    }
}

impl DestinationSpec for ExtendedS3Config {
    fn metric_name(&self) -> &'static str {
        "S3"
    }

    fn buffering_hints(&self) -> Option<&BufferingHints> {
        self.s3.buffering_hints.as_ref()
    }

    fn processing_configuration(&self) -> Option<&ProcessingConfiguration> {
        self.processing_configuration.as_ref()
    }

    /// The destination bucket itself.
    fn error_bucket(&self) -> S3Location {
        self.location()
    }

    fn backup(&self) -> Option<S3Location> {
        let enabled = self.s3_backup_mode.as_deref() == Some("Enabled");
        self.s3_backup_configuration.as_ref().filter(|_| enabled).map(S3Config::location)
    }

    fn validate(&self, v: &mut Validator, path: &str) -> Result<(), AwsError> {
        validate_s3(v, path, &self.s3);
        let processing =
            validate_processing(v, &format!("{path}.processingConfiguration"), self.processing_configuration.as_ref());
        v.one_of(&format!("{path}.s3BackupMode"), self.s3_backup_mode.as_deref(), &["Disabled", "Enabled"]);
        if let Some(backup) = &self.s3_backup_configuration {
            validate_s3(v, &format!("{path}.s3BackupConfiguration"), backup);
        }
        v.string(&format!("{path}.fileExtension"), self.file_extension.as_deref(), 0, 128, Some(&FILE_EXTENSION));
        v.string(&format!("{path}.customTimeZone"), self.custom_time_zone.as_deref(), 0, 50, None);
        if !v.is_ok() {
            return Ok(());
        }
        processing?;
        if self.s3_backup_mode.as_deref() == Some("Enabled") && self.s3_backup_configuration.is_none() {
            return Err(AwsError::invalid_argument(
                "S3BackupConfiguration must be specified when S3BackupMode is Enabled.",
            ));
        }
        if self.custom_time_zone.as_deref().is_some_and(|zone| !zone.is_empty() && zone != "UTC") {
            return Err(AwsError::invalid_argument("Tideline supports only the UTC CustomTimeZone."));
        }
        if self.format_conversion().is_some()
            && self.s3.compression_format.as_deref().is_some_and(|c| c != "UNCOMPRESSED")
        {
            return Err(AwsError::invalid_argument(
            "CompressionFormat must be UNCOMPRESSED when data format conversion is enabled; set the Parquet compression in the serializer instead.",
        ));
        }
        validate_prefixes(
            self.s3.prefix.as_deref(),
            self.s3.error_output_prefix.as_deref(),
            self.dynamic_partitioning(),
        )
        .map_err(AwsError::from)
    }

    fn describe(&self, entry: &mut Map<String, Value>) -> Result<(), AwsError> {
        let mut extended = self.clone();
        extended.s3 = self.s3.described();
        extended.s3_backup_mode.get_or_insert_with(|| "Disabled".into());
        extended.s3_backup_configuration = self.s3_backup_configuration.as_ref().map(S3Config::described);
        let mut extended = to_value(&extended)?;
        rename(&mut extended, "S3BackupConfiguration", "S3BackupDescription");
        entry.insert("S3DestinationDescription".into(), to_value(&self.s3.described())?);
        entry.insert("ExtendedS3DestinationDescription".into(), extended);
        Ok(())
    }

    fn build(
        &self,
        service: &FirehoseService,
        meta: &DeliveryStreamMeta,
    ) -> Result<Arc<dyn Destination>, FirehoseError> {
        let buckets = Arc::clone(&service.buckets);
        Ok(Arc::new(S3Destination::new(self, buckets, &service.catalog, &meta.name, meta.version)?))
    }
}
