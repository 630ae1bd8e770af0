//! RedshiftDestinationConfiguration: its members, checks, Describe defaults (the password left
//! out) and the destination it builds.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tideline_proto::{AwsError, Validator};

use super::RedshiftDestination;
use crate::destinations::config::{rename, to_value, validate_retry, validate_role_arn, validate_s3_part, JDBC_URL};
use crate::destinations::{Destination, DestinationSpec, DestinationType};
use crate::error::FirehoseError;
use crate::model::{BufferingHints, DeliveryStreamMeta, ProcessingConfiguration, RetryOptions, S3Config, S3Location};
use crate::service::FirehoseService;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RedshiftConfig {
    #[serde(rename = "RoleARN")]
    pub role_arn: Option<String>,
    #[serde(rename = "ClusterJDBCURL")]
    pub cluster_jdbc_url: Option<String>,
    pub copy_command: Option<CopyCommand>,
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    pub retry_options: Option<RetryOptions>,
    pub s3_configuration: S3Config,
    pub processing_configuration: Option<ProcessingConfiguration>,
    pub s3_backup_mode: Option<String>,
    pub s3_backup_configuration: Option<S3Config>,
    pub cloud_watch_logging_options: Option<Value>,
    pub secrets_manager_configuration: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CopyCommand {
    pub data_table_name: String,
    pub data_table_columns: Option<String>,
    pub copy_options: Option<String>,
}

impl DestinationType for RedshiftConfig {
    const STORED_AS: &'static str = "Redshift";
    const CONFIGURATIONS: &'static [&'static str] = &["RedshiftDestinationConfiguration"];
    const UPDATES: &'static [&'static str] = &["RedshiftDestinationUpdate"];
}

impl DestinationSpec for RedshiftConfig {
    fn metric_name(&self) -> &'static str {
        "Redshift"
    }

    fn buffering_hints(&self) -> Option<&BufferingHints> {
        self.s3_configuration.buffering_hints.as_ref()
    }

    fn processing_configuration(&self) -> Option<&ProcessingConfiguration> {
        self.processing_configuration.as_ref()
    }

    fn error_bucket(&self) -> S3Location {
        self.s3_configuration.location()
    }

    fn backup(&self) -> Option<S3Location> {
        let enabled = self.s3_backup_mode.as_deref() == Some("Enabled");
        self.s3_backup_configuration.as_ref().filter(|_| enabled).map(S3Config::location)
    }

    fn validate(&self, v: &mut Validator, path: &str) -> Result<(), AwsError> {
        validate_role_arn(v, path, self.role_arn.as_deref());
        if v.required(&format!("{path}.clusterJDBCURL"), self.cluster_jdbc_url.as_ref()) {
            v.string(&format!("{path}.clusterJDBCURL"), self.cluster_jdbc_url.as_deref(), 1, 512, Some(&JDBC_URL));
        }
        if v.required(&format!("{path}.copyCommand"), self.copy_command.as_ref()) {
            let table = self.copy_command.as_ref().map(|copy| copy.data_table_name.as_str());
            v.string(&format!("{path}.copyCommand.dataTableName"), table, 1, 512, None);
        }
        v.string(&format!("{path}.username"), self.username.as_deref(), 1, 512, None);
        v.string(&format!("{path}.password"), self.password.as_deref(), 6, 512, None);
        validate_retry(v, &format!("{path}.retryOptions"), self.retry_options.as_ref());
        v.one_of(&format!("{path}.s3BackupMode"), self.s3_backup_mode.as_deref(), &["Disabled", "Enabled"]);
        validate_s3_part(
            v,
            path,
            self.processing_configuration.as_ref(),
            &self.s3_configuration,
            self.s3_backup_configuration.as_ref(),
        )
    }

    fn describe(&self, entry: &mut Map<String, Value>) -> Result<(), AwsError> {
        let mut redshift = self.clone();
        redshift.password = None;
        redshift.retry_options.get_or_insert(RetryOptions { duration_in_seconds: Some(3600) });
        redshift.s3_backup_mode.get_or_insert_with(|| "Disabled".into());
        redshift.s3_configuration = self.s3_configuration.described();
        redshift.s3_backup_configuration = self.s3_backup_configuration.as_ref().map(S3Config::described);
        let mut redshift = to_value(&redshift)?;
        rename(&mut redshift, "S3Configuration", "S3DestinationDescription");
        rename(&mut redshift, "S3BackupConfiguration", "S3BackupDescription");
        entry.insert("RedshiftDestinationDescription".into(), redshift);
        Ok(())
    }

    fn build(&self, _: &FirehoseService, _: &DeliveryStreamMeta) -> Result<Arc<dyn Destination>, FirehoseError> {
        Ok(Arc::new(RedshiftDestination::new(self)?))
    }
}
